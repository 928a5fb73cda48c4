"""Saved commands: the worst case a command's variables allow, and the rules of its text and variables."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw import encoding
from smsgw.errors import ValidationFailed
from smsgw.logic import commands
from smsgw.logic.commands import ASTRAL, EXTENSION, GSM7, UCS2, Variable


def var(pattern: str, max_length: int) -> dict:
    return {"pattern": pattern, "max_length": max_length}


def refusal(body: dict, name: str = "cmd") -> dict:
    with pytest.raises(ValidationFailed) as caught:
        commands.define(name, body)
    return caught.value.details


# --- which characters a pattern can produce ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        (r"[0-9]{1,5}", GSM7),
        (r"ON|OFF", GSM7),
        (r"(?i)on|off", GSM7),  # o, n and f have no case partner outside GSM-7
        (r"(?a)\w+", GSM7),  # ASCII \w: letters, digits, _
        (r"[A-Z]{3}(?=X)", GSM7),  # a lookahead produces nothing
        (r"[a-z€]{1,4}", EXTENSION),  # € is in GSM-7's extension table (two septets; not Eseye 7-bit text)
        (r"[Δ]", UCS2),  # a GSM-7 basic character with no Latin-1 byte: Eseye's 7-bit text cannot carry it
        (r"[✓]", UCS2),
        (r"(?i)[a-z]+", UCS2),  # case-insensitive: also the Kelvin sign and the dotted capital I
        (r"😀", ASTRAL),
        (r"\d{1,4}", ASTRAL),  # any Unicode digit, mathematical bold digits included
        (r".", ASTRAL),
        (r"[^0-9]", ASTRAL),
    ],
)
def test_a_pattern_is_charged_its_costliest_character(pattern, kind):
    # Given a variable's pattern / When its costliest character is worked out
    found, character = commands.costliest(pattern)
    # Then it is the costliest kind the pattern can really produce, with a character of that kind it matches
    assert found == kind
    assert commands.kind_of(character) == kind
    # and that character is one the pattern matches (where one character alone can match)
    if re.fullmatch(pattern, character) is None:
        assert pattern in (r"[A-Z]{3}(?=X)", r"ON|OFF", r"(?i)on|off"), character


def test_the_longest_value_is_the_patterns_longest_match_or_max_length_if_shorter():
    assert commands.longest(r"[0-9]{1,5}", 10) == 5
    assert commands.longest(r"[0-9]+", 10) == 10
    assert commands.longest(r"ON|OFF", 160) == 3


# --- the worst case of a whole command ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pattern", "max_length", "expected"),
    [
        # plain GSM-7: 7 literal characters and 5 digits
        ("REBOOT {n}", r"[0-9]{1,5}", 5, {"encoding": "gsm7", "length": 12, "limit": 160}),
        # an extension character forces UCS-2 (Eseye's 7-bit text takes the basic alphabet only): one unit each
        ("PRICE {p}", r"[0-9€]{1,4}", 4, {"encoding": "ucs2", "length": 10, "limit": 70}),
        # UCS-2: one unit per BMP character
        ("ANGLE {a}", r"[0-9Δ]{1,3}", 3, {"encoding": "ucs2", "length": 9, "limit": 70}),
        # astral: two UTF-16 units each
        ("MOOD {m}", r"😀{1,10}", 10, {"encoding": "ucs2", "length": 25, "limit": 70}),
    ],
)
def test_the_worst_case_is_the_text_at_its_longest_and_costliest(text, pattern, max_length, expected):
    # Given a command with one variable / When it is saved
    command = commands.define("cmd", {"text": text, "variables": {re.search(r"\{(\w+)\}", text).group(1): var(pattern, max_length)}})
    # Then its worst case is that of the text with the variable at its longest, in its costliest character
    assert command.worst_case == expected


def test_literal_braces_count_as_the_extension_characters_they_are():
    command = commands.define("cmd", {"text": "SET {{x}}"})
    assert command.worst_case == {"encoding": "ucs2", "length": 7, "limit": 70}
    assert command.render({}) == "SET {x}"


def test_a_command_that_could_exceed_one_sms_is_refused_with_its_worst_case():
    # Given a GSM-7 text that, with its variable at 11 digits, would be 161 characters
    body = {"text": "A" * 150 + "{n}", "variables": {"n": var(r"[0-9]+", 11)}}
    # When it is saved / Then it is refused, saying by how much, and what made it so
    details = refusal(body)
    assert details["worst_case"] == {"encoding": "gsm7", "length": 161, "limit": 160}
    assert details["variables"] == {"n": {"length": 11, "character": "0", "kind": "gsm7"}}
    assert "161" in details["fields"]["text"] and "160" in details["fields"]["text"]


def test_a_command_exactly_at_the_limit_is_accepted():
    assert commands.define("cmd", {"text": "A" * 150 + "{n}", "variables": {"n": var(r"[0-9]+", 10)}}).worst_case["length"] == 160
    # UCS-2: two ticks and 34 emoji are 70 units; 35 emoji would be 72
    at_limit = {"text": "✓✓{e}", "variables": {"e": var("😀+", 34)}}
    assert commands.define("cmd", at_limit).worst_case == {"encoding": "ucs2", "length": 70, "limit": 70}
    over = refusal({"text": "✓✓{e}", "variables": {"e": var("😀+", 35)}})
    assert over["worst_case"] == {"encoding": "ucs2", "length": 72, "limit": 70}


def test_a_unicode_digit_class_is_refused_with_a_hint_when_it_does_not_fit():
    details = refusal({"text": "T" * 100 + "{n}", "variables": {"n": var(r"\d+", 20)}})
    assert details["variables"]["n"]["kind"] == ASTRAL
    assert "[0-9]" in details["fields"]["text"]
    # and the ASCII spelling of the same rule fits
    assert commands.define("cmd", {"text": "T" * 100 + "{n}", "variables": {"n": var(r"[0-9]+", 20)}}).worst_case["encoding"] == "gsm7"


@pytest.mark.parametrize("pattern", [r"[0-9]{1,8}", r"[A-Za-z0-9 ]{0,20}", r"(?i)on|off", r"[a-z€Δ]{1,6}", r"[😀✓a]{1,5}", r"(?a)\w{2,9}"])
@given(data=st.data())
def test_no_value_the_pattern_allows_renders_costlier_than_the_worst_case(pattern, data):
    # Given a command saved with a variable of this pattern
    max_length = 12
    command = commands.define("cmd", {"text": "CFG {v} END", "variables": {"v": var(pattern, max_length)}})
    worst = command.worst_case
    # When it is rendered with any value the variable accepts
    value = data.draw(st.from_regex(pattern, fullmatch=True).filter(lambda v: len(v) <= max_length))
    analysis = encoding.analyse_text(command.render({"v": value}), "auto")
    # Then it fits wherever the worst case fits: never longer for its limit than the worst case
    assert analysis.length * worst["limit"] <= worst["length"] * analysis.limit
    assert analysis.fits


# --- the text and its variables ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"text": "GO {x}"}, "variables.x", "declare it"),
        ({"text": "GO", "variables": {"x": var("[0-9]", 1)}}, "variables.x", "not used"),
        ({"text": "GO { now"}, "text", "{{"),
        ({"text": "GO }"}, "text", "}}"),
        ({"text": "GO {X}", "variables": {"X": var("[0-9]", 1)}}, "text", "{{"),
        ({"text": "GO {x}", "variables": {"x": var("[0-9", 1)}}, "variables.x.pattern", "does not compile"),
        ({"text": "GO {x}", "variables": {"x": var("(a+)+", 20)}}, "variables.x.pattern", "very long"),
        ({"text": "GO {x}", "variables": {"x": var("(ON|OFF)*", 20)}}, "variables.x.pattern", "very long"),
        ({"text": "GO {x}", "variables": {"x": var("(a{0,10}){0,10}b", 20)}}, "variables.x.pattern", "at most 4 times"),
        ({"text": "GO {x}", "variables": {"x": var("[a-z]*[a-z]*[a-z]*[a-z]*[0-9]", 20)}}, "variables.x.pattern", "at most 3 repetitions"),
        ({"text": "GO {x}", "variables": {"x": var("(a|a)" * 13 + "b", 20)}}, "variables.x.pattern", "4096 ways"),
        ({"text": "GO {x}", "variables": {"x": var("((ab|cd){2}){2}", 20)}}, "variables.x.pattern", "another repeated group"),
        ({"text": "GO {x}", "variables": {"x": var("[0-9]{6}", 5)}}, "variables.x.pattern", "shortest match has 6"),
        ({"text": "GO {x}", "variables": {"x": var("[0-9]", 0)}}, "variables.x.max_length", "1 to 160"),
        ({"text": "GO {x}", "variables": {"x": var("[0-9]", 161)}}, "variables.x.max_length", "1 to 160"),
        ({"text": "GO {x}", "variables": {"x": {"pattern": "[0-9]", "max_length": 1, "default": "1"}}}, "variables.x", "nothing else"),
        ({"text": "GO", "data": "00"}, "text", "exactly one"),
        ({}, "text", "exactly one"),
        ({"data": "0G"}, "data", "hex"),
        ({"data": "00", "variables": {"x": var("[0-9]", 1)}}, "variables", "takes no variables"),
        ({"text": "GO", "data_coding": "8"}, "data_coding", "only applies to data"),
        ({"text": "GO", "description": "x" * 257}, "description", "256"),
        ({"text": "GO", "colour": "red"}, "colour", "unknown field"),
        ({"text": "GO", "variables": ["x"]}, "variables", "object"),
    ],
)
def test_every_bad_definition_is_refused_naming_its_field(body, field, says):
    fields = refusal(body)["fields"]
    assert field in fields and says in fields[field], fields


def test_a_bad_name_is_refused():
    assert "name" in refusal({"text": "GO"}, name="-bad")["fields"]


def test_a_data_command_is_checked_against_its_octet_limit():
    assert commands.define("cmd", {"data": "00" * 140, "data_coding": "F6"}).worst_case == {"encoding": "8bit", "length": 140, "limit": 140}
    assert refusal({"data": "00" * 141})["worst_case"]["length"] == 141


def test_render_fills_placeholders_and_problems_name_each_bad_variable():
    command = commands.define("cfg", {"text": "SET {key}={value}", "variables": {"key": var("[A-Z_]{1,8}", 8), "value": var("[0-9]{1,4}", 4)}})
    assert command.render({"key": "RATE", "value": "30"}) == "SET RATE=30"
    assert command.problems({"key": "RATE", "value": "30"}) == {}
    problems = command.problems({"key": "rate", "value": 30, "extra": "1"})
    assert set(problems) == {"variables.key", "variables.value", "variables.extra"}
    assert "pattern" in problems["variables.key"] and "string" in problems["variables.value"] and "not a variable" in problems["variables.extra"]
    assert command.problems({"key": "RATE"}) == {"variables.value": "required by command cfg"}
    assert "at most 4" in command.problems({"key": "RATE", "value": "12345"})["variables.value"]
    assert command.problems(["RATE"]) == {"variables": "must be an object of variable names to string values"}
    with pytest.raises(ValidationFailed) as caught:
        command.render({"key": "RATE"})
    assert caught.value.details == {"fields": {"variables.value": "required by command cfg"}}


def test_a_data_command_takes_no_variables_when_sent():
    command = commands.define("raw", {"data": "0102"})
    assert command.problems({}) == {} and command.problems(None) == {}
    assert "takes no variables" in command.problems({"x": "1"})["variables"]


def test_a_saved_command_reads_back_as_it_was_stored():
    command = commands.define("cfg", {"text": "SET {v}", "variables": {"v": var("[0-9]", 1)}, "description": "one digit"})
    again = commands.SavedCommand.from_item(command.view())
    assert again == command and again.variables == {"v": Variable("[0-9]", 1)}


def test_patterns_beyond_the_search_budget_are_charged_the_costliest_case():
    # Given a budget with no code-point search left
    # When a pattern needs one (a category) / Then it counts as astral, rather than costing the time
    assert commands.costliest(r"(?a)\w", [0]) == (ASTRAL, "\U0001f600")
    # while literals and plain classes need none
    assert commands.costliest(r"[0-9A-F]{4}", [0]) == (GSM7, "0")
    # and a command's variables share one budget: the seventeenth searched pattern is charged astral
    names = [f"v{i:02d}" for i in range(17)]
    patterns = {n: var(rf"(?a)\w|{chr(0x3B1 + i)}", 1) for i, n in enumerate(names)}  # each needs a search; α... force UCS-2
    command = commands.define("cmd", {"text": "".join(f"{{{n}}}" for n in names), "variables": patterns})
    assert command.worst_case == {"encoding": "ucs2", "length": 18, "limit": 70}


def test_the_document_states_the_rules_the_gateway_checks():
    import json

    import jsonschema
    import yaml

    from local_stack.template import ROOT

    document = yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text())
    schemas = document["components"]["schemas"]
    # Given the rules as openapi/openapi.yaml states them / Then they are the ones logic/commands.py checks
    assert document["components"]["parameters"]["CommandName"]["schema"]["pattern"] == commands.NAME_PATTERN.pattern
    assert schemas["SendRequest"]["properties"]["command"]["pattern"] == commands.NAME_PATTERN.pattern
    variable = schemas["CommandVariable"]["properties"]
    assert (variable["max_length"]["minimum"], variable["max_length"]["maximum"]) == (1, commands.MAX_LENGTH_MAX)
    assert variable["pattern"]["maxLength"] == commands.PATTERN_MAX
    request = schemas["CommandRequest"]
    assert set(request["properties"]) == commands.ALLOWED_FIELDS
    assert request["properties"]["text"]["maxLength"] == commands.TEXT_MAX
    assert request["properties"]["variables"]["maxProperties"] == commands.VARIABLES_MAX
    assert request["properties"]["description"]["maxLength"] == commands.DESCRIPTION_MAX
    assert set(schemas["WorstCase"]["required"]) == set(commands.define("x", {"text": "GO"}).worst_case)
    # and the sample events' bodies are valid requests of the documented shape
    put = json.loads(json.loads((ROOT / "events" / "commands_put.json").read_text())["body"])
    jsonschema.validate(put, {**request, "components": document["components"]}, cls=jsonschema.Draft7Validator)
    sent = json.loads(json.loads((ROOT / "events" / "send_command.json").read_text())["body"])
    jsonschema.validate(sent, schemas["SendRequest"])
    # and what the API shows of a command is the documented SavedCommand
    shown = commands.SavedCommand.from_item(
        {**commands.define("set-apn", put).view(), "created_at": "t", "created_by": "a", "updated_at": "t", "updated_by": "a"}
    )
    assert set(schemas["SavedCommand"]["required"]) <= set(shown.view()) <= set(schemas["SavedCommand"]["properties"])


@pytest.mark.parametrize("pattern", [r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}", r"(ON|OFF){1,4}", r"[A-Z]+-[0-9]+-[a-z]+", r"\d+(\.\d+)?", r"(a+){0,3}b"])
def test_patterns_that_backtrack_little_are_accepted_and_match_a_hostile_value_at_once(pattern):
    import time

    assert commands._pattern_problem(pattern, 160) is None
    started = time.process_time()
    for value in ("a" * 160, "1" * 159 + "x", "ON" * 80):
        Variable(pattern, 160).problem(value)
    assert time.process_time() - started < 0.5
