"""`smsgw group ...`: groups of SIMs (PUT|GET|DELETE /groups/{name}, its members, GET /groups)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

from smsgw_cli.errors import refused
from smsgw_client import ApiError, Client

MSISDN = re.compile(r"^\+?[0-9]{8,15}$")


def add_parser(commands: Any) -> None:
    """The `group` command and its subcommands, on main's subparsers."""
    group = commands.add_parser("group", help="groups of SIMs to send to at once (up to 100,000 each)")
    actions = group.add_subparsers(dest="group_command", required=True)
    put = actions.add_parser("set", help="replace a group's members (creating it) from a file")
    put.add_argument("name")
    put.add_argument(
        "--from-file",
        required=True,
        metavar="FILE",
        help="one MSISDN per line, or a CSV whose first column is one (a header is skipped); - for stdin",
    )
    add = actions.add_parser("add", help="add members")
    add.add_argument("name")
    add.add_argument("msisdns", nargs="*", metavar="MSISDN")
    add.add_argument("--from-file", metavar="FILE", help="as for set")
    remove = actions.add_parser("remove", help="remove one member")
    remove.add_argument("name")
    remove.add_argument("msisdn")
    show = actions.add_parser("show", help="a group and its members")
    show.add_argument("name")
    show.add_argument("--limit", type=int, default=100, help="members to show (default 100)")
    show.add_argument("--all", action="store_true", help="every member, page after page")
    actions.add_parser("list", help="the groups")
    delete = actions.add_parser("delete", help="delete a group")
    delete.add_argument("name")


def read_members(path: str) -> tuple[list[str], list[int]]:
    """The MSISDNs in a file (one per line, or a CSV's first column), with the line each came from. Blank lines
    and `#` comments are skipped, and so is a first row that is not a number (a header). Anything else is
    passed on as it is, so that the API names what is wrong with it."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    members: list[str] = []
    lines: list[int] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), 1):
        value = row[0].strip() if row else ""
        if not value or value.startswith("#"):
            continue
        if not members and not MSISDN.match(value) and not any(c.isdigit() for c in value):
            continue  # a header such as "msisdn"
        members.append(value)
        lines.append(number)
    return members, lines


def explain_invalid(error: ApiError, lines: list[int], path: str) -> str:
    """A 422 about members, with the file's line numbers instead of list positions."""
    details = error.details if isinstance(error.details, dict) else {}
    fields = details.get("fields")
    if not isinstance(fields, dict):
        return ""
    out = []
    for field, problem in fields.items():
        match = re.fullmatch(r"members\[(\d+)\]", field)
        if match and int(match.group(1)) < len(lines):
            out.append(f"  {path}:{lines[int(match.group(1))]}: {problem}")
    more = details.get("invalid_count", 0) - len(out)
    if out and more > 0:
        out.append(f"  ... and {more} more")
    return "\n".join(out)


def show_group(group: dict[str, Any]) -> str:
    return (
        f"group {group['name']}: {group['size']} members\n"
        f"  created {group['created_at']} by {group['created_by']}\n"
        f"  updated {group['updated_at']} by {group['updated_by']}"
    )


def run(args: argparse.Namespace, client: Client) -> int:
    """Carry out `smsgw group ...`. Returns the exit status."""
    action, lines, path = args.group_command, [], ""
    if action == "list":
        return list_groups(args, client)
    if action == "show":
        return show(args, client)
    if action == "set" or (action == "add" and args.from_file):
        path = args.from_file
        try:
            members, lines = read_members(path)
        except OSError as exc:
            print(f"cannot read {path}: {exc}", file=sys.stderr)
            return 2
        if action == "add":
            members += args.msisdns
    try:
        if action == "set":
            document = client.put_group(args.name, members)
        elif action == "add":
            document = client.add_group_members(args.name, members if args.from_file else args.msisdns)
        elif action == "remove":
            document = client.remove_group_member(args.name, args.msisdn)
        else:
            document = client.delete_group(args.name)
    except ApiError as error:
        return refused(error, args.json, *([explain_invalid(error, lines, path)] if error.status == 422 and lines else []))
    if args.json:
        print(json.dumps(document))
        return 0
    if action == "set":
        before = "created" if document.http_status == 201 else f"was {document['previous_size']}"
        print(f"group {args.name}: {document['size']} members ({before})")
    elif action == "add":
        print(f"group {args.name}: {document['added']} added, {document['size']} members")
    elif action == "remove":
        print(f"group {args.name}: {document['removed']} removed, {document['size']} members")
    else:
        print(f"group {args.name} deleted ({document['size']} members)")
    return 0


def show(args: argparse.Namespace, client: Client) -> int:
    limit = 10_000 if args.all else max(1, min(args.limit, 10_000))
    page = client.get_group(args.name, limit=limit)
    members: list[str] = list(page["members"])
    while args.all and page["next_cursor"]:
        page = client.get_group(args.name, limit=limit, cursor=page["next_cursor"])
        members += page["members"]
    if args.json:
        print(json.dumps({**page, "members": members, "next_cursor": page["next_cursor"]}))
        return 0
    print(show_group(page))
    print("\n".join(f"  {m}" for m in members))
    if page["next_cursor"]:
        print(f"  ... ({page['size'] - len(members)} more: --all shows them)")
    return 0


def list_groups(args: argparse.Namespace, client: Client) -> int:
    groups = list(client.iter_groups(limit=100))
    if args.json:
        print(json.dumps({"items": groups, "next_cursor": None}))
        return 0
    for group in groups:
        print(f"{group['name']:<32} {group['size']:>7} members  updated {group['updated_at']} by {group['updated_by']}")
    if not groups:
        print("no groups")
    return 0
