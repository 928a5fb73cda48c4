"""Console pages read as a tree (the standard library's HTMLParser): what the console's tests look for in
the HTML a page or fragment answers."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None = None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        """The text inside as a reader sees it: whitespace collapsed, a space between elements."""
        return " ".join(" ".join(c.text() if isinstance(c, Node) else c for c in self.children).split())

    def raw_text(self) -> str:
        """The text inside exactly as sent (a textarea's lines, a preview's spaces)."""
        return "".join(c.raw_text() if isinstance(c, Node) else c for c in self.children)

    def all(self, tag: str | None = None, **attrs: str | bool) -> list[Node]:
        """Descendants with this tag and these attributes (True: present; a class_ value: among the classes)."""
        found = []
        for child in self.children:
            if not isinstance(child, Node):
                continue
            if (tag is None or child.tag == tag) and all(_matches(child, name, value) for name, value in attrs.items()):
                found.append(child)
            found.extend(child.all(tag, **attrs))
        return found

    def one(self, tag: str | None = None, **attrs: str | bool) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"expected one {tag} {attrs}, found {len(found)}"
        return found[0]

    def __getitem__(self, name: str) -> str:
        return self.attrs[name] or ""


def _matches(node: Node, name: str, value: str | bool) -> bool:
    if name == "class_":
        return str(value) in (node.attrs.get("class") or "").split()
    name = name.rstrip("_").replace("_", "-")
    return name in node.attrs if value is True else node.attrs.get(name) == value


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.root = self.current = Node("#document", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {name: value or "" for name, value in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, {name: value or "" for name, value in attrs}, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def dom(response) -> Node:
    builder = _Builder()
    builder.feed(response.get_data(as_text=True))
    return builder.root
