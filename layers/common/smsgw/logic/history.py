"""GET /messages: one SIM's messages (msisdn=...), or the whole fleet's, both directions, newest first, paginated."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from smsgw import models, validation
from smsgw.adapters.store import ReadBudget
from smsgw.deps import Deps, default_deps
from smsgw.errors import InvalidCursor, ValidationFailed

MAX_LIMIT = validation.HISTORY_LIMIT_MAX
# Items DynamoDB may evaluate for one request, whatever the filters: a filter that matches little
# (limit=1&status=blocked) returns a short or empty page and a cursor instead of scanning the partition.
READ_BUDGET = 2 * MAX_LIMIT
CURSOR_KIND = "messages"
FLEET_CURSOR_KIND = "fleet-messages"
FLEET_DEFAULT_SINCE = timedelta(hours=24)
FLEET_MAX_RANGE = timedelta(days=7)
# Queries per fleet request: an hour costs one per shard (16), so an empty day is read in two requests.
FLEET_QUERY_BUDGET = 200
FILTER_MAX_LENGTH = 256
HOUR_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}")


def _time(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return models.iso(models.parse_time(value))
    except ValueError as exc:
        raise ValidationFailed(f"{name} {validation.TIME_RULE}", {name: value}) from exc


def list_messages(query: dict[str, str], deps: Deps | None = None) -> dict[str, Any]:
    deps = deps or default_deps()
    if query.get("msisdn") is None:
        return list_fleet(query, deps)
    msisdn = validation.require_msisdn("msisdn", query.get("msisdn", ""))
    try:
        limit = int(query.get("limit", "20"))
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError
    except ValueError as exc:
        raise ValidationFailed(f"limit must be a whole number from 1 to {MAX_LIMIT}") from exc
    direction, status = query.get("direction"), query.get("status")
    if direction is not None and direction not in validation.DIRECTIONS:
        raise ValidationFailed("direction must be mt or mo")
    if status is not None and status not in (*models.MT_STATUSES, models.RECEIVED):
        raise ValidationFailed("status is not one of the gateway's statuses", {"status": status})
    since, until = _time("since", query.get("since")), _time("until", query.get("until"))

    digits = models.msisdn_digits(msisdn)
    # The cursor binds the SIM's listing scope as it always has, so cursors already issued stay valid.
    binding = {"msisdn": deps.store.messages.msisdn_scope(digits), "direction": direction, "status": status, "since": since, "until": until}
    start = _start_key(deps, binding, query["cursor"], digits, since, until) if query.get("cursor") else None
    items: list[models.Message] = []
    budget = READ_BUDGET
    # A filter may thin a page: keep reading until the page is full, the SIM's messages are exhausted, or the budget is spent.
    while True:
        # The repository's limit bounds what DynamoDB reads (before the filters), so it bounds the read as well.
        batch = min(limit - len(items), budget)
        page, start = deps.store.messages.for_msisdn(digits, since=since, until=until, direction=direction, status=status, limit=batch, after=start)
        budget -= batch
        items.extend(page)
        if len(items) >= limit or not start or budget <= 0:
            break
    return {"items": [models.public_view(i) for i in items], "next_cursor": deps.cursors.issue(CURSOR_KIND, binding, start)}


def _start_key(deps: Deps, binding: dict[str, Any], cursor: str, digits: str, since: str | None, until: str | None) -> dict[str, Any]:
    """The position to resume after. Raises InvalidCursor unless the cursor came from this very query."""
    position = deps.cursors.position(CURSOR_KIND, binding, cursor)
    # Authenticated already; the repository checks it again so that even a leaked key cannot reach another SIM.
    return deps.store.messages.check_msisdn_position(position, digits, since, until)


def _limit(query: dict[str, str]) -> int:
    try:
        limit = int(query.get("limit", "20"))
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError
    except ValueError as exc:
        raise ValidationFailed(f"limit must be a whole number from 1 to {MAX_LIMIT}", {"limit": query.get("limit")}) from exc
    return limit


def list_fleet(query: dict[str, str], deps: Deps) -> dict[str, Any]:
    """The whole fleet's messages created within since..until (since: 24 h ago by default; at most 7 days),
    newest first, from the fleet's time index an hour at a time across its shards. Work is bounded (READ_BUDGET index entries,
    FLEET_QUERY_BUDGET queries): a page may hold fewer than `limit` messages, even none, and a cursor.
    A narrow filter (batch_id, client_ref, status) over a long window may take several pages."""
    limit = _limit(query)
    direction, status = query.get("direction"), query.get("status")
    if direction is not None and direction not in validation.DIRECTIONS:
        raise ValidationFailed("direction must be mt or mo", {"direction": direction})
    if status is not None and status not in (*models.MT_STATUSES, models.RECEIVED):
        raise ValidationFailed("status is not one of the gateway's statuses", {"status": status})
    filters: dict[str, str] = {"direction": direction} if direction else {}
    for name in ("batch_id", "client_ref"):
        value = query.get(name)
        if value is None:
            continue
        if not 0 < len(value) <= FILTER_MAX_LENGTH or validation.has_control_characters(value):
            raise ValidationFailed(f"{name} must be 1 to {FILTER_MAX_LENGTH} characters without control characters", {name: value})
        filters[name] = value
    since, until = _time("since", query.get("since")), _time("until", query.get("until"))
    binding = {"fleet": True, "direction": direction, "status": status, "since": since, "until": until, **filters}
    position = deps.cursors.position(FLEET_CURSOR_KIND, binding, query["cursor"]) if query.get("cursor") else None
    if position is not None:
        # Signed with the query, so the default `since` the first page resolved stays that of every page.
        if set(position) != {"before", "since"} or not all(isinstance(v, str) for v in position.values()):
            raise InvalidCursor()
        low = position["since"]
    else:
        low = since or models.iso(deps.clock() - FLEET_DEFAULT_SINCE)
    end = until or models.iso(deps.clock())
    if end <= low:
        raise ValidationFailed("until must be after since", {"since": low, "until": end})
    if models.parse_time(end) - models.parse_time(low) > FLEET_MAX_RANGE:
        raise ValidationFailed("the range from since to until must be at most 7 days", {"since": low, "until": end})
    high = (until + "~") if until else "9999"  # without until, messages created while paging are in the window
    before = position["before"] if position else high
    if position is not None and (not HOUR_PREFIX.match(before) or not low[:13] <= before[:13] <= high):
        raise InvalidCursor()

    budget = ReadBudget(READ_BUDGET, FLEET_QUERY_BUDGET)
    found: list[tuple[str, str]] = []
    hour = min(before[:13], models.iso(deps.clock())[:13]) if not until else before[:13]
    cursor: str | None = before
    while hour >= low[:13]:
        # A filtered read takes all it may: what it will list is not known until it is read.
        batch = budget.items if status or filters else limit - len(found)
        for position_read, message_id in deps.store.messages.fleet_hour(hour, low, cursor or before, filters, budget, batch):
            cursor = position_read
            if message_id is None:
                break  # the budget is spent; resume there
            found.append((position_read, message_id))
            if not status and len(found) >= limit:
                break
        else:
            if not budget.exhausted:
                # Everything of the previous hour sorts before this hour's bare prefix.
                cursor = hour
                hour = models.iso(datetime.fromisoformat(hour + ":00:00+00:00") - timedelta(hours=1))[:13]
                continue
        break
    else:
        cursor = None  # the window is read to its start
    items, cursor = _fleet_page(deps, found, status, limit, cursor)
    next_position = {"before": cursor, "since": low} if cursor is not None else None
    return {"items": items, "next_cursor": deps.cursors.issue(FLEET_CURSOR_KIND, binding, next_position)}


def _fleet_page(
    deps: Deps, found: list[tuple[str, str]], status: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """The messages of the index entries read (status filtered), at most `limit`, and where to resume."""
    if len(found) >= limit and not status:
        cursor = found[limit - 1][0]
    items: list[dict[str, Any]] = []
    for start in range(0, len(found), 100):
        chunk = found[start : start + 100]
        messages = deps.store.messages.get_many([message_id for _, message_id in chunk])
        for position, message_id in chunk:
            message = messages.get(message_id)
            if message is None or (status and message.status != status):
                continue
            items.append(models.public_view(message))
            if len(items) >= limit:
                return items, position
    return items, cursor
