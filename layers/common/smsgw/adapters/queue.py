"""SQS: the send-retry queue, and the callback queue's redelivery delay."""

from __future__ import annotations

import json
from typing import Any

from smsgw.adapters import aws
from smsgw.errors import ServiceUnavailable

MAX_SQS_DELAY = 900


class _Queue:
    """One SQS queue, by URL, on an injected client or the lazily built default."""

    def __init__(self, queue_url: str, client: Any = None):
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("sqs")


class RetryQueue(_Queue):
    def schedule(self, job: dict[str, Any], delay_seconds: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=json.dumps(job, separators=(",", ":")),
                DelaySeconds=max(0, min(int(delay_seconds), MAX_SQS_DELAY)),
            )
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable("the retry queue could not be reached") from exc


class JobQueue(_Queue):
    """A queue of small JSON jobs sent ten to a call (the batches' fan-out)."""

    def send_jobs(self, jobs: list[dict[str, Any]]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(jobs), 10):
            entries = [{"Id": str(n), "MessageBody": json.dumps(job, separators=(",", ":"))} for n, job in enumerate(jobs[start : start + 10])]
            for _ in range(3):
                try:
                    result = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
                except (BotoCoreError, ClientError) as exc:
                    raise ServiceUnavailable("the batch queue could not be reached") from exc
                failed = {f["Id"] for f in result.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
            if entries:
                raise ServiceUnavailable("the batch queue did not take every job")


class RedeliveryQueue(_Queue):
    """A queue whose consumer backs off by holding a failed message back before SQS delivers it again
    (backoff without a second queue): the status-callback queue."""

    def delay(self, receipt_handle: str, seconds: int) -> None:
        """Deliver the received message again in `seconds` (SQS's cap: 12 hours)."""
        hold = max(0, min(int(seconds), 43200))
        self.client.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=hold)
