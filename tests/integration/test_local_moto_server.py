"""The local stack's moto server keeps DynamoDB's atomicity when requests race (local_stack/moto_server.py)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

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


def test_stream_records_carry_both_images_and_their_time(dynamodb):
    # Given a table whose stream keeps both images, as the gateway's table does
    dynamodb.create_table(
        TableName="images",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    arn = dynamodb.describe_table(TableName="images")["Table"]["LatestStreamArn"]
    streams = boto3.client(
        "dynamodbstreams", endpoint_url=dynamodb.meta.endpoint_url, region_name="eu-west-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    before = datetime.now(UTC)
    # When an item is written, changed and deleted
    dynamodb.put_item(TableName="images", Item={"PK": {"S": "MSG#1"}, "status": {"S": "accepted"}, "parts": {"N": "1"}, "tags": {"SS": ["a"]}})
    dynamodb.update_item(
        TableName="images",
        Key={"PK": {"S": "MSG#1"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "sent"}},
    )
    dynamodb.delete_item(TableName="images", Key={"PK": {"S": "MSG#1"}})
    records = streams.get_records(ShardIterator=iterator, Limit=10)["Records"]
    # Then the stream tells each change with the images and the time DynamoDB gives
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    insert, modify, remove = (r["dynamodb"] for r in records)
    assert insert["NewImage"] == {"PK": {"S": "MSG#1"}, "status": {"S": "accepted"}, "parts": {"N": "1"}, "tags": {"SS": ["a"]}}
    assert "OldImage" not in insert
    assert modify["OldImage"]["status"] == {"S": "accepted"} and modify["NewImage"]["status"] == {"S": "sent"}
    assert remove["Keys"] == {"PK": {"S": "MSG#1"}} and remove["OldImage"]["status"] == {"S": "sent"} and "NewImage" not in remove
    assert [int(r["dynamodb"]["SequenceNumber"]) for r in records] == sorted(int(r["dynamodb"]["SequenceNumber"]) for r in records)
    for record in records:
        created = record["dynamodb"]["ApproximateCreationDateTime"]
        assert before - timedelta(seconds=2) <= created <= datetime.now(UTC) + timedelta(seconds=2)


def test_one_connection_serves_call_after_call(dynamodb):
    # Given the local server, and one HTTP connection to it
    host, port = dynamodb.meta.endpoint_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/eu-west-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
    }
    # When calls follow one another on it
    sockets, answers = set(), []
    for _ in range(3):
        connection.request("POST", "/", body=b"{}", headers=headers)
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read())))
        sockets.add(id(connection.sock))
    # Then each is answered, and the connection stays open for the next (no new connection per call)
    assert answers == [(200, {"TableNames": []})] * 3
    assert len(sockets) == 1 and connection.sock is not None
    connection.close()


def _answers_of_every_item_call(client) -> list:
    """The item calls the gateway makes (and a few more), with every attribute type, and what each answered."""
    client.create_table(
        TableName="kinds",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "G", "AttributeType": "S"},
            {"AttributeName": "GS", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byG",
                "KeySchema": [{"AttributeName": "G", "KeyType": "HASH"}, {"AttributeName": "GS", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    # Partitions and index entries beside the one the calls below read (a Query must read only its own)
    for n in range(5):
        client.put_item(TableName="kinds", Item={"PK": {"S": f"OTHER#{n}"}, "SK": {"S": f"S#{4 - n}"}, "G": {"S": f"G#{n % 2}"}, "GS": {"S": f"{n}"}})
    item = {
        "PK": {"S": "MSG#1"},
        "SK": {"S": "META"},
        "text": {"S": "héllo 😀"},
        "parts": {"N": "2"},
        "ratio": {"N": "0.5"},
        "raw": {"B": b"\x00\x01\xff"},
        "tags": {"SS": ["a", "b"]},
        "counts": {"NS": ["1", "2"]},
        "blobs": {"BS": [b"x", b"y"]},
        "history": {"L": [{"M": {"at": {"S": "t1"}, "ok": {"BOOL": True}}}, {"NULL": True}]},
    }
    key = {"PK": {"S": "MSG#1"}, "SK": {"S": "META"}}
    calls = [
        lambda: client.put_item(TableName="kinds", Item=item, ReturnConsumedCapacity="TOTAL"),
        lambda: client.put_item(TableName="kinds", Item={**item, "SK": {"S": "H#2"}}, ReturnValues="ALL_OLD"),
        lambda: client.get_item(TableName="kinds", Key=key, ConsistentRead=True),
        lambda: client.get_item(TableName="kinds", Key={**key, "SK": {"S": "absent"}}),
        lambda: client.query(
            TableName="kinds", KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "MSG#1"}}, ScanIndexForward=False
        ),
        lambda: client.query(
            TableName="kinds", KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "MSG#1"}}, Limit=1, Select="COUNT"
        ),
        lambda: client.query(TableName="kinds", IndexName="byG", KeyConditionExpression="G = :g", ExpressionAttributeValues={":g": {"S": "G#0"}}),
        lambda: client.query(
            TableName="kinds",
            IndexName="byG",
            KeyConditionExpression="G = :g AND GS > :low",
            ExpressionAttributeValues={":g": {"S": "G#1"}, ":low": {"S": "1"}},
            ScanIndexForward=False,
            Limit=1,
        ),
        lambda: client.query(TableName="kinds", KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "OTHER#3"}}),
        lambda: client.query(TableName="kinds", KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "ABSENT"}}),
        lambda: client.update_item(
            TableName="kinds",
            Key=key,
            UpdateExpression="SET parts = parts + :one, #s = :s REMOVE ratio",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":s": {"S": "sent"}},
            ReturnValues="ALL_NEW",
        ),
        lambda: client.update_item(
            TableName="kinds", Key=key, UpdateExpression="SET parts = :n", ExpressionAttributeValues={":n": {"N": "9"}}, ReturnValues="UPDATED_OLD"
        ),
        lambda: client.batch_get_item(RequestItems={"kinds": {"Keys": [key, {**key, "SK": {"S": "H#2"}}]}}),
        lambda: client.transact_get_items(TransactItems=[{"Get": {"TableName": "kinds", "Key": key}}]),
        lambda: client.transact_write_items(
            TransactItems=[{"Put": {"TableName": "kinds", "Item": {**item, "SK": {"S": "H#3"}}, "ConditionExpression": "attribute_not_exists(PK)"}}]
        ),
        lambda: client.batch_write_item(RequestItems={"kinds": [{"DeleteRequest": {"Key": {**key, "SK": {"S": "H#3"}}}}]}),
        lambda: client.scan(TableName="kinds", FilterExpression="attribute_exists(tags)"),
        lambda: client.delete_item(TableName="kinds", Key=key, ReturnValues="ALL_OLD"),
    ]
    answers = []
    for call in calls:
        answer = call()
        answer.pop("ResponseMetadata")
        answers.append(answer)
    try:
        client.put_item(TableName="kinds", Item=item, ConditionExpression="attribute_not_exists(PK)")
        client.put_item(TableName="kinds", Item=item, ConditionExpression="attribute_not_exists(PK)")
    except ClientError as refused:
        answers.append(refused.response["Error"])
    return answers


def test_item_answers_are_the_ones_moto_itself_gives(dynamodb):
    # Given moto's own server beside the local stack's (which writes item answers without moto's serializer)
    port = free_port()
    stock = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        reference = boto3.client(
            "dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="eu-west-1", aws_access_key_id="local", aws_secret_access_key="local"
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                reference.list_tables()
                break
            except Exception:
                if stock.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # When each makes the same item calls, every attribute type among them
        # Then both answer the same
        assert _answers_of_every_item_call(dynamodb) == _answers_of_every_item_call(reference)
    finally:
        stock.terminate()
        stock.wait(10)
