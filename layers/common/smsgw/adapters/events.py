"""SNS: the events topic that subscribers filter with message attributes."""

from __future__ import annotations

import json
from typing import Any

from smsgw.adapters import aws


class EventPublisher:
    def __init__(self, topic_arn: str, client: Any = None):
        self.topic_arn = topic_arn
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("sns")

    def publish(self, events: list[dict[str, Any]], trigger_callbacks: bool = True) -> set[str]:
        """Publish up to ten events in one call. Returns the ids of those SNS did not take.
        trigger_callbacks=False (a replay) keeps them away from the status-callback queue."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not events:
            return set()
        entries = []
        for event in events:
            data = event["data"]
            attributes = {"event_type": event["type"], "status": data.get("status", ""), "msisdn": event["msisdn"]}
            if data.get("status_callback") and trigger_callbacks:
                attributes["has_callback"] = "true"  # the callback queue's subscription filters on it
            entries.append(
                {
                    "Id": event["id"].replace(":", "-")[:80],
                    "Message": json.dumps({k: event[k] for k in ("type", "id", "time", "data")}, separators=(",", ":"), default=str),
                    "MessageAttributes": {k: {"DataType": "String", "StringValue": v or "-"} for k, v in attributes.items()},
                }
            )
        try:
            result = self.client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries)
        except (BotoCoreError, ClientError):
            return {event["id"] for event in events}
        failed_entry_ids = {f["Id"] for f in result.get("Failed", [])}
        return {event["id"] for event, entry in zip(events, entries, strict=True) if entry["Id"] in failed_entry_ids}
