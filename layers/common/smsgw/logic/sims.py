"""Each SIM's delivery queue, as use cases: admit a new message, settle the queue after a change, let
a scheduled message in, cancel a waiting one, repair a stuck queue, and the SIM's state and settings.

simqueue.py makes the decisions. Here they are read, made and committed under the SIM's revision, in
one transaction with the messages they move, and made again from a fresh read when another writer got
there first. Slots are freed from the table stream (`follow_change`): whatever path takes a message to a
final status (a receipt, a rejection, a cancel, an expiry, retries running out), its slot comes back
and the next message starts, without each path having to remember it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from smsgw import models, simqueue, validation
from smsgw.adapters.store import ConditionFailed
from smsgw.adapters.table import Contention
from smsgw.deps import Deps, default_deps
from smsgw.errors import NotFound, ServiceUnavailable, ValidationFailed
from smsgw.logic import lists
from smsgw.models import Message
from smsgw.observability import count, logger
from smsgw.simqueue import Admission, SimState

MAX_TRIES = 25  # reads-and-commits before a busy SIM gives up (each loser waits a jittered, growing pause)
MISSING_GRACE = timedelta(minutes=5)  # a slot or queue entry whose message is not stored may be mid-commit
# DynamoDB takes 100 writes in a transaction: the SIM, up to ten starts, and expiries.
EXPIRED_PER_WRITE = 80


def _pause(tries: int) -> None:
    time.sleep(random.uniform(0, min(0.4, 0.005 * 2**tries)))  # jitter, not secrecy


def _busy(digits: str) -> ServiceUnavailable:
    count("SimQueueBusy")
    return ServiceUnavailable("the SIM's queue is changing too fast to take this request; retry it", {"to": digits})


def _entry(at: str, event: str, status: str, cause: str, **detail: Any) -> dict[str, Any]:
    return models.history_entry(at, event, status, cause, **detail)


# --- a new message -----------------------------------------------------------------------------------


class GuardFailed(Exception):
    """The condition a caller committed a message under no longer holds (its batch was cancelled)."""


def admit(deps: Deps, message: Message, *, state: SimState | None = None, guard: dict[str, Any] | None = None) -> tuple[Message, Admission]:
    """Store a new MT message (built `pending`, with its first attempt's lease) with its place in its
    SIM's queue: `pending` in a free slot, or `queued` behind the messages waiting (or in the place of a
    queued message with the same collapse_key, which ends `cancelled`). Returns the message as stored.
    `state` is the SIM's state if the caller read it already (a batch reads its SIMs at once); `guard`, a
    transaction item the message is created under.

    Raises simqueue.QueueFull; ConditionFailed (with the stored message) if the id exists; GuardFailed;
    and ServiceUnavailable if the SIM's queue kept changing under every try.
    """
    digits = str(message.to)
    defaults = deps.settings.sim_defaults()
    over_orphans = False
    known = state
    for tries in range(MAX_TRIES):
        state = known if known is not None and tries == 0 else deps.store.sims.get(digits)
        now = deps.clock()  # after the read, so that queue times follow queue positions
        at = models.iso(now)
        new_state, admission = state.admit(message.id, now, defaults, message.collapse_key, message.expires_at)
        stored = message if admission.status == models.PENDING else _queued(message, admission, at)
        writes = [deps.store.messages.create_write(stored, over_orphans=over_orphans), *_superseding(deps, admission, message.id, at)]
        if guard is not None:
            writes.append(guard)
        try:
            deps.store.sims.commit(state, new_state, at, writes)
        except ConditionFailed as exc:
            if guard is not None and len(writes) in exc.failed:
                raise GuardFailed() from exc
            existing = exc.failed.get(1)
            if 1 in exc.failed and existing is not None and not existing.status and existing.orphan_receipts:
                # Receipts came before the message: create it over their placeholder, then apply them.
                over_orphans, message = True, dataclasses.replace(message, orphan_receipts=existing.orphan_receipts)
                continue
            if 1 in exc.failed:
                raise ConditionFailed(existing) from exc
            _pause(tries)  # the SIM (or the message being superseded) changed: decide again
            continue
        except Contention:
            _pause(tries)
            continue
        if admission.supersedes:
            count("Superseded")
        if admission.status == models.QUEUED:
            count("Queued")
            logger.info("message queued for its SIM", extra={"position": admission.position, "supersedes": admission.supersedes})
        return stored, admission
    raise _busy(digits)


def _queued(message: Message, admission: Admission, at: str) -> Message:
    cause = f"waiting for an in-flight slot of its SIM: position {admission.position}"
    if admission.supersedes:
        cause += f", in place of {admission.supersedes} (same collapse_key)"
    return waiting(message, models.QUEUED, at, cause, supersedes=admission.supersedes)


def _superseding(deps: Deps, admission: Admission, successor: str, at: str) -> list[dict[str, Any]]:
    """The write that ends the queued message `admission` replaces (same collapse_key), if any."""
    if not admission.supersedes:
        return []
    cause = f"superseded by {successor}, sent with the same collapse_key while this one waited"
    entry = _entry(at, "superseded", models.CANCELLED, cause)
    return [
        deps.store.messages.move_write(
            admission.supersedes, models.CANCELLED, entry, sets={"superseded_by": successor}, allowed_from=(models.QUEUED,)
        )
    ]


def waiting(message: Message, status: str, at: str, cause: str, **fields: Any) -> Message:
    """A new message (built `pending`) that does not start: waiting (`scheduled`, `queued`), or refused by a
    batch's fan-out (`blocked`, `failed`). No lease, no attempt, not at Eseye, and a history that starts
    accepted into that status (never `pending` first)."""
    history = [_entry(at, "accepted", status, f"accepted by the API; {cause}"), *(message.history or [])[1:]]
    # A reply window counts from when the message leaves the queue (follow_change), not from now.
    return dataclasses.replace(
        message,
        status=status,
        attempts=None,
        lease_owner=None,
        lease_until=None,
        may_be_at_eseye=None,
        reply_deadline=None,
        reply_state=None,
        history=history,
        **fields,
    )


# --- scheduled messages -------------------------------------------------------------------------------


def start_due_scheduled(deps: Deps | None = None, limit_per_shard: int = 100) -> int:
    """Let each scheduled message whose send_at has come into its SIM's queue. Returns how many."""
    deps = deps or default_deps()
    entered = 0
    for message_id in deps.store.sims.due_scheduled(deps.now_iso(), limit_per_shard):
        message = deps.store.messages.get(message_id)
        if message and message.status == models.SCHEDULED:
            enter_queue(deps, message)
            entered += 1
    if entered:
        count("ScheduledStarted", entered)
    return entered


def enter_queue(deps: Deps, message: Message) -> None:
    """A scheduled message's time has come: into a free slot or the queue, as a new send would go. One
    that expired, whose MSISDN was blocklisted, or whose SIM's queue is full, ends here with the reason."""
    digits = str(message.to)
    defaults = deps.settings.sim_defaults()
    refusal = lists.refusal_reason(digits, deps)  # once: a retry below is about the SIM's state, not the lists
    for tries in range(MAX_TRIES):
        now = deps.clock()
        at = models.iso(now)
        ending = None
        if message.expires_at and message.expires_at <= at:
            ending = (models.FAILED, "expired", "the message expired before its send_at came")
        elif refusal:
            ending = (models.BLOCKED, "blocked", f"{refusal}; the scheduled message was not sent")
        state = deps.store.sims.get(digits)
        if ending is None:
            try:
                new_state, admission = state.admit(message.id, now, defaults, message.collapse_key, message.expires_at)
            except simqueue.QueueFull as full:
                ending = (models.FAILED, "sim_queue_full", f"its send_at came with its SIM's queue full: {full}")
        if ending is not None:
            status, event, cause = ending
            with contextlib.suppress(ConditionFailed):  # cancelled meanwhile
                deps.store.messages.transition(message.id, status, _entry(at, event, status, cause), source=models.FROM_GATEWAY)
            return
        target = admission.status
        cause = "its send_at came; " + (
            "its SIM had a free in-flight slot" if target == models.PENDING else f"waiting for an in-flight slot: position {admission.position}"
        )
        entry = _entry(at, "send_at", target, cause)
        writes = [
            deps.store.messages.move_write(message.id, target, entry, sets={"supersedes": admission.supersedes}, allowed_from=(models.SCHEDULED,)),
            *_superseding(deps, admission, message.id, at),
        ]
        try:
            deps.store.sims.commit(state, new_state, at, writes)
            return
        except ConditionFailed as exc:
            if 1 in exc.failed:
                return  # no longer scheduled: cancelled, or another sweep let it in
        except Contention:
            pass
        _pause(tries)
    raise _busy(digits)


# --- after a change ---------------------------------------------------------------------------------


def settle(
    deps: Deps,
    digits: str,
    *,
    release: Iterable[str] = (),
    delivered: tuple[str, str] | None = None,
    mo_at: str | None = None,
    repair: bool = False,
) -> list[str]:
    """Bring a SIM's queue up to date: free the slots of `release`, count a delivery ((message id, time))
    or an MO, and start the messages at the head of the queue that may start now. A head that expired,
    or whose MSISDN was blocklisted, while it waited ends instead. With `repair`, also free slots whose
    message is final, gone or past the in-flight timeout, and drop entries whose message no longer waits.
    Returns the ids of the messages started."""
    defaults = deps.settings.sim_defaults()
    released, stale = set(release), set[str]()
    started_all: list[str] = []
    conflicts = 0
    while conflicts < MAX_TRIES:  # each round without a conflict ends some messages, so the queue runs out
        now = deps.clock()
        at = models.iso(now)
        state = deps.store.sims.get(digits)
        if not state.rev and not delivered and not mo_at:
            return started_all  # a SIM the queue never saw has nothing to settle
        new = state.release(released).drop(stale)
        if delivered:
            new = new.delivered(delivered[0], delivered[1], deps.settings.sim_buffer_warn_at)
        if mo_at:
            new = new.device_spoke(mo_at)
        timed_out: list[str] = []
        if repair:
            new, timed_out = _repair(deps, new, now)
        # Waiting messages that expired end now, wherever they are in the queue (their expiry travels with
        # the entry); then the heads that may start do, unless their MSISDN was blocklisted meanwhile.
        expired = [w.id for w in new.queue if w.expires_at and w.expires_at <= at][:EXPIRED_PER_WRITE]
        heads = [w.id for w in new.drop(expired).next_to_start(defaults, now)]
        refusal = lists.refusal_reason(digits, deps) if heads else None
        moves: list[tuple[str, str, str, str]] = [
            (message_id, models.FAILED, "expired", "it expired while it waited for its SIM's in-flight slot; Eseye never saw it")
            for message_id in expired
        ]
        if refusal:  # nothing waiting for this SIM may go now
            blocked = [w.id for w in new.drop(expired).queue][: EXPIRED_PER_WRITE - len(expired)]
            moves += [(message_id, models.BLOCKED, "blocked", f"{refusal}; the message was not sent") for message_id in blocked]
        else:
            moves += [(head, models.PENDING, "dequeued", "its SIM had a free in-flight slot") for head in heads]
        writes = [
            deps.store.messages.move_write(message_id, target, _entry(at, event, target, cause), allowed_from=(models.QUEUED,))
            for message_id, target, event, cause in moves
        ]
        started = [message_id for message_id, target, _, _ in moves if target == models.PENDING]
        ended = [message_id for message_id, target, _, _ in moves if target != models.PENDING]
        new = new.drop(ended).start(started, now, defaults)
        if new == state:
            return started_all
        try:
            deps.store.sims.commit(state, new, at, writes)
        except ConditionFailed as exc:
            # A message that no longer waits (moved by a path that does not know the queue): drop it.
            stale |= {moves[position - 1][0] for position in exc.failed if position}
            conflicts += 1
            _pause(conflicts)
            continue
        except Contention:
            conflicts += 1
            _pause(conflicts)
            continue
        _note_timeouts(deps, timed_out, at)
        started_all += started
        if started:
            count("Dequeued", len(started))
        if not ended:
            return started_all
        released, stale, delivered, mo_at, repair = set(), set(), None, None, False  # done: look at the queue again
    raise _busy(digits)


def _repair(deps: Deps, state: SimState, now: Any) -> tuple[SimState, list[str]]:
    """`state` without slots and queue entries that no message justifies any more. Returns it and the
    ids of the messages whose slot timed out (they stay `sent`)."""
    grace = models.iso(now - MISSING_GRACE)
    timeout = models.iso(now - timedelta(seconds=deps.settings.sim_in_flight_timeout_seconds))
    ids = [h.id for h in state.holders] + [w.id for w in state.queue]
    messages = deps.store.messages.get_many(ids)
    free, timed_out = [], []
    for holder in state.holders:
        message = messages.get(holder.id)
        if message is None:
            if holder.since < grace:
                free.append(holder.id)
        elif message.status in models.FINAL_STATUSES or message.status in models.WAITING_STATUSES:
            free.append(holder.id)
        elif message.status == models.SENT and (message.sent_at or holder.since) < timeout:
            free.append(holder.id)
            timed_out.append(holder.id)
    gone = [
        w.id for w in state.queue if (messages.get(w.id) is None and w.at < grace) or (w.id in messages and messages[w.id].status != models.QUEUED)
    ]
    if free or gone:
        logger.info("SIM queue repaired", extra={"freed": len(free), "timed_out": len(timed_out), "dropped": len(gone)})
        count("SimQueueRepaired")
    return state.release(free).drop(gone), timed_out


def _note_timeouts(deps: Deps, message_ids: list[str], at: str) -> None:
    seconds = deps.settings.sim_in_flight_timeout_seconds
    for message_id in message_ids:
        cause = f"no final receipt {seconds} s after Eseye accepted it: it no longer holds its SIM's in-flight slot"
        # The note is for operators; the slot is what matters, and it is free.
        with contextlib.suppress(ConditionFailed, ServiceUnavailable):
            deps.store.messages.append_note(message_id, _entry(at, "in_flight_timeout", models.SENT, cause))
        count("InFlightTimedOut")


def repair_waiting_queues(deps: Deps | None = None, idle_for: timedelta = timedelta(seconds=60), limit_per_shard: int = 50) -> int:
    """Settle, with repair, each SIM whose messages have waited with no change for `idle_for`: a slot whose
    receipt never came, a hand-over that died midway, an hourly cap that has rolled on. Returns how many
    messages started."""
    deps = deps or default_deps()
    started = 0
    for digits in list(deps.store.sims.waiting_since(models.iso(deps.clock() - idle_for), limit_per_shard)):
        started += len(settle(deps, digits, repair=True))
    return started


def follow_change(deps: Deps, new: Mapping[str, Any], old: Mapping[str, Any] | None) -> None:
    """React to one committed change of a message (the table stream): a message that left its slot frees
    it, a delivery and an MO move the buffer estimate, a message that left the queue gets its dispatch."""
    status, before = new.get("status"), (old or {}).get("status")
    if new.get("direction") == "mo":
        if old is None and new.get("from"):
            settle(deps, str(new["from"]), mo_at=str(new.get("created_at") or deps.now_iso()))
        return
    if new.get("direction") != "mt" or status == before or not new.get("to"):
        return
    message_id = str(new["id"])
    if status == models.PENDING and before in models.WAITING_STATUSES:
        window = new.get("expect_reply_within")
        if window and not new.get("reply_state"):
            _start_reply_wait(deps, message_id, int(window))
        deps.retry_queue.schedule({"id": message_id, "attempt": 1, "ambiguous": False}, 0)
        return
    if status not in models.FINAL_STATUSES:
        return
    holding = before in (models.PENDING, models.SENT)
    delivered = (message_id, str(new.get("updated_at") or deps.now_iso())) if status == models.DELIVERED else None
    if holding or delivered:
        settle(deps, str(new["to"]), release=[message_id] if holding else (), delivered=delivered)


def _start_reply_wait(deps: Deps, message_id: str, window: int) -> None:
    """A command that waited (scheduled or queued) starts its reply window as it leaves the queue."""
    from smsgw.logic import replies

    fields = replies.waiting_fields(deps.clock(), window)
    cause = f"left its SIM's queue: waiting {window} s for the device's reply, until {fields['reply_deadline']}"
    with contextlib.suppress(ConditionFailed):  # a reply or a timeout got there first (a stream record seen twice)
        deps.store.messages.start_reply_wait(message_id, _entry(deps.now_iso(), "reply_wait", models.PENDING, cause), fields["reply_deadline"])


# --- the API: GET /sims/{msisdn}, PUT|DELETE /sims/{msisdn}/settings ---------------------------------


SETTING_RANGES = {
    "max_in_flight": simqueue.MAX_IN_FLIGHT_RANGE,
    "max_queued": simqueue.MAX_QUEUED_RANGE,
    "max_per_hour": simqueue.MAX_PER_HOUR_RANGE,
}


def _digits(msisdn: str) -> str:
    return models.msisdn_digits(validation.require_msisdn("msisdn", msisdn))


def get_sim(msisdn: str, deps: Deps | None = None) -> dict[str, Any]:
    """The SIM's queue and buffer estimate (a SIM the gateway never saw has an empty queue and the defaults),
    and where it stands with the allow and block lists: support's first question about a silent device."""
    deps = deps or default_deps()
    digits = _digits(msisdn)
    return {**deps.store.sims.get(digits).view(deps.settings.sim_defaults()), "lists": lists.standing(digits, deps)}


def parse_settings(body: Any) -> dict[str, int]:
    """The overrides a PUT asks for. Raises ValidationFailed naming every bad field."""
    if not isinstance(body, dict) or not body:
        raise ValidationFailed("the request body must be a JSON object with at least one of " + ", ".join(SETTING_RANGES))
    problems = {name: "unknown field" for name in sorted(set(body) - set(SETTING_RANGES))}
    for name, (low, high) in SETTING_RANGES.items():
        if name in body and not validation.whole_number(body[name], low, high):
            problems[name] = f"must be a whole number from {low} to {high}"
    if problems:
        raise validation.invalid(problems)
    return {name: int(body[name]) for name in SETTING_RANGES if name in body}


def put_settings(msisdn: str, body: Any, deps: Deps | None = None) -> dict[str, Any]:
    """Set the SIM's own settings (those named; the others keep theirs). Returns the SIM's state."""
    deps = deps or default_deps()
    return _change_settings(deps, _digits(msisdn), parse_settings(body), merge=True)


def delete_settings(msisdn: str, deps: Deps | None = None) -> dict[str, Any]:
    """Return the SIM to the defaults. Returns the SIM's state."""
    deps = deps or default_deps()
    digits = _digits(msisdn)
    if not deps.store.sims.get(digits).overrides:
        raise NotFound(f"{digits} has no settings of its own")
    return _change_settings(deps, digits, {}, merge=False)


def _change_settings(deps: Deps, digits: str, overrides: dict[str, int], *, merge: bool) -> dict[str, Any]:
    for tries in range(MAX_TRIES):
        state = deps.store.sims.get(digits)
        new = state.with_overrides({**state.overrides, **overrides} if merge else overrides)
        try:
            deps.store.sims.commit(state, new, deps.now_iso())
            break
        except (ConditionFailed, Contention):
            _pause(tries)
    else:
        raise _busy(digits)
    settle(deps, digits)  # a higher limit may let waiting messages start now
    return deps.store.sims.get(digits).view(deps.settings.sim_defaults())


# --- cancel -----------------------------------------------------------------------------------------


def cancel_waiting(deps: Deps, message: Message) -> Message | None:
    """Cancel a `scheduled` or `queued` message: Eseye never saw it, so the cancel is the gateway's alone.
    Returns the cancelled message, or None if it stopped waiting meanwhile (the caller looks again)."""
    digits = str(message.to)
    for tries in range(MAX_TRIES):
        at = deps.now_iso()
        entry = _entry(at, "cancel", models.CANCELLED, f"cancelled while {message.status}; Eseye never saw it")
        state = deps.store.sims.get(digits)
        queued = message.status == models.QUEUED and state.position(message.id) > 0
        try:
            if queued:
                write = deps.store.messages.move_write(message.id, models.CANCELLED, entry, allowed_from=(models.QUEUED,))
                deps.store.sims.commit(state, state.drop([message.id]), at, [write])
            else:
                deps.store.messages.transition(message.id, models.CANCELLED, entry, source=models.FROM_GATEWAY, allowed_from=(str(message.status),))
        except ConditionFailed as exc:
            if not queued or 1 in exc.failed:
                return None
            _pause(tries)
            continue
        except Contention:
            _pause(tries)
            continue
        return deps.store.messages.get(message.id)
    raise _busy(digits)


# --- the functions' entry points --------------------------------------------------------------------


def handle_stream_batch(records: list[dict[str, Any]], deps: Deps | None = None) -> dict[str, Any]:
    """The table stream (message items) in: slots freed, queues moved on, dispatch jobs for the messages
    that left a queue. Returns the partial-batch response; every step is safe to run twice."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

    deps = deps or default_deps()
    store = deps.store

    progress: list[tuple[str, Mapping[str, Any]]] = []  # (sequence number, message) of batch messages that moved

    def one(record: DynamoDBRecord) -> None:
        image = record.raw_event.get("dynamodb") or {}
        new = store.messages.from_stream_image(image.get("NewImage") or {})
        old = store.messages.from_stream_image(image["OldImage"]) if image.get("OldImage") else None
        if new:
            follow_change(deps, new, old)
            # A batch message's first status is written by its fan-out; the stream brings the moves after it.
            if new.get("batch_id") and old is not None and new.get("status") != old.get("status"):
                progress.append((str(image.get("SequenceNumber", "")), new))

    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    response: dict[str, Any] = dict(process_partial_response(event={"Records": records}, record_handler=one, processor=processor))
    if progress:
        # Batch progress once for the whole stream batch (a write per chunk, not per message).
        failed = {str(f["itemIdentifier"]) for f in response.get("batchItemFailures") or []}
        done = [(sequence, new) for sequence, new in progress if sequence not in failed]
        try:
            from smsgw.logic import batches

            batches.record_progress([new for _, new in done], deps)
        except Exception:  # the records come again; progress writes are idempotent
            logger.exception("batch progress not recorded; the records will come again")
            again = failed | {sequence for sequence, _ in done}
            ordered = [r["dynamodb"]["SequenceNumber"] for r in records if r.get("dynamodb", {}).get("SequenceNumber") in again]
            response["batchItemFailures"] = [{"itemIdentifier": sequence} for sequence in ordered]
    return response


def every_minute(deps: Deps | None = None) -> dict[str, int]:
    """The minute's sweeps: scheduled messages whose time came, and queues that stopped moving."""
    deps = deps or default_deps()
    return {"scheduled_started": start_due_scheduled(deps), "dequeued_by_repair": repair_waiting_queues(deps)}
