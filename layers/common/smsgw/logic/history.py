"""GET /messages?msisdn=...: one SIM's messages, both directions, newest first, paginated."""

from __future__ import annotations

from typing import Any

from smsgw import models, validation
from smsgw.deps import Deps, default_deps
from smsgw.errors import ValidationFailed

MAX_LIMIT = validation.HISTORY_LIMIT_MAX
# Items DynamoDB may evaluate for one request, whatever the filters: a filter that matches little
# (limit=1&status=blocked) returns a short or empty page and a cursor instead of scanning the partition.
READ_BUDGET = 2 * MAX_LIMIT
CURSOR_KIND = "messages"


def _time(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return models.iso(models.parse_time(value))
    except ValueError as exc:
        raise ValidationFailed(f"{name} {validation.TIME_RULE}", {name: value}) from exc


def list_messages(query: dict[str, str], deps: Deps | None = None) -> dict[str, Any]:
    deps = deps or default_deps()
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
