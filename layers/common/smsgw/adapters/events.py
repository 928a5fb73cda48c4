"""SNS: the events topic that subscribers filter with message attributes, and the publisher's
dead-letter queue, where records that SNS will never take are set aside for an operator."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from smsgw.adapters import aws
from smsgw.limits import SNS_MAX_BYTES

BATCH_ENTRIES = 10  # PublishBatch takes at most ten messages
# Faults SNS marks as the sender's that are about the whole topic or account, not about one message:
# every event would fail alike, so they are retried, never set aside.
SYSTEMIC_FAULTS = ("KMS", "Authorization", "NotFound", "Throttl", "InvalidSecurity", "Internal", "EndpointDisabled", "RequestLimit")


@dataclass
class PublishOutcome:
    retry: set[str] = field(default_factory=set)  # event ids SNS could not take for now
    refused: dict[str, dict[str, str]] = field(default_factory=dict)  # event id -> SNS's code and message


def _permanent(code: str, sender_fault: bool) -> bool:
    return sender_fault and not code.startswith(SYSTEMIC_FAULTS)


def _size(entry: dict[str, Any]) -> int:
    """Bytes SNS counts for one entry: the body and each attribute's name, type and value."""
    attributes = entry.get("MessageAttributes", {})
    return len(entry["Message"].encode()) + sum(len(k.encode()) + len(v["DataType"]) + len(v["StringValue"].encode()) for k, v in attributes.items())


class EventPublisher:
    def __init__(self, topic_arn: str, client: Any = None, dead_letter_url: str = "", sqs_client: Any = None):
        self.topic_arn = topic_arn
        self._client = client
        self.dead_letter_url = dead_letter_url
        self._sqs = sqs_client

    @property
    def client(self) -> Any:
        return self._client or aws.client("sns")

    def publish(self, events: list[dict[str, Any]], trigger_callbacks: bool = True) -> set[str]:
        """Publish events. Returns the ids of those SNS did not take (for now or for good).
        trigger_callbacks=False (a replay) keeps them away from the status-callback queue."""
        outcome = self.publish_all(events, trigger_callbacks)
        return outcome.retry | set(outcome.refused)

    def publish_all(self, events: list[dict[str, Any]], trigger_callbacks: bool = True) -> PublishOutcome:
        """Publish events in as few PublishBatch calls as SNS allows: ten entries, and 256 KiB in all,
        per call. An event carries its JSON `body` when the caller made it (cut to fit); otherwise it is
        serialised here. Returns which events to retry and which SNS refused for good, and why."""
        outcome = PublishOutcome()
        chunk: list[tuple[str, dict[str, Any]]] = []
        size = 0
        for event in events:
            entry = self._entry(event, trigger_callbacks)
            entry_size = _size(entry)
            if chunk and (len(chunk) == BATCH_ENTRIES or size + entry_size > SNS_MAX_BYTES):
                self._send(chunk, outcome)
                chunk, size = [], 0
            chunk.append((event["id"], entry))
            size += entry_size
        if chunk:
            self._send(chunk, outcome)
        return outcome

    def _entry(self, event: dict[str, Any], trigger_callbacks: bool) -> dict[str, Any]:
        data = event["data"]
        attributes = {"event_type": event["type"], "status": data.get("status", ""), "msisdn": event["msisdn"]}
        if data.get("status_callback") and trigger_callbacks:
            attributes["has_callback"] = "true"  # the callback queue's subscription filters on it
        body = event.get("body") or json.dumps({k: event[k] for k in ("type", "id", "time", "data")}, separators=(",", ":"), default=str)
        return {
            "Message": body,
            "MessageAttributes": {k: {"DataType": "String", "StringValue": v or "-"} for k, v in attributes.items()},
        }

    def _send(self, chunk: list[tuple[str, dict[str, Any]]], outcome: PublishOutcome) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        # Entry ids are positions: unique in the request whatever the events' own ids.
        entries = [{"Id": str(index), **entry} for index, (_, entry) in enumerate(chunk)]
        try:
            result = self.client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if _permanent(code, error.get("Type") == "Sender" or 400 <= status < 500):
                if len(chunk) > 1:  # one entry spoilt the request: find it, and let the others through
                    for single in chunk:
                        self._send([single], outcome)
                    return
                outcome.refused[chunk[0][0]] = {"code": code, "sns_message": str(error.get("Message", ""))[:500]}
                return
            outcome.retry |= {event_id for event_id, _ in chunk}
            return
        except BotoCoreError:
            outcome.retry |= {event_id for event_id, _ in chunk}
            return
        for failure in result.get("Failed", []):
            event_id = chunk[int(failure["Id"])][0]
            if _permanent(str(failure.get("Code", "")), bool(failure.get("SenderFault"))):
                outcome.refused[event_id] = {"code": str(failure.get("Code", "")), "sns_message": str(failure.get("Message", ""))[:500]}
            else:
                outcome.retry.add(event_id)

    def set_aside(self, notes: list[dict[str, Any]]) -> bool:
        """Put notes about records that will never publish on the dead-letter queue, where an alarm
        watches. Returns False if they could not all be put there (the caller retries the records)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not notes:
            return True
        if not self.dead_letter_url:
            return False
        sqs = self._sqs or aws.client("sqs")
        for start in range(0, len(notes), BATCH_ENTRIES):
            batch = notes[start : start + BATCH_ENTRIES]
            entries = [{"Id": str(index), "MessageBody": json.dumps(note, separators=(",", ":"), default=str)} for index, note in enumerate(batch)]
            try:
                result = sqs.send_message_batch(QueueUrl=self.dead_letter_url, Entries=entries)
            except (BotoCoreError, ClientError):
                return False
            if result.get("Failed"):
                return False
        return True
