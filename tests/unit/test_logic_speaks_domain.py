"""Logic speaks in domain terms: the repositories (adapters/store.py) own every key, index and expression."""

from __future__ import annotations

import re
from pathlib import Path

LOGIC = Path(__file__).resolve().parents[2] / "layers" / "common" / "smsgw" / "logic"

# What building a DynamoDB key or expression looks like: key attributes, index names, key prefixes,
# expression attribute names (#name) and values (:value) inside strings, and the request parameters.
TABLE_TERMS = re.compile(
    r"""\b(PK|SK|GSI\d?(PK|SK)?)\b"""
    r"""|(MSG|EVT|LIST|LISTLOG|Q|CONCAT|PENDING|MSISDN|REPLYWAIT)\#"""
    r"""|["'][^"'\n]*(?<![\w#])\#[a-z_]+\d*\s*(=|<|>|,|\)|\s(AND|OR)\b)"""
    r"""|["'][^"'\n]*\s:[a-z_]+\d*\b"""
    r"""|(KeyCondition|ConditionExpression|UpdateExpression|FilterExpression|ExpressionAttribute|key_condition|filter_expression)"""
    r"""|\b(attribute_exists|attribute_not_exists|list_append|if_not_exists)\b"""
)


def offending_lines() -> list[str]:
    found = []
    for path in sorted(LOGIC.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if TABLE_TERMS.search(line):
                found.append(f"{path.name}:{number}: {line.strip()}")
    return found


def test_no_logic_module_builds_a_dynamodb_key_or_expression():
    # Given every logic module
    # Then none names a key attribute, an index, a key prefix or an expression: those live in the repositories
    assert offending_lines() == []


def test_the_check_would_catch_a_key_or_an_expression():
    # Given lines as logic wrote them before the repositories owned the table
    samples = [
        '"GSI1PK": f"MSISDN#{sender}",',
        'key_condition="#pk = :pk AND #sk < :cutoff",',
        'names={"#pk": "GSI3PK", "#sk": "GSI3SK"},',
        'values={":pk": f"EVT#{bucket}", ":low": position},',
        'buffer_key = f"CONCAT#{sender}#{reference}#{total}"',
        'deps.store.get_item(f"LIST#{list_name}", digits)',
        'return {"PK": {"S": pk}}',
        'filter_expression="#dir = :mt AND attribute_exists(#wait)",',
    ]
    # Then each is caught
    assert [s for s in samples if not TABLE_TERMS.search(s)] == []


def test_the_readme_shows_the_key_design_as_the_repositories_write_it():
    import smsgw.adapters.store as store

    # Given the key design, written once in the repositories' docstring
    doc = store.__doc__ or ""
    written = doc[doc.index("  record ") : doc.index("\nAccess:")].rstrip("\n")
    # Then the README's architecture section shows exactly that
    readme = (LOGIC.parents[3] / "README.md").read_text()
    shown = readme[readme.index("<!-- key-design:start -->") : readme.index("<!-- key-design:end -->")]
    assert shown.split("```")[1].strip("\n") == written
