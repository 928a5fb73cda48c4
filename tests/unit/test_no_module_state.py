"""What a container builds once lives on its Deps, not in module globals: a new Deps (a new container, a
test) starts afresh, and nothing is built at import time. Scans the layer's source (pragmatic, not a proof)."""

import ast
from pathlib import Path

LAYER = Path(__file__).resolve().parents[2] / "layers" / "common" / "smsgw"
MUTATORS = {"append", "add", "update", "setdefault", "pop", "popitem", "clear", "extend", "insert", "remove", "discard", "__init__"}
CONTAINERS = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)
CONTAINER_CALLS = {"dict", "list", "set", "defaultdict", "deque", "OrderedDict", "Counter"}


def module_names(tree: ast.Module) -> dict[str, ast.expr]:
    bound: dict[str, ast.expr] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) and node.value else []
        for target in targets:
            if isinstance(target, ast.Name):
                bound[target.id] = node.value  # type: ignore[union-attr]
    return bound


def assigned(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign | ast.Delete):
        return list(node.targets)
    if isinstance(node, ast.AnnAssign | ast.AugAssign):
        return [node.target]
    return []


def stateful_classes(tree: ast.Module) -> set[str]:
    """Classes of this module whose instances keep attributes (an __init__ that assigns to self)."""
    found = set()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            writes = [t for n in ast.walk(item) for t in assigned(n)] if isinstance(item, ast.FunctionDef) and item.name == "__init__" else []
            if any(isinstance(t, ast.Attribute) for t in writes):
                found.add(node.name)
    return found


def called(call: ast.Call) -> str:
    return getattr(call.func, "id", getattr(call.func, "attr", ""))


def problems_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    bound = module_names(tree)
    classes = stateful_classes(tree)
    found = []
    containers = {name for name, value in bound.items() if isinstance(value, CONTAINERS)}
    containers |= {name for name, value in bound.items() if isinstance(value, ast.Call) and called(value) in CONTAINER_CALLS}
    for name, value in bound.items():
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in classes:
            found.append(f"{name} = {value.func.id}(...) keeps state at module level")
        if isinstance(value, ast.Call) and called(value) == "ThreadPoolExecutor":
            found.append(f"{name}: a thread pool built at import time")
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"global {', '.join(node.names)} (line {node.lineno})")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATORS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in containers
        ):
            found.append(f"{node.func.value.id}.{node.func.attr}() mutates a module-level container (line {node.lineno})")
        for target in assigned(node):
            if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id in containers:
                found.append(f"{target.value.id}[...] is written (line {node.lineno})")
    return [f"{path.relative_to(LAYER)}: {p}" for p in found]


def test_the_layer_keeps_no_mutable_state_in_module_globals():
    # Given every module of the shared layer
    # When its module-level names are checked for containers that are written, stateful singletons and `global`
    problems = [p for path in sorted(LAYER.rglob("*.py")) for p in problems_in(path)]
    # Then there are none: what a container builds once lives on its Deps
    assert problems == []


def test_the_scan_finds_what_it_looks_for(tmp_path):
    # Given a module with each kind of module-level state this codebase used to have
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import concurrent.futures\n"
        "_SENDERS: dict[int, object] = {}\n"
        "class _Breaker:\n    def __init__(self):\n        self.failures = {}\n"
        "_BREAKER = _Breaker()\n"
        "_RESOLVER = concurrent.futures.ThreadPoolExecutor(max_workers=4)\n"
        "_CONTEXT = None\n"
        "def get(deps):\n    global _CONTEXT\n    _SENDERS[id(deps)] = 1\n"
    )
    global LAYER
    saved, LAYER = LAYER, tmp_path
    try:
        found = problems_in(sample)
    finally:
        LAYER = saved
    # Then each is reported
    assert len(found) == 4, found


def test_what_a_container_builds_once_is_built_once_per_deps():
    from smsgw.config import Settings
    from smsgw.deps import build_deps
    from smsgw.logic import send

    # Given two containers' Deps
    first, second = build_deps(Settings("table", "secret")), build_deps(Settings("table", "secret"))
    # When each asks for its idempotent runner and tracer twice
    # Then each builds its own once and keeps it
    assert send._idempotent_send(first)[0] is send._idempotent_send(first)[0]
    assert send._idempotent_send(first)[0] is not send._idempotent_send(second)[0]
    assert first.tracer() is first.tracer()
    assert first.callback_http() is first.callback_http()
    assert first.callback_http() is not second.callback_http()
