"""The fleet's message log: every filter of GET /messages without msisdn, the first page live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, g, make_response, request, url_for

from smsgw_client import ApiError
from smsgw_console.server import LIVE_URL_HEADER, client, filters_from, render

blueprint = Blueprint("messages", __name__)

STATUSES = ("scheduled", "queued", "pending", "sent", "delivered", "failed", "rejected", "cancelled", "blocked", "received")
FILTERS = ("status", "direction", "since", "until", "batch_id", "client_ref")
PAGE_SIZE = 50
# A live refresh reads from a minute before the oldest row shown: a message created as it was (another
# container's clock) whose index entry came late is still in the window. An empty page reads from 15 minutes
# before the console's clock, which may be off the API's (SigV4 refuses a clock 5 minutes off).
ROW_MARGIN = timedelta(minutes=1)
LIVE_MARGIN = timedelta(minutes=15)
# The API's window without since: a live window reaching further back would read more, not less.
API_DEFAULT_WINDOW = timedelta(hours=24)


def _moment(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def live_since(filters: dict[str, str], items: list[dict[str, Any]], now: datetime) -> str | None:
    """Where the next live refresh of this page may start reading: just before the oldest row shown (15
    minutes back on an empty page). Everything the refresh must show lies after it: the rows shown, their
    status changes, and new messages; a full page's first rows are the same from there as from the window's
    start. A quiet fleet's page then costs the hours it shows, not the API's whole window (16 queries an hour).
    None with a status filter: a message older than the rows shown may change into the filter."""
    if filters.get("status"):
        return None
    created = [moment for moment in (_moment(item.get("created_at")) for item in items) if moment]
    return _iso(min(created) - ROW_MARGIN if created else now - LIVE_MARGIN)


def narrowed_since(query: dict[str, str], asked: str | None, now: datetime) -> str | None:
    """The since a live refresh sends: `asked` (the page's live_since) where it narrows the window, else None."""
    moment = _moment(asked) if asked else None
    if moment is None or query.get("status"):
        return None
    user_since, until = _moment(query.get("since")), _moment(query.get("until"))
    if user_since is not None and user_since >= moment:
        return None  # the operator's own since is narrower already
    if user_since is None and moment <= now - API_DEFAULT_WINDOW:
        return None
    if until is not None and moment >= until:
        return None
    return _iso(moment)


@blueprint.get("/messages")
def fleet() -> Any:
    filters, query = filters_from(request.args, FILTERS)
    cursor = request.args.get("cursor") or None
    now = datetime.now(UTC)
    if g.fragment and not cursor:
        # The live refresh asks only for the span the page shows (and what came after it).
        narrowed = narrowed_since(query, request.args.get("live_since"), now)
        if narrowed:
            query["since"] = narrowed
    try:
        page, error = client().list_messages(cursor=cursor, limit=PAGE_SIZE, **query), None
    except ApiError as refused:  # a filter the API refuses: keep the form as typed, say why in the API's words
        if g.fragment:
            raise  # a live refresh: the error page carries the words the page's script shows
        page, error = {"items": [], "next_cursor": None}, refused
    live_url = None
    if not cursor:
        since = live_since(filters, page["items"], now) if not error else None
        live_url = url_for("messages.fleet", **filters, **({"live_since": since} if since else {}))
    context = {"title": "Messages", "page": page, "filters": filters, "cursor": cursor, "statuses": STATUSES, "error": error, "live_url": live_url}
    status = 200 if not error else error.status if error.status < 500 else 502  # the API failing is a bad gateway
    response = make_response(render("messages.html", "_message_rows.html", **context), status)
    if live_url and g.fragment:
        response.headers[LIVE_URL_HEADER] = live_url  # the page's script reads from here next time
    return response
