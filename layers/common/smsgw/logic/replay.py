"""POST /events/replay: publish stored events again, for a subscriber that was down."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from smsgw import models, validation
from smsgw.adapters.store import ReadBudget
from smsgw.deps import Deps, default_deps
from smsgw.errors import InvalidCursor, ValidationFailed
from smsgw.logic.publish import BUFFER_RISK, MO_RECEIVED, MT_STATUS, REPLY_TIMEOUT

MAX_RANGE = timedelta(days=7)
MAX_LIMIT = validation.REPLAY_LIMIT_MAX
READ_BUDGET = 2 * MAX_LIMIT  # archive items read per request, whatever the filters
QUERY_BUDGET = 200  # queries per request: one for the week's hours that hold events, then an hour's shards
CURSOR_KIND = "events"
HOUR_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}")
TYPES = (MT_STATUS, MO_RECEIVED, REPLY_TIMEOUT, BUFFER_RISK)


def _moment(body: dict[str, Any], name: str) -> datetime:
    try:
        return models.parse_time(body.get(name))
    except ValueError as exc:
        raise ValidationFailed(f"{name} {validation.TIME_RULE}", {name: body.get(name)}) from exc


def replay_events(body: Any, deps: Deps | None = None) -> dict[str, Any]:
    """Republish archived events with since <= time <= until, oldest first, at most `limit` per call.
    The events keep their ids, so subscribers that already have one can drop it."""
    deps = deps or default_deps()
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object with since and until")
    unknown = set(body) - validation.REPLAY_FIELDS
    if unknown:
        raise ValidationFailed(f"unknown fields: {', '.join(sorted(unknown))}")
    since, until = _moment(body, "since"), _moment(body, "until")
    if until <= since or until - since > MAX_RANGE:
        raise ValidationFailed("until must be after since, and the range at most 7 days")
    kind = body.get("type")
    if kind is not None and kind not in TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(TYPES)}")
    msisdn = body.get("msisdn")
    if msisdn is not None and not validation.is_msisdn(str(msisdn)):
        raise ValidationFailed(f"msisdn {validation.MSISDN_RULE}")
    limit = body.get("limit", MAX_LIMIT)
    if not validation.whole_number(limit, 1, MAX_LIMIT):
        raise ValidationFailed(f"limit {validation.range_rule(1, MAX_LIMIT)}")

    digits = str(msisdn).lstrip("+") if msisdn is not None else None
    low, high = models.iso(since), models.iso(until) + "~"
    binding = {"since": low, "until": high, "type": kind, "msisdn": digits}
    after = _resume_after(deps, binding, body["cursor"], low, high) if body.get("cursor") not in (None, "") else low
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    # Bounded work: at most READ_BUDGET archive items and QUERY_BUDGET queries, then a cursor.
    budget = ReadBudget(READ_BUDGET, QUERY_BUDGET)
    hours, rest = deps.store.events.hours(after[:13], high[:13], budget)
    position: str | None = after
    for bucket, shards in hours:
        if len(found) >= limit:
            break
        start = position if position and position[:13] == bucket else bucket
        # Filters are applied here, so a filtered replay reads all it may rather than what it will publish.
        batch = budget.items if kind or digits else limit - len(found)
        for item in deps.store.events.events(bucket, shards, start, high, budget, batch):
            if len(found) >= limit:
                break  # the rest is for the next request
            position = item.position
            event = json.loads(item.body)
            # The archive may hold an event twice (a publisher retry); publish it once per request.
            if event["id"] in seen or (kind and item.type != kind) or (digits and item.msisdn != digits):
                continue
            seen.add(event["id"])
            found.append({**event, "msisdn": item.msisdn})
        else:
            if not budget.exhausted:
                # The next hour's items all sort after its bare prefix, and nothing at all is left past `until`.
                following = models.iso(datetime.fromisoformat(bucket + ":00:00+00:00") + timedelta(hours=1))[:13]
                position = following if following <= high else None
                continue
        break
    else:
        position = rest  # None once every hour that holds events is done
    failed = 0
    for chunk_start in range(0, len(found), 10):
        # Republished for subscribers only: status callbacks have their own retries and are not started again.
        failed += len(deps.events.publish(found[chunk_start : chunk_start + 10], trigger_callbacks=False))
    return {"republished": len(found) - failed, "failed": failed, "next_cursor": deps.cursors.issue(CURSOR_KIND, binding, _position(position))}


def _position(after: str | None) -> dict[str, str] | None:
    return {"after": after} if after is not None else None


def _resume_after(deps: Deps, binding: dict[str, Any], cursor: Any, low: str, high: str) -> str:
    """Where a cursor resumes. Raises InvalidCursor unless it came from this very request's range and filters."""
    position = deps.cursors.position(CURSOR_KIND, binding, cursor)
    after = position.get("after")
    # Authenticated already; checked again so that even a leaked key cannot leave since..until.
    if set(position) != {"after"} or not isinstance(after, str) or not HOUR_PREFIX.match(after) or not low <= after <= high:
        raise InvalidCursor()
    return after
