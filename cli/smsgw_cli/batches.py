"""`smsgw batch ...`: one command to many SIMs (POST /batches), followed with a progress bar, or cancelled."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from smsgw_cli import groups, saved_commands
from smsgw_cli.errors import refused
from smsgw_client import ApiError, Client

FINAL = ("delivered", "failed", "rejected", "cancelled", "blocked")
BAR_WIDTH = 30


def add_parser(commands: Any) -> None:
    """The `batch` command and its subcommands, on main's subparsers."""
    batch = commands.add_parser("batch", help="send to many SIMs at once, follow and cancel batches")
    actions = batch.add_subparsers(dest="batch_command", required=True)
    send = actions.add_parser("send", help="send one text or saved command to a file of SIMs or a group")
    recipients = send.add_mutually_exclusive_group(required=True)
    recipients.add_argument("--to-file", metavar="FILE", help="one MSISDN per line, or a CSV whose first column is one; - for stdin")
    recipients.add_argument("--group", metavar="NAME", help="every member of a group (smsgw group set)")
    send.add_argument("text", nargs="?", help="the text (or --command)")
    send.add_argument("--command", dest="saved_command", metavar="NAME", help="a saved command (smsgw command save) instead of a text")
    send.add_argument("--var", dest="variables", action="append", type=saved_commands.variable_value, default=[], metavar="NAME=VALUE")
    send.add_argument("--client-ref")
    send.add_argument("--at", metavar="TIME", help="send later: ISO 8601 with a zone, 1 minute to 35 days ahead")
    send.add_argument("--expires-at", metavar="TIME")
    send.add_argument("--skip-invalid", action="store_true", help="send to the valid recipients and report the others")
    send.add_argument("--idempotency-key", help="default: a new one, so that a retry of this command is the same batch")
    send.add_argument("--no-watch", action="store_true", help="print the batch and return at once")
    watch = actions.add_parser("watch", help="follow a batch until every message is final")
    watch.add_argument("id")
    for parser in (send, watch):
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between progress reads")
        parser.add_argument("--timeout", type=float, default=0, help="stop following after this long (default: until done)")
    cancel = actions.add_parser("cancel", help="cancel every message of a batch not yet sent")
    cancel.add_argument("id")
    show = actions.add_parser("show", help="a batch's state and counts")
    show.add_argument("id")


def request_body(args: argparse.Namespace) -> tuple[dict[str, Any], list[int]]:
    """The POST /batches body the arguments describe, and the file line of each recipient."""
    body: dict[str, Any] = {}
    lines: list[int] = []
    if args.to_file:
        members, lines = groups.read_members(args.to_file)
        body["to"] = members
    else:
        body["group"] = args.group
    if args.saved_command:
        body["command"] = args.saved_command
        if args.variables:
            body["variables"] = dict(args.variables)
    else:
        body["text"] = args.text
    for option, field in (("client_ref", "client_ref"), ("at", "send_at"), ("expires_at", "expires_at")):
        if getattr(args, option):
            body[field] = getattr(args, option)
    if args.skip_invalid:
        body["skip_invalid"] = True
    return body, lines


def progress_line(batch: dict[str, Any]) -> str:
    """`[#####-----] 412/1000 final  delivered 400 failed 12 | sent 300 queued 288  state sending`."""
    counts = batch.get("counts") or {}
    expected = max(int(batch.get("total", 0)) - int(batch.get("skipped", 0)), 0)
    final = sum(n for status, n in counts.items() if status in FINAL)
    filled = int(BAR_WIDTH * final / expected) if expected else BAR_WIDTH
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    finals = " ".join(f"{s} {n}" for s, n in sorted(counts.items()) if s in FINAL) or "-"
    others = " ".join(f"{s} {n}" for s, n in sorted(counts.items()) if s not in FINAL) or "-"
    return f"[{bar}] {final}/{expected} final  {finals} | {others}  state {batch['state']}"


def follow(client: Client, batch_id: str, interval: float, timeout: float, tty: bool) -> int:
    """Print progress until the batch completes (or is cancelled and settled); 0 when done, 1 on timeout."""
    started = time.monotonic()
    last = ""
    while True:
        try:
            batch = client.get_batch(batch_id)
        except ApiError as error:
            return refused(error, False)  # mid-progress: in words, even with --json
        line = progress_line(batch)
        if tty:
            sys.stdout.write("\r" + line.ljust(len(last)))
            sys.stdout.flush()
        elif line != last:
            print(line, flush=True)
        last = line
        if batch.get("completed_at"):
            if tty:
                print()
            print(f"batch {batch_id} {batch['state']} at {batch['completed_at']}")
            return 0
        if timeout and time.monotonic() - started > timeout:
            if tty:
                print()
            print(f"still {batch['state']} after {timeout:.0f} s; follow it with: smsgw batch watch {batch_id}")
            return 1
        time.sleep(interval)


def run(args: argparse.Namespace, client: Client, tty: bool) -> int:
    if args.batch_command == "send":
        if (args.saved_command is None) == (args.text is None):
            print("batch send takes a text or --command NAME, one of the two", file=sys.stderr)
            return 2
        try:
            body, lines = request_body(args)
        except OSError as exc:
            print(f"cannot read {args.to_file}: {exc}", file=sys.stderr)
            return 2
        try:
            batch = client.create_batch(body, idempotency_key=args.idempotency_key)
        except ApiError as error:
            hint = ["  (#N is the N-th MSISDN of the file, from 0)"] if lines and error.status == 422 else []
            return refused(error, False, *hint)
        if args.json:
            print(json.dumps(batch))
        else:
            skipped = f", {batch['skipped']} skipped" if batch.get("skipped") else ""
            print(f"batch {batch['id']} accepted: {batch['total']} recipients{skipped}")
            for entry in (batch.get("skipped_recipients") or [])[:20]:
                print(f"  skipped #{entry.get('index')} {entry.get('to', '')}: {entry.get('problems')}")
        if args.no_watch or args.json:
            return 0
        return follow(client, batch["id"], args.interval, args.timeout, tty)
    if args.batch_command == "watch":
        return follow(client, args.id, args.interval, args.timeout, tty)
    batch = client.cancel_batch(args.id) if args.batch_command == "cancel" else client.get_batch(args.id)
    if args.json:
        print(json.dumps(batch))
        return 0
    print(f"batch {batch['id']} {batch['state']}: {batch['total']} recipients, {batch['skipped']} skipped")
    if batch.get("counts"):
        print(progress_line(batch))
    return 0
