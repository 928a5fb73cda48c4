"""Event source mappings, as Lambda runs them: SQS queues and DynamoDB streams polled and delivered to handlers.

SQS: records a handler reports in batchItemFailures (or a whole failed batch) stay on the queue and come
back after the visibility timeout; the queue's RedrivePolicy moves them to its DLQ. Streams: a failed
batch is retried up to MaximumRetryAttempts, then described to the OnFailure destination and skipped.
"""

from __future__ import annotations

import collections
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from local_stack.workers import FunctionPool


def _matches(pattern: Any, value: Any) -> bool:
    """The subset of EventBridge-style filter patterns the template uses: nested keys, value lists, prefix."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(_matches(p, value.get(k)) for k, p in pattern.items())
    if isinstance(pattern, list):
        for option in pattern:
            if isinstance(option, dict) and "prefix" in option:
                if isinstance(value, str) and value.startswith(option["prefix"]):
                    return True
            elif isinstance(option, dict) and "exists" in option:
                if (value is not None) == option["exists"]:
                    return True
            elif value == option:
                return True
        return False
    return pattern == value


def passes_filters(filters: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    if not filters:
        return True
    return any(_matches(json.loads(f["Pattern"]) if isinstance(f["Pattern"], str) else f["Pattern"], record) for f in filters)


class SqsPoller(threading.Thread):
    def __init__(self, sqs: Any, queue_url: str, queue_arn: str, pool: FunctionPool, batch_size: int, region: str, log: Callable[[str], None]):
        super().__init__(daemon=True, name=f"sqs-{pool.spec.logical_id}")
        self.sqs, self.queue_url, self.queue_arn, self.pool = sqs, queue_url, queue_arn, pool
        self.batch_size, self.region, self.log = min(batch_size, 10), region, log
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception as exc:
                if self.stopping.is_set():
                    return  # the stack is stopping: its moto servers went first
                self.log(f"sqs   poll of {self.queue_arn.rsplit(':', 1)[1]} failed: {exc}")
                self.stopping.wait(1)

    def poll_once(self) -> None:
        batch = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = batch.get("Messages", [])
        if not messages:
            return
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", hashlib.md5(m["Body"].encode()).hexdigest()),  # noqa: S324 - SQS's own checksum
                "eventSource": "aws:sqs",
                "eventSourceARN": self.queue_arn,
                "awsRegion": self.region,
            }
            for m in messages
        ]
        try:
            result = self.pool.invoke({"Records": records}) or {}
            failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        except Exception as exc:
            self.log(f"sqs   {self.pool.spec.logical_id} failed on {len(records)} record(s): {exc}")
            return  # nothing deleted: every record returns after the visibility timeout
        done = [r for r in records if r["messageId"] not in failed]
        for record in done:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"])
        self.log(f"sqs   {self.pool.spec.logical_id} <- {len(records)} record(s), {len(failed)} to retry")


class StreamReader(threading.Thread):
    """Reads a table's stream once for every mapping on it, and hands each record to each mapping's poller.

    Two functions map the one table stream: each reading it for itself had moto serialise every record
    (both images) twice, and describe the stream before every read, all on DynamoDB's one-at-a-time
    server. Each mapping still keeps its own place, batches, filters and retries (StreamPoller).
    """

    BACKLOG = 10_000  # records a mapping may fall behind before the reader waits for it

    def __init__(self, streams: Any, stream_arn: str, log: Callable[[str], None]):
        super().__init__(daemon=True, name=f"stream-{stream_arn.rsplit('/', 1)[-1]}")
        self.streams, self.stream_arn, self.log = streams, stream_arn, log
        self.subscribers: list[StreamPoller] = []
        self.iterators: dict[str, str | None] = {}
        self.refreshed = 0.0
        self.stopping = threading.Event()

    def _refresh_shards(self) -> None:
        # moto gives a table's stream one shard for its whole life: look again now and then, not before every read.
        if self.iterators and time.monotonic() - self.refreshed < 10:
            return
        self.refreshed = time.monotonic()
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            if shard["ShardId"] not in self.iterators:
                self.iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._refresh_shards()
                if any(subscriber.backlog() >= self.BACKLOG for subscriber in self.subscribers):
                    self.stopping.wait(0.05)
                    continue
                busy = False
                for shard_id, iterator in list(self.iterators.items()):
                    if iterator:
                        response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                        records = response.get("Records", [])
                        for subscriber in self.subscribers:
                            subscriber.offer(records)
                        self.iterators[shard_id] = response.get("NextShardIterator")
                        busy |= bool(records)
                if not busy:
                    self.stopping.wait(0.2)
            except Exception as exc:
                self.log(f"stream poll failed: {exc}")
                self.stopping.wait(1)


class StreamPoller(threading.Thread):
    """One DynamoDB event source mapping: batches of its stream's records, filtered, to its function."""

    def __init__(
        self,
        reader: StreamReader,
        sqs: Any,
        pool: FunctionPool,
        properties: dict[str, Any],
        region: str,
        log: Callable[[str], None],
    ):
        super().__init__(daemon=True, name=f"stream-{pool.spec.logical_id}")
        self.sqs, self.stream_arn, self.pool, self.region, self.log = sqs, reader.stream_arn, pool, region, log
        self.batch_size = int(properties.get("BatchSize", 100))
        self.max_retries = int(properties.get("MaximumRetryAttempts", 3))
        self.filters = (properties.get("FilterCriteria") or {}).get("Filters", [])
        self.on_failure_arn = ((properties.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        self.stopping = threading.Event()
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self.arrived = threading.Condition()
        reader.subscribers.append(self)

    def offer(self, raw_records: list[dict[str, Any]]) -> None:
        if raw_records:
            with self.arrived:
                self.pending.extend(raw_records)
                self.arrived.notify()

    def backlog(self) -> int:
        return len(self.pending)

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.arrived:
                if not self.pending:
                    self.arrived.wait(0.5)
                    continue
                batch = [self.pending.popleft() for _ in range(min(self.batch_size, len(self.pending)))]
            try:
                records = [r for r in map(self._record, batch) if passes_filters(self.filters, r)]
                if records:
                    self._deliver(records)
            except Exception as exc:
                self.log(f"stream {self.pool.spec.logical_id} failed: {exc}")

    def _record(self, raw: dict[str, Any]) -> dict[str, Any]:
        dynamodb = dict(raw["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = created.timestamp()
        return {
            "eventID": raw.get("eventID", uuid.uuid4().hex),
            "eventName": raw["eventName"],
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        }

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        attempt = 0
        while records and not self.stopping.is_set():
            try:
                result = self.pool.invoke({"Records": records}) or {}
                failures = [f["itemIdentifier"] for f in result.get("batchItemFailures", [])]
            except Exception as exc:
                self.log(f"stream {self.pool.spec.logical_id} failed: {exc}")
                failures = [records[0]["dynamodb"]["SequenceNumber"]]
            if not failures:
                self.log(f"stream {self.pool.spec.logical_id} <- {len(records)} record(s)")
                return
            # Resume from the first failed record, as Lambda does with ReportBatchItemFailures.
            first = next((i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] in failures), 0)
            records = records[first:]
            attempt += 1
            if attempt > self.max_retries:
                self._to_on_failure(records)
                return
            self.stopping.wait(min(2**attempt * 0.25, 5))

    def _to_on_failure(self, records: list[dict[str, Any]]) -> None:
        self.log(f"stream {self.pool.spec.logical_id} gave up on {len(records)} record(s); sent to the on-failure destination")
        if not self.on_failure_arn:
            return
        url = self.sqs.get_queue_url(QueueName=self.on_failure_arn.rsplit(":", 1)[1])["QueueUrl"]
        sequence = [r["dynamodb"]["SequenceNumber"] for r in records]
        self.sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps(
                {
                    "requestContext": {
                        "functionArn": self.pool.spec.logical_id,
                        "condition": "RetryAttemptsExhausted",
                        "approximateInvokeCount": self.max_retries + 1,
                    },
                    "DDBStreamBatchInfo": {
                        "streamArn": self.stream_arn,
                        "startSequenceNumber": sequence[0],
                        "endSequenceNumber": sequence[-1],
                        "batchSize": len(records),
                    },
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                }
            ),
        )


def rate_seconds(expression: str) -> float:
    """rate(5 minutes) -> 300. Cron expressions are not supported locally."""
    import re

    match = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise ValueError(f"unsupported schedule {expression!r}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


class Scheduler(threading.Thread):
    """Invokes a function on its Schedule event, with the event EventBridge sends."""

    def __init__(self, pool: FunctionPool, expression: str, region: str, log: Callable[[str], None], period: float | None = None):
        super().__init__(daemon=True, name=f"schedule-{pool.spec.logical_id}")
        self.pool, self.region, self.log = pool, region, log
        self.period = period or rate_seconds(expression)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.period):
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": "123456789012",
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "region": self.region,
                "resources": [f"arn:aws:events:{self.region}:123456789012:rule/{self.pool.spec.logical_id}"],
                "detail": {},
            }
            try:
                result = self.pool.invoke(event)
                self.log(f"sched {self.pool.spec.logical_id} -> {json.dumps(result)}")
            except Exception as exc:
                self.log(f"sched {self.pool.spec.logical_id} failed: {exc}")
