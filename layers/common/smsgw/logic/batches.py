"""Batches: one request to thousands of SIMs (POST /batches), each recipient an ordinary message.

The request is checked whole (every recipient, every rendered text) and answered at once; no message
exists yet. The fan-out runs on the batch queue in chunks of CHUNK_SIZE recipients: each chunk creates
its messages through their SIMs' queues, under the batch's guard (nothing starts once it is cancelled),
and sends those that got a slot, paced with every other sender (logic/pacing.py). A chunk item keeps the
latest status of each of its messages, from the table stream, so progress is one read of the batch's
partition; when every chunk is final the batch completes and `sms.batch.completed` is published.

Message ids are derived from the batch and the recipient, so a chunk run twice (SQS delivers at least
once) finds its messages rather than creating others.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from smsgw import models, simqueue, validation
from smsgw.adapters.store import ConditionFailed
from smsgw.deps import Deps, default_deps
from smsgw.errors import Conflict, InvalidCursor, NotFound, ValidationFailed
from smsgw.logic import delivery, send, sims
from smsgw.models import Message
from smsgw.observability import count, logger

MAX_RECIPIENTS = 10_000
# Recipients per fan-out job: each may wait out its send slot and Eseye's timeouts, and a chunk still
# ends inside the function's timeout (tests/unit/test_batch_budget.py).
CHUNK_SIZE = 25
BODY_LIMIT = 5 * 1024 * 1024  # 10,000 recipients with variables; Lambda takes 6 MB
INVALID_SHOWN = 1000  # invalid recipients listed in a 422 or kept on the batch (the count is always whole)
VARIABLE_VALUE_MAX = 160
RECIPIENT_SOURCES = ("to", "group", "recipients")
OPTION_FIELDS = frozenset({"expires_at", "send_at", "status_callback", "client_ref", "expect_reply_within", "collapse_key", "encoding", "source"})
CONTENT_FIELDS = frozenset({"text", "data", "data_coding", "command", "variables"})
ALLOWED_FIELDS = frozenset(RECIPIENT_SOURCES) | CONTENT_FIELDS | OPTION_FIELDS | {"skip_invalid"}
PROBE_MSISDN = "10000000"  # stands in for the recipient while the options are checked once
PLACEHOLDER = "accepted"  # how progress counts a recipient whose message is not created yet
STATUS_PAGE_MAX = 100
# GET /batches: recent batches, from a time index of their own (adapters/store.py).
LIST_CURSOR_KIND = "batches"
LIST_DEFAULT_LIMIT = 25
LIST_MAX_LIMIT = 100
LIST_DEFAULT_SINCE = timedelta(days=7)
LIST_MAX_RANGE = timedelta(days=31)  # at most two of the index's monthly partitions
LIST_READ_BUDGET = 200  # index entries one request may read (a state filter reads beyond the page)
LIST_FILTERED_READ = 50  # entries a filtered read asks for at a time, however few the page still needs
LIST_QUERY_BUDGET = 10
# Chunk items an unfinished batch's counts read (GET /batches/{id} reads them the same way): a page stops
# before a batch that would take it past this, unless that batch is its first. The largest batch (a group
# of 100,000) has 4,000 chunks, so no request reads more than one GET of the largest batch would.
LIST_CHUNK_BUDGET = 4_000
_MONTH_PREFIX = re.compile(r"^\d{4}-\d{2}")
CANCEL_SETTLE_SECONDS = 0.2  # beyond the pacing horizon: a granted send's request reaches Eseye within this


# --- POST /batches ---------------------------------------------------------------------------------------


def _digits(value: Any) -> str | None:
    return models.msisdn_digits(value) if validation.is_msisdn(value) else None


def _variables(value: Any, field: str, problems: dict[str, str]) -> dict[str, str]:
    """A variables object: names to strings (as POST /messages takes them)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems[field] = "must be an object of variable names to values"
        return {}
    result: dict[str, str] = {}
    for name, raw in value.items():
        if not isinstance(raw, str):
            problems[f"{field}.{name}"] = "must be a string"
            continue
        if len(raw) > VARIABLE_VALUE_MAX:
            problems[f"{field}.{name}"] = f"must be at most {VARIABLE_VALUE_MAX} characters"
            continue
        result[str(name)] = raw
    return result


def _content(body: dict[str, Any], problems: dict[str, str], deps: Deps) -> tuple[Any, dict[str, Any]]:
    """The saved command (or None) and the content fields every message shares."""
    chosen = [f for f in ("text", "data", "command") if body.get(f) is not None]
    if len(chosen) != 1:
        problems["text"] = "exactly one of text, data or command is required"
        return None, {}
    if chosen == ["command"]:
        from smsgw.logic import commands

        name = body["command"]
        if not isinstance(name, str) or not name:
            problems["command"] = "must be the name of a saved command"
            return None, {}
        try:
            command = commands.load(deps, name)
        except NotFound:
            problems["command"] = f"no saved command named {name!r}"
            return None, {}
        if "data_coding" in body:
            problems["data_coding"] = "comes from the saved command"
        if command.data is not None:
            if body.get("variables") is not None or any(isinstance(r, dict) and r.get("variables") for r in body.get("recipients") or []):
                problems["variables"] = f"saved command {name!r} is data: it takes no variables"
            return command, {"data": command.data, "data_coding": command.data_coding or "0"}
        return command, {}
    if body.get("variables") is not None:
        problems["variables"] = "variables need a saved command (field command)"
    if chosen == ["text"]:
        return None, {"text": body["text"]}
    return None, {"data": body["data"], **({"data_coding": body["data_coding"]} if "data_coding" in body else {})}


def _recipient_list(body: dict[str, Any], problems: dict[str, str], deps: Deps) -> tuple[str, list[dict[str, Any]], int]:
    """(source, recipients as given, total). A group is read at fan-out, so its entries are not listed."""
    sources = [f for f in RECIPIENT_SOURCES if body.get(f) is not None]
    if len(sources) != 1:
        problems["to"] = "exactly one of to, group or recipients is required"
        return "", [], 0
    source = sources[0]
    value = body[source]
    if source == "group":
        from smsgw.logic import groups

        if not isinstance(value, str) or not value:
            problems["group"] = "must be the name of a group"
            return source, [], 0
        try:
            size = groups.size(deps, value)
        except NotFound:
            problems["group"] = f"no group named {value!r}"
            return source, [], 0
        except ValidationFailed as exc:
            problems["group"] = exc.message
            return source, [], 0
        if size <= 0:
            problems["group"] = f"group {value!r} has no members"
        return source, [], size
    if not isinstance(value, list) or not value:
        problems[source] = "must be a non-empty list"
        return source, [], 0
    if len(value) > MAX_RECIPIENTS:
        problems[source] = f"at most {MAX_RECIPIENTS} recipients in one batch; split it, or send to a group"
        return source, [], 0
    if source == "to":
        return source, [{"to": entry} for entry in value], len(value)
    return source, list(value), len(value)


def _check_recipients(
    entries: list[Any], command: Any, shared: dict[str, str], template: send.SendRequest | None, problems: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(valid recipients, invalid ones with their problems). Each valid one carries its rendered text when
    a command renders per recipient."""
    valid: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    seen: set[str] = set()
    analysed: dict[str, str | None] = {}  # rendered text -> why it cannot go (None: it can)
    for index, entry in enumerate(entries):
        found: dict[str, str] = {}
        if not isinstance(entry, dict):
            invalid.append({"index": index, "problems": {"recipient": "must be an object with to and variables"}})
            continue
        unknown = set(entry) - {"to", "variables"}
        for name in sorted(unknown):
            found[name] = "unknown field"
        digits = _digits(entry.get("to"))
        if digits is None:
            found["to"] = validation.MSISDN_RULE
        elif digits in seen:
            found["to"] = "duplicate recipient: each SIM once per batch"
        own = _variables(entry.get("variables"), "variables", found)
        if own and command is None:
            found["variables"] = "variables need a saved command (field command)"
        recipient: dict[str, Any] = {"to": digits}
        if command is not None and command.data is None and not found:
            merged = {**shared, **own}
            why = command.problems(merged)
            if why:
                found.update({k if k.startswith("variables") else f"variables.{k}": v for k, v in why.items()})
            else:
                text = command.render(merged)
                if text not in analysed:
                    analysed[text] = _text_problem(text, template)
                if analysed[text]:
                    found["text"] = str(analysed[text])
                recipient.update(text=text, variables=merged)
        if found:
            invalid.append({"index": index, "to": entry.get("to"), "problems": found})
            continue
        seen.add(str(digits))
        valid.append(recipient)
    return valid, invalid


def _text_problem(text: str, template: send.SendRequest | None) -> str | None:
    if template is None:
        return None
    import dataclasses

    try:
        send.analyse(dataclasses.replace(template, text=text, data=None, data_coding=None))
    except ValidationFailed as exc:
        return exc.message
    return None


def batch_id_for(caller: str, key: str | None) -> str:
    if key is None:
        return uuid.uuid4().hex
    return hashlib.sha256(f"batch#{caller}#{key}".encode()).hexdigest()[:32]


def message_id_for(batch_id: str, digits: str) -> str:
    """A batch's message to one SIM: the same id however often its chunk runs."""
    return hashlib.sha256(f"batch#{batch_id}#{digits}".encode()).hexdigest()[:32]


def accept(body: Any, receipt_base: str, caller: str, idempotency_key: str | None = None, deps: Deps | None = None) -> tuple[bool, dict[str, Any]]:
    """POST /batches: check the whole request, store the batch and its chunks, and queue its fan-out.
    Returns (created, the batch's view). A retried request (same Idempotency-Key and body) returns the
    batch it created. Raises ValidationFailed (422, listing every bad recipient) or Conflict."""
    deps = deps or default_deps()
    if idempotency_key is not None and not validation.printable(idempotency_key, 1, validation.IDEMPOTENCY_KEY_MAX):
        raise ValidationFailed(f"Idempotency-Key must be 1 to {validation.IDEMPOTENCY_KEY_MAX} printable characters", {"header": "Idempotency-Key"})
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    now = deps.clock()
    batch_id = batch_id_for(caller, idempotency_key)
    body_hash = send.request_hash(body)
    if idempotency_key is not None:
        existing = deps.store.batches.get(batch_id)
        if existing is not None:
            return False, _retried(existing, body_hash, deps)

    problems: dict[str, str] = {name: "unknown field" for name in sorted(set(body) - ALLOWED_FIELDS)}
    skip_invalid = body.get("skip_invalid", False)
    if not isinstance(skip_invalid, bool):
        problems["skip_invalid"] = "must be true or false"
    source, entries, total = _recipient_list(body, problems, deps)
    command, content = _content(body, problems, deps)
    shared = _variables(body.get("variables"), "variables", problems)
    options = {k: body[k] for k in OPTION_FIELDS if k in body}
    template = None
    if not any(k in problems for k in ("text",)):
        probe = {**options, **content, "to": PROBE_MSISDN}
        if "text" not in probe and "data" not in probe:
            probe["text"] = "x"  # a command rendered per recipient: its texts are checked one by one below
        try:
            template = send.parse_send_request(probe, now, deps.settings.allow_insecure_callbacks)
            if content:
                send.analyse(template)
        except ValidationFailed as exc:
            fields = (exc.details or {}).get("fields") if isinstance(exc.details, dict) else None
            problems.update({k: v for k, v in (fields or {"text": exc.message}).items() if k != "to"})
    if problems:
        raise validation.invalid(problems)

    valid, invalid = _check_recipients(entries, command, shared, template, problems) if source != "group" else ([], [])
    if invalid and not skip_invalid:
        raise ValidationFailed(
            f"{len(invalid)} of {total} recipients are not valid; fix them, or send with skip_invalid: true to send to the rest",
            {"invalid": invalid[:INVALID_SHOWN], "invalid_count": len(invalid)},
        )
    if source != "group" and not valid:
        raise ValidationFailed("no valid recipients", {"invalid": invalid[:INVALID_SHOWN], "invalid_count": len(invalid)})

    at = models.iso(now)
    message_content = dict(content)
    if command is not None:
        message_content["command"] = command.name
        if command.data is None and source == "group":
            # One text for every member: the shared variables, checked now.
            why = command.problems(shared)
            if why:
                raise validation.invalid({k if k.startswith("variables") else f"variables.{k}": v for k, v in why.items()})
            text = command.render(shared)
            reason = _text_problem(text, template)
            if reason:
                raise ValidationFailed(reason, {"fields": {"text": reason}})
            message_content.update(text=text, variables=shared)
    chunks = [valid[i : i + CHUNK_SIZE] for i in range(0, len(valid), CHUNK_SIZE)]
    batch = {
        "id": batch_id,
        "state": models.BATCH_ACCEPTED,
        "total": total,
        "skipped": len(invalid),
        "skipped_recipients": invalid[:INVALID_SHOWN] or None,
        "source": source,
        "group": body.get("group"),
        "content": message_content,
        "options": options,
        "chunks_total": len(chunks) if source != "group" else None,
        "created_at": at,
        "updated_at": at,
        "created_by": caller,
        "request_hash": body_hash,
        "receipt_base": receipt_base,
        "ttl": deps.store.expiry(now.timestamp()),
    }
    batch = {k: v for k, v in batch.items() if v is not None}
    stored = deps.store.batches.create(batch, chunks)
    if stored is not None:  # the same key, at the same moment, from a concurrent retry
        return False, _retried(stored, body_hash, deps)
    deps.batch_queue.send_jobs([{"batch": batch_id, "kind": "plan"}])
    count("BatchAccepted")
    count("BatchRecipients", len(valid) or total)
    logger.info("batch accepted", extra={"batch_id": batch_id, "total": total, "skipped": len(invalid), "source": source})
    view = public_view(batch, None)
    if invalid:
        view["skipped_recipients"] = invalid
    return True, view


def _retried(existing: Mapping[str, Any], body_hash: str, deps: Deps) -> dict[str, Any]:
    if existing.get("request_hash") != body_hash:
        raise Conflict("Idempotency-Key was already used with a different request body", {"header": "Idempotency-Key"})
    if existing.get("state") == models.BATCH_ACCEPTED:
        # The first request may have stopped before its fan-out was queued; a second plan job is harmless.
        deps.batch_queue.send_jobs([{"batch": existing["id"], "kind": "plan"}])
    return public_view(existing, None)


# --- reading and cancelling -----------------------------------------------------------------------------


def public_view(batch: Mapping[str, Any], counts: Mapping[str, int] | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": batch["id"],
        "state": batch["state"],
        "total": int(batch.get("total", 0)),
        "skipped": int(batch.get("skipped", 0)),
    }
    if counts is not None:
        view["counts"] = dict(counts)
    for name in ("source", "group", "created_at", "completed_at", "cancelled_at", "skipped_recipients"):
        if batch.get(name) is not None:
            view[name] = batch[name]
    content = batch.get("content") or {}
    for name in ("command", "text", "data", "data_coding"):
        if content.get(name) is not None:
            view[name] = content[name]
    if batch.get("options"):
        view["options"] = batch["options"]
    return view


def _load(batch_id: str, deps: Deps) -> dict[str, Any]:
    if not isinstance(batch_id, str) or not models.MESSAGE_ID_PATTERN.match(batch_id):
        raise NotFound(f"no batch {batch_id!r}")
    batch = deps.store.batches.get(batch_id)
    if batch is None:
        raise NotFound(f"no batch {batch_id!r}")
    return batch


def counts_of(chunks: Iterable[tuple[int, Mapping[str, Any]]]) -> dict[str, int]:
    """Messages by status across the chunks; recipients whose message is not created yet count as `accepted`."""
    counts: dict[str, int] = {}
    for _, chunk in chunks:
        statuses = chunk.get("statuses") or {}
        for status in statuses.values():
            counts[status] = counts.get(status, 0) + 1
        waiting = int(chunk.get("chunk_size") or 0) - len(statuses)
        if waiting > 0:
            counts[PLACEHOLDER] = counts.get(PLACEHOLDER, 0) + waiting
    return dict(sorted(counts.items()))


def get_batch(batch_id: str, deps: Deps | None = None) -> dict[str, Any]:
    """GET /batches/{id}: the batch with its messages counted by status."""
    deps = deps or default_deps()
    batch = _load(batch_id, deps)
    if batch.get("completed_at") and batch.get("counts") is not None:
        return public_view(batch, batch["counts"])
    return public_view(batch, counts_of(deps.store.batches.chunks(batch_id)))


def _list_time(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return models.iso(models.parse_time(value))
    except ValueError as exc:
        raise validation.invalid({name: validation.TIME_RULE}) from exc


def _month_before(month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year - 1:04d}-12" if number == 1 else f"{year:04d}-{number - 1:02d}"


def list_batches(query: Mapping[str, str], deps: Deps | None = None) -> dict[str, Any]:
    """GET /batches?state=&since=&until=&limit=&cursor=: batches created within since..until (until: now and
    since: 7 days before until by default; at most 31 days), newest first, each as GET /batches/{id} answers it without its skipped
    recipients. Work is bounded: LIST_READ_BUDGET index entries and LIST_QUERY_BUDGET queries, and the chunks of
    unfinished batches (their counts) up to LIST_CHUNK_BUDGET, so a page may hold fewer than `limit` batches,
    with a cursor. Raises ValidationFailed (422) for a bad filter, InvalidCursor (400)."""
    deps = deps or default_deps()
    problems: dict[str, str] = {}
    state = query.get("state")
    if state is not None and state not in models.BATCH_STATES:
        problems["state"] = f"must be one of {', '.join(models.BATCH_STATES)}"
    try:
        limit = int(query.get("limit", str(LIST_DEFAULT_LIMIT)))
    except ValueError:
        limit = 0
    if not 1 <= limit <= LIST_MAX_LIMIT:
        problems["limit"] = f"must be a whole number from 1 to {LIST_MAX_LIMIT}"
    if problems:
        raise validation.invalid(problems)
    since, until = _list_time("since", query.get("since")), _list_time("until", query.get("until"))
    binding = {"batches": True, "state": state, "since": since, "until": until}
    position = deps.cursors.position(LIST_CURSOR_KIND, binding, query["cursor"]) if query.get("cursor") else None
    now = models.iso(deps.clock())
    end = until or now
    if position is not None:
        # Signed with the query, so the default `since` the first page resolved stays that of every page.
        if set(position) != {"before", "since"} or not all(isinstance(v, str) for v in position.values()):
            raise InvalidCursor()
        low, before = position["since"], position["before"]
        if not _MONTH_PREFIX.match(before) or not low[:7] <= before[:7] <= end[:7]:
            raise InvalidCursor()
    else:
        try:
            low = since or models.iso(models.parse_time(end) - LIST_DEFAULT_SINCE)
        except OverflowError as exc:  # an until in the calendar's first week
            raise validation.invalid({"since": "is required with an until this early"}) from exc
        if end <= low:
            raise validation.invalid({"since": "must be before until (or now, without until)"})
        if models.parse_time(end) - models.parse_time(low) > LIST_MAX_RANGE:
            raise validation.invalid({"since": f"the range from since to until must be at most {LIST_MAX_RANGE.days} days"})
        before = end + "~"  # '~' sorts after every `<created_at>#<id>` of that moment: until is included

    items: list[dict[str, Any]] = []
    entries, queries, chunks_read = LIST_READ_BUDGET, LIST_QUERY_BUDGET, 0
    resume: str | None = before  # everything after it is listed or filtered out
    while len(items) < limit:
        if entries <= 0 or queries <= 0:
            break  # the budget is spent: the next page resumes here
        want = min(entries, limit - len(items) if state is None else max(limit - len(items), LIST_FILTERED_READ))
        found, more = deps.store.batches.created_in(before[:7], low, before, want)
        entries, queries = entries - want - 2, queries - 1
        summaries = deps.store.batches.summaries([batch_id for _, batch_id in found])
        full = False
        for at, batch_id in found:
            batch = summaries.get(batch_id)
            if batch is not None and (state is None or batch.get("state") == state):
                cost = 0 if batch.get("completed_at") and batch.get("counts") is not None else int(batch.get("chunks_total") or 0)
                if items and chunks_read + cost > LIST_CHUNK_BUDGET:
                    full = True  # this batch's counts would take the page past its budget: it opens the next page
                    break
                chunks_read += cost
                items.append(_summary(batch, deps))
            resume = at
            if len(items) >= limit:
                full = True
                if at == found[-1][0] and more is None and before[:7] <= low[:7]:
                    resume = None  # the page ends with the window's oldest batch
                break
        if full:
            break
        if more is not None:
            before = more
        elif before[:7] > low[:7]:
            before = _month_before(before[:7]) + "~"  # every batch of that month sorts before it
        else:
            resume = None  # the window is read to its start
            break
        resume = before
    next_position = {"before": resume, "since": low} if resume is not None else None
    return {"items": items, "next_cursor": deps.cursors.issue(LIST_CURSOR_KIND, binding, next_position)}


def _summary(batch: Mapping[str, Any], deps: Deps) -> dict[str, Any]:
    """A batch as GET /batches/{id} answers it (its counts read the same way), without skipped_recipients."""
    if batch.get("completed_at") and batch.get("counts") is not None:
        return public_view(batch, batch["counts"])
    return public_view(batch, counts_of(deps.store.batches.chunks(str(batch["id"]))))


def list_messages(batch_id: str, query: Mapping[str, str], deps: Deps | None = None) -> dict[str, Any]:
    """GET /batches/{id}/messages?status=&limit=&cursor=: the batch's messages, in recipient order."""
    deps = deps or default_deps()
    _load(batch_id, deps)
    status = query.get("status")
    if status is not None and status not in models.MT_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(models.MT_STATUSES)}", {"fields": {"status": "unknown status"}})
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= STATUS_PAGE_MAX:
        raise ValidationFailed(f"limit must be a whole number from 1 to {STATUS_PAGE_MAX}", {"fields": {"limit": "out of range"}})
    binding = {"batch": batch_id, "status": status}
    after_chunk, after_id = -1, ""
    if query.get("cursor"):
        position = deps.cursors.position("batch_messages", binding, query["cursor"])
        after_chunk, after_id = int(position.get("chunk", -1)), str(position.get("id", ""))
    picked: list[tuple[int, str]] = []
    more = False
    for number, chunk in deps.store.batches.chunks(batch_id, after=after_chunk - 1):
        for message_id, current in sorted((chunk.get("statuses") or {}).items()):
            if number == after_chunk and message_id <= after_id:
                continue
            if status is not None and current != status:
                continue
            if len(picked) == limit:
                more = True
                break
            picked.append((number, message_id))
        if more:
            break
    stored = deps.store.messages.get_many([m for _, m in picked])
    items = [models.public_view(stored[m]) for _, m in picked if m in stored]
    next_position = {"chunk": picked[-1][0], "id": picked[-1][1]} if more and picked else None
    return {"items": items, "next_cursor": deps.cursors.issue("batch_messages", binding, next_position)}


def cancel(batch_id: str, deps: Deps | None = None) -> dict[str, Any]:
    """DELETE /batches/{id}: nothing of the batch starts from now on (every create and every send of its
    messages holds only while it is not cancelled); its waiting messages are cancelled by a fan-out job.
    Raises NotFound, or Conflict when the batch already completed."""
    deps = deps or default_deps()
    _load(batch_id, deps)
    at = deps.now_iso()
    try:
        batch = deps.store.batches.update(
            batch_id, {"state": models.BATCH_CANCELLED, "cancelled_at": at, "updated_at": at}, states=models.BATCH_ACTIVE_STATES
        )
    except ConditionFailed as exc:
        current = exc.item or _load(batch_id, deps)
        if current.get("state") == models.BATCH_CANCELLED:
            return public_view(current, None)
        raise Conflict(f"batch is already {current.get('state')} and cannot be cancelled", {"state": current.get("state")}) from exc
    deps.batch_queue.send_jobs([{"batch": batch_id, "kind": "cancel"}])
    # A batch send granted its slot just before the cancel may still be waiting for it (a batch sender
    # reserves at most HORIZON ahead): answer once those have gone, so that nothing reaches Eseye after.
    from smsgw.logic import pacing

    deps.sleep(pacing.HORIZON_US / 1_000_000 + CANCEL_SETTLE_SECONDS)
    count("BatchCancelled")
    logger.info("batch cancelled", extra={"batch_id": batch_id})
    return public_view(batch, None)


# --- the fan-out (the batch queue's consumer) ------------------------------------------------------------


def parse_job(body: str) -> dict[str, Any]:
    import json

    job = json.loads(body)
    valid_id = isinstance(job, dict) and models.MESSAGE_ID_PATTERN.match(str(job.get("batch", "")))
    if not valid_id or job.get("kind") not in ("plan", "chunk", "cancel"):
        raise ValueError("batch job without a valid batch id and kind")
    return {"batch": job["batch"], "kind": job["kind"], "chunk": int(job.get("chunk", 0))}


def run_job(job: Mapping[str, Any], deps: Deps | None = None) -> str:
    """One fan-out job. Returns what happened; raises on infrastructure errors, so SQS delivers it again."""
    deps = deps or default_deps()
    if job["kind"] == "plan":
        return plan(job["batch"], deps)
    if job["kind"] == "cancel":
        return cancel_waiting(job["batch"], deps)
    return fan_out_chunk(job["batch"], int(job["chunk"]), deps)


def plan(batch_id: str, deps: Deps) -> str:
    """The batch's first job: chunks for a group's members, then one job per chunk."""
    batch = deps.store.batches.get(batch_id)
    if batch is None:
        logger.warning("plan job for an unknown batch", extra={"batch_id": batch_id})
        return "unknown"
    if batch["state"] == models.BATCH_CANCELLED:
        if batch.get("fanout_started_at") is None:
            return _cancel_unplanned(batch, deps)
        return cancel_waiting(batch_id, deps)
    if batch["state"] != models.BATCH_ACCEPTED:
        return "planned already"
    total = int(batch["total"])
    if batch.get("source") == "group":
        from smsgw.logic import groups

        members = sorted(set(groups.members(deps, str(batch["group"]))))
        chunks = [[{"to": m} for m in members[i : i + CHUNK_SIZE]] for i in range(0, len(members), CHUNK_SIZE)]
        deps.store.batches.put_chunks(batch_id, chunks, start=0, ttl=batch.get("ttl"))
        chunks_total, total = len(chunks), len(members)
    else:
        chunks_total = int(batch["chunks_total"])
    at = deps.now_iso()
    try:
        deps.store.batches.update(
            batch_id,
            {"state": models.BATCH_FANNING_OUT, "chunks_total": chunks_total, "total": total, "fanout_started_at": at, "updated_at": at},
            states=(models.BATCH_ACCEPTED,),
        )
    except ConditionFailed:
        return "planned already"
    if chunks_total == 0:
        _complete(batch_id, deps)
        return "empty"
    deps.batch_queue.send_jobs([{"batch": batch_id, "kind": "chunk", "chunk": n} for n in range(chunks_total)])
    logger.info("batch fanning out", extra={"batch_id": batch_id, "chunks": chunks_total, "recipients": total})
    return "planned"


def _cancel_unplanned(batch: Mapping[str, Any], deps: Deps) -> str:
    """A batch cancelled before its fan-out started: no message exists, so every recipient counts as
    `cancelled` and the batch completes at once (a group's batch has no chunks yet)."""
    batch_id = str(batch["id"])
    if batch.get("chunks_total") is None:
        _complete(batch_id, deps)
        return "cancelled before fan-out"
    for number, chunk in deps.store.batches.chunks(batch_id, with_recipients=True):
        ids = [message_id_for(batch_id, str(r["to"])) for r in chunk.get("recipients") or []]
        _close_cancelled(batch_id, number, ids, {}, deps)
    return "cancelled before fan-out"


def _request_for(batch: Mapping[str, Any], recipient: Mapping[str, Any]) -> tuple[send.SendRequest, dict[str, str], Any]:
    """The send request of one recipient, as checked when the batch was accepted (same clock)."""
    content = dict(batch.get("content") or {})
    body = {**(batch.get("options") or {}), "to": recipient["to"]}
    text = recipient.get("text") or content.get("text")
    if text is not None:
        body["text"] = text
    else:
        body.update(data=content["data"], data_coding=content.get("data_coding", "0"))
    request = send.parse_send_request(body, models.parse_time(str(batch["created_at"])), allow_insecure_callbacks=True)
    analysis, payload = send.analyse(request)
    return request, payload, analysis


def _new_message(batch: Mapping[str, Any], number: int, recipient: Mapping[str, Any], deps: Deps) -> Message:
    import dataclasses

    request, payload, analysis = _request_for(batch, recipient)
    content = batch.get("content") or {}
    message = send.new_message(
        request,
        analysis,
        payload,
        str(batch.get("receipt_base", "")),
        deps,
        message_id_for(str(batch["id"]), str(recipient["to"])),
        delivery.new_lease_owner(),
        str(batch.get("request_hash", "")),
    )
    return dataclasses.replace(
        message,
        batch_id=str(batch["id"]),
        batch_chunk=number,
        command=content.get("command"),
        variables=recipient.get("variables") or content.get("variables"),
    )


def _refused(message: Message, reason: str, status: str, deps: Deps) -> Message:
    """A recipient the gateway will not send to, stored with the reason: nothing sent is lost."""
    refused = sims.waiting(message, status, deps.now_iso(), f"in batch {message.batch_id}; not sent: {reason}")
    try:
        return deps.store.messages.create(refused)
    except ConditionFailed as exc:
        return exc.item if isinstance(exc.item, Message) else refused


def _scheduled(message: Message, guard: dict[str, Any], deps: Deps) -> Message:
    """A recipient of a batch with send_at: stored `scheduled` (as a single send with send_at is), under the
    batch's guard; the minute's sweep lets it into its SIM's queue when its time comes, and a cancel of the
    batch before then cancels it with the other waiting messages. Raises sims.GuardFailed, ConditionFailed."""
    cause = f"in batch {message.batch_id}; to join its SIM's queue at {message.send_at}"
    try:
        return deps.store.messages.create_guarded(sims.waiting(message, models.SCHEDULED, deps.now_iso(), cause), guard)
    except ConditionFailed as exc:
        if 1 in exc.failed:
            raise sims.GuardFailed() from exc
        raise


def fan_out_chunk(batch_id: str, number: int, deps: Deps) -> str:
    """Create one chunk's messages through their SIMs' queues, then send those that got a slot."""
    batch, chunk = deps.store.batches.get_with_chunk(batch_id, number)
    if batch is None or chunk is None:
        logger.warning("chunk job for an unknown batch or chunk", extra={"batch_id": batch_id, "chunk": number})
        return "unknown"
    recipients = list(chunk.get("recipients") or [])
    ids = [message_id_for(batch_id, str(r["to"])) for r in recipients]
    if batch["state"] == models.BATCH_CANCELLED:
        _close_cancelled(batch_id, number, ids, {}, deps)
        return "cancelled"
    digits = [str(r["to"]) for r in recipients]
    blocked, allowed, allow_size = deps.store.lists.lookup_many(digits)
    states = deps.store.sims.get_many(digits)
    guard = deps.store.batches.guard(batch_id)
    created: dict[str, str] = {}  # message id -> status as created (or found)
    to_send: list[Message] = []
    for index, recipient in enumerate(recipients):
        to = digits[index]
        message = _new_message(batch, number, recipient, deps)
        if to in blocked or (allow_size > 0 and to not in allowed):
            reason = f"{to} is on the blocklist" if to in blocked else f"{to} is not on the allowlist"
            created[message.id] = str(_refused(message, reason, models.BLOCKED, deps).status)
            continue
        try:
            if message.send_at:
                stored = _scheduled(message, guard, deps)
            else:
                stored, _ = sims.admit(deps, message, state=states.get(to), guard=guard)
        except sims.GuardFailed:
            logger.info("batch cancelled during its fan-out", extra={"batch_id": batch_id, "chunk": number})
            _close_cancelled(batch_id, number, ids[index:], created, deps)
            return "cancelled"
        except simqueue.QueueFull as full:
            created[message.id] = str(_refused(message, f"its SIM's queue was full ({full.depth} waiting)", models.FAILED, deps).status)
            continue
        except ConditionFailed as exc:  # created by an earlier run of this chunk
            existing = exc.item
            if not isinstance(existing, Message) or not existing.status:
                raise
            created[message.id] = str(existing.status)
            if existing.status == models.PENDING:
                to_send.append(existing)
            continue
        created[message.id] = str(stored.status)
        if stored.status == models.PENDING:
            to_send.append(stored)
    _chunk_progress(batch_id, number, deps.store.batches.set_statuses(batch_id, number, created, if_absent=True), deps)
    _chunk_created(batch_id, number, deps)
    _send_all(to_send, batch_id, deps)
    logger.info("batch chunk fanned out", extra={"batch_id": batch_id, "chunk": number, "messages_created": len(created), "sent_now": len(to_send)})
    return "fanned out"


def lease_margin(deps: Deps) -> float:
    """The lease a send needs left: its slot wait and Eseye's timeouts (a probe and the send), with room
    for DynamoDB. A message created earlier in the chunk with less is claimed again, so that no holder
    still runs when its lease runs out."""
    from smsgw.logic import pacing

    eseye_call = deps.settings.eseye_connect_timeout + deps.settings.eseye_read_timeout
    return pacing.MAX_WAIT_SECONDS + 2 * eseye_call + 5


def _send_all(messages: list[Message], batch_id: str, deps: Deps) -> None:
    """Send a chunk's messages that got a slot in their SIMs' queues, in blocks of send slots (one write
    for several sends, logic/pacing.py), each block under the batch's guard. A message whose lease runs
    short is claimed and sent on its own; a missed slot is given up, never made up with a burst."""
    from smsgw.logic import dispatch, pacing

    queue = list(messages)
    margin = timedelta(seconds=lease_margin(deps))
    while queue:
        head, queue = queue[: pacing.block_size(deps)], queue[pacing.block_size(deps) :]
        block: list[Message] = []
        for message in head:
            if message.lease_until and models.parse_time(message.lease_until) < deps.clock() + margin:
                dispatch.dispatch({"id": message.id, "attempt": int(message.attempts or 1), "ambiguous": False}, deps)
            else:
                block.append(message)
        if not block:
            continue
        try:
            slot = pacing.take_slot(deps, pacing.BATCH, deps.store.batches.guard(batch_id), slots=len(block))
        except (pacing.GuardFailed, pacing.NoSlot):
            # Cancelled (each message then ends `cancelled`), or single sends hold the rate: each message
            # takes its own turn, which records either.
            for message in block + queue:
                delivery.attempt(deps, message)
            return
        sent = 0
        for message, moment in zip(block, slot.moments(), strict=False):
            late = pacing.micros(deps.clock()) - moment
            if late > slot.spacing:
                break  # this slot has passed: sending now would crowd the next ones
            if late < 0:
                deps.sleep(-late / 1_000_000)
            delivery.attempt(deps, message, slot_taken=True)
            sent += 1
        queue = block[sent:] + queue


def _chunk_created(batch_id: str, number: int, deps: Deps) -> None:
    """Note the chunk's messages as created; the last chunk moves the batch on to `sending`."""
    at = deps.now_iso()
    try:
        batch = deps.store.batches.update(batch_id, {"updated_at": at}, add={"chunks_created": {str(number)}})
    except ConditionFailed:
        return
    if len(batch.get("chunks_created") or ()) >= int(batch.get("chunks_total") or 0) and batch.get("state") == models.BATCH_FANNING_OUT:
        with contextlib.suppress(ConditionFailed):  # cancelled meanwhile, or another chunk got there first
            deps.store.batches.update(batch_id, {"state": models.BATCH_SENDING, "fanned_out_at": at}, states=(models.BATCH_FANNING_OUT,))


def _close_cancelled(batch_id: str, number: int, unsure: list[str], created: dict[str, str], deps: Deps) -> None:
    """A cancelled batch's chunk: the messages it created keep their status; recipients in `unsure` whose
    message was never created (none is, once the batch is cancelled) count as `cancelled`."""
    found = deps.store.messages.get_many(unsure)
    statuses = {**created, **{m: str(found[m].status) if m in found else models.CANCELLED for m in unsure}}
    _chunk_progress(batch_id, number, deps.store.batches.set_statuses(batch_id, number, statuses, if_absent=True), deps)


def cancel_waiting(batch_id: str, deps: Deps) -> str:
    """After a cancel: every message of the batch still waiting in its SIM's queue (or on its schedule)
    ends `cancelled`. Pending ones stop at their send (the guard); chunks not run yet create nothing."""
    batch = deps.store.batches.get(batch_id)
    if batch is None:
        return "unknown"
    if batch.get("fanout_started_at") is None:  # cancelled before its fan-out was planned: nothing was created
        return _cancel_unplanned(batch, deps)
    cancelled = 0
    for _, chunk in deps.store.batches.chunks(batch_id):
        waiting = [m for m, s in (chunk.get("statuses") or {}).items() if s in models.WAITING_STATUSES]
        for message in deps.store.messages.get_many(waiting).values():
            if message.status in models.WAITING_STATUSES and sims.cancel_waiting(deps, message) is not None:
                cancelled += 1
    logger.info("batch's waiting messages cancelled", extra={"batch_id": batch_id, "cancelled": cancelled})
    return "cancelled"


# --- progress, from the table stream -------------------------------------------------------------------


def record_progress(changes: Iterable[Mapping[str, Any]], deps: Deps) -> None:
    """Messages of batches that changed status (stream images, oldest first): their chunks learn the latest
    status, one write per chunk; a chunk whose messages are all final may complete the batch."""
    latest: dict[tuple[str, int], dict[str, str]] = {}
    for new in changes:
        if new.get("batch_id") and new.get("batch_chunk") is not None and new.get("status"):
            latest.setdefault((str(new["batch_id"]), int(new["batch_chunk"])), {})[str(new["id"])] = str(new["status"])
    for (batch_id, number), statuses in latest.items():
        try:
            chunk = deps.store.batches.set_statuses(batch_id, number, statuses)
        except ConditionFailed:
            logger.warning("progress for a batch chunk not stored", extra={"batch_id": batch_id, "chunk": number})
            continue
        _chunk_progress(batch_id, number, chunk, deps)


def _chunk_progress(batch_id: str, number: int, chunk: Mapping[str, Any], deps: Deps) -> None:
    statuses = (chunk.get("statuses") or {}).values()
    if len(statuses) < int(chunk.get("chunk_size") or 0) or not all(s in models.FINAL_STATUSES for s in statuses):
        return
    try:
        batch = deps.store.batches.update(batch_id, {"updated_at": deps.now_iso()}, add={"chunks_final": {str(number)}})
    except ConditionFailed:
        return
    if batch.get("chunks_total") is not None and len(batch.get("chunks_final") or ()) >= int(batch["chunks_total"]):
        _complete(batch_id, deps)


def _complete(batch_id: str, deps: Deps) -> None:
    """Every message is final: the batch completes (a cancelled one stays `cancelled`) with its counts,
    once; the stream turns that into `sms.batch.completed`."""
    batch = deps.store.batches.get(batch_id)
    if batch is None or batch.get("completed_at"):
        return
    cancelled = batch["state"] == models.BATCH_CANCELLED
    counts = counts_of(deps.store.batches.chunks(batch_id))
    if any(status not in models.FINAL_STATUSES for status in counts):
        return  # a chunk still has messages under way (its statuses changed since)
    at = deps.now_iso()
    sets = {"completed_at": at, "updated_at": at, "counts": counts}
    if not cancelled:
        sets["state"] = models.BATCH_COMPLETED
    try:
        unfinished = (models.BATCH_SENDING, models.BATCH_FANNING_OUT, models.BATCH_CANCELLED)
        deps.store.batches.update(batch_id, sets, states=unfinished, once="completed_at")
    except ConditionFailed:
        return
    count("BatchCompleted")
    logger.info("batch completed", extra={"batch_id": batch_id, "counts": counts, "state": sets.get("state", batch["state"])})


def completed_event(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`sms.batch.completed`, once, when a batch's `completed_at` is first set."""
    at = new.get("completed_at")
    if not at or (old or {}).get("completed_at"):
        return None
    data = {
        "id": new["id"],
        "state": new["state"],
        "total": int(new.get("total", 0)),
        "skipped": int(new.get("skipped", 0)),
        "counts": {k: int(v) for k, v in (new.get("counts") or {}).items()},
        "created_at": new.get("created_at"),
        "completed_at": at,
    }
    return {"type": "sms.batch.completed", "id": f"{new['id']}:completed", "time": at, "data": data, "msisdn": ""}
