"""POST /events/replay: publish stored events again, for a subscriber that was down."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

from smsgw import models
from smsgw.deps import Deps, default_deps
from smsgw.errors import ValidationFailed
from smsgw.logic.publish import MO_RECEIVED, MT_STATUS, REPLY_TIMEOUT

MAX_RANGE = timedelta(days=7)
MAX_LIMIT = 1000
TYPES = (MT_STATUS, MO_RECEIVED, REPLY_TIMEOUT)


def _moment(body: dict[str, Any], name: str) -> datetime:
    try:
        return models.parse_time(body.get(name))
    except ValueError as exc:
        raise ValidationFailed(f"{name} must be an ISO 8601 time with a timezone", {name: body.get(name)}) from exc


def replay_events(body: Any, deps: Deps | None = None) -> dict[str, Any]:
    """Republish archived events with since <= time <= until, oldest first, at most `limit` per call.
    The events keep their ids, so subscribers that already have one can drop it."""
    deps = deps or default_deps()
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object with since and until")
    unknown = set(body) - {"since", "until", "type", "msisdn", "limit", "cursor"}
    if unknown:
        raise ValidationFailed(f"unknown fields: {', '.join(sorted(unknown))}")
    since, until = _moment(body, "since"), _moment(body, "until")
    if until <= since or until - since > MAX_RANGE:
        raise ValidationFailed("until must be after since, and the range at most 7 days")
    kind = body.get("type")
    if kind is not None and kind not in TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(TYPES)}")
    msisdn = body.get("msisdn")
    if msisdn is not None and not models.MSISDN_PATTERN.match(str(msisdn)):
        raise ValidationFailed("msisdn must be 8 to 15 digits")
    limit = body.get("limit", MAX_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be a whole number from 1 to {MAX_LIMIT}")

    low, high = models.iso(since), models.iso(until) + "~"
    if body.get("cursor"):
        try:
            low = json.loads(base64.urlsafe_b64decode(str(body["cursor"]) + "==="))["after"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationFailed("cursor is not one this API returned") from exc
    found: list[dict[str, Any]] = []
    hour = datetime.fromisoformat(low[:13] + ":00:00+00:00")
    while hour <= until and len(found) < limit:
        bucket = f"EVT#{models.iso(hour)[:13]}"
        start = None
        while len(found) < limit:
            items, start = deps.store.query(
                key_condition="#pk = :pk AND #sk BETWEEN :low AND :high",
                names={"#pk": "PK", "#sk": "SK"},
                values={":pk": bucket, ":low": low, ":high": high},
                limit=limit - len(found),
                start_key=start,
            )
            found += [
                i for i in items if i["SK"] != low and (not kind or i["type"] == kind) and (not msisdn or i["msisdn"] == str(msisdn).lstrip("+"))
            ]
            if not start:
                break
        hour += timedelta(hours=1)
    failed = 0
    for chunk_start in range(0, len(found), 10):
        chunk = found[chunk_start : chunk_start + 10]
        failed += len(deps.events.publish([{**json.loads(i["event"]), "msisdn": i["msisdn"]} for i in chunk]))
    more = len(found) >= limit
    cursor = base64.urlsafe_b64encode(json.dumps({"after": found[-1]["SK"]}).encode()).decode().rstrip("=") if more and found else None
    return {"republished": len(found) - failed, "failed": failed, "next_cursor": cursor}
