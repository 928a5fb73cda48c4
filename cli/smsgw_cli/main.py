"""smsgw: a command-line client for the gateway, for people (and, with --json, for scripts).

Talks to the local stack by default (from .local/outputs.json), or to a deployed API with --api, through
smsgw_client (its retries, and an Idempotency-Key on every send and batch), signing requests with the
caller's AWS credentials (SigV4) when the API uses IAM, or with an API key (settings.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

import requests

from smsgw_cli import batches, groups, saved_commands, subscriptions
from smsgw_cli.errors import refused
from smsgw_cli.settings import API_KEY_VARIABLE, NoApi, client_from_settings, outputs
from smsgw_client import ApiError, Client

STATUS_COLOURS = {
    "scheduled": 34,
    "queued": 34,
    "delivered": 32,
    "sent": 36,
    "pending": 33,
    "received": 32,
    "failed": 31,
    "rejected": 31,
    "cancelled": 35,
    "blocked": 31,
}
SIM_SETTINGS = ("max_in_flight", "max_queued", "max_per_hour")
SIM_BUFFER = 10  # SMS an AnyNet SIM holds (eseye-sms-api.md §9)


def colour(status: str, tty: bool) -> str:
    code = STATUS_COLOURS.get(status)
    return f"\033[{code}m{status}\033[0m" if tty and code else status


def show_message(message: dict[str, Any], tty: bool) -> str:
    lines = [f"{message['id']}  {message.get('direction', '').upper()}  {colour(message.get('status', ''), tty)}"]
    party = f"to {message['to']}" if message.get("direction") == "mt" else f"from {message.get('from')}"
    content = message.get("text") if message.get("text") is not None else f"<{message.get('data', '')}>"
    lines.append(f'  {party}  {message.get("encoding", "")} {message.get("length", "")}  "{content}"')
    queueing = [
        f"{label} {message[name]}"
        for name, label in (("send_at", "send at"), ("collapse_key", "collapse key"), ("supersedes", "replaces"), ("superseded_by", "replaced by"))
        if message.get(name)
    ]
    if queueing:
        lines.append("  " + "  ".join(queueing))
    for entry in message.get("history", []):
        lines.append(f"  {entry['at']}  {entry['status']:<9}  {entry['cause']}")
    return "\n".join(lines)


def show_sim(state: dict[str, Any]) -> str:
    """GET /sims/{msisdn} for a person: the queue, in order, the settings and the buffer estimate."""
    settings, own = state["settings"], state.get("overrides") or {}
    hourly = f"{settings['max_per_hour']} an hour" if settings["max_per_hour"] else "no hourly cap"
    lines = [
        f"SIM {state['msisdn']}",
        f"  in flight {state['in_flight']}/{settings['max_in_flight']}   queued {state['queued']}/{settings['max_queued']}   {hourly}",
        "  settings  " + "  ".join(f"{name} {settings[name]} ({'own' if name in own else 'default'})" for name in SIM_SETTINGS),
        f"  buffer    ~{state['delivered_since_last_mo']} of the {SIM_BUFFER} SMS the SIM holds (delivered since the device last spoke)",
        f"  last MO   {state.get('last_mo_at') or '-'}   last delivery {state.get('last_delivered_at') or '-'}",
    ]
    standing = state.get("lists")
    if standing:
        where = "on the allowlist" if standing["on_allowlist"] else "on neither list"
        allowed = f"allowed ({where}; {'the allowlist is in force' if standing['allowlist_in_force'] else 'no allowlist in force'})"
        lines.append(f"  traffic   {allowed if standing['traffic_allowed'] else 'refused: ' + str(standing['refusal_reason'])}")
    if state["in_flight_messages"]:
        lines.append("  in flight:")
        lines += [f"    {m['id']}  since {m['since']}" for m in state["in_flight_messages"]]
    if state["queued_messages"]:
        lines.append("  queued (next first):")
        for m in state["queued_messages"]:
            key = f"  collapse key {m['collapse_key']}" if m.get("collapse_key") else ""
            lines.append(f"    {m['position']:>4}  {m['id']}  since {m['queued_at']}{key}")
    return "\n".join(lines)


# Where a dead-letter queue's messages go back from the command line (the console and POST /health/redrive move all three)
REDRIVE_COMMANDS = {"send-retries": "smsgw redrive-sends", "callbacks": "smsgw redrive-callbacks"}


def show_health(health: dict[str, Any]) -> tuple[str, int]:
    """GET /health for a person, and how many things need attention (a dead-letter queue with messages, a
    quarantined request, Eseye's error rate over its alarm's threshold)."""
    concerns = 0
    lines = [f"health at {health['checked_at']}", "dead-letter queues"]
    for queue in health["dead_letter_queues"]:
        if not queue["depth"]:
            lines.append(f"  {queue['name']:<15} 0")
            continue
        concerns += 1
        if queue["redrive"]:
            where = (
                f"{REDRIVE_COMMANDS[queue['name']]}, or the console's Health page"
                if queue["name"] in REDRIVE_COMMANDS
                else "the console's Health page"
            )
            todo = f"redrive: {where}"
        else:
            todo = queue["advice"]
        lines.append(f"  {queue['name']:<15} {queue['depth']} waiting   {todo}")
    quarantine = health["quarantine"]
    if quarantine["count"]:
        concerns += 1
        plural = "" if quarantine["count"] == 1 else "s"
        latest = f" (latest {quarantine['latest_at']})" if quarantine.get("latest_at") else ""
        lines.append(f"quarantine  {quarantine['count']} webhook request{plural} in the last {quarantine['days']} days{latest}")
    else:
        lines.append(f"quarantine  none in the last {quarantine['days']} days")
    eseye = health["eseye"]
    if eseye["error_rate"] is None:
        lines.append(f"eseye       no sends in the last {eseye['window_minutes']} min")
    else:
        concerns += eseye["error_rate"] > eseye["alarm_threshold"]
        counts = f"{eseye['sent']} sent, {eseye['rejected']} rejected, {eseye['retried']} retried"
        lines.append(
            f"eseye       {eseye['error_rate'] * 100:.1f} % errors over {eseye['window_minutes']} min ({counts}; "
            f"the alarm fires over {eseye['alarm_threshold'] * 100:g} %)"
        )
    return "\n".join(lines), concerns


def setting(text: str) -> tuple[str, int]:
    """`--set name=value`: a SIM setting and a whole number (the API checks the name and the range)."""
    name, _, value = text.partition("=")
    try:
        return name.strip(), int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want name=whole number, e.g. max_in_flight=2 ({', '.join(SIM_SETTINGS)})") from None


def watch(args: argparse.Namespace, settings: dict[str, str], tty: bool) -> int:
    """Follow events live through a temporary SQS queue subscribed to the events topic."""
    topic = args.topic_arn or settings.get("EventsTopicArn")
    if not topic:
        print("no events topic: pass --topic-arn or run the local stack", file=sys.stderr)
        return 2
    sqs, sns = aws_client("sqs", args, settings), aws_client("sns", args, settings)
    url = sqs.create_queue(QueueName=f"smsgw-watch-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "sns.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": topic}},
                        }
                    ],
                }
            )
        },
    )
    subscription = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}, ReturnSubscriptionArn=True)
    print(f"watching {topic} (Ctrl-C to stop)", file=sys.stderr)
    try:
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while deadline is None or time.monotonic() < deadline:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                event = json.loads(message["Body"])
                if args.json:
                    print(json.dumps(event), flush=True)
                else:
                    print(show_event(event, tty), flush=True)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    except KeyboardInterrupt:
        pass
    finally:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
        sqs.delete_queue(QueueUrl=url)
    return 0


def show_event(event: dict[str, Any], tty: bool) -> str:
    data = event["data"]
    if event["type"] == "sms.sim.buffer_risk":  # about a SIM, not a message
        detail = f"{data['delivered_since_last_mo']} delivered since the device last spoke (warn at {data['threshold']})"
        return f"{event['time']}  {event['type']:<16} {data['msisdn']}  {detail}"
    party = data.get("to") if data.get("direction") == "mt" else data.get("from")
    return f"{event['time']}  {event['type']:<16} {colour(data.get('status', ''), tty):<10} {party}  {data['id']}"


def aws_client(service: str, args: argparse.Namespace, settings: dict[str, str]) -> Any:
    import boto3

    endpoint = getattr(args, "aws_endpoint", None) or settings.get("AwsEndpointUrl")
    kwargs: dict[str, Any] = {"region_name": args.region or settings.get("Region")}
    if endpoint:  # the local stack's emulator takes any credentials
        kwargs.update(endpoint_url=endpoint, aws_access_key_id="local", aws_secret_access_key="local")
    return boto3.client(service, **kwargs)


REDRIVES = {
    "redrive-sends": ("SendRetryDeadLetterQueueUrl", "SendRetryQueueUrl", "send retries"),
    "redrive-callbacks": ("CallbackDeadLetterQueueUrl", "CallbackQueueUrl", "status callbacks"),
}


def redrive(args: argparse.Namespace, settings: dict[str, str]) -> int:
    """Move dead-lettered messages back to the queue they came from, once the cause is fixed."""
    source_output, target_output, what = REDRIVES[args.command]
    source = args.dead_letter_queue_url or settings.get(source_output)
    target = args.queue_url or settings.get(target_output)
    if not source or not target:
        print(f"pass --dead-letter-queue-url and --queue-url (the stack outputs {source_output} and {target_output})", file=sys.stderr)
        return 2
    sqs = aws_client("sqs", args, settings)
    moved = 0
    while moved < args.limit:
        messages = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            break
        for message in messages:
            sqs.send_message(QueueUrl=target, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    print(json.dumps({"moved": moved}) if args.json else f"moved {moved} dead-lettered {what} back to their queue")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smsgw", description="Talk to the Eseye SMS gateway.")
    parser.add_argument("--api", help="API base URL (default: the local stack's)")
    parser.add_argument("--outputs", help="an outputs.json (default: .local/outputs.json)")
    parser.add_argument("--sign", action="store_true", help="sign with your AWS credentials (IAM-authenticated API)")
    parser.add_argument("--region")
    parser.add_argument("--api-key", help=f"an API key, for a stack deployed with AuthMode API_KEY (default: ${API_KEY_VARIABLE})")
    parser.add_argument("--json", action="store_true", help="print raw JSON, for scripts")
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("send", help="send an SMS")
    send.add_argument("to")
    send.add_argument("text", nargs="?", help="the text (or --command)")
    send.add_argument("--client-ref")
    send.add_argument("--encoding", choices=["auto", "gsm7", "ucs2", "8bit"])
    send.add_argument("--dry-run", action="store_true")
    send.add_argument("--idempotency-key")
    send.add_argument("--at", metavar="TIME", help="send later: ISO 8601 with a zone, 1 minute to 35 days ahead (status scheduled)")
    send.add_argument("--collapse-key", metavar="KEY", help="replace a message with the same key still queued for this SIM")
    send.add_argument("--command", dest="saved_command", metavar="NAME", help="send a saved command (smsgw command save) instead of a text")
    send.add_argument("--var", dest="variables", action="append", type=saved_commands.variable_value, default=[], metavar="NAME=VALUE")
    get = commands.add_parser("get", help="a message and its history")
    get.add_argument("id")
    get.add_argument("--refresh", action="store_true", help="ask Eseye first")
    cancel = commands.add_parser("cancel", help="cancel a message not yet delivered")
    cancel.add_argument("id")
    history = commands.add_parser("history", help="one SIM's messages, newest first")
    history.add_argument("msisdn")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--direction", choices=["mt", "mo"])
    sim = commands.add_parser("sim", help="a SIM's delivery queue, settings and buffer estimate")
    sim.add_argument("msisdn")
    sim_change = sim.add_mutually_exclusive_group()
    sim_change.add_argument(
        "--set", action="append", type=setting, metavar="NAME=VALUE", help=f"give the SIM its own setting ({', '.join(SIM_SETTINGS)}); repeatable"
    )
    sim_change.add_argument("--reset", action="store_true", help="return the SIM to the default settings")
    follow = commands.add_parser("watch", help="follow events live")
    follow.add_argument("--topic-arn")
    follow.add_argument("--aws-endpoint")
    follow.add_argument("--seconds", type=float, default=0, help="stop after this long (default: until Ctrl-C)")
    for command, (_, _, what) in REDRIVES.items():
        redrive_command = commands.add_parser(command, help=f"operator: move dead-lettered {what} back to their queue")
        redrive_command.add_argument("--dead-letter-queue-url")
        redrive_command.add_argument("--queue-url")
        redrive_command.add_argument("--aws-endpoint")
        redrive_command.add_argument("--limit", type=int, default=10000)
    groups.add_parser(commands)
    saved_commands.add_parser(commands)
    batches.add_parser(commands)
    subscriptions.add_parser(commands)
    commands.add_parser("health", help="operator: dead-letter queues, quarantine and Eseye's error rate (exit 3 when something needs attention)")
    console = commands.add_parser("console", help="serve the operator console on 127.0.0.1, talking to the API as this CLI does")
    console.add_argument("--api", default=argparse.SUPPRESS, help="API base URL (default: the local stack's)")
    console.add_argument("--port", type=int, default=8300, help="on 127.0.0.1 (default 8300)")
    args = parser.parse_args(argv)
    if args.command == "send" and (args.saved_command is None) == (args.text is None):
        parser.error("send takes a text or --command NAME, one of the two")

    settings = outputs(args.outputs)
    tty = sys.stdout.isatty() and not args.json
    if args.command == "watch":
        return watch(args, settings, tty)
    if args.command in REDRIVES:
        return redrive(args, settings)
    if args.command in ("subscribe", "unsubscribe", "subscriptions"):
        return subscriptions.run(args, aws_client("sns", args, settings), settings)
    try:
        client = client_from_settings(args.api, settings=settings, sign=args.sign, region=args.region, api_key=args.api_key)
    except NoApi as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "console":
        return serve_console(client, args.port)
    try:
        if args.command == "command":
            return saved_commands.run(args, client)
        if args.command == "batch":
            return batches.run(args, client, tty)
        if args.command == "group":
            return groups.run(args, client)
        if args.command == "health":
            health = client.health()
            text, concerns = show_health(health)
            print(json.dumps(health) if args.json else text)
            return 3 if concerns else 0
        return message_command(args, client, tty)
    except ApiError as error:
        return refused(error, args.json)
    except requests.RequestException as exc:
        print(f"cannot reach {client.api_url}: {exc}", file=sys.stderr)
        return 2


def message_command(args: argparse.Namespace, client: Client, tty: bool) -> int:
    """send, get, cancel, history and sim: one call each, its answer printed."""
    if args.command == "send":
        document = client.send_message(args.to, args.text, idempotency_key=args.idempotency_key, dry_run=args.dry_run, **send_fields(args))
    elif args.command == "get":
        document = client.get_message(args.id, refresh=args.refresh)
    elif args.command == "cancel":
        document = client.cancel_message(args.id)
    elif args.command == "sim" and args.set:
        document = client.put_sim_settings(args.msisdn, **dict(args.set))
    elif args.command == "sim":
        document = client.delete_sim_settings(args.msisdn) if args.reset else client.get_sim(args.msisdn)
    else:
        document = client.list_messages(args.msisdn, limit=args.limit, direction=args.direction)
    if args.json:
        print(json.dumps(document))  # as the API wrote it: it serializes with json.dumps' defaults too
        return 0
    if args.command == "sim":
        print(show_sim(document))
    elif args.command == "history":
        for message in document["items"]:
            print(show_message({**message, "history": []}, tty))
        if document.get("next_cursor"):
            print(f"(more: cursor {document['next_cursor']})")
    elif document.get("dry_run"):
        unicode = " ".join(document["unicode_characters"]) or "-"
        print(f"{document['encoding']}  {document['length']}/{document['limit']}  fits: {document['fits']}  unicode: {unicode}")
    else:
        print(show_message(document, tty))
    return 0


def send_fields(args: argparse.Namespace) -> dict[str, Any]:
    """POST /messages' fields other than `to` and `text`, as `smsgw send`'s options give them."""
    fields: dict[str, Any] = {"command": args.saved_command, "variables": dict(args.variables)} if args.saved_command else {}
    for option, field in (("client_ref", "client_ref"), ("encoding", "encoding"), ("at", "send_at"), ("collapse_key", "collapse_key")):
        if getattr(args, option):
            fields[field] = getattr(args, option)
    return fields


def serve_console(client: Client, port: int) -> int:
    """`smsgw console`: the web console (cli/smsgw_console), loaded only for this command."""
    from smsgw_console.server import serve

    try:
        serve(client, port=port)
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # most often the port is taken
        print(f"cannot serve the console on 127.0.0.1:{port}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
