"""Awaiting conditions instead of sleeping: a test waits for what it needs to see, for as long as a loaded machine
takes, and not a moment longer. The timeouts are generous on purpose: they only bound a test that is failing.

Also every helper more than one test module uses: a test module never imports from another one."""

from __future__ import annotations

import collections
import json
import random
import subprocess
import time
from collections.abc import Callable
from functools import cache
from typing import TypeVar
from urllib.parse import urlencode

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from tests.conftest import ROOT, load_event

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, message: str = "") -> T:
    """Call `condition` until it returns something truthy, and return that. Raises AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {message or getattr(condition, '__name__', condition)} (last: {result!r})")
        time.sleep(interval)


# --- Calling the API ------------------------------------------------------------------------------


def body_of(response):
    return json.loads(response["body"])


def send(stack, event_name="send_gsm7", body=None, headers=None, query=None):
    event = load_event(event_name)
    if body is not None:
        event["body"] = json.dumps(body) if not isinstance(body, str) else body
    if headers:
        event["headers"] = {**(event["headers"] or {}), **headers}
    if query is not None:
        event["queryStringParameters"] = query
    return stack.invoke("SendFunction", event)


# --- Webhooks, the table's stream and the events topic --------------------------------------------


TOKEN = "tok-primary-0123456789"


def receipt(stack, message_id, status="delivered", reference="ref1", via="receipt_get_delivered", token=None):
    event = load_event(via)
    fields = {"messageid": message_id, "referenceid": reference, "statuscode": status, "status": status}
    if via == "receipt_get_delivered":
        event["queryStringParameters"] = fields
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in fields.items()}
    else:
        event["body"] = urlencode(fields)
    if token:
        event["pathParameters"] = {"token": token}
        event["path"] = f"/webhooks/{token}/receipt"
    return stack.invoke("ReceiptWebhookFunction", event)


def mo(stack, fields, json_body=False, token=TOKEN):
    event = load_event("mo_json_binary_ucs2" if json_body else "mo_form_text")
    event["body"] = json.dumps(fields) if json_body else urlencode(fields)
    event.update(path=f"/webhooks/{token}/mo", pathParameters={"token": token})
    return stack.invoke("MoWebhookFunction", event)


def sent_message(stack, to="447700900001"):
    """A message Eseye accepted and will never send a receipt for (destination ending 0001)."""
    return body_of(send(stack, body={"to": to, "text": "REBOOT"}))


def stream_records(stack) -> list[dict]:
    """Every record on the table's stream so far, in order, as Lambda delivers them."""
    streams = stack.clients["dynamodbstreams"]
    arn = stack.physical("Table", "StreamArn")
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    for record in records:
        record["dynamodb"].pop("ApproximateCreationDateTime", None)
    return records


def passing_filters(stack, function: str, records: list[dict]) -> list[dict]:
    """The records `function`'s stream mapping lets through (its FilterCriteria in the template)."""
    from local_stack.pollers import passes_filters

    properties = next(iter(stack.context.template["Resources"][function]["Properties"]["Events"].values()))["Properties"]
    return [r for r in records if passes_filters(properties["FilterCriteria"]["Filters"], r)]


def stream_batch(stack):
    """Everything on the table's stream so far, as Lambda would deliver it to the publisher."""
    wanted = [r for r in stream_records(stack) if r["dynamodb"]["Keys"]["SK"]["S"] == "META" and r["dynamodb"]["Keys"]["PK"]["S"].startswith("MSG#")]
    return {"Records": wanted}


def subscribe(stack):
    sqs, sns = stack.clients["sqs"], stack.clients["sns"]
    url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=stack.physical("EventsTopic"), Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


def received_events(stack, url):
    events = []
    while True:
        batch = stack.clients["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not batch.get("Messages"):
            return events
        for message in batch["Messages"]:
            events.append(json.loads(message["Body"]))
            stack.clients["sqs"].delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def validate_event(event):
    import jsonschema

    schema = json.loads((ROOT / "schemas" / f"{event['type']}.schema.json").read_text())
    jsonschema.validate(event, schema)


# --- The dispatcher, status and cancel ------------------------------------------------------------


def sqs_event(jobs):
    template = load_event("dispatcher_retry")["Records"][0]
    return {"Records": [{**template, "messageId": f"m{i}", "body": json.dumps(job)} for i, job in enumerate(jobs)]}


def run_dispatcher(stack):
    jobs = stack.queue_jobs()
    response = stack.invoke("DispatcherFunction", sqs_event(jobs)) if jobs else {"batchItemFailures": []}
    return jobs, response


def get(stack, message_id, refresh=False):
    event = load_event("get_message_refresh" if refresh else "get_message")
    event["path"] = f"/messages/{message_id}"
    event["pathParameters"] = {"message_id": message_id}
    return stack.invoke("GetMessageFunction", event)


def cancel(stack, message_id):
    event = load_event("cancel_message")
    event["path"] = f"/messages/{message_id}"
    event["pathParameters"] = {"message_id": message_id}
    return stack.invoke("CancelMessageFunction", event)


def restart(simulator):
    simulator.start()  # same port: the gateway's configured URL still points at it


def settle(stack, rounds=6):
    """Run the dispatcher until no retry is queued (or rounds run out)."""
    for _ in range(rounds):
        jobs, _ = run_dispatcher(stack)
        if not jobs:
            return


# --- Publishing, replay and status callbacks ------------------------------------------------------


def publish_all(stack):
    assert stack.invoke("PublisherFunction", stream_batch(stack)) == {"batchItemFailures": []}


def replay(stack, body):
    event = load_event("send_gsm7")
    event.update(path="/events/replay", resource="/events/replay", body=json.dumps(body))
    return stack.invoke("ReplayFunction", event)


def callback_records(stack):
    url = stack.physical("CallbackQueue")
    messages = stack.clients["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    template = load_event("dispatcher_retry")["Records"][0]
    return {
        "Records": [
            {
                **template,
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {**template["attributes"], **m["Attributes"]},
                "eventSourceARN": stack.physical("CallbackQueue", "Arn"),
            }
            for m in messages
        ]
    }


# --- History --------------------------------------------------------------------------------------


SIM = "447700900123"


def history(stack, **query):
    event = load_event("history_by_msisdn")
    event["queryStringParameters"] = {"msisdn": SIM, **query}
    return stack.invoke("HistoryFunction", event)


def window(minutes: int = 5) -> dict[str, str]:
    return {
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60 * minutes)),
        "until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60)),
    }


# --- Webhook events -------------------------------------------------------------------------------


def webhook_event(kind: str, body: bytes, content_type: str, query: dict | None = None) -> dict:
    event = load_event("mo_form_text" if kind == "mo" else "receipt_post_form_failed")
    event["headers"] = {"Content-Type": content_type} if content_type else {}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    try:
        event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
    except UnicodeDecodeError:
        import base64

        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    event["queryStringParameters"] = query
    return event


# --- Counting AWS calls ---------------------------------------------------------------------------


def hook_every_client(monkeypatch, event: str, handler: Callable[..., object]) -> None:
    """Register `handler` for botocore's `event` on every boto3 client built from here on (the functions
    build theirs lazily, so this reaches them)."""
    import boto3

    original = boto3.client

    def hooked_client(*args, **kwargs):
        client = original(*args, **kwargs)
        client.meta.events.register(event, handler)
        return client

    monkeypatch.setattr(boto3, "client", hooked_client)


class CallCounter:
    def __init__(self):
        self.calls: collections.Counter = collections.Counter()
        self.operations: list[str] = []

    def __call__(self, model, **kwargs):
        service = model.service_model.service_name
        self.calls[service] += 1
        self.operations.append(f"{service}.{model.name}")

    def reset(self):
        self.calls.clear()
        self.operations.clear()


# --- PDUs -----------------------------------------------------------------------------------------


def pack_septets(septets: list[int], fill_bits: int = 0) -> bytes:
    out = bytearray()
    value, bits = 0, fill_bits
    for septet in septets:
        value |= septet << bits
        bits += 7
        while bits >= 8:
            out.append(value & 0xFF)
            value >>= 8
            bits -= 8
    if bits:
        out.append(value & 0xFF)
    return bytes(out)


# The GSM 7-bit default alphabet as published in 3GPP TS 23.038 §6.2.1 (table 1), written out here rather than
# taken from the gateway, so the tests' oracle cannot share a mistake with smsgw.encoding. Septet 0xNM is
# row M of column N: one string per column of 16.
GSM7_BASIC_PUBLISHED = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F (0x0A line feed, 0x0D carriage return)
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"  # 0x10-0x1F (0x1B escape to the extension table)
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40-0x4F
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50-0x5F
    "¿abcdefghijklmno"  # 0x60-0x6F
    "pqrstuvwxyzäöñüà"  # 0x70-0x7F
)
# The extension table (TS 23.038 §6.2.1.1), each character sent as escape 0x1B then this septet.
GSM7_EXTENSION_PUBLISHED = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€"}


def gsm7_septets(text: str) -> list[int]:
    reverse_ext = {v: k for k, v in GSM7_EXTENSION_PUBLISHED.items()}
    septets = []
    for c in text:
        if c in reverse_ext:
            septets += [0x1B, reverse_ext[c]]
        else:
            septets.append(GSM7_BASIC_PUBLISHED.index(c))
    return septets


def submit_pdu(text: str = "", *, dcs: int = 0, udh: bytes = b"", octets: bytes | None = None, smsc: bool = True) -> str:
    """An SMS-SUBMIT to 447000000001, built independently of the decoder."""
    first = 0x01 | (0x40 if udh else 0)
    address = bytes([12, 0x91]) + bytes.fromhex("440700000010")
    header = bytes([len(udh)]) + udh if udh else b""
    if dcs == 0:
        septets = gsm7_septets(text)
        header_septets = (len(header) * 8 + 6) // 7 if udh else 0
        body = header + pack_septets(septets, header_septets * 7 - len(header) * 8)
        length = header_septets + len(septets)
    else:
        payload = octets if octets is not None else text.encode("utf-16-be")
        body = header + payload
        length = len(body)
    tpdu = bytes([first, 0x00]) + address + bytes([0x00, dcs, length]) + body
    return ("00" if smsc else "") + tpdu.hex().upper()


# --- The SAM translation of template.yaml ---------------------------------------------------------


SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"


ESEYE_CALLERS = {"SendFunction", "GetMessageFunction", "CancelMessageFunction", "DispatcherFunction", "BatchFanoutFunction"}


@cache
def translated(*overrides: str) -> dict:
    assert SAM_PYTHON.exists(), "run `make venv` first: the SAM CLI venv provides the translator"
    result = subprocess.run(
        [str(SAM_PYTHON), str(ROOT / "tools" / "sam_translate.py"), *overrides],
        capture_output=True,
        text=True,
        timeout=120,
        env={"AWS_DEFAULT_REGION": "eu-west-1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


# --- Each SIM's delivery queue (issue 13) ---------------------------------------------------------


class StreamTail:
    """One consumer's place on the table's stream: each call returns the records it has not handed on yet,
    in order and each once, as Lambda's event source mapping delivers them. `prefixes`: the items it follows."""

    def __init__(self, stack, prefixes=("MSG#",)):
        self.stack, self.prefixes, self.seen = stack, tuple(prefixes), set()

    def __call__(self):
        fresh = []
        for record in stream_records(self.stack):
            keys, sequence = record["dynamodb"]["Keys"], record["dynamodb"]["SequenceNumber"]
            if keys["SK"]["S"] != "META" or not keys["PK"]["S"].startswith(self.prefixes) or sequence in self.seen:
                continue
            self.seen.add(sequence)
            fresh.append(record)
        return {"Records": fresh}


def sim_request(stack, msisdn, method="GET", body=None):
    """GET /sims/{msisdn}, or PUT|DELETE /sims/{msisdn}/settings, through SimsFunction."""
    sample = {"GET": "sims_get", "PUT": "sims_put_settings", "DELETE": "sims_delete_settings"}[method]
    event = load_event(sample)
    event["path"] = event["path"].replace("447700900123", msisdn)
    event["pathParameters"] = {"msisdn": msisdn}
    event["body"] = json.dumps(body) if body is not None else None
    return stack.invoke("SimsFunction", event)


class ScriptedApi(BaseAdapter):
    """A requests transport playing the API (mount it on a session): answers each request with the next item of
    `script`, (status, body[, headers]) or an exception to raise; a body in bytes is sent as it is, else as JSON.
    Keeps what it was sent in `requests`."""

    def __init__(self, *script):
        super().__init__()
        self.script, self.requests = list(script), []

    def send(self, request, **kwargs):
        self.requests.append(request)
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        status, body, *rest = item
        response = requests.Response()
        response.status_code, response.request, response.url = status, request, request.url
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **(rest[0] if rest else {})})
        return response

    def close(self):
        pass


def listed_ids(response) -> list[str]:
    """The ids of one page of a listing route (`{"items", "next_cursor"}`), which must have answered 200."""
    assert response["statusCode"] == 200, response["body"]
    return [item["id"] for item in body_of(response)["items"]]


def every_page(listing, **query: str) -> tuple[list[str], int]:
    """Every id a listing gives, following its cursor to the end, and how many pages that took.
    `listing(**query)` answers one page as the route's handler does."""
    seen: list[str] = []
    pages = 0
    while True:
        response = listing(**query)
        pages += 1
        seen += listed_ids(response)
        cursor = body_of(response)["next_cursor"]
        if cursor is None:
            return seen, pages
        query = {**query, "cursor": cursor}
        assert pages < 100, "a listing that never ends"


def new_sim() -> str:
    """A SIM of this test alone, whose messages the simulator delivers (not ...0000, ...0001 or ...0570)."""
    while True:
        number = f"44770{random.randint(0, 9_999_999):07d}"
        if not number.endswith(("0000", "0001", "0570")):
            return number


def console_token(app) -> str:
    """The console's per-process form token, which every POST to it must carry."""
    return app.config["CSRF_TOKEN"]
