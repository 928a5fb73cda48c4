"""The fleet's message log: every filter of GET /messages without msisdn, the first page live."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from smsgw_client import ApiError
from smsgw_console.server import client, render

blueprint = Blueprint("messages", __name__)

STATUSES = ("scheduled", "queued", "pending", "sent", "delivered", "failed", "rejected", "cancelled", "blocked", "received")
FILTERS = ("status", "direction", "since", "until", "batch_id", "client_ref")


def api_time(value: str) -> str:
    """A datetime-local field (no zone; the console shows UTC) as the API's ISO 8601 in UTC."""
    if not value or value.endswith("Z") or "+" in value[10:]:
        return value
    return f"{value}:00Z" if len(value) == 16 else f"{value}Z"


@blueprint.get("/messages")
def fleet() -> Any:
    filters = {name: request.args[name].strip() for name in FILTERS if request.args.get(name, "").strip()}
    cursor = request.args.get("cursor") or None
    query = {name: api_time(value) if name in ("since", "until") else value for name, value in filters.items()}
    try:
        page, error = client().list_messages(cursor=cursor, limit=50, **query), None
    except ApiError as refused:  # a filter the API refuses: keep the form as typed, say why in the API's words
        page, error = {"items": [], "next_cursor": None}, refused
    context = {"title": "Messages", "page": page, "filters": filters, "cursor": cursor, "statuses": STATUSES, "error": error}
    return render("messages.html", "_message_rows.html", **context), (error.status if error else 200)
