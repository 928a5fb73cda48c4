"""The gateway end to end over HTTP, as a client and as Eseye would talk to it.

Tests that expect a message to go straight to Eseye each use a SIM of their own: a SIM takes one
message at a time (its queue, issue 13), and the stack is shared. The simulator keys its behaviour on
the last four digits (0001: no receipt, 0570: refused).
"""

import time

import requests

from local_stack.template import load_template
from tests.helpers import wait_until


def archived_events(local_stack, message_id: str) -> list[dict]:
    """The event archive's items for one message (partitions EVT#<hour>#<shard>, sort keys <time>#<event id>)."""
    pages = (
        local_stack.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=local_stack.outputs["TableName"],
            FilterExpression="begins_with(PK, :evt) AND contains(SK, :id)",
            ExpressionAttributeValues={":evt": {"S": "EVT#"}, ":id": {"S": message_id}},
        )
    )
    return [item for page in pages for item in page["Items"]]


def test_send_is_delivered_and_the_event_reaches_a_subscriber(local_stack, subscriber):
    # Given a client sends a message
    response = local_stack.send(to="447700910123", text="Hello from e2e", client_ref="e2e-1")
    assert response.status_code == 202
    message = response.json()
    assert message["status"] == "sent"
    # When the simulator's receipt arrives at the webhook
    final = local_stack.wait_for_status(message["id"], {"delivered"})
    # Then the message is delivered and subscribers heard every step
    assert final["status"] == "delivered"
    events = subscriber(lambda seen: any(e["id"] == f"{message['id']}:delivered" for e in seen))
    statuses = [e["data"]["status"] for e in events if e["data"]["id"] == message["id"]]
    assert statuses == ["pending", "sent", "delivered"]
    assert events[-1]["data"]["client_ref"] == "e2e-1"


def test_destination_ending_0000_fails(local_stack):
    message = local_stack.send(to="447700900000", text="x").json()
    assert local_stack.wait_for_status(message["id"], {"failed"})["status"] == "failed"


def test_destination_ending_0001_stays_sent_and_can_be_cancelled(local_stack):
    message = local_stack.send(to="447700920001", text="x").json()
    # Once a message sent after it is delivered, a receipt for it would have come too: none did
    later = local_stack.send(to="447700920123", text="y").json()
    assert local_stack.wait_for_status(later["id"], {"delivered"})["status"] == "delivered"
    assert local_stack.get(message["id"])["status"] == "sent"
    response = local_stack.session.delete(f"{local_stack.api}/messages/{message['id']}", timeout=30)
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    again = local_stack.session.delete(f"{local_stack.api}/messages/{message['id']}", timeout=30)
    assert again.status_code == 409


def test_eseye_rejection_and_validation_errors(local_stack):
    rejected = local_stack.send(to="447700900570", text="x")
    assert (rejected.status_code, rejected.json()["error"]["details"]["eseye_code"]) == (422, 570)
    assert local_stack.send(to="447700900123", text="x" * 161).status_code == 422
    bad = local_stack.session.post(f"{local_stack.api}/messages", data="{nope", headers={"Content-Type": "application/json"}, timeout=10)
    assert bad.status_code == 400


def test_refresh_asks_eseye(local_stack):
    message = local_stack.send(to="447700930001", text="x").json()
    refreshed = local_stack.session.get(f"{local_stack.api}/messages/{message['id']}?refresh=true", timeout=30).json()
    assert refreshed["refresh"] == {"ok": True, "eseye_status": "queued"}


def test_retry_path_eseye_stopped_then_started(local_stack):
    # Given Eseye is down
    local_stack.eseye.stop()
    try:
        message = local_stack.send(to="447700940123", text="retry me").json()
        assert message["status"] == "pending"
    finally:
        # When it comes back
        local_stack.eseye.start()
    # Then the dispatcher sends it, and its history shows both attempts
    final = local_stack.wait_for_status(message["id"], {"sent", "delivered"})
    assert final["status"] in ("sent", "delivered")
    assert [h["event"] for h in final["history"]][:3] == ["accepted", "retry_scheduled", "eseye_send"]


def test_mo_from_a_device_reaches_the_subscriber_and_the_history(local_stack, subscriber):
    result = requests.post(f"{local_stack.eseye.url}/_sim/mo", json={"source": "447700900777", "text": "TEMP 21C"}, timeout=10).json()
    assert result["status"] == 200
    events = subscriber(lambda seen: any(e["type"] == "sms.mo.received" for e in seen))
    mo = next(e for e in events if e["type"] == "sms.mo.received")
    assert (mo["data"]["from"], mo["data"]["text"]) == ("447700900777", "TEMP 21C")
    history = local_stack.session.get(f"{local_stack.api}/messages", params={"msisdn": "447700900777"}, timeout=10).json()
    assert [m["text"] for m in history["items"]] == ["TEMP 21C"]


def test_undeclared_route_gets_api_gateways_answer(local_stack):
    response = local_stack.session.get(f"{local_stack.api}/nowhere", timeout=10)
    assert (response.status_code, response.json()) == (403, {"message": "Missing Authentication Token"})


def test_wrong_webhook_token_is_refused(local_stack):
    response = local_stack.session.get(
        f"{local_stack.api}/webhooks/not-the-token/receipt", params={"messageid": "a" * 32, "status": "delivered"}, timeout=10
    )
    assert response.status_code == 403


def test_resources_created_locally_match_the_template(local_stack):
    template = load_template()
    declared = {
        t: sum(1 for r in template["Resources"].values() if r["Type"] == t)
        for t in ("AWS::DynamoDB::Table", "AWS::SNS::Topic", "AWS::SecretsManager::Secret")
    }
    assert len(local_stack.client("dynamodb").list_tables()["TableNames"]) == declared["AWS::DynamoDB::Table"]
    assert len(local_stack.client("sns").list_topics()["Topics"]) == declared["AWS::SNS::Topic"]
    assert len(local_stack.client("secretsmanager").list_secrets()["SecretList"]) == declared["AWS::SecretsManager::Secret"]
    queues = [q for q in local_stack.client("sqs").list_queues().get("QueueUrls", []) if "e2e-subscriber" not in q]
    assert len(queues) == sum(1 for r in template["Resources"].values() if r["Type"] == "AWS::SQS::Queue")


def test_a_reply_is_correlated_to_its_command(local_stack, subscriber):
    command = local_stack.send(to="447700900888", text="STATUS?", expect_reply_within=120).json()
    requests.post(f"{local_stack.eseye.url}/_sim/mo", json={"source": "447700900888", "text": "ALL GOOD"}, timeout=10)
    events = subscriber(lambda seen: any(e["type"] == "sms.mo.received" and e["data"]["from"] == "447700900888" for e in seen))
    reply = next(e for e in events if e["type"] == "sms.mo.received" and e["data"]["from"] == "447700900888")
    assert reply["data"]["in_reply_to"] == command["id"]
    assert local_stack.get(command["id"])["reply_id"] == reply["data"]["id"]


def test_status_callback_receives_signed_events(local_stack):
    import hashlib
    import hmac
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    key = local_stack.client("secretsmanager").get_secret_value(SecretId=local_stack.outputs["CallbackSigningSecretArn"])["SecretString"]
    received = []

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            expected = "v1=" + hmac.new(key.encode(), self.headers["X-Smsgw-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
            received.append((hmac.compare_digest(expected, self.headers["X-Smsgw-Signature"]), json.loads(body)["data"]["status"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        local_stack.send(to="447700900124", text="call me back", status_callback=url)
        wait_until(lambda: len(received) >= 3, message="three signed callbacks")
        assert sorted(received, key=lambda r: ["pending", "sent", "delivered"].index(r[1])) == [
            (True, "pending"),
            (True, "sent"),
            (True, "delivered"),
        ]
    finally:
        server.shutdown()


def test_replay_republishes_to_a_new_subscriber(local_stack, subscriber):
    message = local_stack.send(to="447700900125", text="replay me").json()
    local_stack.wait_for_status(message["id"], {"delivered"})
    wait_until(lambda: len(archived_events(local_stack, message["id"])) == 3, message="the publisher archives the three events")
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
    result = local_stack.session.post(
        f"{local_stack.api}/events/replay", json={"since": start, "until": end, "msisdn": "447700900125"}, timeout=30
    ).json()
    assert result["republished"] == 3
    events = subscriber(lambda seen: f"{message['id']}:delivered" in {e["id"] for e in seen})
    assert {e["id"] for e in events} >= {f"{message['id']}:{s}" for s in ("pending", "sent", "delivered")}
