"""GET /messages?msisdn=...: one SIM's messages, both directions, newest first, paginated."""

from __future__ import annotations

import base64
import json
from typing import Any

from smsgw import models
from smsgw.deps import Deps, default_deps
from smsgw.errors import ValidationFailed

MAX_LIMIT = 100


def _cursor_out(key: dict[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode() if key else None


def _cursor_in(cursor: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
        if not isinstance(key, dict) or set(key) != {"PK", "SK", "GSI1PK", "GSI1SK"}:
            raise ValueError
        return key
    except ValueError as exc:
        raise ValidationFailed("cursor is not one this API returned", {"cursor": cursor}) from exc


def _time(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return models.iso(models.parse_time(value))
    except ValueError as exc:
        raise ValidationFailed(f"{name} must be an ISO 8601 time with a timezone, e.g. Z", {name: value}) from exc


def list_messages(query: dict[str, str], deps: Deps | None = None) -> dict[str, Any]:
    deps = deps or default_deps()
    msisdn = query.get("msisdn", "")
    if not models.MSISDN_PATTERN.match(msisdn):
        raise ValidationFailed("msisdn is required: 8 to 15 digits, optional leading +", {"msisdn": msisdn})
    try:
        limit = int(query.get("limit", "20"))
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError
    except ValueError as exc:
        raise ValidationFailed(f"limit must be a whole number from 1 to {MAX_LIMIT}") from exc
    direction, status = query.get("direction"), query.get("status")
    if direction not in (None, "mt", "mo"):
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
    start = _cursor_in(query["cursor"]) if query.get("cursor") else None
    items: list[dict[str, Any]] = []
    # A filter may thin a page: keep reading until the page is full or the index is exhausted.
    while True:
        page, start = deps.store.query(
            index="GSI1",
            key_condition=condition,
            names=names,
            values=values,
            filter_expression=" AND ".join(filters) or None,
            forward=False,
            limit=limit - len(items),
            start_key=start,
        )
        items.extend(page)
        if len(items) >= limit or not start:
            break
    return {"items": [models.public_view(i) for i in items], "next_cursor": _cursor_out(start)}
