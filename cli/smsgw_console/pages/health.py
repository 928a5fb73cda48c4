"""Health: the dead-letter queues' depths with a Redrive button where their messages can go back, the
quarantined webhook requests, and Eseye's recent error rate as the alarm computes it; live."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request, url_for

from smsgw_console.server import act, client, render

blueprint = Blueprint("health", __name__)

REDRIVE_LIMIT = 100  # the API's default; it takes 1 to 1000


@blueprint.get("/health")
def index() -> Any:
    return render("health.html", "_health.html", title="Health", health=client().health(), redrive_limit=REDRIVE_LIMIT)


@blueprint.post("/health/redrive")
def redrive() -> Any:
    queue = request.form.get("queue", "")
    raw_limit = request.form.get("limit", "").strip()
    limit: Any = int(raw_limit) if raw_limit.isdigit() else (raw_limit or REDRIVE_LIMIT)  # the API words a bad limit

    def said(moved: dict[str, Any]) -> str:
        return f"{moved.get('queue', queue)}: {moved.get('moved')} moved back, {moved.get('remaining')} still in the dead-letter queue."

    return act(lambda: client().redrive(queue, limit), said, url_for("health.index"))
