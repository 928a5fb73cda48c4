"""Saved commands: a text (or data) with `{placeholders}`, checked once when saved so that any values their
variables' patterns allow still fit one SMS, and rendered per message.

Text: `{name}` is a placeholder, `{{` and `}}` are literal braces. Every placeholder is declared in
`variables` and every declared variable is used. A variable is `{"pattern": regex, "max_length": n}`:
a value must be at most n characters and match the pattern whole (re.fullmatch).

The worst case. At save time the text is rendered with each variable at its longest value (its pattern's
longest match, at most max_length) made of the costliest character its pattern can produce, and that
text goes through the same encoding analysis as POST /messages (encoding.analyse_text, `auto`).
Costliest first: a character outside the Basic Multilingual Plane (two UTF-16 units, UCS-2), any other
character outside Eseye's GSM-7 `text` (forces UCS-2), a GSM-7 extension character (two septets, and
Eseye's 7-bit `text` takes only the basic alphabet: it forces UCS-2 here too), a GSM-7 basic character.
Which characters a pattern can produce is found exactly, atom by atom (a literal, a class, `.`): literals
and classes of plain ranges are read directly; anything else (\\d, a negated class, `.`, `(?i)`) is compiled
alone, with the flags in force there, and tried on every code point of each kind. What cannot be worked
out (or would take more than SEARCHES_MAX such tries) counts as the costliest. Forcing UCS-2 is always at least as costly as staying in
GSM-7 (a UCS-2 text that fits has at most 70 units, so its GSM-7 form would have at most 140 septets),
so the text this builds is the costliest one a sender could make the command produce.

Patterns that could make some value slow to match are refused when saved (_backtracking_problem), since
values come from clients and Python's matcher backtracks.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smsgw import encoding, validation
from smsgw.deps import Deps, default_deps
from smsgw.errors import NotFound, ValidationFailed

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RULE = "must be 1 to 64 characters: letters, digits, _ . -, starting with a letter or digit"
VARIABLE_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")
VARIABLE_RULE = "must be 1 to 32 characters: a-z, 0-9 and _, not starting with a digit"
PATTERN_MAX = 256  # characters of a variable's regex
MAX_LENGTH_MAX = 160  # a value longer than one GSM-7 SMS could never fit
VARIABLES_MAX = 20
TEXT_MAX = 1024  # characters of the text as written ({{ and }} included); what renders must fit one SMS anyway
DESCRIPTION_MAX = 256
# Matching a value against a pattern must stay cheap whatever the value (values come from clients, and
# Python's re backtracks). Each bound below stops a measured blow-up on a 160-character value:
# (a{0,10}){0,10}b took 264 s, [a-z]*[a-z]*[a-z]*[a-z]*[a-z]*[0-9] several, (a|a)(a|a)... doubles per group.
NESTED_REPEAT_MAX = 4  # a repetition holding a repetition or alternatives repeats at most this often
LONG_REPEAT = 10  # a repetition of more than this counts as long...
LONG_REPEATS_MAX = 3  # ...and a pattern has at most this many, (a+){3} counting 3 (a*a*a*a* is n^4 on a failing value)
PATHS_MAX = 4096  # ways alternatives (and short repetitions of them) can combine
LIST_LIMIT_MAX = 100
CURSOR_KIND = "commands"
ALLOWED_FIELDS = frozenset({"text", "data", "data_coding", "variables", "description"})

# Kinds of character, costliest last; the worst case takes the costliest kind a pattern can produce.
GSM7, EXTENSION, UCS2, ASTRAL = "gsm7", "gsm7_extension", "ucs2", "astral"
KINDS = (GSM7, EXTENSION, UCS2, ASTRAL)
# A stand-in for each kind, for what cannot be worked out: counted as the costliest.
STAND_IN = {GSM7: "A", EXTENSION: "€", UCS2: "✓", ASTRAL: "\U0001f600"}
REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")  # re's opcodes, by name
# Atoms of one command's patterns tried on every code point: tens of milliseconds each on a small Lambda.
# A command whose patterns need more is charged the costliest case rather than the time.
SEARCHES_MAX = 16
EXHAUSTED = "exhausted"  # what _kinds_produced answers when an atom would need a search and none is left


@dataclass(frozen=True)
class Variable:
    pattern: str
    max_length: int

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this variable, or None."""
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > self.max_length:
            return f"must be at most {self.max_length} characters (it has {len(value)})"
        # The length is checked first: the pattern only ever meets at most MAX_LENGTH_MAX characters.
        if re.fullmatch(self.pattern, value) is None:
            return f"must match the pattern {self.pattern}"
        return None

    def to_item(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "max_length": self.max_length}


@dataclass(frozen=True)
class SavedCommand:
    """A saved command as stored and shown. A text command has `text` (with placeholders); a data command
    has `data` (hex) and `data_coding`, and no variables."""

    name: str
    text: str | None = None
    data: str | None = None
    data_coding: str | None = None
    variables: dict[str, Variable] = field(default_factory=dict)
    description: str | None = None
    worst_case: dict[str, Any] | None = None  # {encoding, length, limit}
    created_at: str | None = None
    created_by: str | None = None
    updated_at: str | None = None
    updated_by: str | None = None

    def problems(self, variables: Any) -> dict[str, str]:
        """What is wrong with `variables` for this command, by field (`variables` or `variables.<name>`):
        missing, unknown, not a string, too long, not matching. {} when they are fine. Never raises."""
        if variables is None:
            variables = {}
        if not isinstance(variables, Mapping):
            return {"variables": "must be an object of variable names to string values"}
        if self.data is not None:
            return {"variables": f"command {self.name} sends data and takes no variables"} if variables else {}
        problems: dict[str, str] = {}
        for name, variable in sorted(self.variables.items()):
            if name not in variables:
                problems[f"variables.{name}"] = f"required by command {self.name}"
            elif (problem := variable.problem(variables[name])) is not None:
                problems[f"variables.{name}"] = problem
        for name in sorted(str(n)[:64] for n in set(variables) - set(self.variables)):
            problems[f"variables.{name}"] = f"not a variable of command {self.name}"
        return problems

    def render(self, variables: Any) -> str:
        """The text with each placeholder replaced by its value. Raises ValidationFailed naming each bad
        variable (see `problems`), or the command when it sends data rather than text."""
        problems = self.problems(variables)
        if problems:
            raise validation.invalid(problems)
        if self.text is None:
            raise validation.invalid({"command": f"command {self.name} sends data, not text"})
        values = variables or {}
        return "".join(literal if name is None else str(values[name]) for literal, name in _segments(self.text))

    def view(self) -> dict[str, Any]:
        """The command as the API shows it (and as it is stored)."""
        item = {
            "name": self.name,
            "text": self.text,
            "data": self.data,
            "data_coding": self.data_coding,
            "variables": {name: v.to_item() for name, v in sorted(self.variables.items())},
            "description": self.description,
            "worst_case": self.worst_case,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }
        return {k: v for k, v in item.items() if v is not None}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> SavedCommand:
        variables = {str(n): Variable(str(v["pattern"]), int(v["max_length"])) for n, v in (item.get("variables") or {}).items()}
        return cls(
            name=str(item["name"]),
            text=item.get("text"),
            data=item.get("data"),
            data_coding=item.get("data_coding"),
            variables=variables,
            description=item.get("description"),
            worst_case=item.get("worst_case"),
            created_at=item.get("created_at"),
            created_by=item.get("created_by"),
            updated_at=item.get("updated_at"),
            updated_by=item.get("updated_by"),
        )


# --- the interface POST /messages and POST /batches use ------------------------------------------------


def load(deps: Deps, name: str) -> SavedCommand:
    """The saved command `name`. Raises NotFound."""
    item = deps.store.commands.get(name) if isinstance(name, str) and NAME_PATTERN.match(name) else None
    if item is None:
        raise NotFound(f"no saved command named {name!r}", {"command": name})
    return SavedCommand.from_item(item)


# --- the API: PUT, GET, DELETE /commands/{name} and GET /commands -------------------------------------


def put_command(name: str, body: Any, actor: str, deps: Deps | None = None) -> tuple[bool, dict[str, Any]]:
    """Save a command (new or replacing one). Returns (created, the command as stored). Raises
    ValidationFailed naming every bad field, or saying why the command could exceed one SMS."""
    deps = deps or default_deps()
    command = define(name, body)
    created, stored = deps.store.commands.save(command.view(), actor, deps.now_iso())
    return created, SavedCommand.from_item(stored).view()


def get_command(name: str, deps: Deps | None = None) -> dict[str, Any]:
    """Raises NotFound."""
    return load(deps or default_deps(), name).view()


def delete_command(name: str, actor: str, deps: Deps | None = None) -> None:
    """Raises NotFound."""
    deps = deps or default_deps()
    if not (NAME_PATTERN.match(name) and deps.store.commands.remove(name, actor, deps.now_iso())):
        raise NotFound(f"no saved command named {name!r}", {"command": name})


def list_commands(query: Mapping[str, str], deps: Deps | None = None) -> dict[str, Any]:
    """The saved commands by name, a page at a time: {"items", "next_cursor"}. Raises ValidationFailed
    (a bad limit) or InvalidCursor."""
    deps = deps or default_deps()
    raw_limit = query.get("limit", "20")
    if not (raw_limit.isdigit() and 1 <= int(raw_limit) <= LIST_LIMIT_MAX):
        raise validation.invalid({"limit": validation.range_rule(1, LIST_LIMIT_MAX)})
    after = None
    if query.get("cursor"):
        after = deps.store.commands.check_position(deps.cursors.position(CURSOR_KIND, {}, query["cursor"]))
    items, last = deps.store.commands.page(int(raw_limit), after)
    return {"items": [SavedCommand.from_item(i).view() for i in items], "next_cursor": deps.cursors.issue(CURSOR_KIND, {}, last)}


# --- checking a command as saved -----------------------------------------------------------------------


def define(name: str, body: Any) -> SavedCommand:
    """The command a PUT body describes, with its worst case. Raises ValidationFailed naming every bad
    field, or saying why the command could exceed one SMS (details: fields, worst_case, variables)."""
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    problems: dict[str, str] = {}
    if not NAME_PATTERN.match(name):
        problems["name"] = NAME_RULE
    for unknown in sorted(set(body) - ALLOWED_FIELDS):
        problems[str(unknown)[:64]] = "unknown field"
    text, data, data_coding = body.get("text"), body.get("data"), body.get("data_coding")
    if (text is None) == (data is None):
        problems["text"] = "exactly one of text or data is required"
    elif text is not None and not (isinstance(text, str) and 0 < len(text) <= TEXT_MAX):
        problems["text"] = f"must be a string of 1 to {TEXT_MAX} characters"
    elif data is not None and not (isinstance(data, str) and validation.HEX_PATTERN.match(data)):
        problems["data"] = "must be a non-empty, even-length string of hex digits"
    if data_coding is not None:
        if data is None:
            problems["data_coding"] = "only applies to data"
        elif str(data_coding).upper() not in encoding.DATA_CODINGS:
            problems["data_coding"] = f"must be one of {', '.join(encoding.DATA_CODINGS)}"
    description = body.get("description")
    if description is not None and not validation.printable(description, 0, DESCRIPTION_MAX):
        problems["description"] = f"must be a string of at most {DESCRIPTION_MAX} printable characters"
    variables = _variables(body.get("variables"), data is not None, problems)
    if isinstance(text, str) and "text" not in problems:
        _check_placeholders(text, variables, problems)
    if problems:
        raise validation.invalid(problems)

    if data is not None:
        coding = str(data_coding or "0").upper()
        try:
            hex_octets, analysis = encoding.analyse_data(data, coding)
        except encoding.EncodingError as exc:
            raise validation.invalid({"data": str(exc)}) from exc
        if not analysis.fits:
            reason = f"{analysis.length} octets, limit {analysis.limit} (Eseye does not concatenate)"
            raise ValidationFailed(f"the data does not fit one SMS: {reason}", {"fields": {"data": reason}, "worst_case": _worst(analysis)})
        return SavedCommand(name, data=hex_octets, data_coding=coding, description=description, worst_case=_worst(analysis))

    assert isinstance(text, str)
    analysis, chosen = worst_case(text, variables)
    if not analysis.fits:
        unit = {"gsm7": "characters", "ucs2": "UTF-16 code units"}[analysis.encoding]
        reason = f"could be {analysis.length} {unit} in {analysis.encoding}, limit {analysis.limit} (Eseye does not concatenate)"
        if chosen:
            reason += "; at their longest and costliest: " + ", ".join(
                f"{n} {c['length']} x {c['character']!r} ({c['kind']})" for n, c in sorted(chosen.items())
            )
        elif analysis.unicode_characters:
            reason += "; UCS-2 was forced by " + " ".join(analysis.unicode_characters)
        if any(c["kind"] in (UCS2, ASTRAL) and re.search(r"\\[dwsDWS]|\.", variables[n].pattern) for n, c in chosen.items()):
            reason += r"; note that \d, \w and \s match any Unicode digit, letter or space (write [0-9], or add (?a)), and . any character"
        details = {"fields": {"text": reason}, "worst_case": _worst(analysis), "variables": chosen}
        raise ValidationFailed(f"the command could exceed one SMS: {reason}", details)
    return SavedCommand(name, text=text, variables=variables, description=description, worst_case=_worst(analysis))


def _worst(analysis: encoding.TextAnalysis) -> dict[str, Any]:
    return {"encoding": analysis.encoding, "length": analysis.length, "limit": analysis.limit}


def _variables(raw: Any, for_data: bool, problems: dict[str, str]) -> dict[str, Variable]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems["variables"] = "must be an object of variable names to {pattern, max_length}"
        return {}
    if for_data and raw:
        problems["variables"] = "a data command takes no variables (its octets are sent as they are)"
        return {}
    if len(raw) > VARIABLES_MAX:
        problems["variables"] = f"at most {VARIABLES_MAX} variables"
        return {}
    found: dict[str, Variable] = {}
    for name, spec in raw.items():
        where = f"variables.{str(name)[:64]}"
        if not VARIABLE_PATTERN.match(name):
            problems[where] = f"the name {VARIABLE_RULE}"
            continue
        if not isinstance(spec, dict) or set(spec) - {"pattern", "max_length"}:
            problems[where] = "must be an object with pattern and max_length (and nothing else)"
            continue
        pattern, max_length = spec.get("pattern"), spec.get("max_length")
        bad = False
        if not validation.whole_number(max_length, 1, MAX_LENGTH_MAX):
            problems[f"{where}.max_length"] = validation.range_rule(1, MAX_LENGTH_MAX)
            bad = True
        pattern_problem = _pattern_problem(pattern, max_length if isinstance(max_length, int) else MAX_LENGTH_MAX)
        if pattern_problem:
            problems[f"{where}.pattern"] = pattern_problem
            bad = True
        if not bad:
            found[name] = Variable(str(pattern), int(str(max_length)))
    return found


def _pattern_problem(pattern: Any, max_length: int) -> str | None:
    if not isinstance(pattern, str) or not 0 < len(pattern) <= PATTERN_MAX:
        return f"must be a regular expression (Python syntax) of 1 to {PATTERN_MAX} characters"
    try:
        parsed = _parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        return f"does not compile: {exc}"
    backtracking = _backtracking_problem(parsed)
    if backtracking:
        return f"{backtracking}: matching some values could take very long"
    shortest, _ = parsed.getwidth()
    if shortest > max_length:
        return f"matches nothing of at most {max_length} characters (its shortest match has {shortest})"
    return None


def _segments(text: str) -> list[tuple[str, str | None]]:
    """The text as (literal, None) and ("", placeholder name) pieces. Raises ValueError on a lone brace."""
    pieces: list[tuple[str, str | None]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            literal.append(char)
            i += 2
        elif char == "{":
            end = text.find("}", i)
            name = text[i + 1 : end] if end != -1 else None
            if name is None or not VARIABLE_PATTERN.match(name):
                raise ValueError(f"a {{ at character {i + 1} starts no placeholder {{name}}: write {{{{ for a literal brace")
            pieces.append(("".join(literal), None))
            pieces.append(("", name))
            literal = []
            i = end + 1
        elif char == "}":
            raise ValueError(f"a }} at character {i + 1} closes no placeholder: write }}}} for a literal brace")
        else:
            literal.append(char)
            i += 1
    pieces.append(("".join(literal), None))
    return [p for p in pieces if p != ("", None)]


def _check_placeholders(text: str, variables: dict[str, Variable], problems: dict[str, str]) -> None:
    try:
        used = {name for _, name in _segments(text) if name is not None}
    except ValueError as exc:
        problems["text"] = str(exc)
        return
    for name in sorted(used - set(variables)):
        if f"variables.{name}" not in problems and not any(k.startswith(f"variables.{name}.") for k in problems):
            problems[f"variables.{name}"] = f"the text uses {{{name}}}: declare it in variables"
    for name in sorted(set(variables) - used):
        problems[f"variables.{name}"] = f"declared but not used in the text (add {{{name}}} or remove it)"


# --- the worst case ------------------------------------------------------------------------------------


def worst_case(text: str, variables: Mapping[str, Variable]) -> tuple[encoding.TextAnalysis, dict[str, dict[str, Any]]]:
    """The encoding analysis of `text` rendered with every variable at its longest and costliest value, and
    for each variable what was chosen: {"length", "character", "kind"}."""
    chosen: dict[str, dict[str, Any]] = {}
    searches = [SEARCHES_MAX]
    known: dict[str, tuple[str, str]] = {}  # variables often share a pattern
    for name, variable in sorted(variables.items()):
        if variable.pattern not in known:
            known[variable.pattern] = costliest(variable.pattern, searches)
        kind, character = known[variable.pattern]
        chosen[name] = {"length": longest(variable.pattern, variable.max_length), "character": character, "kind": kind}
    rendered = "".join(literal if name is None else chosen[name]["character"] * chosen[name]["length"] for literal, name in _segments(text))
    return encoding.analyse_text(rendered, "auto"), chosen


def longest(pattern: str, max_length: int) -> int:
    """The longest value a variable can take: its pattern's longest match, at most max_length."""
    try:
        _, widest = _parse(pattern).getwidth()
    except (re.error, RecursionError, OverflowError):
        return max_length
    return int(min(widest, max_length))


def kind_of(character: str) -> str:
    """How costly one character is in a text (see the module's docstring)."""
    if ord(character) > 0xFFFF:
        return ASTRAL
    if character in encoding.GSM7_EXTENSION.values():
        return EXTENSION
    return GSM7 if not encoding.non_gsm7_characters(character) else UCS2


def costliest(pattern: str, searches: list[int] | None = None) -> tuple[str, str]:
    """The costliest kind of character `pattern` can produce, and one such character. What cannot be
    worked out counts as the costliest (ASTRAL), as does a pattern met once `searches` (a one-item list,
    shared by a command's patterns: how many atoms may still be tried on every code point) ran out."""
    searches = [SEARCHES_MAX] if searches is None else searches
    try:
        parsed = _parse(pattern)
        atoms = list(_atoms(parsed, parsed.state.flags))
    except Exception:  # re's parser is private; a Python that changed it gets the costliest case
        return ASTRAL, STAND_IN[ASTRAL]
    best = (-1, "")
    tried: dict[tuple[str, int], list[tuple[int, str, str]]] = {}
    for atom, flags in atoms:
        key = (repr(atom), flags)
        if key not in tried:
            tried[key] = _kinds_produced(atom, flags, searches)
            if tried[key] and tried[key][-1][1] == EXHAUSTED:
                return ASTRAL, STAND_IN[ASTRAL]
        for rank, kind, character in tried[key]:
            if rank > best[0]:
                best = (rank, character or STAND_IN[kind])
            if rank == len(KINDS) - 1:
                return ASTRAL, best[1]
    if best[0] < 0:
        return GSM7, ""  # only the empty string (or anchors): nothing to count
    return KINDS[best[0]], best[1]


def _private(name: str) -> Any:
    """A private module of `re` (_parser, _compiler, _constants): the only way to read a pattern's structure.
    Python 3.11 to 3.13 have them; costliest() counts the worst case should one change."""
    return importlib.import_module(f"re.{name}")


def _parse(pattern: str) -> Any:
    re.compile(pattern)  # the public check first: its errors are the ones a user knows
    return _private("_parser").parse(pattern)


def _atoms(parsed: Any, flags: int) -> Any:
    """The character atoms (literal, class, any) of a parsed pattern, each with the flags in force there.
    Lookarounds produce no characters and are left out."""
    for op, av in parsed:
        kind = str(op)
        if kind in ("LITERAL", "NOT_LITERAL", "IN", "ANY"):
            yield (op, av), flags
        elif kind == "SUBPATTERN":
            _, add, remove, sub = av
            yield from _atoms(sub, (flags | add) & ~remove)
        elif kind in REPEATS:
            yield from _atoms(av[2], flags)
        elif kind == "BRANCH":
            for branch in av[1]:
                yield from _atoms(branch, flags)
        elif kind == "GROUPREF_EXISTS":
            for branch in av[1:]:
                if branch is not None:
                    yield from _atoms(branch, flags)
        elif kind == "ATOMIC_GROUP":
            yield from _atoms(av, flags)
        # Lookarounds (ASSERT, ASSERT_NOT) produce nothing; AT (anchors) and GROUPREF (repeats what its
        # group produced) add no kind of their own.


def _kinds_produced(atom: tuple[Any, Any], flags: int, searches: list[int]) -> list[tuple[int, str, str]]:
    """(rank, kind, a character) for each kind of character one atom matches. Literals and classes of
    literals and ranges (case-sensitive) are read directly; anything else (a category such as \\d, a negated
    class, `.`, case-insensitive matching) is found by trying the atom, compiled alone with its flags, on
    every code point of each kind, if `searches` has one left; else the answer is [(-1, EXHAUSTED, "")]."""
    op, av = atom
    if not flags & re.IGNORECASE and str(op) in ("LITERAL", "IN") and all(str(o) in ("LITERAL", "RANGE") for o, _ in _items(op, av)):
        found: dict[str, str] = {}
        for item_op, value in _items(op, av):
            low, high = (value, value) if str(item_op) == "LITERAL" else value
            for kind, character in _kinds_in_range(low, high):
                found.setdefault(kind, character)
        return [(KINDS.index(k), k, c) for k, c in sorted(found.items(), key=lambda kc: KINDS.index(kc[0]))]
    if searches[0] <= 0:
        return [(-1, EXHAUSTED, "")]
    searches[0] -= 1
    parser = _private("_parser")
    state = parser.State()
    state.flags = flags
    matcher = _private("_compiler").compile(parser.SubPattern(state, [atom]), flags)
    searched = []
    for rank, kind in enumerate(KINDS):
        match = matcher.search(_universe(kind))
        if match:
            searched.append((rank, kind, match.group()))
    return searched


def _items(op: Any, av: Any) -> list[tuple[Any, Any]]:
    """The members of a class (IN), or a literal as a class of one."""
    return list(av) if str(op) == "IN" else [(op, av)]


def _kinds_in_range(low: int, high: int) -> list[tuple[str, str]]:
    """(kind, a character) for each kind of character from code point `low` to `high`."""
    found = []
    if high > 0xFFFF:
        found.append((ASTRAL, chr(max(low, 0x10000))))
    common = {c for c in _universe(GSM7) + _universe(EXTENSION) if low <= ord(c) <= high}
    found += [(kind, min(c for c in common if kind_of(c) == kind)) for kind in (GSM7, EXTENSION) if any(kind_of(c) == kind for c in common)]
    # Past at most the surrogates and the GSM-7 characters, a BMP range reaches a character that forces UCS-2.
    for code in range(low, min(high, 0xFFFF) + 1):
        if not 0xD800 <= code < 0xE000 and chr(code) not in common:
            found.append((UCS2, chr(code)))
            break
    return found


@functools.cache
def _universe(kind: str) -> str:
    """Every code point of one kind, as one string (built once per container, on the first save)."""
    if kind == GSM7:
        return "".join(sorted(c for c in encoding.GSM7_BASIC if not encoding.non_gsm7_characters(c)))
    if kind == EXTENSION:
        return "".join(encoding.GSM7_EXTENSION.values())
    if kind == ASTRAL:
        return "".join(map(chr, range(0x10000, 0x110000)))
    skip = set(_universe(GSM7)) | set(_universe(EXTENSION))
    return "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000 and chr(c) not in skip)


def _backtracking_problem(parsed: Any) -> str | None:
    """Why matching `parsed` could take exponential (or high polynomial) time, or None."""
    long_repeats = [0]
    try:
        paths = _paths(parsed, long_repeats)
    except ValueError as exc:
        return str(exc)
    if long_repeats[0] > LONG_REPEATS_MAX:
        return f"at most {LONG_REPEATS_MAX} repetitions of more than {LONG_REPEAT} in a pattern"
    if paths > PATHS_MAX:
        return f"its alternatives combine in more than {PATHS_MAX} ways"
    return None


def _paths(parsed: Any, long_repeats: list[int], weight: int = 1) -> int:
    """An upper bound of the ways the alternatives of `parsed` combine, counting its long repetitions into
    `long_repeats` (each `weight` times: as often as the repetitions around it repeat). Raises ValueError
    when a repetition holding a repetition or alternatives repeats more than NESTED_REPEAT_MAX times, or
    sits inside another such repetition."""
    total = 1
    for op, av in parsed:
        kind = str(op)
        if kind in REPEATS:
            _, high, sub = av
            if high > LONG_REPEAT:
                long_repeats[0] += weight
            inner = _paths(sub, long_repeats, weight * max(1, min(high, NESTED_REPEAT_MAX)))
            if high > 1 and _ambiguous(sub):
                if high > NESTED_REPEAT_MAX:
                    raise ValueError(f"a group holding a repetition or alternatives may repeat at most {NESTED_REPEAT_MAX} times")
                if any(_ambiguous(s) for s in _repeated_bodies(sub)):
                    raise ValueError("a repeated group may not hold another repeated group that holds a repetition or alternatives")
                total *= (inner + 1) ** high
            elif high >= 1 and inner > 1:
                total *= inner + 1
        elif kind == "BRANCH":
            total *= sum(_paths(branch, long_repeats, weight) for branch in av[1])
        elif kind in ("SUBPATTERN", "ATOMIC_GROUP"):
            total *= _paths(av[3] if kind == "SUBPATTERN" else av, long_repeats, weight)
        total = min(total, PATHS_MAX + 1)
    return total


def _repeated_bodies(parsed: Any) -> list[Any]:
    """The bodies of the repetitions (of more than once) anywhere inside `parsed`."""
    found = []
    for op, av in parsed:
        kind = str(op)
        if kind in REPEATS:
            if av[1] > 1:
                found.append(av[2])
            found += _repeated_bodies(av[2])
        elif kind == "BRANCH":
            for branch in av[1]:
                found += _repeated_bodies(branch)
        elif kind in ("SUBPATTERN", "ATOMIC_GROUP"):
            found += _repeated_bodies(av[3] if kind == "SUBPATTERN" else av)
    return found


def _ambiguous(parsed: Any) -> bool:
    """Whether `parsed` holds a repetition (of more than once) or alternatives, at any depth."""
    for op, av in parsed:
        kind = str(op)
        if kind == "BRANCH" or (kind in REPEATS and av[1] > 1):
            return True
        if kind in REPEATS and _ambiguous(av[2]):
            return True
        if kind in ("SUBPATTERN", "ATOMIC_GROUP") and _ambiguous(av[3] if kind == "SUBPATTERN" else av):
            return True
    return False
