"""Health: the dead-letter queues' depths with a Redrive button where their messages can go back, the
quarantined webhook requests, and Eseye's recent error rate as the alarm computes it; live."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for

from smsgw_client import ApiError
from smsgw_console.server import api_error_text, client, render

blueprint = Blueprint("health", __name__)

REDRIVE_LIMIT = 100  # the API's default; it takes 1 to 1000


def health() -> dict[str, Any]:
    return dict(client().health())  # plain: the client's answer carries the HTTP status as `.status`


@blueprint.get("/health")
def index() -> Any:
    return render("health.html", "_health.html", title="Health", health=health(), redrive_limit=REDRIVE_LIMIT)


@blueprint.post("/health/redrive")
def redrive() -> Any:
    queue = request.form.get("queue", "")
    raw_limit = request.form.get("limit", "").strip()
    limit: Any = int(raw_limit) if raw_limit.isdigit() else (raw_limit or REDRIVE_LIMIT)  # the API words a bad limit
    try:
        moved = client().redrive(queue, limit)
    except ApiError as error:
        flash(api_error_text(error), "error")
    else:
        flash(f"{moved.get('queue', queue)}: {moved.get('moved')} moved back, {moved.get('remaining')} still in the dead-letter queue.", "success")
    return redirect(url_for("health.index"), code=303)
