"""What an operator reads and repairs besides the table: SQS queue depths and redrives, and CloudWatch metric sums."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from smsgw.adapters import aws
from smsgw.errors import ServiceUnavailable

RECEIVE_MAX = 10  # SQS hands out at most ten messages a call
MOVERS = 4  # rounds of receive, send and delete under way at once: SQS's calls, not our CPU, take the time
# Long enough for one round of send and delete; a message we could not move comes back at once (visibility 0).
MOVE_VISIBILITY_SECONDS = 30


@dataclass(frozen=True)
class QueueDepth:
    visible: int  # ApproximateNumberOfMessages
    in_flight: int  # ApproximateNumberOfMessagesNotVisible: received, not yet deleted or returned


class Queues:
    """Any of the stack's queues, by URL, on an injected SQS client or the lazily built default."""

    def __init__(self, client: Any = None):
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("sqs")

    def depth(self, queue_url: str) -> QueueDepth:
        """Raises ServiceUnavailable when SQS cannot be asked."""
        from botocore.exceptions import BotoCoreError, ClientError

        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        try:
            attributes = self.client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable("SQS could not be asked for a queue's depth") from exc
        return QueueDepth(int(attributes.get(names[0], 0)), int(attributes.get(names[1], 0)))

    def move(self, source_url: str, target_url: str, limit: int, deadline: float, movers: int = MOVERS) -> int:
        """Move up to `limit` messages from `source_url` to `target_url` (body and attributes), ten at a time
        by each of `movers` threads: receive, send, then delete what was sent. Stops when the source is empty
        or at `deadline` (time.monotonic()). A message is deleted only after its copy was sent, so a failure in
        between moves it twice, never loses it (the queues' consumers take a job twice). Returns how many
        moved. Raises ServiceUnavailable when SQS fails, with how many moved before (those stay moved)."""
        from concurrent.futures import ThreadPoolExecutor

        progress = _Progress(limit)

        def mover() -> None:
            while not progress.stopped.is_set() and time.monotonic() < deadline:
                wanted = progress.reserve(RECEIVE_MAX)
                if not wanted:
                    return
                try:
                    moved, empty = self._move_some(source_url, target_url, wanted, deadline)
                except ServiceUnavailable as exc:
                    progress.fail(exc, wanted, moved=int((exc.details or {}).get("moved", 0)))
                    return
                progress.settle(wanted, moved)
                if empty:
                    return

        with ThreadPoolExecutor(max_workers=max(1, movers), thread_name_prefix="redrive") as pool:
            for running in [pool.submit(mover) for _ in range(max(1, movers))]:
                running.result()
        if progress.error is not None:
            raise ServiceUnavailable(f"{progress.error.message}; {progress.moved} were moved", {"moved": progress.moved}) from progress.error
        return progress.moved

    def _move_some(self, source_url: str, target_url: str, wanted: int, deadline: float) -> tuple[int, bool]:
        """One round: up to `wanted` (at most ten) messages moved. Returns how many, and whether the source was empty."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            wait = 1 if deadline - time.monotonic() > 2 else 0  # a short poll may miss messages of a small queue
            received = self.client.receive_message(
                QueueUrl=source_url,
                MaxNumberOfMessages=min(RECEIVE_MAX, wanted),
                WaitTimeSeconds=wait,
                VisibilityTimeout=MOVE_VISIBILITY_SECONDS,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not received:
                return 0, True
            by_id = {str(n): message for n, message in enumerate(received)}
            sent = self.client.send_message_batch(QueueUrl=target_url, Entries=[_copy(n, m) for n, m in by_id.items()])
            done = [by_id[entry["Id"]] for entry in sent.get("Successful", [])]
            if done:
                self.client.delete_message_batch(
                    QueueUrl=source_url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)]
                )
            refused = [by_id[entry["Id"]] for entry in sent.get("Failed", [])]
            if refused:
                # back on the dead-letter queue at once, for the next redrive
                self.client.change_message_visibility_batch(
                    QueueUrl=source_url,
                    Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for n, m in enumerate(refused)],
                )
                raise ServiceUnavailable(f"the target queue refused {len(refused)} messages", {"moved": len(done)})
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable("SQS failed while moving messages") from exc
        return len(done), False


class _Progress:
    """What the movers of one redrive share: how many moved, how many are reserved by a round under way
    (so that together they never pass the limit), and the first failure, which stops them all."""

    def __init__(self, limit: int):
        self.limit, self.moved, self.reserved = limit, 0, 0
        self.error: ServiceUnavailable | None = None
        self.stopped = threading.Event()
        self._lock = threading.Lock()

    def reserve(self, most: int) -> int:
        with self._lock:
            wanted = max(0, min(most, self.limit - self.moved - self.reserved))
            self.reserved += wanted
            return wanted

    def settle(self, reserved: int, moved: int) -> None:
        with self._lock:
            self.reserved -= reserved
            self.moved += moved

    def fail(self, error: ServiceUnavailable, reserved: int, moved: int = 0) -> None:
        with self._lock:
            self.reserved -= reserved
            self.moved += moved
            self.error = self.error or error
        self.stopped.set()


def _copy(entry_id: str, message: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"]}
    if message.get("MessageAttributes"):
        entry["MessageAttributes"] = message["MessageAttributes"]
    return entry


class MetricReader:
    """CloudWatch metrics, read back: on an injected client or the lazily built default."""

    def __init__(self, client: Any = None):
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("cloudwatch")

    def sums(
        self, namespace: str, names: Sequence[str], dimensions: Mapping[str, str], start: datetime, end: datetime, period: int = 60
    ) -> dict[str, float]:
        """The Sum of each metric (by name, with exactly these dimensions) from `start` to `end`: one
        GetMetricData call with a query per metric, its datapoints added up. A metric with no data is 0.
        Raises ServiceUnavailable when CloudWatch cannot be asked."""
        from botocore.exceptions import BotoCoreError, ClientError

        queries = [
            {
                "Id": f"m{n}",
                "ReturnData": True,
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]},
                    "Period": period,
                    "Stat": "Sum",
                },
            }
            for n, name in enumerate(names)
        ]
        totals = {name: 0.0 for name in names}
        request: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
        try:
            for _ in range(10):  # three metrics at one-minute periods fit one page; bounded all the same
                answer = self.client.get_metric_data(**request)
                for result in answer.get("MetricDataResults", []):
                    totals[names[int(result["Id"][1:])]] += sum(float(v) for v in result.get("Values", []))
                if not answer.get("NextToken"):
                    break
                request["NextToken"] = answer["NextToken"]
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable("CloudWatch could not be asked for the gateway's metrics") from exc
        return totals
