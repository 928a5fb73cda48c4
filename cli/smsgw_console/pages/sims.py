"""A SIM: its conversation (MT and MO in time order, replies linked to their commands), its delivery queue
and buffer estimate, its allow/block state, and a send box."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, request, url_for

from smsgw_client import ApiError
from smsgw_console.server import api_error_text, client, render

blueprint = Blueprint("sims", __name__)

PAGE_SIZE = 100  # the API's largest page of one SIM's messages
MAX_PAGES = 2  # a conversation shows at most this many pages (the newest); older ones are a link away
LISTS = ("allow", "block")
SIM_TEXT = "sim-text"  # the flash category of a refused send's text, for the box (never shown as a flash)


def digits(msisdn: str) -> str:
    """What an operator typed, as the console's URLs name a SIM: no spaces, no leading + before the digits.
    Anything else is left for the API to refuse in its own words."""
    value = "".join(msisdn.split())
    return value[1:] if value.startswith("+") and value[1:].isdigit() else value


def conversation_page(msisdn: str, cursor: str | None) -> dict[str, Any]:
    """The newest messages (or those from `cursor` on), oldest first as a chat reads, and where older ones start."""
    newest_first: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        page = client().list_messages(msisdn, limit=PAGE_SIZE, cursor=cursor)
        newest_first.extend(page.get("items") or [])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    messages = [dict(m) for m in reversed(newest_first)]
    return {"messages": messages, "shown": {m["id"] for m in messages}, "older": cursor}


def sim_state(msisdn: str) -> dict[str, Any]:
    return client().get_sim(msisdn)


def list_state(msisdn: str, standing: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Each list's entry for the SIM (who added it, when, why), or None when it is not on it. The SIM's own
    view says which lists it is on, so only those entries are read."""
    state: dict[str, dict[str, Any] | None] = {}
    for which in LISTS:
        state[which] = None
        if standing.get(f"on_{which}list"):
            try:
                state[which] = client().get_list_entry(which, msisdn)
            except ApiError as error:
                if error.status != 404:  # taken off the list between the two reads
                    raise
    return state


@blueprint.get("/sims")
def lookup() -> Any:
    msisdn = digits(request.args.get("msisdn", ""))
    if not msisdn:
        flash("Enter the SIM's MSISDN to open its conversation.", "error")
        return redirect(url_for("messages.fleet") + "#sim-lookup", code=303)
    return redirect(url_for("sims.conversation", msisdn=msisdn), code=303)


@blueprint.get("/sims/<msisdn>")
def conversation(msisdn: str) -> Any:
    if digits(msisdn) and digits(msisdn) != msisdn:
        # a SIM's page is named by its digits: "+44 7700 900123" in the address bar leads there
        return redirect(url_for("sims.conversation", msisdn=digits(msisdn), **request.args.to_dict()), code=308)
    cursor = request.args.get("cursor") or None
    if g.fragment and request.args.get("part") == "queue":  # the queue's live refresh asks for the queue alone
        return render("sim.html", "_sim_queue.html", msisdn=msisdn, sim=sim_state(msisdn))
    context: dict[str, Any] = {"title": f"SIM {msisdn}", "msisdn": msisdn, "cursor": cursor, **conversation_page(msisdn, cursor)}
    if not g.fragment:  # the conversation's live refresh needs only the messages
        sim = sim_state(msisdn)
        context.update(sim=sim, standing=sim.get("lists", {}), lists=list_state(msisdn, sim.get("lists", {})))
    return render("sim.html", "_conversation.html", **context)


@blueprint.post("/sims/<msisdn>/send")
def send(msisdn: str) -> Any:
    back = url_for("sims.conversation", msisdn=msisdn) + "#sim-send"
    text = request.form.get("text", "")
    try:
        sent = client().send_message(msisdn, text)
    except ApiError as error:
        flash(api_error_text(error), "error")
        # The text goes back into the box, so the operator fixes it rather than typing it again; through the
        # session, not the URL: not into the browser's history, and no link from elsewhere can fill the box.
        flash(text, SIM_TEXT)
        return redirect(back, code=303)
    flash(f"Accepted: message {sent.get('id')} is {sent.get('status')}.", "success")
    return redirect(back, code=303)
