"""The outbox: every committed status change in the table becomes one event on the SNS topic.

The publisher reads the table's stream, so an event exists only for a stored change and every stored
change gets its event (at least once; the event id is stable, so subscribers can deduplicate).
"""

from __future__ import annotations

import json
from typing import Any

from smsgw import limits, models
from smsgw.adapters.store import is_batch, is_sim_state, item_keys
from smsgw.observability import count, logger

MT_STATUS = "sms.mt.status"
MO_RECEIVED = "sms.mo.received"
REPLY_TIMEOUT = "sms.mt.reply_timeout"
BUFFER_RISK = "sms.sim.buffer_risk"
BATCH_COMPLETED = "sms.batch.completed"

# SNS counts a message's body and its attributes; ours (event_type, status, msisdn, has_callback) take
# under 200 bytes, so a body within this limit always fits.
BODY_LIMIT = limits.SNS_MAX_BYTES - 1024
HISTORY_KEEP_IN_EVENT = 30  # latest entries an over-long event keeps, besides the first
# Never cut: what subscribers route, filter and deduplicate on, and where a status callback goes. Each
# is short (ids, times, MSISDNs, a status_callback URL of at most 2048 characters).
WHOLE_FIELDS = (
    "id",
    "direction",
    "to",
    "from",
    "status",
    "status_source",
    "status_callback",
    "client_ref",
    "created_at",
    "updated_at",
    "reply_state",
    "reply_deadline",
    "reply_id",
    "in_reply_to",
)


def event_for(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any] | None:
    """The event a change of a message item (or of a SIM's state) calls for, or None."""
    if is_sim_state(new):
        return buffer_risk_event(new, old)
    if is_batch(new):
        from smsgw.logic import batches

        return batches.completed_event(new, old)
    if new.get("reply_state") == "timed_out" and (old or {}).get("reply_state") != "timed_out":
        data = models.public_view(new)
        return {"type": REPLY_TIMEOUT, "id": f"{new['id']}:reply_timeout", "time": new.get("updated_at"), "data": data, "msisdn": new.get("to", "")}
    status = new.get("status")
    # Eseye confirming a status the gateway had only inferred is news too (issue 9): it gets its own id.
    confirmed = (
        bool(old)
        and (old or {}).get("status") == status
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


def buffer_risk_event(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any] | None:
    """sms.sim.buffer_risk, once each time MT delivered since the device last spoke crosses the threshold
    (logic/sims.py marks the crossing on the SIM's state)."""
    at = new.get("buffer_risk_at")
    if not at or at == (old or {}).get("buffer_risk_at"):
        return None
    msisdn = str(new.get("msisdn", ""))
    data = {
        "msisdn": msisdn,
        "delivered_since_last_mo": new.get("delivered_since_last_mo"),
        "threshold": new.get("buffer_risk_threshold"),
        "last_mo_at": new.get("last_mo_at"),
        "last_delivered_at": new.get("last_delivered_at"),
        "in_flight": len(new.get("holders") or []),
        "queued": len(new.get("queue") or []),
    }
    data = {k: v for k, v in data.items() if v is not None}
    return {"type": BUFFER_RISK, "id": f"{msisdn}:buffer_risk:{at}", "time": at, "data": data, "msisdn": msisdn}


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event[k] for k in ("type", "id", "time", "data")}


def event_body(event: dict[str, Any]) -> str:
    """The event as SNS carries it and the archive keeps it."""
    return event.get("body") or json.dumps(public_event(event), separators=(",", ":"), default=str)


def fit(event: dict[str, Any]) -> dict[str, Any]:
    """`event` with its `body`, cut to fit SNS's limit if it must be: first the middle of the history,
    then the history's details, then long fields. A cut event says `truncated: true` in its data;
    GET /messages/{id} still shows the message whole."""
    body = event_body(event)
    if len(body.encode()) <= BODY_LIMIT:
        return {**event, "body": body}
    data = event["data"]
    history = data.get("history") or []
    dropped = int(data.get("history_dropped") or 0)
    candidates = []
    for keep in (HISTORY_KEEP_IN_EVENT, 10, 2, 1):
        if len(history) > keep + 1:
            trimmed = [history[0], *history[-keep:]]
            candidates.append({**data, "history": trimmed, "history_dropped": dropped + len(history) - len(trimmed)})
    last = candidates[-1] if candidates else data
    plain = [{k: v for k, v in entry.items() if k != "detail"} for entry in last.get("history") or []]
    candidates.append({**last, "history": plain})
    for size in (16 * 1024, 1024):
        cut = limits.bounded({**last, "history": plain}, size)
        candidates.append({**cut, **{k: last[k] for k in WHOLE_FIELDS if k in last}})
    for candidate in candidates:
        candidate = {**candidate, "truncated": True}
        body = event_body({**event, "data": candidate})
        if len(body.encode()) <= BODY_LIMIT:
            return {**event, "data": candidate, "body": body}
    # Last resort: the fields subscribers filter and route on, with the latest history entry.
    minimal = {k: data[k] for k in WHOLE_FIELDS if data.get(k) is not None}
    minimal.update(history=limits.bounded(plain[-1:], 256), truncated=True)
    minimal["history_dropped"] = dropped + len(history) - len(minimal["history"]) if len(history) > 1 else None
    minimal = {k: v for k, v in minimal.items() if v is not None}
    return {**event, "data": minimal, "body": event_body({**event, "data": minimal})}


def archive_item(event: dict[str, Any], ttl: int) -> models.ArchivedEvent:
    """An event as the archive keeps it for replay, in time order."""
    return models.ArchivedEvent(
        position=f"{event['time']}#{event['id']}", type=event["type"], msisdn=event["msisdn"], body=event_body(event), ttl=ttl
    )


def set_aside_note(reason: str, sequence: str, event: dict[str, Any] | None = None, **detail: Any) -> dict[str, Any]:
    """What the operator finds on the publisher's dead-letter queue about one record we could not publish."""
    note: dict[str, Any] = {"reason": reason, "sequence_number": sequence, **detail}
    if event is not None:
        note.update(event_id=event["id"], event_type=event["type"], message_id=event["data"].get("id"), time=event["time"])
    return note


def _unreadable(sequence: str, keys: dict[str, Any], exc: Exception) -> dict[str, Any]:
    plain = {k: next(iter(v.values()), None) if isinstance(v, dict) else v for k, v in keys.items()}
    return set_aside_note("unreadable_record", sequence, keys=plain, error=f"{type(exc).__name__}: {exc}"[:500])


def publish_changes(
    changes: list[tuple[str, dict[str, Any], dict[str, Any] | None]],
    publisher: Any,
    store: Any = None,
    ttl: int = 0,
    unreadable: list[dict[str, Any]] | None = None,
) -> set[str]:
    """`changes` are (record id, new item, old item). Each event is archived (for replay), then published.

    A record that cannot become an event, and an event SNS refuses for good (a fault of the event
    itself), are set aside on the dead-letter queue with the reason, so that they never hold up the
    records behind them. Returns the record ids to retry: those whose event SNS could not take for
    now, and those that could not be set aside."""
    aside = list(unreadable or [])
    pending: list[tuple[str, dict[str, Any]]] = []
    for record_id, new, old in changes:
        try:
            event = event_for(new, old)
            if event:
                pending.append((record_id, fit(event)))
        except Exception as exc:  # one unreadable record must not fail its neighbours
            aside.append(_unreadable(record_id, item_keys(new), exc))
    if store is not None and pending:
        store.events.append([archive_item(event, ttl) for _, event in pending])
    outcome = publisher.publish_all([event for _, event in pending])
    retry = {record_id for record_id, event in pending if event["id"] in outcome.retry}
    aside += [set_aside_note("sns_refused", r, event, **outcome.refused[event["id"]]) for r, event in pending if event["id"] in outcome.refused]
    if aside:
        logger.error("records set aside on the dead-letter queue: they would fail again", extra={"records": aside})
        if publisher.set_aside(aside):
            count("RecordsSetAside", len(aside))
        else:
            retry |= {note["sequence_number"] for note in aside}
    for record_id, event in pending:
        extra = {"message_id": event["data"].get("id"), "event_id": event["id"], "event_type": event["type"]}
        if event["data"].get("truncated"):
            logger.warning("event cut to fit SNS's size limit", extra=extra)
        if event["id"] not in outcome.refused:
            logger.info("event not published; will retry" if record_id in retry else "event published", extra=extra)
    if pending:
        count("EventsPublished", len(pending) - len(outcome.retry) - len(outcome.refused))
    if retry:
        count("PublishFailed", len(retry))
    return retry


def handle_stream_batch(records: list[dict[str, Any]], deps: Any = None) -> dict[str, list[dict[str, str]]]:
    """A DynamoDB stream batch in, SNS events out, in batches of up to ten. Returns the partial-batch response.

    Not Powertools' per-record BatchProcessor: publishing ten events per SNS call is a tenth of the calls.
    Each record is published, set aside (unreadable, or refused by SNS for good: a retry would only fail
    again and hold up the shard), or reported for a retry. Lambda resumes from the first reported
    sequence number, so later records of the batch come again too; event ids are stable.
    """
    from smsgw.deps import default_deps

    deps = deps or default_deps()
    changes = []
    unreadable = []
    for record in records:
        image = record.get("dynamodb", {})
        sequence = image.get("SequenceNumber", "")
        try:
            new = deps.store.messages.from_stream_image(image.get("NewImage") or {})
            old = deps.store.messages.from_stream_image(image["OldImage"]) if image.get("OldImage") else None
        except Exception as exc:  # as above
            unreadable.append(_unreadable(sequence, image.get("Keys") or {}, exc))
            continue
        if new:
            changes.append((sequence, new, old))
    ttl = deps.store.expiry(deps.clock().timestamp())
    failed = publish_changes(changes, deps.events, deps.store, ttl, unreadable)
    ordered = [r["dynamodb"]["SequenceNumber"] for r in records if r.get("dynamodb", {}).get("SequenceNumber") in failed]
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in ordered]}
