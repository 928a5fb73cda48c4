"""A message: its fields and its status timeline (every history entry: Eseye's answers, receipts, retries,
the queue, replies, cancels, status-callback attempts), live until its status is final and that status's
callback settled, with Cancel and "Ask Eseye now"."""

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
    "callback": ("Status callback", "callback"),
}
# A status-callback attempt's outcome (`detail.callback.outcome`), for people.
CALLBACK_OUTCOMES = {
    "delivered": "Delivered: the receiver took it",
    "refused": "Refused by the receiver; retried later",
    "failed": "No answer; retried later",
    "blocked": "Not sent: the gateway does not call that destination",
    "gave_up": "Gave up: the event went to the callback dead-letter queue",
}
# Outcomes after which that event is not tried again.
CALLBACK_SETTLED = frozenset({"delivered", "blocked", "gave_up"})
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


def callback_attempts(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The message's status-callback attempts, oldest first: each its entry's status and detail.callback."""
    return [
        {"status": e.get("status"), **((e.get("detail") or {}).get("callback") or {})}
        for e in message.get("history") or []
        if isinstance(e, dict) and e.get("event") == "callback"
    ]


def live(message: dict[str, Any]) -> bool:
    """Whether the page keeps asking: until the status is final and, for a message with a status_callback,
    the callback of that final status is settled (it comes after the status). A failure the gateway
    inferred is not final (Eseye's later word, a receipt, still applies), so it keeps asking then too."""
    if message.get("status") == "failed" and message.get("status_source") == "gateway":
        return True
    if message.get("status") not in FINAL:
        return True
    if message.get("direction") == "mt" and message.get("status_callback"):
        return not any(a["status"] == message.get("status") and a.get("outcome") in CALLBACK_SETTLED for a in callback_attempts(message))
    return False


def context(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"Message {message['id']}",
        "m": message,
        "live": live(message),
        "cancellable": message.get("direction") == "mt" and message.get("status") in CANCELLABLE,
        "events": EVENTS,
        "eseye_fields": ESEYE_FIELDS,
        "callback_outcomes": CALLBACK_OUTCOMES,
        "callback_attempts": callback_attempts(message),
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
