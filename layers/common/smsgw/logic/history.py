"""GET /messages?msisdn=...: one SIM's messages, both directions, newest first, paginated."""

from __future__ import annotations

from typing import Any

from smsgw import models, validation
from smsgw.deps import Deps, default_deps
from smsgw.errors import InvalidCursor, ValidationFailed

MAX_LIMIT = validation.HISTORY_LIMIT_MAX
# Items DynamoDB may evaluate for one request, whatever the filters: a filter that matches little
# (limit=1&status=blocked) returns a short or empty page and a cursor instead of scanning the partition.
READ_BUDGET = 2 * MAX_LIMIT
CURSOR_KIND = "messages"
KEY_FIELDS = {"PK", "SK", "GSI1PK", "GSI1SK"}


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

    names = {"#pk": "GSI1PK"}
    values: dict[str, Any] = {":pk": f"MSISDN#{models.msisdn_digits(msisdn)}"}
    condition = "#pk = :pk"
    if since or until:
        names["#sk"] = "GSI1SK"
        values[":from"] = since or "0000"
        values[":to"] = (until or "9999") + "~"  # '~' sorts after the '#<id>' suffix
        condition += " AND #sk BETWEEN :from AND :to"
    filters = []
    if direction:
        names["#direction"], values[":direction"] = "direction", direction
        filters.append("#direction = :direction")
    if status:
        names["#status"], values[":status"] = "status", status
        filters.append("#status = :status")
    binding = {"msisdn": values[":pk"], "direction": direction, "status": status, "since": since, "until": until}
    start = _start_key(deps, binding, query["cursor"], values) if query.get("cursor") else None
    items: list[dict[str, Any]] = []
    budget = READ_BUDGET
    # A filter may thin a page: keep reading until the page is full, the index is exhausted, or the budget is spent.
    while True:
        # DynamoDB's Limit counts items evaluated before the filter, so it bounds the read as well.
        batch = min(limit - len(items), budget)
        page, start = deps.store.query(
            index="GSI1",
            key_condition=condition,
            names=names,
            values=values,
            filter_expression=" AND ".join(filters) or None,
            forward=False,
            limit=batch,
            start_key=start,
        )
        budget -= batch
        items.extend(page)
        if len(items) >= limit or not start or budget <= 0:
            break
    return {"items": [models.public_view(i) for i in items], "next_cursor": deps.cursors.issue(CURSOR_KIND, binding, start)}


def _start_key(deps: Deps, binding: dict[str, Any], cursor: str, values: dict[str, Any]) -> dict[str, Any]:
    """The key to resume after. Raises InvalidCursor unless the cursor came from this very query."""
    key = deps.cursors.position(CURSOR_KIND, binding, cursor)
    # Authenticated already; checked again so that even a leaked key cannot reach another SIM's partition.
    if set(key) != KEY_FIELDS or not all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values()):
        raise InvalidCursor()
    if key["GSI1PK"]["S"] != values[":pk"] or (":from" in values and not values[":from"] <= key["GSI1SK"]["S"] <= values[":to"]):
        raise InvalidCursor()
    return key
