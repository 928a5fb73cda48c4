"""A message: its fields and its status timeline (every history entry: Eseye's answers, receipts, retries,
the queue, replies, cancels), live until its status is final, with Cancel and "Ask Eseye now"."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, url_for

from smsgw_client import ApiError
from smsgw_console.server import act, api_error_text, client, render

blueprint = Blueprint("timeline", __name__)

FINAL = frozenset({"delivered", "failed", "rejected", "cancelled", "blocked", "received"})
CANCELLABLE = frozenset({"scheduled", "queued", "pending", "sent"})

# What each kind of history entry is, for people; an event not named here shows as the API names it.
EVENTS = {
    "accepted": ("Accepted by the API", "gateway"),
    "send_at": ("Its send_at came", "gateway"),
    "superseded": ("Superseded", "gateway"),
    "reply_wait": ("Waiting for a reply", "reply"),
    "reply": ("Reply received", "reply"),
    "reply_timeout": ("No reply in time", "reply"),
    "paced": ("Waiting for Eseye's send rate", "retry"),
    "retry_scheduled": ("Retry scheduled", "retry"),
    "retries_exhausted": ("Retries ran out", "retry"),
    "reconcile": ("Picked up again by the reconciler", "retry"),
    "eseye_send": ("Eseye's answer to the send", "eseye"),
    "eseye_probe": ("Eseye asked whether it has the message", "eseye"),
    "refresh": ("Eseye's status answer", "eseye"),
    "cancel": ("Cancel", "eseye"),
    "receipt": ("Delivery receipt", "receipt"),
    "received": ("Received from the SIM", "receipt"),
    "in_flight_timeout": ("No final status in time", "gateway"),
    "expired": ("Expired", "gateway"),
    "batch_cancelled": ("Its batch was cancelled", "gateway"),
    "sim_queue_full": ("Its SIM's queue was full", "gateway"),
    "blocked": ("Refused by the lists", "gateway"),
}
# Eseye's answer (`detail.eseye`) in reading order; `raw` is shown apart, folded.
ESEYE_FIELDS = (
    ("eseye_code", "Eseye code"),
    ("eseye_description", "Description"),
    ("eseye_status", "Eseye status"),
    ("kind", "Answer"),
    ("http_status", "HTTP status"),
    ("reason", "Reason"),
    ("ambiguous", "May have reached Eseye"),
)


def live(message: dict[str, Any]) -> bool:
    """Whether the page keeps asking: until the status is final. A failure the gateway inferred is not
    final (Eseye's later word, a receipt, still applies), so it keeps asking then too."""
    if message.get("status") == "failed" and message.get("status_source") == "gateway":
        return True
    return message.get("status") not in FINAL


def context(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"Message {message['id']}",
        "m": message,
        "live": live(message),
        "cancellable": message.get("direction") == "mt" and message.get("status") in CANCELLABLE,
        "events": EVENTS,
        "eseye_fields": ESEYE_FIELDS,
    }


@blueprint.get("/messages/<message_id>")
def detail(message_id: str) -> Any:
    # a plain dict: the client's answer carries the HTTP status as `.status`, which a template's `m.status` would read
    message = dict(client().get_message(message_id))
    return render("message.html", "_timeline.html", **context(message))


@blueprint.post("/messages/<message_id>/cancel")
def cancel(message_id: str) -> Any:
    return act(lambda: client().cancel_message(message_id), "Cancelled.", url_for("timeline.detail", message_id=message_id))


@blueprint.post("/messages/<message_id>/refresh")
def refresh(message_id: str) -> Any:
    """Ask Eseye's status request now (GET /messages/{id}?refresh=true); the answer goes into the history."""
    try:
        answer = (client().get_message(message_id, refresh=True).get("refresh")) or {}
    except ApiError as error:
        flash(api_error_text(error), "error")
    else:
        if answer.get("ok"):
            flash(f"Eseye reports {answer.get('eseye_status')!r}.", "success")
        elif answer.get("reason"):
            flash(f"Eseye could not be asked: {answer['reason']}.", "error")
        else:
            code = f"error {answer['eseye_code']}" if answer.get("eseye_code") is not None else "no readable status"
            flash(f"Eseye answered with {code}; see the timeline.", "error")
    return redirect(url_for("timeline.detail", message_id=message_id) + "#timeline", code=303)


@blueprint.app_template_filter("entry_kind")
def entry_kind(event: str) -> tuple[str, str]:
    return EVENTS.get(event, (event.replace("_", " ").capitalize(), "callback" if "callback" in event else "other"))
