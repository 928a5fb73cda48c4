"""`smsgw subscribe`: a receiver off AWS gets the gateway's events over HTTP, filtered, until it unsubscribes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.e2e.conftest import smsgw
from tests.helpers import wait_until

SIM = "447700900561"


@pytest.fixture
def receiver():
    """A loopback HTTP receiver that keeps what SNS posts, and visits SubscribeURL when asked to confirm."""
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            posts.append(body)
            if body.get("Type") == "SubscriptionConfirmation":
                requests.get(body["SubscribeURL"], timeout=10)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events", posts
    server.shutdown()
    server.server_close()


def notifications(posts: list[dict], event_type: str) -> list[dict]:
    return [json.loads(p["Message"]) for p in posts if p.get("Type") == "Notification" and json.loads(p["Message"])["type"] == event_type]


def post_mo(stack, text: str) -> None:
    requests.post(f"{stack.eseye.url}/_sim/mo", json={"source": SIM, "text": text}, timeout=10).raise_for_status()


def test_a_loopback_receiver_gets_only_its_events_until_it_unsubscribes(local_stack, receiver, subscriber):
    url, posts = receiver
    # Given a receiver subscribed with the CLI to one SIM's MOs only
    subscribed = smsgw(local_stack, "--json", "subscribe", url, "--events", "sms.mo.received", "--msisdn", f"+{SIM}")
    assert subscribed.returncode == 0, subscribed.stderr
    arn = json.loads(subscribed.stdout)["subscription_arn"]
    listed = smsgw(local_stack, "--json", "subscriptions")
    assert {"subscription_arn": arn, "url": url, "filter_policy": {"event_type": ["sms.mo.received"], "msisdn": [SIM]}} in json.loads(listed.stdout)

    # When the SIM is sent an MT (status events) and then posts an MO
    sent = local_stack.send(to=SIM, text="STATUS?").json()
    local_stack.wait_for_status(sent["id"], {"delivered"})
    post_mo(local_stack, "TEMP 19C")

    # Then the receiver gets the MO as an SNS Notification whose Message is the event
    mo = wait_until(lambda: notifications(posts, "sms.mo.received"), 30, interval=0.2, message="the receiver gets the MO")[0]
    assert (mo["data"]["from"], mo["data"]["text"]) == (SIM, "TEMP 19C")
    assert set(mo) >= {"type", "id", "time", "data"}
    # And the MT's status events, published too (an SQS subscriber sees them), were filtered out
    subscriber(lambda seen: any(e["type"] == "sms.mt.status" and e["data"]["id"] == sent["id"] for e in seen))
    time.sleep(1)
    assert notifications(posts, "sms.mt.status") == []

    # When the receiver unsubscribes by its URL and the SIM posts another MO
    unsubscribed = smsgw(local_stack, "unsubscribe", url)
    assert unsubscribed.returncode == 0, unsubscribed.stderr
    assert arn in unsubscribed.stdout
    post_mo(local_stack, "TEMP 20C")
    subscriber(lambda seen: any(e["type"] == "sms.mo.received" and e["data"].get("text") == "TEMP 20C" for e in seen))
    time.sleep(1)
    # Then it reaches the other subscribers but no longer the receiver
    assert [e["data"]["text"] for e in notifications(posts, "sms.mo.received")] == ["TEMP 19C"]
    assert url not in smsgw(local_stack, "subscriptions").stdout


def test_unsubscribing_an_unknown_url_says_so(local_stack):
    result = smsgw(local_stack, "unsubscribe", "https://nobody.example.com/hook")
    assert result.returncode == 1
    assert "no confirmed subscription of https://nobody.example.com/hook" in result.stderr
