"""The local stack reads a table's stream once for all the functions mapped to it (local_stack/pollers.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import boto3
import pytest

from local_stack.pollers import StreamPoller, StreamReader
from local_stack.template import ROOT
from tests.helpers import wait_until

CREDENTIALS = {"region_name": "eu-west-1", "aws_access_key_id": "local", "aws_secret_access_key": "local"}


@pytest.fixture
def endpoint():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("dynamodb", endpoint_url=url, **CREDENTIALS)
    wait_until(lambda: _answers(client), 30, interval=0.1, message="the moto server answers")
    yield url
    process.terminate()
    process.wait(10)


def _answers(client) -> bool:
    try:
        client.list_tables()
        return True
    except Exception:
        return False


class RecordingPool:
    """Stands in for a function's workers: remembers each batch of records it is given."""

    def __init__(self, name: str):
        self.spec = SimpleNamespace(logical_id=name)
        self.batches: list[list[dict]] = []
        self.lock = threading.Lock()

    def invoke(self, event: dict) -> dict:
        with self.lock:
            self.batches.append(event["Records"])
        return {}

    def keys(self) -> list[str]:
        return [record["dynamodb"]["Keys"]["PK"]["S"] for batch in self.batches for record in batch]


def test_two_mappings_on_one_stream_each_get_their_records_and_the_stream_is_read_once(endpoint):
    # Given a table with a stream, and two functions mapped to it: one for every change in batches of 3,
    # one for messages only
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, **CREDENTIALS)
    arn = dynamodb.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, **CREDENTIALS)
    fetched: list[int] = []
    streams.meta.events.register("after-call.dynamodb-streams.GetRecords", lambda parsed, **_: fetched.append(len(parsed.get("Records", []))))
    reader = StreamReader(streams, arn, log=lambda _: None)
    every, messages = RecordingPool("Every"), RecordingPool("Messages")
    only_messages = {"Filters": [{"Pattern": '{"dynamodb": {"Keys": {"PK": {"S": [{"prefix": "MSG#"}]}}}}'}]}
    pollers = [
        StreamPoller(reader, None, every, {"BatchSize": 3}, "eu-west-1", log=lambda _: None),
        StreamPoller(reader, None, messages, {"BatchSize": 10, "FilterCriteria": only_messages}, "eu-west-1", log=lambda _: None),
    ]
    for thread in [reader, *pollers]:
        thread.start()
    try:
        # When items are written
        written = [f"MSG#{n}" if n % 2 else f"SIM#{n}" for n in range(10)]
        for key in written:
            dynamodb.put_item(TableName="t", Item={"PK": {"S": key}})
        wait_until(lambda: len(every.keys()) == 10 and len(messages.keys()) == 5, 15, interval=0.1, message="both mappings got their records")
    finally:
        for thread in [reader, *pollers]:
            thread.stopping.set()
    # Then each function got its records, in order, in batches no bigger than its own; and each record was
    # fetched from the stream once, not once per function
    assert every.keys() == written
    assert messages.keys() == [key for key in written if key.startswith("MSG#")]
    assert max(len(batch) for batch in every.batches) <= 3
    assert all(record["eventSourceARN"] == arn for batch in every.batches for record in batch)
    time.sleep(0.5)
    assert sum(fetched) == 10
