"""The fleet's message log: every filter of GET /messages without msisdn, the first page live."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, g, make_response, request, url_for

from smsgw_client import ApiError
from smsgw_console.server import LIVE_URL_HEADER, client, filters_from, render

blueprint = Blueprint("messages", __name__)

STATUSES = ("scheduled", "queued", "pending", "sent", "delivered", "failed", "rejected", "cancelled", "blocked", "received")
FILTERS = ("status", "direction", "since", "until", "batch_id", "client_ref")
PAGE_SIZE = 50
# Statuses nothing moves a message out of (smsgw.models.ALLOWED_FROM): `failed` and `cancelled` are not among
# them, a receipt may still turn them `delivered` (and Eseye's word overrules the gateway's inferred ones).
SETTLED = frozenset({"delivered", "rejected", "blocked", "received"})
# A live refresh reads new messages from a minute before the newest row shown: a message created as it was
# (another container's clock) whose index entry came late is still in the window. It reads no further back
# than 15 minutes before the console's clock at the previous read (which may be off the API's: SigV4 refuses
# a clock 5 minutes off), so a quiet fleet's refresh reads an hour or two of the index, not the hours it shows.
ROW_MARGIN = timedelta(minutes=1)
LIVE_MARGIN = timedelta(minutes=15)
# The API's window without since: a live window reaching further back would read more, not less.
API_DEFAULT_WINDOW = timedelta(hours=24)
# A patch answer (only new rows and rows whose status changed): the page's script merges it by data-message-id.
PATCH_HEADER = "X-Console-Live-Patch"
# Pages of the narrowed listing a refresh follows (its window is an hour or two: the first page nearly always ends it).
MAX_PAGES = 3
STATUS_READS_AT_ONCE = 8


def _moment(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _order(item: dict[str, Any]) -> tuple[datetime, str]:
    """The listing's order, newest first when reversed: created_at, then id."""
    return _moment(item.get("created_at")) or datetime.min.replace(tzinfo=UTC), str(item.get("id", ""))


def narrowed_since(query: dict[str, str], asked: str | None, now: datetime) -> str | None:
    """The since a live refresh sends: `asked` where it narrows the window, else None."""
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


def watched(items: list[dict[str, Any]], newer_than: datetime) -> list[dict[str, Any]]:
    """The rows a refresh must hear about again: those not settled (their status may change) and those inside
    its window (so that it does not answer them as new), the newest PAGE_SIZE (the page keeps no more)."""
    start = newer_than - ROW_MARGIN
    keep = [item for item in items if item.get("status") not in SETTLED or _order(item)[0] >= start]
    return sorted(keep, key=_order, reverse=True)[:PAGE_SIZE]


def live_url_for(filters: dict[str, str], items: list[dict[str, Any]], newer_than: datetime | None) -> str:
    """The next refresh's URL. With a status filter, the whole window (a message older than the rows shown may
    change into the filter): no newer_than, and the refresh answers the whole fragment."""
    if filters.get("status") or newer_than is None:
        return url_for("messages.fleet", **filters)
    shown = ",".join(f"{item['id']}.{item['status']}" for item in watched(items, newer_than))
    return url_for("messages.fleet", **filters, newer_than=_iso(newer_than), shown=shown)


def _shown(value: str) -> dict[str, str]:
    """The page's watched rows as its live URL carries them (id.status, comma-separated), at most PAGE_SIZE."""
    rows: dict[str, str] = {}
    for entry in value.split(",")[:PAGE_SIZE]:
        message_id, _, status = entry.partition(".")
        if len(message_id) == 32 and all(c in "0123456789abcdef" for c in message_id) and status in STATUSES:
            rows[message_id] = status
    return rows


def _status_reads(ids: list[str]) -> list[dict[str, Any]]:
    """GET /messages/{id} for each; a message gone (404) is left as the page shows it."""
    api = client()

    def read(message_id: str) -> dict[str, Any] | None:
        try:
            return api.get_message(message_id)
        except ApiError as refused:
            if refused.status == 404:
                return None
            raise

    with ThreadPoolExecutor(min(STATUS_READS_AT_ONCE, len(ids)) or 1) as pool:
        return [item for item in pool.map(read, ids) if item]


def patch(
    query: dict[str, str], newer_than: datetime, shown: dict[str, str], now: datetime
) -> tuple[list[dict[str, Any]], datetime, list[dict[str, Any]]]:
    """A refresh that reads only what can have changed: the messages from a minute before `newer_than`, and
    each shown row not settled that this listing does not hold. Returns the rows to answer (new, or with a
    status other than `shown` says, newest first), the next newer_than, and the rows the next refresh watches."""
    since = narrowed_since(query, _iso(newer_than - ROW_MARGIN), now)
    asked = {**query, **({"since": since} if since else {})}
    listed: list[dict[str, Any]] = []
    cursor = None
    # A cursor means more of the window to read, not surely more rows; only a window of our own (an hour or
    # two) is read on: otherwise one page, as the whole page reads it.
    for _ in range(MAX_PAGES if since else 1):
        page = client().list_messages(limit=PAGE_SIZE, **asked, **({"cursor": cursor} if cursor else {}))
        listed += page["items"]
        cursor = page.get("next_cursor")
        if not cursor or len(listed) >= PAGE_SIZE:
            break
    listed = sorted(listed, key=_order, reverse=True)[:PAGE_SIZE]
    start = newer_than - ROW_MARGIN
    listed = [item for item in listed if item["id"] in shown or _order(item)[0] >= start]
    held = {item["id"] for item in listed}
    # A full listing's 50 rows are the whole page to come: the rows shown below them leave it, unread.
    unread = [] if len(listed) >= PAGE_SIZE else [i for i, status in shown.items() if i not in held and status not in SETTLED]
    known = listed + _status_reads(unread)
    answer = sorted((item for item in known if shown.get(item["id"]) != item.get("status")), key=_order, reverse=True)
    newest = max([newer_than, now - LIVE_MARGIN, *(_order(item)[0] for item in listed)])
    return answer, newest, known


@blueprint.get("/messages")
def fleet() -> Any:
    filters, query = filters_from(request.args, FILTERS)
    cursor = request.args.get("cursor") or None
    now = datetime.now(UTC)
    newer_than = _moment(request.args.get("newer_than")) if g.fragment and not cursor and not filters.get("status") else None
    if newer_than is not None:
        # The live refresh: only new messages and the shown rows that may have changed (errors: the error page)
        rows, newest, known = patch(query, newer_than, _shown(request.args.get("shown", "")), now)
        context = {"page": {"items": rows}, "patch": True}
        response = make_response(render("messages.html", "_message_rows.html", **context), 200)
        response.headers[PATCH_HEADER] = "1"
        response.headers[LIVE_URL_HEADER] = live_url_for(filters, known, newest)
        return response
    try:
        page, error = client().list_messages(cursor=cursor, limit=PAGE_SIZE, **query), None
    except ApiError as refused:  # a filter the API refuses: keep the form as typed, say why in the API's words
        if g.fragment:
            raise  # a live refresh: the error page carries the words the page's script shows
        page, error = {"items": [], "next_cursor": None}, refused
    live_url = None
    if not cursor and not error:
        newest = max([now - LIVE_MARGIN, *(_order(item)[0] for item in page["items"])])
        live_url = live_url_for(filters, page["items"], newest)
    context = {"title": "Messages", "page": page, "filters": filters, "cursor": cursor, "statuses": STATUSES, "error": error, "live_url": live_url}
    status = 200 if not error else error.status if error.status < 500 else 502  # the API failing is a bad gateway
    response = make_response(render("messages.html", "_message_rows.html", **context), status)
    if live_url and g.fragment:
        response.headers[LIVE_URL_HEADER] = live_url  # the page's script reads from here next time
    return response
