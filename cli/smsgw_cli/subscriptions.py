"""`smsgw subscribe | unsubscribe | subscriptions`: HTTPS receivers of the gateway's events, for integrations off AWS.

Each receiver is an SNS HTTPS subscription on the events topic (the stack output EventsTopicArn). SNS does the
handshake, the delivery, the retries and the signing; this module only builds the subscription's policies.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any
from urllib.parse import urlsplit

EVENT_TYPES = ("sms.mt.status", "sms.mo.received", "sms.mt.reply_timeout", "sms.sim.buffer_risk", "sms.batch.completed")
MSISDN_PATTERN = re.compile(r"^\+?[0-9]{8,15}$")  # as the API takes them (smsgw.models)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
FILTER_COMBINATIONS = 150  # SNS's limit on the values a filter policy combines

# SNS caps an HTTP/S delivery policy's retries at 3,600 seconds in all (a hard limit, sns-message-delivery-retries).
# This one uses most of that hour: 3 retries 10 s apart, 6 backing off exponentially from 10 s to 300 s, then
# 5 more 300 s apart. Even counting every backoff retry at the full 300 s, it stays within the hour (see retry_span).
DELIVERY_POLICY = {
    "healthyRetryPolicy": {
        "numRetries": 14,
        "numNoDelayRetries": 0,
        "numMinDelayRetries": 3,
        "minDelayTarget": 10,
        "numMaxDelayRetries": 5,
        "maxDelayTarget": 300,
        "backoffFunction": "exponential",
    },
    "requestPolicy": {"headerContentType": "application/json"},
}
SNS_MAX_RETRY_SECONDS = 3600


def retry_span(policy: dict[str, Any]) -> int:
    """An upper bound on how long SNS keeps retrying under `policy`'s healthyRetryPolicy, in seconds."""
    retry = policy["healthyRetryPolicy"]
    backoff = retry["numRetries"] - retry["numNoDelayRetries"] - retry["numMinDelayRetries"] - retry["numMaxDelayRetries"]
    return retry["numMinDelayRetries"] * retry["minDelayTarget"] + (backoff + retry["numMaxDelayRetries"]) * retry["maxDelayTarget"]


def event_types(text: str) -> list[str]:
    """`--events a,b`: known event types only, so that a typo does not silently subscribe to nothing."""
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in EVENT_TYPES]
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(f"unknown event type {', '.join(unknown) or '(none given)'}; known: {', '.join(EVENT_TYPES)}")
    return list(dict.fromkeys(wanted))


def msisdn(text: str) -> str:
    """`--msisdn`: an MSISDN as events carry it (digits, no +)."""
    if not MSISDN_PATTERN.match(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not an MSISDN (8 to 15 digits, an optional leading +)")
    return text.strip().lstrip("+")


def endpoint(text: str) -> str:
    """The receiver's URL: https, or http on this machine only (the local stack's emulator delivers to loopback)."""
    parts = urlsplit(text)
    if parts.scheme == "https" and parts.hostname:
        return text
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: a receiver must be an https:// URL (http:// only on 127.0.0.1 or localhost, for the local stack)")


def queue_arn(text: str) -> str:
    """A subscription's dead-letter queue: SNS takes only an SQS queue's ARN (same account and region)."""
    if re.fullmatch(r"arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,80}(\.fifo)?", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: a dead-letter queue must be an SQS queue's ARN (arn:aws:sqs:<region>:<account>:<name>)")


def filter_policy(events: list[str], msisdns: list[str]) -> dict[str, list[str]]:
    """The subscription's filter on the message attributes every event carries (adapters/events.py)."""
    if len(events) * max(len(msisdns), 1) > FILTER_COMBINATIONS:
        combinations = f"{len(events)} event types x {len(msisdns)} MSISDNs"
        raise ValueError(f"{combinations} is more than the {FILTER_COMBINATIONS} combinations SNS allows in a filter")
    policy = {"event_type": list(events)}
    if msisdns:
        policy["msisdn"] = list(dict.fromkeys(msisdns))
    return policy


def add_parser(commands: Any) -> None:
    """The three commands, on main's subparsers."""
    subscribe = commands.add_parser("subscribe", help="deliver events to an HTTPS URL (an SNS subscription: SNS retries and signs)")
    subscribe.add_argument("url", type=endpoint, help="https://... (http://127.0.0.1 or localhost only for the local stack)")
    subscribe.add_argument("--events", type=event_types, required=True, metavar="TYPE,...", help=f"comma-separated, of: {', '.join(EVENT_TYPES)}")
    subscribe.add_argument("--msisdn", type=msisdn, action="append", default=[], help="only this SIM's events; repeatable")
    subscribe.add_argument(
        "--dead-letter-queue-arn",
        type=queue_arn,
        help="an SQS queue's ARN for what SNS could not deliver within its hour of retries (the subscription's redrive policy)",
    )
    unsubscribe = commands.add_parser("unsubscribe", help="stop delivering events to a URL")
    unsubscribe.add_argument("target", metavar="SUBSCRIPTION_ARN|URL")
    commands.add_parser("subscriptions", help="the HTTP(S) receivers of the events topic")
    for command in (subscribe, unsubscribe, commands.choices["subscriptions"]):
        command.add_argument("--topic-arn", help="default: the stack output EventsTopicArn")
        command.add_argument("--aws-endpoint")


def http_subscriptions(sns: Any, topic: str) -> list[dict[str, Any]]:
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
    return [s for page in pages for s in page["Subscriptions"] if s["Protocol"] in ("http", "https")]


def run(args: argparse.Namespace, sns: Any, settings: dict[str, str]) -> int:
    topic = args.topic_arn or settings.get("EventsTopicArn")
    if not topic:
        print("no events topic: pass --topic-arn (the stack output EventsTopicArn) or run the local stack", file=sys.stderr)
        return 2
    if args.command == "subscribe":
        try:
            policy = filter_policy(args.events, args.msisdn)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        attributes = {"FilterPolicy": json.dumps(policy), "DeliveryPolicy": json.dumps(DELIVERY_POLICY)}
        if args.dead_letter_queue_arn:
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": args.dead_letter_queue_arn})
        protocol = urlsplit(args.url).scheme
        created = sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=args.url, Attributes=attributes, ReturnSubscriptionArn=True)
        arn = created["SubscriptionArn"]
        result = {"subscription_arn": arn, "url": args.url, "filter_policy": policy}
        if args.json:
            print(json.dumps(result))
        else:
            print(arn)
            print(f"SNS posts a SubscriptionConfirmation to {args.url}; deliveries start once the receiver visits its SubscribeURL", file=sys.stderr)
        return 0
    subscriptions = http_subscriptions(sns, topic)
    if args.command == "subscriptions":
        rows = [{"subscription_arn": s["SubscriptionArn"], "url": s["Endpoint"]} for s in subscriptions]
        for row in rows:
            # an unconfirmed one is listed as "PendingConfirmation", with no attributes to read yet
            pending = not row["subscription_arn"].startswith("arn:")
            attributes = {} if pending else sns.get_subscription_attributes(SubscriptionArn=row["subscription_arn"])["Attributes"]
            row["filter_policy"] = json.loads(attributes.get("FilterPolicy") or "{}")
        if args.json:
            print(json.dumps(rows))
            return 0
        for row in rows:
            print(f"{row['url']}  {','.join(row['filter_policy'].get('event_type', ['(all)']))}  {row['subscription_arn']}")
        return 0
    if args.target.startswith("arn:"):
        arns = [args.target]
    else:
        arns = [s["SubscriptionArn"] for s in subscriptions if s["Endpoint"] == args.target]
    # "PendingConfirmation" is what SNS lists before the handshake; it cannot be unsubscribed by ARN yet
    arns = [arn for arn in arns if arn.startswith("arn:")]
    if not arns:
        print(f"no confirmed subscription of {args.target} on {topic}", file=sys.stderr)
        return 1
    for arn in arns:
        sns.unsubscribe(SubscriptionArn=arn)
    print(json.dumps({"unsubscribed": arns}) if args.json else "\n".join(f"unsubscribed {arn}" for arn in arns))
    return 0
