"""Batches: the recent ones with a progress bar and their messages counted by status, live; one batch with
its messages by status; cancel while a batch is still under way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, g, request, url_for

from smsgw_console.pages.messages import STATUSES
from smsgw_console.server import act, client, filters_from, render

blueprint = Blueprint("batches", __name__)

STATES = ("accepted", "fanning_out", "sending", "completed", "cancelled")
ACTIVE = frozenset({"accepted", "fanning_out", "sending"})
# A message in one of these has its last word; `accepted` in a batch's counts is a recipient whose
# message is not created yet (GET /batches/{id}).
FINAL = ("delivered", "failed", "rejected", "cancelled", "blocked")
MESSAGE_STATUSES = tuple(status for status in STATUSES if status != "received")  # a batch's messages are MT
FILTERS = ("state", "since", "until")
PAGE_SIZE = 25
MESSAGES_PAGE_SIZE = 50


def progress(batch: Mapping[str, Any]) -> dict[str, Any]:
    """How far a batch is: its messages with a final status, of the recipients it sends to."""
    counts = batch.get("counts") or {}
    final = sum(int(counts.get(status, 0)) for status in FINAL)
    # A group's size is known once its fan-out starts; until then the counts are all there is.
    expected = max(int(batch.get("total") or 0) - int(batch.get("skipped") or 0), sum(int(n) for n in counts.values()))
    percent = int(100 * final / expected) if expected else (100 if batch.get("state") in ("completed", "cancelled") else 0)
    return {"final": final, "expected": expected, "percent": percent}


def recipients(batch: Mapping[str, Any]) -> str:
    total = int(batch.get("total") or 0)
    sims = f"{total} SIM{'' if total == 1 else 's'}"
    said = f"group {batch['group']}, {sims}" if batch.get("source") == "group" and batch.get("group") else f"{sims} listed"
    return f"{said}, {batch['skipped']} skipped" if batch.get("skipped") else said


def content(batch: Mapping[str, Any]) -> str:
    if batch.get("command"):
        return f"command {batch['command']}"
    if batch.get("text") is not None:
        return str(batch["text"])
    if batch.get("data") is not None:
        return f"[data coding {batch.get('data_coding', '0')}: {batch['data']}]"
    return ""


def state_label(state: str | None) -> str:
    return (state or "").replace("_", " ")


@blueprint.context_processor
def helpers() -> dict[str, Any]:
    return {
        "progress": progress,
        "recipients": recipients,
        "content": content,
        "state_label": state_label,
        "active_states": ACTIVE,
    }


@blueprint.get("/batches")
def index() -> Any:
    filters, query = filters_from(request.args, FILTERS)
    cursor = request.args.get("cursor") or None
    page = client().list_batches(limit=PAGE_SIZE, **({"cursor": cursor} if cursor else {}), **query)
    return render("batches.html", "_batch_rows.html", title="Batches", page=page, filters=filters, cursor=cursor, states=STATES)


@blueprint.get("/batches/<batch_id>")
def detail(batch_id: str) -> Any:
    # The page's live parts are each fetched alone: the batch (state, progress, counts), its cancel form, its messages.
    part = request.args.get("part") if g.get("fragment") else None
    status = request.args.get("status", "").strip() or None
    cursor = request.args.get("cursor") or None
    api = client()
    batch = api.get_batch(batch_id) if part != "messages" else None
    messages = None
    if part not in ("summary", "actions"):
        messages = api.batch_messages(batch_id, status=status, cursor=cursor, limit=MESSAGES_PAGE_SIZE)
    fragment = {"summary": "_batch_summary.html", "actions": "_batch_actions.html", "messages": "_batch_messages.html"}.get(part or "")
    title = f"Batch {batch_id[:8]}"
    return render(
        "batch.html",
        fragment,
        title=title,
        batch_id=batch_id,
        batch=batch,
        messages=messages,
        status=status,
        cursor=cursor,
        statuses=MESSAGE_STATUSES,
    )


@blueprint.post("/batches/<batch_id>/cancel")
def cancel(batch_id: str) -> Any:
    back = url_for("batches.index") if request.form.get("back") == "index" else url_for("batches.detail", batch_id=batch_id)
    return act(lambda: client().cancel_batch(batch_id), f"Batch {batch_id[:8]} cancelled: nothing more of it reaches Eseye.", back)
