"""The operator console in a real browser (issue 15): Debian's Chromium, driven by Selenium through Debian's
chromedriver, against the console `make run` serves over the local stack.

Every page loads with nothing in the browser's console and no error flash, at 1280x900 and at phone width
(390x844, with nothing wider than the screen), screenshotted into .local/screenshots/. Sends, receipts, MOs
and a batch's cancel are watched arriving on pages that are never reloaded. Without the browser these tests
fail and say what to install (`make browser`); they are never skipped.
"""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.chromium import LIVE, LIVE_FETCHES, Console
from tests.e2e.conftest import running_stack
from tests.helpers import wait_until


def unused_sim() -> str:
    """A SIM no other test sends to (4477046...), whose messages the simulator delivers (never 0000, 0001, 0570)."""
    return f"4477046{random.randrange(1, 9):01d}{random.randrange(1000, 9999):04d}"


# --- data for the pages ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(local_stack):
    """A SIM with a delivered command and an MO, and a batch."""
    sim = unused_sim()
    sent = local_stack.send(to=sim, text="STATUS?", client_ref="console-e2e")
    assert sent.status_code == 202, sent.text
    local_stack.wait_for_status(sent.json()["id"], {"delivered"})
    post_mo(local_stack, sim, "TEMP 21C")
    batch = create_scheduled_batch(local_stack, [unused_sim(), unused_sim()])
    return {"msisdn": sim, "message_id": sent.json()["id"], "batch_id": batch["id"]}


def post_mo(stack, sim: str, text: str) -> None:
    """The device sends an MO, through the simulator as Eseye would deliver it."""
    requests.post(f"{stack.eseye.url}/_sim/mo", json={"source": sim, "text": text}, timeout=10).raise_for_status()


def create_scheduled_batch(stack, sims: list[str]) -> dict:
    send_at = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = requests.post(f"{stack.api}/batches", json={"to": sims, "text": "FIRMWARE CHECK", "send_at": send_at}, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


@pytest.fixture
def slow_receipts(local_stack):
    """Eseye's receipts come 8 s after the send (0.3 s otherwise), so a page shows the message before it is
    delivered and the change can be seen arriving."""
    eseye = local_stack.eseye
    before, eseye.receipt_delay = eseye.receipt_delay, 8.0
    yield
    eseye.receipt_delay = before


# --- every page -----------------------------------------------------------------------------------

PAGES = [
    # name, path, the element the contract promises on it (cli/smsgw_console, docs of the console)
    ("messages", "/messages", "tbody#message-rows tr[data-message-id]"),
    ("sim", "/sims/{msisdn}", "ol#conversation li[data-message-id]"),
    ("message", "/messages/{message_id}", "#message-status"),
    ("compose", "/compose", "form#compose-form"),
    ("batches", "/batches", "table#batches tr[data-batch-id]"),
    ("batch", "/batches/{batch_id}", "#batch-state"),
    ("health", "/health", "table#dead-letter-queues tr[data-queue]"),
]


@pytest.mark.parametrize(("name", "path", "landmark"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_loads_clean_at_desktop_and_phone_width(page, seeded, name, path, landmark):
    # Given a stack with a delivered message, an MO and an active batch
    # When the page is opened
    page.open(path.format(**seeded))
    overflow = page.screenshots(name)  # first, so that a failing page leaves its pictures too
    # Then it shows what it is for
    assert page.find_all(landmark), f"{name}: no {landmark} on {page.driver.current_url}: {page.text('main')[:300]!r}"
    # And nothing went wrong in the browser (script errors, CSP refusals, failed requests) nor on the page
    assert page.errors() == []
    # And at phone width nothing sticks out past the screen
    assert overflow == [], f"{name}: wider than a phone's 390 px"
    # And its live parts refresh without an error either
    if page.find_all("[data-live]"):
        wait_until(lambda: page.driver.execute_script(LIVE_FETCHES), timeout=LIVE, message=f"{name}: a live refresh")
        assert page.errors() == []


# --- live pages -----------------------------------------------------------------------------------


def compose_and_send(page, sim: str, text: str) -> str:
    """Send one SMS to one SIM with the compose form; returns the new message's id (from the page it lands on)."""
    page.open("/compose")
    page.find("input[name=target][value=sim]").click()
    page.find("input#to").send_keys(sim)
    page.find("textarea#text").send_keys(text)
    page.find("button#send").click()
    return landed_on_message(page)


def landed_on_message(page) -> str:
    found = wait_until(
        lambda: re.search(r"/messages/([0-9a-f]{32})$", page.driver.current_url), timeout=30, message="the send lands on the message's page"
    )
    return found.group(1)


def test_a_message_sent_from_compose_reaches_delivered_on_its_page_and_in_the_log_without_a_reload(page, local_stack, slow_receipts):
    # Given receipts that take 8 s
    # When an operator sends a message from the compose form
    first = compose_and_send(page, unused_sim(), "PING 1")
    # Then its page shows it before the receipt, and then delivered, without being reloaded
    page.mark()
    assert page.text("#message-status") in {"pending", "sent"}
    wait_until(lambda: page.text("#message-status") == "delivered", timeout=LIVE, message="#message-status reads delivered")
    assert page.was_not_reloaded()
    assert "delivered" in page.text("ol#timeline"), page.text("ol#timeline")
    assert page.errors() == []

    # When another is sent and the operator goes to the fleet's log while it is in flight
    second = compose_and_send(page, unused_sim(), "PING 2")
    page.open("/messages")
    page.mark()
    row = f"tr[data-message-id='{second}']"
    assert page.attribute(row, "data-status") in {"pending", "sent"}, f"{second} is not in the log before its receipt"
    # Then its row turns delivered without a reload, and the first one is listed delivered
    wait_until(lambda: page.attribute(row, "data-status") == "delivered", timeout=LIVE, message=f"{row} turns delivered")
    assert page.was_not_reloaded()
    assert page.attribute(f"tr[data-message-id='{first}']", "data-status") == "delivered"
    assert page.errors() == []


def test_an_mo_from_the_simulator_appears_in_the_sims_conversation_linked_to_the_command_without_a_reload(page, local_stack):
    # Given a SIM sent a command that expects a reply, delivered
    sim = unused_sim()
    command = local_stack.send(to=sim, text="REPORT TEMP", expect_reply_within=600).json()
    local_stack.wait_for_status(command["id"], {"delivered"})
    # And its conversation open in the console
    page.open(f"/sims/{sim}")
    page.mark()
    assert page.find_all(f"ol#conversation li[data-message-id='{command['id']}'][data-direction='mt']")
    # When the device replies through Eseye
    post_mo(local_stack, sim, "TEMP 22C")
    # Then the MO appears in the conversation, without a reload, linked to the command it answers
    mo = "ol#conversation li[data-direction='mo']"
    wait_until(lambda: "TEMP 22C" in page.text(mo), timeout=LIVE, message="the MO appears in the conversation")
    assert page.was_not_reloaded()
    wait_until(
        lambda: (page.attribute(f"{mo} a.reply-to", "href") or "").endswith((f"#m-{command['id']}", f"/messages/{command['id']}")),
        timeout=LIVE,
        message="the MO links to the command it replies to",
    )
    assert page.errors() == []


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory):
    """A stack of its own that sends one SMS a second toward Eseye, so that a batch takes a while."""
    with running_stack(tmp_path_factory.mktemp("slow-stack"), ESEYE_MAX_SENDS_PER_SECOND="1") as stack:
        yield stack


def test_an_active_batch_is_cancelled_from_the_batches_page(browser, page, slow_stack):
    # Given a batch of 60 SIMs being sent at one a second, so active for a minute
    response = requests.post(f"{slow_stack.api}/batches", json={"to": [unused_sim() for _ in range(60)], "text": "FIRMWARE CHECK"}, timeout=30)
    assert response.status_code == 202, response.text
    batch = response.json()
    row = f"table#batches tr[data-batch-id='{batch['id']}']"
    # And the batches page showing it with its progress and a cancel button
    page = Console(browser, slow_stack.outputs["ConsoleUrl"])
    page.open("/batches")
    wait_until(lambda: page.find_all(row), timeout=LIVE, message=f"{row} listed")
    assert page.attribute(row, "data-state") in {"accepted", "fanning_out", "sending"}
    assert page.find_all(f"{row} progress")
    # When the operator presses "Cancel batch" on its row
    page.click_button(row, "Cancel batch")
    # Then the console says it is done, the row shows it cancelled, and the API agrees
    wait_until(lambda: page.find_all(".flash.success"), timeout=30, message="a success flash")
    wait_until(lambda: page.attribute(row, "data-state") == "cancelled", timeout=LIVE, message=f"{row} reads cancelled")
    cancelled = requests.get(f"{slow_stack.api}/batches/{batch['id']}", timeout=30).json()
    assert cancelled["state"] == "cancelled"
    assert cancelled["counts"].get("cancelled", 0) + cancelled["counts"].get("accepted", 0) > 0, cancelled["counts"]
    assert page.errors() == []


def test_the_compose_form_is_filled_and_sent_with_the_keyboard_alone(page, local_stack):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    sim = unused_sim()
    keys = ActionChains(page.driver)
    page.open("/compose")
    focus_order: list[str] = []

    def focused() -> str:
        return page.driver.execute_script(
            "const e = document.activeElement; return e ? e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')"
            " + (e.name ? '[name=' + e.name + ']' : '') + (e.value && e.type === 'radio' ? '=' + e.value : '') : ''"
        )

    def tab_to(selector: str) -> None:
        for _ in range(60):
            keys.send_keys(Keys.TAB).perform()
            focus_order.append(focused())
            if page.driver.execute_script("return document.activeElement.matches(arguments[0])", selector):
                return
            if page.driver.execute_script("return document.activeElement.matches('input[name=target]')"):
                # a radio group is one tab stop: the arrow keys choose within it, as a keyboard user would
                for _ in range(3):
                    if page.find("input[name=target][value=sim]").is_selected():
                        break
                    keys.send_keys(Keys.ARROW_LEFT).perform()
        raise AssertionError(f"Tab never reached {selector}; the focus went {' -> '.join(focus_order)}")

    # Given the compose page, and only the keyboard
    # When the operator tabs to the SIM field and types, tabs to the message and types, tabs to Send and presses Enter
    tab_to("input#to")
    keys.send_keys(sim).perform()
    tab_to("textarea#text")
    keys.send_keys("KEYBOARD ONLY").perform()
    tab_to("button#send")
    keys.send_keys(Keys.ENTER).perform()
    # Then the message was sent to that SIM with that text
    message_id = landed_on_message(page)
    message = local_stack.get(message_id)
    assert (message["to"], message["text"]) == (sim, "KEYBOARD ONLY")
    assert page.errors() == []


def test_compose_analyses_the_text_as_it_is_typed_and_marks_what_forces_ucs2(page):
    # Given the compose page
    page.open("/compose")
    text = page.find("textarea#text")
    # When the operator types text that GSM-7 carries
    text.send_keys("Price 5 EUR")
    # Then the analysis says GSM-7 against its 160 limit, and marks nothing
    wait_until(lambda: page.text("#analysis-length") == "11 / 160", timeout=30, message="11 / 160")
    assert page.text("#analysis-encoding") == "GSM-7"
    assert page.find_all("#analysis-preview mark.forces-ucs2") == []
    # When a character GSM-7 lacks is added
    text.send_keys(" ✓")
    # Then it turns UCS-2 against the 70-unit limit, with that character marked in the preview
    wait_until(lambda: page.text("#analysis-encoding") == "UCS-2", timeout=30, message="the analysis turns UCS-2")
    wait_until(lambda: page.text("#analysis-length") == "13 / 70", timeout=30, message="13 / 70 code units")
    assert [mark.text for mark in page.find_all("#analysis-preview mark.forces-ucs2")] == ["✓"]
    assert float(page.attribute("meter#analysis-meter", "value") or 0) == 13
    assert page.errors() == []


def test_a_pasted_list_from_compose_becomes_a_batch_shown_on_its_page(page, local_stack):
    sims = [unused_sim() for _ in range(3)]
    # Given the compose form with a pasted list of three SIMs
    page.open("/compose")
    page.find("input[name=target][value=list]").click()
    page.find("textarea#recipients").send_keys("\n".join(sims))
    page.find("textarea#text").send_keys("CONFIG RELOAD")
    # When it is sent
    page.find("button#send").click()
    # Then the console lands on the new batch's page, which says so and follows it to completed
    found = wait_until(
        lambda: re.search(r"/batches/([0-9a-f]{32})$", page.driver.current_url), timeout=30, message="the send lands on the batch's page"
    )
    assert "3 recipients" in page.text(".flash.success")
    wait_until(lambda: "completed" in page.text("#batch-state"), timeout=LIVE, message="#batch-state reads completed")
    batch = requests.get(f"{local_stack.api}/batches/{found.group(1)}", timeout=30).json()
    assert (batch["total"], batch["counts"]) == (3, {"delivered": 3})
    assert page.errors() == []


# --- live refreshes and the operator's keyboard ------------------------------------------------------------

# What has focus: its tag, the message whose row it is in, and its value
ACTIVE = "const e = document.activeElement; return [e.tagName.toLowerCase(), e.closest('[data-message-id]')?.dataset.messageId ?? '', e.value ?? '']"


def test_a_live_refresh_keeps_focus_where_the_operator_left_it_and_says_what_is_new(page, local_stack):
    # Given the fleet's log, with focus (from the keyboard) on a message's link
    shown = local_stack.send(to=unused_sim(), text="FOCUS ME").json()["id"]
    page.open("/messages")
    wait_until(lambda: page.find_all(f"tr[data-message-id='{shown}'] a"), timeout=LIVE, message="the message is listed")
    page.driver.execute_script("document.querySelector(arguments[0]).focus()", f"tr[data-message-id='{shown}'] a")
    page.mark()

    # When a new message arrives, and the rows are refreshed
    arrived = local_stack.send(to=unused_sim(), text="NEW ONE").json()["id"]
    wait_until(lambda: page.find_all(f"tr[data-message-id='{arrived}']"), timeout=LIVE, message="the new message is listed")

    # Then focus is still on that message's link (not thrown back to the page's start), and nothing reloaded
    assert page.driver.execute_script(ACTIVE)[:2] == ["a", shown]
    assert page.was_not_reloaded()
    # And the rows themselves are not a live region read out whole: one polite line says what is new
    assert page.attribute("tbody#message-rows", "aria-live") is None
    wait_until(lambda: "new message" in page.text("#live-announcer"), timeout=LIVE, message="the announcer says a message is new")
    assert page.attribute("#live-announcer", "aria-live") == "polite"
    assert page.errors() == []


def test_a_live_refresh_never_overwrites_what_the_operator_is_typing(page, local_stack):
    # Given the health page, with the operator typing a redrive limit (its figures refresh every 5 s)
    page.open("/health")
    field = "tr[data-queue='send-retries'] input[name=limit]"
    page.find(field).clear()
    page.find(field).send_keys("7")
    page.mark()

    # When the figures change under it (Eseye's sends are counted) and a refresh comes and goes
    sent = local_stack.send(to=unused_sim(), text="COUNT ME").json()["id"]
    local_stack.wait_for_status(sent, {"delivered"})
    time.sleep(12)

    # Then the field still has focus and what was typed
    assert page.driver.execute_script(ACTIVE) == ["input", "", "7"]
    # And once the operator leaves it, the figures catch up
    before = page.text("#health-live")
    page.driver.execute_script("document.activeElement.blur()")
    wait_until(lambda: page.text("#health-live") != before, timeout=LIVE, message="the health figures refresh")
    assert page.was_not_reloaded()
    assert page.errors() == []


def test_a_message_page_that_stops_being_live_keeps_focus_where_it_was(page, local_stack, slow_receipts):
    # Given a message's page while it waits for its receipt, with focus on its client ref's link
    sent = local_stack.send(to=unused_sim(), text="FOCUS", client_ref="focus-kept").json()["id"]
    page.open(f"/messages/{sent}")
    link = "#message-live a[href*='client_ref=focus-kept']"
    page.driver.execute_script("document.querySelector(arguments[0]).focus()", link)
    page.mark()

    # When the receipt comes, the page shows delivered and stops refreshing
    wait_until(lambda: page.text("#message-status") == "delivered", timeout=LIVE, message="#message-status reads delivered")
    wait_until(lambda: page.attribute("#message-live", "data-live") is None, timeout=LIVE, message="the page stops refreshing")

    # Then focus is still on that link, and the change was said in one line
    assert page.driver.execute_script("return document.activeElement.matches(arguments[0])", link)
    wait_until(lambda: page.text("#live-announcer") == "Status: delivered", timeout=10, message="the announcer says the status")
    assert page.was_not_reloaded()
    assert page.errors() == []


def test_a_live_refresh_leaves_what_the_operator_opened_open(page, local_stack, slow_receipts):
    # Given a message's page while it waits for its receipt, with Eseye's answer as sent opened
    sent = local_stack.send(to=unused_sim(), text="OPEN ME").json()["id"]
    page.open(f"/messages/{sent}")
    opened = "#message-live li[data-event='eseye_send'] details"
    wait_until(lambda: page.find_all(opened), timeout=LIVE, message="Eseye's answer is on the timeline")
    page.find(f"{opened} summary").click()
    assert page.attribute(opened, "open") == "True"

    # When the receipt comes and the timeline is refreshed
    wait_until(lambda: page.text("#message-status") == "delivered", timeout=LIVE, message="#message-status reads delivered")

    # Then Eseye's answer is still open
    assert page.attribute(opened, "open") == "True"
    assert page.errors() == []
