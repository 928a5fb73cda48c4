"""The outbox: every committed status change in the table becomes one event on the SNS topic.

The publisher reads the table's stream, so an event exists only for a stored change and every stored
change gets its event (at least once; the event id is stable, so subscribers can deduplicate).
"""

from __future__ import annotations

import json
from typing import Any

from smsgw import models
from smsgw.observability import count, logger

MT_STATUS = "sms.mt.status"
MO_RECEIVED = "sms.mo.received"
REPLY_TIMEOUT = "sms.mt.reply_timeout"


def event_for(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any] | None:
    """The event a change of a message item calls for, or None."""
    if new.get("reply_state") == "timed_out" and (old or {}).get("reply_state") != "timed_out":
        data = models.public_view(new)
        return {"type": REPLY_TIMEOUT, "id": f"{new['id']}:reply_timeout", "time": new.get("updated_at"), "data": data, "msisdn": new.get("to", "")}
    status = new.get("status")
    # Eseye confirming a status the gateway had only inferred is news too (issue 9): it gets its own id.
    confirmed = (
        bool(old)
        and old.get("status") == status
        and (old or {}).get("status_source") == models.FROM_GATEWAY
        and new.get("status_source") == models.FROM_ESEYE
    )
    if not status or (old and old.get("status") == status and not confirmed):
        return None
    data = models.public_view(new)
    if new.get("direction") == "mt":
        kind, msisdn = MT_STATUS, new.get("to", "")
    elif new.get("direction") == "mo" and status == models.RECEIVED and not old:
        kind, msisdn = MO_RECEIVED, new.get("from") or ""
    else:
        return None  # a blocked MO message is stored, not published
    event_id = f"{new['id']}:{status}:eseye" if confirmed else f"{new['id']}:{status}"
    return {"type": kind, "id": event_id, "time": new.get("updated_at") or new.get("created_at"), "data": data, "msisdn": msisdn}


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event[k] for k in ("type", "id", "time", "data")}


def archive_item(event: dict[str, Any], ttl: int) -> dict[str, Any]:
    """An event as stored for replay: hour buckets keep any one partition's write rate modest."""
    return {
        "PK": f"EVT#{event['time'][:13]}",
        "SK": f"{event['time']}#{event['id']}",
        "type": event["type"],
        "msisdn": event["msisdn"],
        "event": json.dumps(public_event(event), separators=(",", ":"), default=str),
        "ttl": ttl,
    }


def publish_changes(changes: list[tuple[str, dict[str, Any], dict[str, Any] | None]], publisher: Any, store: Any = None, ttl: int = 0) -> set[str]:
    """`changes` are (record id, new item, old item). Each event is archived (for replay), then published.
    Returns the record ids whose event did not publish."""
    pending: list[tuple[str, dict[str, Any]]] = []
    for record_id, new, old in changes:
        event = event_for(new, old)
        if event:
            pending.append((record_id, event))
    if store is not None and pending:
        store.put_items([archive_item(event, ttl) for _, event in pending])
    failed_records: set[str] = set()
    for start in range(0, len(pending), 10):
        chunk = pending[start : start + 10]
        failed_ids = publisher.publish([event for _, event in chunk])
        failed_records |= {record_id for record_id, e in chunk if e["id"] in failed_ids}
    for record_id, event in pending:
        logger.info(
            "event published" if record_id not in failed_records else "event not published; will retry",
            extra={"message_id": event["data"]["id"], "event_id": event["id"], "event_type": event["type"]},
        )
    if pending:
        count("EventsPublished", len(pending) - len(failed_records))
    if failed_records:
        count("PublishFailed", len(failed_records))
    return failed_records


def handle_stream_batch(records: list[dict[str, Any]], deps: Any = None) -> dict[str, list[dict[str, str]]]:
    """A DynamoDB stream batch in, SNS events out, in batches of ten. Returns the partial-batch response.

    Not Powertools' per-record BatchProcessor: publishing ten events per SNS call is a tenth of the calls.
    Lambda resumes from the first failed sequence number, so later records of the batch come again too.
    """
    from smsgw.deps import default_deps

    deps = deps or default_deps()
    changes = []
    for record in records:
        image = record.get("dynamodb", {})
        new = deps.store.deserialize_image(image.get("NewImage") or {})
        old = deps.store.deserialize_image(image["OldImage"]) if image.get("OldImage") else None
        if new:
            changes.append((image["SequenceNumber"], new, old))
    ttl = deps.store.expiry(deps.clock().timestamp())
    failed = publish_changes(changes, deps.events, deps.store, ttl)
    ordered = [r["dynamodb"]["SequenceNumber"] for r in records if r["dynamodb"]["SequenceNumber"] in failed]
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in ordered]}
