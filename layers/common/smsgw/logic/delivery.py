"""Attempts to hand a stored MT message to Eseye, shared by the send API and the retry dispatcher.

Exactly once to Eseye rests on three rules:
- One job at a time: an attempt runs only under the message's lease (a conditional write), so two
  jobs for one message (SQS redelivery, the reconciler, a retried request) never both talk to Eseye.
- Ask before resending: once an attempt may have reached Eseye (a read timeout, a 5xx, an answer we
  could not read, a job that died, a store write that failed after Eseye's OK!), the next attempt asks
  Eseye's status request first and sends only if Eseye says it does not know the id.
- Attempts are counted on the message, so SendMaxAttempts bounds what Eseye sees for one message.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from smsgw import backoff, models
from smsgw.adapters.eseye import EseyeUnavailable
from smsgw.adapters.store import ConditionFailed, bounded_entry
from smsgw.deps import Deps
from smsgw.errors import ServiceUnavailable
from smsgw.eseye_protocol import EseyeReply
from smsgw.logic import pacing
from smsgw.models import Message
from smsgw.observability import count, logger

# Eseye's answers to a status request for a message_id it never received (535; 555 is its catch-all
# for bad input, and the id is the only input a status request carries).
UNKNOWN_MESSAGE_CODES = frozenset({535, 555})


def receipt_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/webhooks/{token}/receipt"


def eseye_fields(message: Message, deps: Deps) -> dict[str, str]:
    """The mtsmsapi form fields for a stored message (credentials are added by the client)."""
    fields = {"destination": str(message.to), "message_id": message.id, **(message.eseye_payload or {})}
    tokens = deps.secrets.get().webhook_tokens
    if message.receipt_base and tokens:
        fields["receipt_url"] = receipt_url(message.receipt_base, tokens[0])
    if message.source:
        fields["source"] = message.source
    if message.eseye_expiry:
        fields["expiry"] = message.eseye_expiry
    return fields


def record(
    deps: Deps,
    message: Message,
    target: str,
    event: str,
    cause: str,
    *,
    source: str | None = None,
    release: bool = False,
    sets: dict[str, Any] | None = None,
    **detail: Any,
) -> Message:
    """Move `message` to `target` as `source` (eseye | gateway) reports it, and return the stored message.
    `release` gives up the attempt lease in the same write.

    If the move is no longer allowed (a receipt or a cancel got there first), the event is still noted
    in the history, and the status stays where it is.
    """
    detail = {k: v for k, v in detail.items() if v is not None}
    at = deps.now_iso()
    try:
        return deps.store.messages.transition(
            message.id,
            target,
            models.history_entry(at, event, target, cause, **detail),
            source=source or models.FROM_GATEWAY,
            release=release,
            sets=sets,
        )
    except ConditionFailed as exc:
        current: Message = exc.item or message
        if not current.status:
            raise
    return note(deps, current, event, f"{cause} (status stays {current.status})", release=release, sets=sets, **detail)


def note(
    deps: Deps,
    message: Message,
    event: str,
    cause: str,
    *,
    release: bool = False,
    sets: dict[str, Any] | None = None,
    **detail: Any,
) -> Message:
    """Add an event to the message's history without moving its status, and return the stored message.
    `release` gives up the attempt lease in the same write. The same answer again adds nothing."""
    detail = {k: v for k, v in detail.items() if v is not None}
    entry = bounded_entry(models.history_entry(deps.now_iso(), event, str(message.status), cause, **detail))
    if not sets and not release and models.repeats(entry, message.history[-1] if message.history else None):
        return message  # the same answer again (a refresh loop, a repeated note): nothing to add
    return deps.store.messages.append_note(message.id, entry, release=release, sets=sets)


def _attempts(message: Message, unset: int = 1) -> int:
    """Attempts counted on the message; a message stored before it was counted counts as `unset`."""
    return int(message.attempts) if message.attempts is not None else unset


def backoff_seconds(attempt: int, base: int) -> int:
    """The wait before a send's next attempt: the one exponential backoff, capped at SQS's longest delay
    (900 s), plus up to 10 % jitter so that messages an outage failed together do not retry together."""
    delay = backoff.exponential(attempt, base, 900)
    return int(delay + random.uniform(0, delay * 0.1))


def lease_until(deps: Deps) -> str:
    return models.iso(deps.clock() + timedelta(seconds=deps.settings.send_lease_seconds))


def new_lease_owner() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Claim:
    """A claim's outcome: the message before and after the lease was taken, or why it was not."""

    before: Message | None = None
    after: Message | None = None
    refused: str = ""  # unknown | skipped:<status> | not_claimed | retries_exhausted


def claim(deps: Deps, message_id: str, owner: str, *, for_attempt: bool) -> Claim:
    """Take the message's lease for `owner`. The claim is also the read. A message whose attempts ran
    out (and that no job is working on) ends `failed`."""
    try:
        before, after = deps.store.messages.claim_attempt(
            message_id, owner, deps.now_iso(), lease_until(deps), for_attempt=for_attempt, max_attempts=deps.settings.send_max_attempts
        )
        return Claim(before, after)
    except ConditionFailed as exc:
        current = exc.item
    if not current or not current.status:
        return Claim(refused="unknown")
    if current.status != models.PENDING:
        return Claim(refused=f"skipped:{current.status}")
    if (current.lease_until or "") >= deps.now_iso():
        logger.info("another job holds the message's lease", extra={"lease_until": current.lease_until})
        count("AttemptLeaseBusy")
        return Claim(refused="not_claimed")
    attempts = _attempts(current, 0)
    count("SendFailed")
    record(
        deps,
        current,
        models.FAILED,
        "retries_exhausted",
        f"no answer from Eseye after {attempts} attempts; Eseye may still deliver it, and its receipt will apply",
    )
    return Claim(refused="retries_exhausted")


def give_up_or_retry(deps: Deps, message: Message, exc: EseyeUnavailable) -> Message:
    """Eseye gave no usable answer: schedule the next attempt, or fail the message once attempts run out.
    Raises ServiceUnavailable if the retry could not be scheduled (the reconciler will find the message)."""
    attempt, limit = _attempts(message), deps.settings.send_max_attempts
    logger.warning("Eseye unavailable", extra={"attempt": attempt, "reason": exc.reason, "ambiguous": exc.ambiguous})
    # A refused connection never reached Eseye; anything else may have (and stays marked so).
    unsure = bool(message.may_be_at_eseye) and exc.ambiguous
    if attempt >= limit:
        count("SendFailed")
        return record(
            deps,
            message,
            models.FAILED,
            "retries_exhausted",
            f"Eseye unavailable after {attempt} attempts: {exc.reason}",
            release=True,
            sets={"may_be_at_eseye": unsure},
            eseye=exc.as_detail(),
        )
    delay = backoff_seconds(attempt, deps.settings.retry_base_delay_seconds)
    updated = note(
        deps,
        message,
        "retry_scheduled",
        f"Eseye unavailable ({exc.reason}); attempt {attempt + 1} of {limit} in {delay} s",
        release=True,
        sets={"may_be_at_eseye": unsure},
        eseye=exc.as_detail(),
    )
    deps.retry_queue.schedule({"id": message.id, "attempt": attempt + 1, "ambiguous": unsure}, delay)
    count("SendRetried")
    return updated


def apply_send_reply(deps: Deps, message: Message, reply: EseyeReply) -> Message:
    attempt = _attempts(message)
    logger.info("Eseye answered", extra={"attempt": attempt, "eseye_kind": reply.kind, "eseye_code": reply.code})
    if reply.kind == "ok":
        count("Sent")
        return record(
            deps, message, models.SENT, "eseye_send", "Eseye accepted the message", source=models.FROM_ESEYE, release=True, eseye=reply.as_detail()
        )
    if reply.kind == "error" and reply.code is not None:
        count("Rejected")
        return record(
            deps,
            message,
            models.REJECTED,
            "eseye_send",
            f"Eseye error {reply.code}: {reply.description or ''}".strip(),
            source=models.FROM_ESEYE,
            release=True,
            sets={"eseye_code": reply.code, "eseye_description": reply.description, "may_be_at_eseye": False},
            eseye=reply.as_detail(),
        )
    # An answer we cannot read: Eseye may have taken the message, so the retry must ask first.
    unreadable = EseyeUnavailable("unexpected answer", ambiguous=True, http_status=reply.http_status, raw=reply.raw)
    return give_up_or_retry(deps, message, unreadable)


def apply_eseye_status(deps: Deps, message: Message, reply: EseyeReply, event: str, *, release: bool = False) -> Message:
    """Record what an Eseye status or cancel answer says about a message, moving it where Eseye's word allows."""
    if reply.kind == "status":
        target = models.eseye_status_meaning(reply.status)
        cause = f"Eseye reports {reply.status!r}" + (f": {reply.description}" if reply.description else "")
        if target is None:
            return note(deps, message, event, cause, release=release, eseye=reply.as_detail())
        return record(deps, message, target, event, cause, source=models.FROM_ESEYE, release=release, eseye=reply.as_detail())
    if reply.kind == "error":
        return note(deps, message, event, f"Eseye error {reply.code}: {reply.description or ''}".strip(), release=release, eseye=reply.as_detail())
    return note(deps, message, event, "Eseye gave an answer we could not read", release=release, eseye=reply.as_detail())


def probe(deps: Deps, message: Message) -> tuple[str, Message]:
    """Ask Eseye whether it has a message an earlier attempt may have reached, under the lease.

    Returns ("unknown", message) when Eseye does not know the id and it must be sent, ("found", message)
    when Eseye has it (now recorded), or ("inconclusive", message) when the probe itself failed and a
    retry is scheduled.
    """
    try:
        reply = deps.eseye.status(message.id)
    except EseyeUnavailable as exc:
        return "inconclusive", give_up_or_retry(deps, message, EseyeUnavailable(f"status probe: {exc.reason}", True, exc.http_status, exc.raw))
    if reply.kind == "error" and reply.code in UNKNOWN_MESSAGE_CODES:
        noted = note(deps, message, "eseye_probe", f"Eseye does not know the message (error {reply.code}); sending again", eseye=reply.as_detail())
        return "unknown", noted
    if reply.kind == "status" or (reply.kind == "error" and reply.code is None and reply.description):
        # Any message status, or an error about the message itself (not a documented request error):
        # Eseye has it. Never send it again.
        count("ProbeFound")
        if reply.kind == "status":
            return "found", apply_eseye_status(deps, message, reply, "eseye_probe", release=True)
        cause = f"Eseye has the message and reports an error: {reply.description}"
        return "found", record(deps, message, models.FAILED, "eseye_probe", cause, source=models.FROM_ESEYE, release=True, eseye=reply.as_detail())
    # A documented request error (credentials, allowlist) or a page that is not Eseye's: ask again later.
    message = note(deps, message, "eseye_probe", "Eseye's status answer does not say whether it has the message", eseye=reply.as_detail())
    return "inconclusive", give_up_or_retry(deps, message, EseyeUnavailable("status probe inconclusive", True, reply.http_status, reply.raw))


def take_turn(deps: Deps, message: Message, ask_first: bool, max_wait: float) -> Message | None:
    """Wait for the message's slot in Eseye's send rate (logic/pacing.py): None when it is its turn to send.
    Otherwise returns the message as now recorded: `cancelled` when its batch was cancelled (a batch's
    message takes its slot under the batch's guard, so nothing of a cancelled batch reaches Eseye), or
    still pending and handed back to the retry queue when no slot came within `max_wait`."""
    batch_id = message.batch_id
    try:
        if batch_id:
            pacing.take_slot(deps, pacing.BATCH, deps.store.batches.guard(batch_id), max_wait)
        else:
            pacing.take_slot(deps, pacing.SINGLE, None, max_wait)
    except pacing.GuardFailed:
        count("BatchCancelledBeforeSend")
        # Eseye has not seen it: this attempt never sent, and a probe (if any) just said Eseye does not know it.
        return record(deps, message, models.CANCELLED, "batch_cancelled", "its batch was cancelled", release=True, sets={"may_be_at_eseye": False})
    except pacing.NoSlot as busy:
        return put_back(deps, message, busy, ask_first)
    return None


def put_back(deps: Deps, message: Message, busy: pacing.NoSlot, ask_first: bool) -> Message:
    """No send slot within the wait: the message stays pending and a retry job takes it up once the backlog
    it saw has gone. The turn it did not get is no attempt, so the count this claim took is given back."""
    delay = max(1, math.ceil(busy.retry_in))
    attempts = _attempts(message)
    rate = deps.settings.eseye_max_sends_per_second
    updated = note(
        deps,
        message,
        "paced",
        f"Eseye's send rate ({rate:g}/s) is taken for the next {busy.retry_in:.1f} s; sending then",
        release=True,
        sets={"attempts": max(attempts - 1, 0), "may_be_at_eseye": ask_first},
    )
    deps.retry_queue.schedule({"id": message.id, "attempt": attempts, "ambiguous": ask_first}, delay)
    count("SendPaced")
    return updated


def attempt(deps: Deps, message: Message, *, ask_first: bool = False, max_wait: float = pacing.MAX_WAIT_SECONDS, slot_taken: bool = False) -> Message:
    """One attempt on a message whose lease we hold: ask Eseye first if an earlier attempt may have
    reached it, wait for a send slot (at most `max_wait` seconds; none when the caller holds one), then send. Returns the stored item
    after the outcome is recorded.

    When the outcome cannot be recorded (Eseye answered, the store did not take it), the message stays
    pending with a probe-first retry: the gateway does not know the outcome, so it never calls it failed.
    Raises ServiceUnavailable only if neither the outcome nor a retry could be recorded.
    """
    try:
        if ask_first:
            verdict, message = probe(deps, message)
            if verdict != "unknown":
                return message
        held = None if slot_taken else take_turn(deps, message, ask_first, max_wait)  # a batch's block holds its slot
        if held is not None:
            return held
        try:
            reply = deps.eseye.send(eseye_fields(message, deps))
        except EseyeUnavailable as exc:
            return give_up_or_retry(deps, message, exc)
        return apply_send_reply(deps, message, reply)
    except ServiceUnavailable as exc:
        return park_unknown_outcome(deps, message, exc)


def park_unknown_outcome(deps: Deps, message: Message, exc: ServiceUnavailable) -> Message:
    """The store or the retry queue failed mid-attempt, so what Eseye did is not recorded. Leave the
    message pending, marked as maybe at Eseye, with a probe-first retry. Raises `exc` if not even the
    retry could be scheduled: the reconciler finds the message, and a retried request resumes it."""
    logger.warning("attempt outcome not recorded; a probe-first retry will settle it", extra={"reason": exc.message})
    count("AttemptOutcomeUnknown")
    attempts = _attempts(message)
    cause = f"the outcome of attempt {attempts} was not recorded ({exc.message}); Eseye will be asked before any resend"
    try:
        message = note(deps, message, "outcome_unknown", cause, release=True, sets={"may_be_at_eseye": True})
        delay = backoff_seconds(attempts, deps.settings.retry_base_delay_seconds)
    except ServiceUnavailable:
        delay = deps.settings.send_lease_seconds + 1  # our lease still stands: retry once it has run out
    try:
        deps.retry_queue.schedule({"id": message.id, "attempt": attempts + 1, "ambiguous": True}, delay)
    except ServiceUnavailable:
        raise exc from None
    return message  # as stored: pending, unless a receipt has moved it meanwhile
