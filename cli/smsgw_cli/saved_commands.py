"""`smsgw command ...`: saved commands (PUT|GET|DELETE /commands/{name}, GET /commands), and the
`--command NAME --var k=v` options a send uses to name one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from smsgw_client import Client


def variable_spec(text: str) -> tuple[str, dict[str, Any]]:
    """`--var NAME:MAX_LENGTH=PATTERN` of `command save`, e.g. `pin:4=[0-9]{4}`."""
    head, separator, pattern = text.partition("=")
    name, _, length = head.partition(":")
    if not separator or not name or not length.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: want NAME:MAX_LENGTH=PATTERN, e.g. pin:4=[0-9]{{4}}")
    return name.strip(), {"pattern": pattern, "max_length": int(length)}


def variable_value(text: str) -> tuple[str, str]:
    """`--var NAME=VALUE` of a send with --command."""
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: want NAME=VALUE")
    return name.strip(), value


def add_parser(commands: Any) -> None:
    """The `command` command and its subcommands, on main's subparsers."""
    command = commands.add_parser("command", help="saved commands: a text with {variables}, checked once to fit one SMS")
    actions = command.add_subparsers(dest="command_action", required=True)
    save = actions.add_parser("save", help="save a command (new, or in place of the one of that name)")
    save.add_argument("name")
    save.add_argument("text", nargs="?", help="the text; {name} is a variable, {{ and }} are literal braces")
    save.add_argument("--data", metavar="HEX", help="send these octets instead of a text (no variables)")
    save.add_argument("--data-coding", choices=["0", "4", "8", "F6"])
    save.add_argument(
        "--var", action="append", type=variable_spec, default=[], metavar="NAME:MAX=PATTERN", help="a variable, e.g. 'pin:4=[0-9]{4}'; repeatable"
    )
    save.add_argument("--description")
    save.add_argument("--from-file", metavar="FILE", help="the whole definition as JSON (text or data, variables, description)")
    listing = actions.add_parser("list", help="the saved commands, by name")
    listing.add_argument("--limit", type=int, default=100, help="commands per request (every page is read)")
    show = actions.add_parser("show", help="a saved command")
    show.add_argument("name")
    delete = actions.add_parser("delete", help="delete a saved command")
    delete.add_argument("name")


def definition(args: argparse.Namespace) -> dict[str, Any]:
    """The PUT body `command save` sends; the API checks every field."""
    body: dict[str, Any] = json.loads(Path(args.from_file).read_text()) if args.from_file else {}
    if args.text is not None:
        body["text"] = args.text
    if args.data is not None:
        body["data"] = args.data
    if args.data_coding:
        body["data_coding"] = args.data_coding
    if args.var:
        body["variables"] = {**body.get("variables", {}), **dict(args.var)}
    if args.description is not None:
        body["description"] = args.description
    return body


def show(command: dict[str, Any]) -> str:
    worst = command.get("worst_case") or {}
    content = command["text"] if "text" in command else f"<{command.get('data', '')}> data_coding {command.get('data_coding')}"
    lines = [f"{command['name']}  worst case {worst.get('encoding')} {worst.get('length')}/{worst.get('limit')}", f"  {content}"]
    if command.get("description"):
        lines.append(f"  {command['description']}")
    for name, variable in sorted((command.get("variables") or {}).items()):
        lines.append(f"  {{{name}}}  at most {variable['max_length']}  pattern {variable['pattern']}")
    lines.append(f"  saved {command.get('updated_at')} by {command.get('updated_by')}")
    lines.append(f"  first {command.get('created_at')} by {command.get('created_by')}")
    return "\n".join(lines)


def run(args: argparse.Namespace, client: Client) -> int:
    """Run `command <action>`. Returns the exit code; the API's refusals (ApiError) are the caller's to show."""
    action = args.command_action
    if action == "list":
        items = list(client.iter_commands(limit=args.limit))
        if args.json:
            print(json.dumps({"items": items, "next_cursor": None}))
            return 0
        for command in items:
            worst = command["worst_case"]
            content = command.get("text", f"<{command.get('data')}>")
            print(f"{command['name']:<24} {worst['encoding']:<5} {worst['length']:>3}/{worst['limit']:<3}  {content}")
        return 0
    if action == "save":
        try:
            body = definition(args)
        except (OSError, ValueError) as exc:  # --from-file unreadable or not JSON
            print(f"cannot read the definition: {exc}", file=sys.stderr)
            return 2
        document = client.put_command(args.name, body)
    elif action == "show":
        document = client.get_command(args.name)
    else:
        document = client.delete_command(args.name)
    if args.json:
        print(json.dumps(document))
    elif action == "delete":
        print(f"deleted {args.name}")
    else:
        saved = "created " if document.http_status == 201 else "replaced " if action == "save" else ""
        print(saved + show(document))
    return 0
