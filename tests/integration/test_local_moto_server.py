"""The local stack's moto server keeps DynamoDB's atomicity when requests race (local_stack/moto_server.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local_stack.template import ROOT

SERVER = [sys.executable, "-m", "local_stack.moto_server"]  # as local_stack/run.py starts it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dynamodb():
    port = free_port()
    process = subprocess.Popen([*SERVER, "-H", "127.0.0.1", "-p", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="eu-west-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=32),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_tables()
            break
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield client
    process.terminate()
    process.wait(10)


def test_racing_transactions_never_erase_what_other_requests_wrote(dynamodb):
    # Given a table, and writers racing on one revisioned item the way sends to one SIM do
    dynamodb.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
    )
    dynamodb.put_item(TableName="t", Item={"PK": {"S": "SIM"}, "rev": {"N": "0"}})
    for start in range(0, 1000, 25):  # a table of some size: moto copies it whole at each transaction's start
        dynamodb.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": {"PK": {"S": f"OLD#{n}"}}}} for n in range(start, start + 25)]})
    stored: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(15):
            rev = int(dynamodb.get_item(TableName="t", Key={"PK": {"S": "SIM"}}, ConsistentRead=True)["Item"]["rev"]["N"])
            message = uuid.uuid4().hex
            try:  # the SIM's revision and a new message, all or nothing; most lose the race
                dynamodb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": "t",
                                "Key": {"PK": {"S": "SIM"}},
                                "UpdateExpression": "SET rev = :next",
                                "ConditionExpression": "rev = :seen",
                                "ExpressionAttributeValues": {":seen": {"N": str(rev)}, ":next": {"N": str(rev + 1)}},
                            }
                        },
                        {"Put": {"TableName": "t", "Item": {"PK": {"S": f"MSG#{message}"}}, "ConditionExpression": "attribute_not_exists(PK)"}},
                    ]
                )
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code not in ("TransactionCanceledException", "TransactionConflictException"):
                    with lock:
                        errors.append(code)  # moto's threads tripping over each other answer 500
                continue
            with lock:
                stored.append(message)

    # When eight of them run at once
    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then each was answered as DynamoDB would, every transaction that succeeded is still there, and the
    # revision counts exactly them
    assert errors == []
    assert stored
    present = [m for m in stored if "Item" in dynamodb.get_item(TableName="t", Key={"PK": {"S": f"MSG#{m}"}}, ConsistentRead=True)]
    assert len(present) == len(stored), f"{len(stored) - len(present)} committed writes erased"
    rev = int(dynamodb.get_item(TableName="t", Key={"PK": {"S": "SIM"}}, ConsistentRead=True)["Item"]["rev"]["N"])
    assert rev == len(stored)


def test_the_stream_goes_on_after_a_transaction_that_failed(dynamodb):
    # Given a table with a stream, read from its start the way the local stack's pollers read it
    dynamodb.create_table(
        TableName="s",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    arn = dynamodb.describe_table(TableName="s")["Table"]["LatestStreamArn"]
    streams = boto3.client(
        "dynamodbstreams",
        endpoint_url=dynamodb.meta.endpoint_url,
        region_name="eu-west-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    dynamodb.put_item(TableName="s", Item={"PK": {"S": "SIM"}, "SK": {"S": "META"}, "rev": {"N": "1"}})
    # When a transaction fails on its second write's condition, after its first write was applied
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "s", "Item": {"PK": {"S": "MSG#lost"}, "SK": {"S": "META"}}}},
                {
                    "Update": {
                        "TableName": "s",
                        "Key": {"PK": {"S": "SIM"}, "SK": {"S": "META"}},
                        "UpdateExpression": "SET rev = :next",
                        "ConditionExpression": "rev = :seen",
                        "ExpressionAttributeValues": {":seen": {"N": "0"}, ":next": {"N": "1"}},
                    }
                },
            ]
        )
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    dynamodb.put_item(TableName="s", Item={"PK": {"S": "MSG#after"}, "SK": {"S": "META"}})
    # Then nothing of the failed transaction stays, in the table or on the stream, and later writes reach the stream
    assert "Item" not in dynamodb.get_item(TableName="s", Key={"PK": {"S": "MSG#lost"}, "SK": {"S": "META"}})
    seen = []
    for _ in range(5):
        page = streams.get_records(ShardIterator=iterator)
        seen += [r["dynamodb"]["Keys"]["PK"]["S"] for r in page["Records"]]
        iterator = page["NextShardIterator"]
    assert seen == ["SIM", "MSG#after"]
    assert dynamodb.get_item(TableName="s", Key={"PK": {"S": "SIM"}, "SK": {"S": "META"}})["Item"]["rev"] == {"N": "1"}
