"""What an operator reads and repairs besides the table: SQS queue depths and redrives, and CloudWatch metric sums."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from smsgw.adapters import aws
from smsgw.errors import ServiceUnavailable

RECEIVE_MAX = 10  # SQS hands out at most ten messages a call
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

    def move(self, source_url: str, target_url: str, limit: int, deadline: float) -> int:
        """Move up to `limit` messages from `source_url` to `target_url` (body and attributes), ten at a time:
        receive, send, then delete what was sent. Stops when the source is empty or at `deadline`
        (time.monotonic()). A message is deleted only after its copy was sent, so a failure in between
        moves it twice, never loses it (the queues' consumers take a job twice). Returns how many moved.
        Raises ServiceUnavailable when SQS fails; what was moved before stays moved."""
        from botocore.exceptions import BotoCoreError, ClientError

        moved = 0
        try:
            while moved < limit and time.monotonic() < deadline:
                wait = 1 if deadline - time.monotonic() > 2 else 0  # a short poll may miss messages of a small queue
                received = self.client.receive_message(
                    QueueUrl=source_url,
                    MaxNumberOfMessages=min(RECEIVE_MAX, limit - moved),
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=MOVE_VISIBILITY_SECONDS,
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                if not received:
                    break
                by_id = {str(n): message for n, message in enumerate(received)}
                sent = self.client.send_message_batch(QueueUrl=target_url, Entries=[_copy(n, m) for n, m in by_id.items()])
                done = [by_id[entry["Id"]] for entry in sent.get("Successful", [])]
                if done:
                    self.client.delete_message_batch(
                        QueueUrl=source_url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)]
                    )
                    moved += len(done)
                refused = [by_id[entry["Id"]] for entry in sent.get("Failed", [])]
                if refused:
                    # back on the dead-letter queue at once, for the next redrive
                    self.client.change_message_visibility_batch(
                        QueueUrl=source_url,
                        Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for n, m in enumerate(refused)],
                    )
                    raise ServiceUnavailable(f"the target queue refused {len(refused)} messages; {moved} were moved", {"moved": moved})
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable(f"SQS failed while moving messages; {moved} were moved", {"moved": moved}) from exc
        return moved


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
