"""The operator console's pages, rendered by Flask's test client over the local stack's real API.

A SIM's conversation, a message's timeline and the health page are checked with real data (a device that
answers, receipts from the Eseye simulator), and so are their live fragments, their forms (send, cancel,
ask Eseye, redrive), the API's refusals in its own words, and the console's own guards (CSRF, Host).
The browser tests (Selenium) drive the same pages in Chromium; these read the HTML the server answers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from smsgw_client import Client
from smsgw_console.pages import sims
from smsgw_console.server import FRAGMENT_HEADER, create_app
from tests.helpers import console_token as token
from tests.helpers import new_sim, wait_until
from tests.html_page import Node, dom


@pytest.fixture
def browser(console):
    return console.test_client()


def post_mo(stack, sim: str, text: str) -> None:
    requests.post(f"{stack.eseye.url}/_sim/mo", json={"source": sim, "text": text}, timeout=10).raise_for_status()


def mos_of(stack, sim: str) -> list[dict]:
    return stack.session.get(f"{stack.api}/messages", params={"msisdn": sim, "direction": "mo"}, timeout=30).json()["items"]


def flashes(page: Node) -> list[str]:
    return [p.text() for p in page.all("p", class_="flash")]


# --- a SIM ------------------------------------------------------------------------------------------------


def test_a_sims_conversation_threads_mt_and_mo_with_the_reply_linked_both_ways(local_stack, browser):
    # Given a SIM sent a command that expects a reply, delivered, and the device's answer
    sim = new_sim()
    command = local_stack.send(to=sim, text="STATUS?", expect_reply_within=600).json()
    local_stack.wait_for_status(command["id"], {"delivered"})
    post_mo(local_stack, sim, "OK 21C")
    [reply] = wait_until(lambda: mos_of(local_stack, sim), 30, interval=0.2, message="the MO is stored")
    assert reply["in_reply_to"] == command["id"]

    # (the table's stream brings the delivery and the MO to the SIM's state a moment after each: its slot is
    # freed, and the buffer estimate counts the delivery, then starts again at the MO, in either order)
    def settled() -> bool:
        state = Client(local_stack.api).get_sim(sim)
        return state["in_flight"] == 0 and state["last_mo_at"] is not None and state["delivered_since_last_mo"] == 0

    wait_until(settled, 30, interval=0.2, message="the SIM's state has both the delivery and the MO")

    # When the operator looks the SIM up as typed (with + and spaces)
    looked_up = browser.get("/sims", query_string={"msisdn": f" +{sim[:4]} {sim[4:]}"})
    assert looked_up.status_code == 303 and looked_up.headers["Location"].endswith(f"/sims/{sim}")
    response = browser.get(looked_up.headers["Location"])

    # Then the conversation holds the command and then the reply, in time order, each linked to the other
    assert response.status_code == 200
    page = dom(response)
    conversation = page.one("ol", id="conversation")
    assert conversation["data-live"] == f"/sims/{sim}"
    items = conversation.all("li", data_message_id=True)
    assert [(i["data-message-id"], i["data-direction"], i["data-status"]) for i in items] == [
        (command["id"], "mt", "delivered"),
        (reply["id"], "mo", "received"),
    ]
    assert items[0].one("a", class_="reply")["href"] == f"#m-{reply['id']}"
    assert items[1].one("a", class_="reply-to")["href"] == f"#m-{command['id']}"
    assert "STATUS?" in items[0].text() and "OK 21C" in items[1].text()
    assert items[0]["id"] == f"m-{command['id']}" and items[1]["id"] == f"m-{reply['id']}"
    # And its queue and buffer estimate: nothing waiting, one delivered since... the device just spoke
    queue = page.one("section", id="sim-queue")
    assert "0 of" in queue.one("dd", id="sim-in-flight").text() and "0 of" in queue.one("dd", id="sim-queued").text()
    assert queue.one("meter", id="sim-buffer")["value"] == "0"
    # And its list state: on neither list
    lists = page.one("section", id="sim-lists")
    assert lists.one("dd", data_list="block")["data-listed"] == "no"
    assert lists.one("dd", data_list="allow")["data-listed"] == "no"
    assert lists.one("p", id="sim-traffic")["data-traffic-allowed"] == "yes"
    # And the send box, labelled
    form = page.one("form", id="sim-send")
    assert form["action"] == f"/sims/{sim}/send" and form["method"] == "post"
    assert page.one("label", for_="sim-text").text() == "Message"
    assert form.one("button").text() == "Send"


def test_a_long_conversation_shows_its_newest_pages_and_links_the_older_ones(local_stack, browser, monkeypatch):
    # Given a SIM with more messages than the conversation shows (made small here: two API pages of three)
    monkeypatch.setattr(sims, "PAGE_SIZE", 3)
    sim = new_sim()
    send_at = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for n in range(8):
        assert local_stack.send(to=sim, text=f"#{n}", send_at=send_at).status_code == 202

    # When the operator opens its conversation
    page = dom(browser.get(f"/sims/{sim}"))

    # Then the newest six show, oldest first (two pages of the API), the newest last, and live
    def texts(page: Node) -> list[str]:
        return [li.one("p", class_="text").text() for li in page.one("ol", id="conversation").all("li", data_message_id=True)]

    assert texts(page) == [f"#{n}" for n in range(2, 8)]
    # And a link leads to the older ones, a page that is not live
    older = dom(browser.get(page.one("a", rel="prev")["href"]))
    assert texts(older) == ["#0", "#1"] and "data-live" not in older.one("ol", id="conversation").attrs
    assert not older.all("a", rel="prev")


def test_a_blocked_sim_says_so(local_stack, browser):
    # Given a SIM on the blocklist with a note
    sim = new_sim()
    local_stack.session.put(f"{local_stack.api}/lists/block/{sim}", json={"note": "stolen device"}, timeout=30).raise_for_status()
    try:
        # When its page is opened
        lists = dom(browser.get(f"/sims/{sim}")).one("section", id="sim-lists")
    finally:
        local_stack.session.delete(f"{local_stack.api}/lists/block/{sim}", timeout=30)

    # Then it says the SIM is on the blocklist, with the note
    block = lists.one("dd", data_list="block")
    assert block["data-listed"] == "yes" and "on the blocklist" in block.text() and "stolen device" in block.text()
    # and that the gateway refuses its traffic, in the API's words
    traffic = lists.one("p", id="sim-traffic")
    assert traffic["data-traffic-allowed"] == "no" and f"{sim} is on the blocklist" in traffic.text()


def test_the_conversation_and_queue_fragments_answer_only_themselves(local_stack, browser):
    # Given a SIM with a message
    sim = new_sim()
    sent = local_stack.send(to=sim, text="ping").json()

    # When the page's script asks for the conversation's live fragment, and the queue's
    conversation = browser.get(f"/sims/{sim}", headers={FRAGMENT_HEADER: "1"})
    queue = browser.get(f"/sims/{sim}?part=queue", headers={FRAGMENT_HEADER: "1"})

    # Then each answers its list items alone, not the page, and never from a cache
    text = conversation.get_data(as_text=True)
    assert conversation.status_code == 200 and "<html" not in text and "sim-queue" not in text and "sim-send" not in text
    assert [li["data-message-id"] for li in dom(conversation).all("li", data_message_id=True)] == [sent["id"]]
    assert conversation.headers["Cache-Control"] == "no-store"
    queue_text = queue.get_data(as_text=True)
    assert queue.status_code == 200 and "<html" not in queue_text and "conversation" not in queue_text
    assert dom(queue).one("meter", id="sim-buffer")


def test_the_send_box_sends_and_says_what_the_api_answered(local_stack, browser, console):
    # Given a SIM's conversation
    sim = new_sim()

    # When the operator sends from its box
    response = browser.post(f"/sims/{sim}/send", data={"csrf_token": token(console), "text": "REBOOT"})

    # Then they are sent back to the conversation, told the message's id and status in the API's answer
    assert response.status_code == 303 and response.headers["Location"].startswith(f"/sims/{sim}")
    page = dom(browser.get(response.headers["Location"]))
    [said] = flashes(page)
    assert said.startswith("Accepted: message ")
    message_id = said.split()[2]
    # And the message is in the conversation, and reaches the SIM
    assert [li["data-message-id"] for li in page.one("ol", id="conversation").all("li", data_message_id=True)] == [message_id]
    assert local_stack.wait_for_status(message_id, {"delivered"})["text"] == "REBOOT"
    # And the cookie that carried the flash goes to no other site's request and no script
    cookie = response.headers["Set-Cookie"]
    assert "SameSite=Strict" in cookie and "HttpOnly" in cookie


def test_an_api_refusal_is_shown_in_the_apis_words_with_its_status(local_stack, browser, console):
    # Given an MSISDN the API refuses
    # When its conversation is opened
    response = browser.get("/sims/12ab")

    # Then the console answers with the API's status and its message, word for word
    api = requests.get(f"{local_stack.api}/messages", params={"msisdn": "12ab"}, timeout=30)
    assert response.status_code == api.status_code == 422
    error = dom(response).one("div", class_="api-error")
    assert api.json()["error"]["message"] in error.text() and api.json()["error"]["code"] in error.text()

    # And a send to it is refused in the API's words
    sent = browser.post("/sims/12ab/send", data={"csrf_token": token(console), "text": "hello"}, follow_redirects=True)
    page = dom(sent)
    [said] = flashes(page)
    refusal = requests.post(f"{local_stack.api}/messages", json={"to": "12ab", "text": "hello"}, timeout=30).json()["error"]
    assert said == f"422 {refusal['code']}: {refusal['message']}"


def test_a_send_eseye_refuses_is_told_in_the_apis_words_and_the_text_stays_in_the_box(local_stack, browser, console):
    # Given a SIM Eseye refuses to send to (no credit)
    sim = f"{new_sim()[:-4]}0570"

    # When the operator sends from its box
    response = browser.post(f"/sims/{sim}/send", data={"csrf_token": token(console), "text": "RESET now"})

    # Then they are back at the box with Eseye's refusal as the API words it, and their text still there
    assert response.status_code == 303
    page = dom(browser.get(response.headers["Location"]))
    [said] = flashes(page)
    assert said.startswith("422 eseye_rejected: Eseye rejected the message")
    assert page.one("textarea", id="sim-text").text() == "RESET now"
    # And the rejected message is in the conversation
    assert [li["data-status"] for li in page.one("ol", id="conversation").all("li", data_message_id=True)] == ["rejected"]


# --- a message --------------------------------------------------------------------------------------------


def test_a_delivered_messages_timeline_shows_eseyes_answer_and_the_receipt(local_stack, browser):
    # Given a message Eseye took and delivered
    sim = new_sim()
    sent = local_stack.send(to=sim, text="hello", client_ref=f"ref-{uuid.uuid4().hex[:8]}").json()
    local_stack.wait_for_status(sent["id"], {"delivered"})

    # When its page is opened
    response = browser.get(f"/messages/{sent['id']}")

    # Then its status is delivered, and the page no longer updates (the status is final) nor offers a cancel
    assert response.status_code == 200
    page = dom(response)
    assert page.one(id="message-status").text() == "delivered"
    assert "data-live" not in page.one("div", id="message-live").attrs
    assert not page.all("form", id="message-cancel")
    # And the timeline has every history entry the API gave, in its order, Eseye's answer and the receipt among them
    history = local_stack.get(sent["id"])["history"]
    entries = page.one("ol", id="timeline").all("li", data_event=True)
    assert [(e["data-event"], e["data-status"]) for e in entries] == [(h["event"], h["status"]) for h in history]
    eseye = next(e for e in entries if e["data-event"] == "eseye_send")
    assert "Eseye accepted the message" in eseye.text() and eseye.one("dl", class_="eseye")
    receipt = next(e for e in entries if e["data-event"] == "receipt")
    assert "delivered" in receipt.one("dl", class_="receipt").text()
    # And its fields: to, text, client ref, and no Eseye error it never had
    fields = page.one("dl", class_="fields").text()
    assert sim in fields and "hello" in fields and sent["client_ref"] in fields
    assert "Eseye's answer" not in fields


def test_a_rejected_messages_page_shows_eseyes_code_and_description(local_stack, browser):
    # Given a message Eseye refused (no credit: the simulator refuses numbers ending 0570)
    refusal = local_stack.send(to=f"{new_sim()[:-4]}0570", text="hello")
    assert refusal.status_code == 422
    rejected = refusal.json()["error"]["details"]["message"]
    assert rejected["status"] == "rejected"

    # When its page is opened
    page = dom(browser.get(f"/messages/{rejected['id']}"))

    # Then its status, Eseye's code and description in its fields and in the timeline's entry for the send
    assert page.one(id="message-status").text() == "rejected"
    code, description = str(rejected["eseye_code"]), rejected["eseye_description"]
    assert f"error {code}: {description}" in page.one("dl", class_="fields").text()
    [answer] = [e for e in page.one("ol", id="timeline").all("li", data_event="eseye_send")]
    eseye = answer.one("dl", class_="eseye").text()
    assert code in eseye and description in eseye


def test_a_waiting_message_is_live_and_can_be_cancelled(local_stack, browser, console):
    # Given a message scheduled for tomorrow
    sim = new_sim()
    send_at = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sent = local_stack.send(to=sim, text="later", send_at=send_at).json()
    assert sent["status"] == "scheduled"

    # When its page is opened, and its live fragment asked for
    page = dom(browser.get(f"/messages/{sent['id']}"))
    fragment = browser.get(f"/messages/{sent['id']}", headers={FRAGMENT_HEADER: "1"})

    # Then it is live, with a Cancel form; the fragment holds the status and timeline alone
    assert page.one("div", id="message-live")["data-live"] == f"/messages/{sent['id']}"
    form = page.one("form", id="message-cancel")
    assert form["action"] == f"/messages/{sent['id']}/cancel" and form.one("button").text() == "Cancel"
    assert "<html" not in fragment.get_data(as_text=True)
    assert dom(fragment).one(id="message-status").text() == "scheduled" and dom(fragment).one("ol", id="timeline")

    # When the operator cancels it
    response = browser.post(form["action"], data={"csrf_token": token(console)})

    # Then they are back on its page, told so; the message is cancelled and the Cancel form gone
    assert response.status_code == 303 and response.headers["Location"] == f"/messages/{sent['id']}"
    after = dom(browser.get(response.headers["Location"]))
    assert flashes(after) == ["Cancelled."]
    assert after.one(id="message-status").text() == "cancelled" and not after.all("form", id="message-cancel")
    assert local_stack.get(sent["id"])["status"] == "cancelled"

    # And a second cancel (an old tab) is refused in the API's words
    again = dom(browser.post(form["action"], data={"csrf_token": token(console)}, follow_redirects=True))
    refusal = requests.delete(f"{local_stack.api}/messages/{sent['id']}", timeout=30).json()["error"]
    assert flashes(again) == [f"409 {refusal['code']}: {refusal['message']}"]


def test_ask_eseye_now_records_eseyes_answer_in_the_timeline(local_stack, browser, console):
    # Given a delivered message
    sim = new_sim()
    sent = local_stack.send(to=sim, text="status?").json()
    local_stack.wait_for_status(sent["id"], {"delivered"})

    # When the operator asks Eseye now
    response = browser.post(f"/messages/{sent['id']}/refresh", data={"csrf_token": token(console)}, follow_redirects=True)

    # Then Eseye's answer is told, and is the timeline's latest entry
    page = dom(response)
    [said] = flashes(page)
    assert said.startswith("Eseye reports ")
    entries = page.one("ol", id="timeline").all("li", data_event=True)
    assert entries[-1]["data-event"] == "refresh" and entries[-1].one("dl", class_="eseye")


def test_a_messages_status_callback_attempts_show_in_its_timeline(local_stack, browser):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    # Given a message whose status_callback receiver refuses the `pending` event (503) and takes the others
    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(503 if event["data"]["status"] == "pending" else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        sent = local_stack.send(to=new_sim(), text="call me back", status_callback=f"{url}?token=s3cret").json()

        def settled() -> list[dict] | None:
            attempts = [e for e in local_stack.get(sent["id"])["history"] if e["event"] == "callback"]
            outcomes = {(e["status"], e["detail"]["callback"]["outcome"]) for e in attempts}
            return attempts if {("pending", "refused"), ("delivered", "delivered")} <= outcomes else None

        # When its callbacks have been tried (the delivered one, and the refused pending one)
        wait_until(settled, 60, interval=0.3, message="a refused and a delivered callback on the message")
        page = dom(browser.get(f"/messages/{sent['id']}"))
    finally:
        server.shutdown()
        server.server_close()

    # Then each attempt is a timeline entry that says which event, the outcome, attempt, HTTP status and URL
    entries = page.one("ol", id="timeline").all("li", data_event="callback")
    refused = next(e for e in entries if e["data-status"] == "pending" and e["data-outcome"] == "refused")
    facts = refused.one("dl", class_="callback").text()
    assert "Refused by the receiver" in facts and "Attempt 1" in facts and "HTTP status 503" in facts and f"URL {url}" in facts
    delivered = next(e for e in entries if e["data-status"] == "delivered")
    assert "Delivered" in delivered.one("dl", class_="callback").text()
    assert "s3cret" not in page.one("ol", id="timeline").text()
    # And the fields sum the attempts up, and the page stops updating: delivered, and its callback settled
    assert "attempt" in page.one(id="callback-summary").text()
    assert "data-live" not in page.one("div", id="message-live").attrs


def test_an_mo_messages_page_links_its_command_and_offers_no_cancel(local_stack, browser):
    # Given a device's reply to a command
    sim = new_sim()
    command = local_stack.send(to=sim, text="PING", expect_reply_within=600).json()
    local_stack.wait_for_status(command["id"], {"delivered"})
    post_mo(local_stack, sim, "PONG")
    [mo] = wait_until(lambda: mos_of(local_stack, sim), 30, interval=0.2, message="the MO is stored")

    # When the reply's page and the command's are opened
    reply_page = dom(browser.get(f"/messages/{mo['id']}"))
    command_page = dom(browser.get(f"/messages/{command['id']}"))

    # Then each links to the other, the reply is final and offers neither Cancel nor Ask Eseye
    assert reply_page.one("a", class_="reply-to")["href"] == f"/messages/{command['id']}"
    assert command_page.one("a", class_="reply")["href"] == f"/messages/{mo['id']}"
    assert reply_page.one(id="message-status").text() == "received"
    assert not reply_page.all("form", id="message-cancel") and not reply_page.all("form", id="message-refresh")
    assert [e["data-event"] for e in reply_page.one("ol", id="timeline").all("li", data_event=True)] == ["received"]


def test_an_unknown_message_is_the_apis_404(browser, local_stack):
    # Given an id no message has; When its page is opened; Then the API's 404 in its words
    response = browser.get(f"/messages/{'0' * 32}")
    api = requests.get(f"{local_stack.api}/messages/{'0' * 32}", timeout=30).json()["error"]
    assert response.status_code == 404 and api["message"] in dom(response).one("div", class_="api-error").text()


# --- health -----------------------------------------------------------------------------------------------


def test_the_health_page_shows_every_dead_letter_queue_the_quarantine_and_eseyes_error_rate(local_stack, browser):
    # Given the stack's health as the API reports it
    health = requests.get(f"{local_stack.api}/health", timeout=30).json()

    # When the operator opens the health page
    response = browser.get("/health")

    # Then every dead-letter queue is a row with its depth, and a Redrive button where its messages can go back
    assert response.status_code == 200
    page = dom(response)
    rows = page.one("table", id="dead-letter-queues").all("tr", data_queue=True)
    assert [r["data-queue"] for r in rows] == [q["name"] for q in health["dead_letter_queues"]]
    for row, queue in zip(rows, health["dead_letter_queues"], strict=True):
        assert row.one("td", class_="depth").text().isdigit()
        buttons = [b.text() for b in row.all("button")]
        assert buttons == (["Redrive"] if queue["redrive"] else [])
    # And the quarantine's count and Eseye's error rate
    assert page.one(id="quarantine-count").text().isdigit()
    rate = page.one(id="eseye-error-rate").text()
    assert rate == "no sends" or rate.endswith("%")
    # And the figures are live: the fragment is the figures alone
    assert page.one("div", id="health-live")["data-live"] == "/health"
    fragment = browser.get("/health", headers={FRAGMENT_HEADER: "1"}).get_data(as_text=True)
    assert "<html" not in fragment and 'id="dead-letter-queues"' in fragment


def test_redrive_says_what_moved_and_a_refusal_in_the_apis_words(local_stack, browser, console):
    # Given a redrivable dead-letter queue and one that is not
    queues = requests.get(f"{local_stack.api}/health", timeout=30).json()["dead_letter_queues"]
    redrivable = next(q["name"] for q in queues if q["redrive"])
    stuck = next(q["name"] for q in queues if not q["redrive"])

    # When the operator redrives the first; Then they are told how many moved
    moved = browser.post("/health/redrive", data={"csrf_token": token(console), "queue": redrivable, "limit": "10"})
    assert moved.status_code == 303 and moved.headers["Location"] == "/health"
    [said] = flashes(dom(browser.get("/health")))
    assert re.fullmatch(rf"{redrivable}: \d+ moved back, \d+ still in the dead-letter queue\.", said)

    # When they redrive the second; Then the API's refusal, word for word
    refused = dom(browser.post("/health/redrive", data={"csrf_token": token(console), "queue": stuck}, follow_redirects=True))
    answer = requests.post(f"{local_stack.api}/health/redrive", json={"queue": stuck}, timeout=30)
    error = answer.json()["error"]
    assert flashes(refused) == [f"{answer.status_code} {error['code']}: {error['message']}"]


# --- the messages page (the lead's) and the console's guards ---------------------------------------------------


def test_the_messages_page_filters_by_client_ref_direction_and_status(local_stack, browser):
    # Given two messages with one client_ref, one delivered and one scheduled for tomorrow, and an MO
    sim, ref = new_sim(), f"console-{uuid.uuid4().hex[:10]}"
    delivered = local_stack.send(to=sim, text="a", client_ref=ref).json()
    send_at = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    scheduled = local_stack.send(to=sim, text="b", client_ref=ref, send_at=send_at).json()
    local_stack.wait_for_status(delivered["id"], {"delivered"})
    post_mo(local_stack, sim, "from the device")
    wait_until(lambda: mos_of(local_stack, sim), 30, interval=0.2, message="the MO is stored")

    def rows(**filters) -> list[tuple[str, str]]:
        page = dom(browser.get("/messages", query_string=filters))
        return [(r["data-message-id"], r["data-status"]) for r in page.one("tbody", id="message-rows").all("tr", data_message_id=True)]

    # When the log is filtered by the client_ref, then also by status; Then only those messages, newest first
    assert rows(client_ref=ref) == [(scheduled["id"], "scheduled"), (delivered["id"], "delivered")]
    assert rows(client_ref=ref, status="scheduled") == [(scheduled["id"], "scheduled")]
    # And by direction: the MO is among the MOs, never among the MTs
    mo_ids = {m["id"] for m in mos_of(local_stack, sim)}
    assert mo_ids <= {i for i, _ in rows(direction="mo", since=(datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"))}
    assert not mo_ids & {i for i, _ in rows(direction="mt")}


def test_a_filter_the_api_refuses_is_shown_in_its_words(browser, local_stack):
    # Given a range longer than the API allows; When the log is asked for it; Then the API's status and words
    response = browser.get("/messages", query_string={"since": "2026-01-01T00:00", "until": "2026-02-01T00:00"})
    api = requests.get(f"{local_stack.api}/messages", params={"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"}, timeout=30)
    assert response.status_code == api.status_code == 422
    assert api.json()["error"]["message"] in dom(response).one("div", class_="api-error").text()


@pytest.mark.parametrize(
    "path, form",
    [
        ("/sims/447700900123/send", {"text": "no token"}),
        (f"/messages/{'a' * 32}/cancel", {}),
        (f"/messages/{'a' * 32}/refresh", {}),
        ("/health/redrive", {"queue": "send-retries"}),
        ("/compose", {"target": "sim", "to": "447700900123", "text": "no token"}),
        (f"/batches/{'a' * 32}/cancel", {}),
    ],
)
def test_a_post_without_the_console_token_is_refused(browser, local_stack, path, form):
    # Given a form posted by another site (no token, or a wrong one)
    # When it reaches the console; Then 403, and nothing is sent
    before = requests.get(f"{local_stack.api}/messages", params={"msisdn": "447700900123"}, timeout=30).json()["items"]
    assert browser.post(path, data=form).status_code == 403
    assert browser.post(path, data={**form, "csrf_token": "forged"}).status_code == 403
    assert requests.get(f"{local_stack.api}/messages", params={"msisdn": "447700900123"}, timeout=30).json()["items"] == before


@pytest.mark.parametrize("path", ["/sims/447700900123", f"/messages/{'a' * 32}", "/health"])
def test_a_request_naming_another_host_is_misdirected(browser, path):
    # Given a name that points at loopback (DNS rebinding); When a page is asked through it; Then 421
    assert browser.get(path, headers={"Host": "attacker.example:8300"}).status_code == 421


# --- odd and hostile input, and an API that fails: a clear page, the right status, never a 500 ------------------

PAGES = ["/messages", "/sims/447700900123", f"/messages/{'a' * 32}", "/compose", "/batches", f"/batches/{'a' * 32}", "/health"]


def alert(response) -> str:
    """What the page says went wrong: its alert, as the operator reads it."""
    return " ".join(node.text() for node in dom(response).all(role="alert")).replace(" :", ":")


@pytest.mark.parametrize(
    "path",
    [
        "/messages/abc",
        f"/messages/{'z' * 32}",
        f"/messages/{'a' * 4000}",
        "/messages?status=nope&direction=sideways",
        "/messages?since=yesterday",
        "/messages?cursor=tampered",
        f"/messages?cursor={'A' * 10_000}",
        f"/messages?client_ref={'x' * 5000}",
        "/messages?unknown=filter&limit=-1",
        "/sims/abc",
        f"/sims/{'9' * 200}",
        "/sims/447700900123?cursor=tampered",
        "/sims/447700900123?part=queue",
        "/sims/447700900123?part=nonsense",
        "/sims?msisdn=%2F%2F",
        "/batches?state=nope&since=bad",
        "/batches?cursor=tampered",
        "/batches/abc?part=summary&status=zzz",
        f"/batches/{'0' * 32}?cursor=zz",
        "/compose?command=../../x&target=weird&var.%3Cb%3E=1",
        "/compose?encoding=klingon",
        "/compose?content=data&data=zz&data_coding=77",
        "/compose/analysis?command=nope&var.=x",
        "/compose/analysis?encoding=zzz",
        "/health?x=1",
    ],
)
def test_odd_input_on_any_page_is_a_clear_answer_never_a_500(browser, local_stack, path):
    # Given a URL an operator mistyped, pasted from elsewhere, or a tampered one
    # When the console is asked for it
    response = browser.get(path, follow_redirects=True)

    # Then it answers with a page (or the analysis) and a status that says whose the fault is, never a 500
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    assert "Traceback" not in response.get_data(as_text=True)
    if response.status_code >= 400 and response.mimetype == "text/html":
        assert alert(response), "an error page says what went wrong"


def test_the_queue_part_asked_as_a_page_is_the_whole_sim_page(browser, local_stack):
    # Given the URL of a SIM's live queue, opened as a page (a bookmark, a copied link) rather than by its script
    # When it is opened; Then the SIM's whole page, not a 500
    response = browser.get("/sims/447700900123?part=queue")
    assert response.status_code == 200
    page = dom(response)
    assert page.one("section", id="sim-queue") and page.one("form", id="sim-send")


def test_a_sim_typed_with_a_plus_opens_its_conversation(browser, local_stack):
    # Given a SIM's URL written with its + (as an operator types an MSISDN)
    # When it is opened; Then it leads to the SIM's conversation, as its digits name it
    response = browser.get("/sims/+447700900123")
    assert response.status_code in (301, 308) and response.headers["Location"] == "/sims/447700900123"
    assert browser.get(response.headers["Location"]).status_code == 200


@pytest.fixture(scope="module")
def failing_api():
    """An HTTP server that answers every request as `answer` says: (status, content type, body)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answer = {"now": (500, "text/html", b"<html><body><h1>Internal Server Error</h1></body></html>")}

    class Broken(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self):
            status, kind, body = answer["now"]
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answer
    server.shutdown()
    server.server_close()


def console_of(api_url: str):
    app = create_app(Client(api_url, max_retries=0))
    return app, app.test_client()


def every_page(browser) -> dict:
    """Each page of the console, as it answers now."""
    return {path: browser.get(path) for path in PAGES}


@pytest.mark.parametrize(
    "answer, said",
    [
        ((500, "text/html", b"<html><body><h1>Internal Server Error</h1></body></html>"), "500 http_error: <html><body><h1>Internal Server Error"),
        ((503, "application/json", b'{"message": "Service Unavailable"}'), "503 http_error: Service Unavailable"),
        (
            (502, "application/json", b'{"error": {"code": "eseye_unavailable", "message": "Eseye did not answer"}}'),
            "502 eseye_unavailable: Eseye did not answer",
        ),
    ],
)
def test_an_api_that_fails_is_a_bad_gateway_in_the_apis_words(failing_api, answer, said):
    # Given an API that answers with a server error (its own JSON, API Gateway's, or a proxy's HTML)
    url, answers = failing_api
    answers["now"] = answer
    app, browser = console_of(url)

    # When any page is opened
    for path, response in every_page(browser).items():
        # Then 502: the API failed, not the console; and the API's words, shown as text
        assert response.status_code == 502, path
        assert said in alert(response), path
    # And a form's action says so too, in the API's words
    sent = browser.post("/compose", data={"csrf_token": token(app), "to": "447700900123", "text": "x"})
    assert sent.status_code == 502 and said in alert(sent)


def test_an_api_answering_what_is_not_json_is_said_so(failing_api):
    # Given an address that answers, but not as the API does (a web server, a captive portal)
    url, answers = failing_api
    answers["now"] = (200, "text/html", b"<html>Welcome to nginx</html>")
    _, browser = console_of(url)

    # When a page is opened; Then a bad gateway that says the answer was not the API's JSON (not "unreachable")
    for path, response in every_page(browser).items():
        assert response.status_code == 502, path
        assert f"The API at {url} answered with something that is not JSON" in alert(response), path
    analysis = browser.get("/compose/analysis?text=hi")
    assert analysis.status_code == 502 and "not JSON" in analysis.get_json()["error"]


def test_an_api_that_cannot_be_reached_is_a_bad_gateway_that_names_it():
    # Given a console pointed at a port nothing listens on
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app, browser = console_of(closed)

    # When a page is opened, or a form posted; Then 502 and which API could not be reached
    for path, response in every_page(browser).items():
        assert response.status_code == 502 and f"The API at {closed} could not be reached" in alert(response), path
    refused = browser.post("/health/redrive", data={"csrf_token": token(app), "queue": "send-retries"})
    assert refused.status_code == 502 and f"The API at {closed} could not be reached" in alert(refused)


def test_an_api_that_hangs_holds_a_page_for_one_retry_not_the_clis_four_tries():
    # Given an API that takes connections and never answers, and a client with the CLI's four tries
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def take() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=take, daemon=True).start()
    hung = Client(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5, max_retries=3)
    app = create_app(hung)
    app.testing = True
    try:
        # When a page is opened
        response = app.test_client().get("/health")
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
    # Then the operator is told the API could not be reached, after two tries (one retry), not four
    assert response.status_code == 502 and "ReadTimeout" in alert(response)
    assert len(accepted) == 2


def test_an_answer_the_console_cannot_read_is_a_clear_page_without_a_traceback(failing_api):
    # Given an API answering JSON of another shape than its documents say
    url, answers = failing_api
    answers["now"] = (200, "application/json", b"[1, 2, 3]")
    _, browser = console_of(url)

    # When a page is opened; Then no traceback, and a failure is a page of the console's own that says so
    for path, response in every_page(browser).items():
        assert "Traceback" not in response.get_data(as_text=True), path
        assert response.status_code < 500 or "could not show this page" in alert(response), path


def test_every_page_with_data_is_never_stored_and_keeps_to_its_own_origin(browser, local_stack):
    # Given the console's pages, and an error page
    for path in [*PAGES, "/messages/abc", "/compose/analysis?text=hi"]:
        # When one is answered
        response = browser.get(path)
        # Then no cache keeps it (pages hold message texts and numbers), and nothing from elsewhere runs in it
        assert response.headers["Cache-Control"] == "no-store", path
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "base-uri 'none'" in policy and "frame-ancestors 'none'" in policy
        # And no page is readable by another origin's script
        assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8300.attacker.example", "localhost:evil", "127.0.0.1.attacker.example", "LOCALHOST.attacker.example:8300"]
)
def test_a_host_that_only_starts_like_loopback_is_misdirected(browser, host):
    # Given a Host header that begins as loopback's but names something else; When a page is asked; Then 421
    assert browser.get("/health", headers={"Host": host}).status_code == 421


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8300", "localhost:8300", "[::1]:8300"])
def test_loopback_by_any_of_its_names_is_served(browser, local_stack, host):
    assert browser.get("/health", headers={"Host": host}).status_code == 200


def test_a_form_larger_than_the_console_takes_is_refused_in_words(browser, console):
    # Given a pasted list far longer than any batch takes (100,000 numbers: the form is over the console's 1 MB)
    recipients = "\n".join(f"4477{n:09d}" for n in range(100_000))

    # When it is sent from compose
    response = browser.post("/compose", data={"csrf_token": token(console), "target": "list", "recipients": recipients, "text": "x"})

    # Then a page that says the form is too large and what to do instead
    assert response.status_code == 413
    assert "too large" in alert(response) and "group" in alert(response)


def test_every_input_has_a_label_every_button_a_name_and_headings_go_in_order(browser, local_stack):
    # Given every page of the console
    sim = new_sim()
    sent = local_stack.send(to=sim, text="hello", client_ref="a11y").json()
    local_stack.wait_for_status(sent["id"], {"delivered"})
    for path in ["/messages", f"/sims/{sim}", f"/messages/{sent['id']}", "/compose", "/batches", "/health", "/messages/abc"]:
        page = dom(browser.get(path))
        labelled_by_for = {label["for"] for label in page.all("label", for_=True)}
        # Then each field an operator fills in has a label: wrapped in one, named by one, or an aria-label
        for field in [*page.all("input"), *page.all("select"), *page.all("textarea")]:
            if field.attrs.get("type") == "hidden":
                continue
            wrapped, node = False, field.parent
            while node is not None:
                wrapped = wrapped or node.tag == "label"
                node = node.parent
            named = field.attrs.get("id") in labelled_by_for or "aria-label" in field.attrs or "aria-labelledby" in field.attrs
            assert wrapped or named, f"{path}: {field.tag} {field.attrs} has no label"
        # And each button says what it does
        for button in page.all("button"):
            assert button.text() or button.attrs.get("aria-label"), f"{path}: a button without a name"
        # And headings go down one level at a time, from a single h1
        levels = [int(node.tag[1]) for node in page.all() if re.fullmatch(r"h[1-6]", node.tag)]
        assert levels[0] == 1 and levels.count(1) == 1, f"{path}: {levels}"
        assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), f"{path}: {levels}"


def test_live_fragments_are_not_live_regions_and_one_polite_line_says_what_changed(browser, local_stack):
    # Given the pages whose parts refresh live
    sim = new_sim()
    sent = local_stack.send(to=sim, text="hello", send_at=(datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")).json()
    for path in ["/messages", f"/sims/{sim}", f"/messages/{sent['id']}", "/batches", "/health"]:
        page = dom(browser.get(path))
        # Then no refreshed fragment is itself a live region (replaced whole, it would be read out whole, or not at all)
        for live in page.all(data_live=True):
            assert "aria-live" not in live.attrs and not live.all(aria_live=True), f"{path}: {live.attrs}"
        # And one polite status line, outside them, is there for the script to say what changed
        announcer = page.one(id="live-announcer")
        assert (announcer["role"], announcer["aria-live"]) == ("status", "polite")


def test_every_form_that_posts_carries_the_console_token(browser, console, local_stack):
    # Given every page with a form that changes something (a waiting message, an active batch, the health page)
    sim = new_sim()
    waiting = local_stack.send(to=sim, text="later", send_at=(datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")).json()
    batch = local_stack.session.post(
        f"{local_stack.api}/batches", json={"to": [new_sim()], "text": "x", "send_at": waiting["send_at"]}, timeout=30
    ).json()
    for path in [f"/sims/{sim}", f"/messages/{waiting['id']}", "/compose", "/batches", f"/batches/{batch['id']}", "/health"]:
        forms = [f for f in dom(browser.get(path)).all("form") if f.attrs.get("method") == "post"]
        # Then each carries this console's token (a form another site makes cannot)
        assert forms, path
        for form in forms:
            assert [i["value"] for i in form.all("input", name="csrf_token")] == [token(console)], f"{path}: {form.attrs}"


def test_a_refusal_naming_fields_lists_them_in_the_apis_words(browser, local_stack):
    # Given a filter the API refuses by naming the field; When the batches page is asked for it
    response = browser.get("/batches", query_string={"state": "nope"})
    # Then each field the API names is listed with its words, not a block of JSON
    assert response.status_code == 422
    fields = dom(response).one("ul", class_="invalid-fields")
    assert fields.text().replace(" :", ":").startswith("state: must be one of")


def test_a_refused_sends_text_comes_back_in_the_box_not_in_a_url_and_no_link_fills_the_box(local_stack, browser, console):
    # Given a send the API refuses (Eseye refuses this SIM: no credit)
    response = browser.post(f"/sims/{new_sim()[:-4]}0570/send", data={"csrf_token": token(console), "text": "secret PIN 1234"})

    # Then the text is not in the address the browser goes back to (its history, its logs)
    assert response.status_code == 303 and "PIN" not in response.headers["Location"]
    # And the box has it again once there
    assert dom(browser.get(response.headers["Location"])).one("textarea", id="sim-text").text() == "secret PIN 1234"

    # And a link from elsewhere cannot fill a SIM's box with words of its own for the operator to send
    sim = new_sim()
    assert dom(browser.get(f"/sims/{sim}", query_string={"text": "FACTORY RESET"})).one("textarea", id="sim-text").text() == ""


def test_a_live_refresh_the_api_refuses_carries_the_apis_words(browser, local_stack):
    # Given the log's live refresh, asked with a filter the API refuses (a status it does not have)
    response = browser.get("/messages", query_string={"status": "nope"}, headers={FRAGMENT_HEADER: "1"})
    # Then its answer is the refusal in the API's words (the page's script shows them), not rows saying nothing matched
    api = requests.get(f"{local_stack.api}/messages", params={"status": "nope"}, timeout=30)
    assert response.status_code == api.status_code == 422
    assert api.json()["error"]["message"] in dom(response).one("div", class_="api-error").text()
