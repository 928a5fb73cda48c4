"""The console's compose and batches pages, through Flask's test client, against the running local stack:
the encoding analysis is the API's dry run, sends and batches are the API's, refusals are in the API's words."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from smsgw_client import ApiError, Client
from tests.helpers import console_token as token
from tests.helpers import wait_until
from tests.html_page import dom as page

pytestmark = pytest.mark.e2e


# --- the console against the local stack ----------------------------------------------------------------


@pytest.fixture(scope="module")
def api(local_stack):
    return Client(local_stack.api)


@pytest.fixture
def browser(console):
    return console.test_client()


def compose(browser, console, **fields):
    return browser.post("/compose", data={"csrf_token": token(console), **fields})


def sim(suffix: int) -> str:
    # unique per run; never ending 0000 (the simulator fails those) or 0001 (no receipt)
    return f"44770{uuid.uuid4().int % 10**6:06d}{suffix:02d}"


def silent_sim() -> str:
    """A SIM whose messages the simulator never receipts: they stay `sent`, so their batch stays under way."""
    return f"4477{uuid.uuid4().int % 10**6:06d}0001"


def later(minutes: int = 10) -> str:
    """A datetime-local value (UTC), as the form's field gives it."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M")


def created_id(response, prefix: str) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    match = re.fullmatch(rf"{prefix}/([0-9a-f]{{32}})", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


# --- the encoding analysis -------------------------------------------------------------------------------


def test_the_analysis_says_gsm7_or_ucs2_and_names_the_characters_that_force_ucs2(browser):
    # Given plain text / When it is analysed / Then it is GSM-7 against the 160 limit
    plain = browser.get("/compose/analysis", query_string={"text": "Hello fleet"}).get_json()
    assert (plain["label"], plain["length"], plain["limit"], plain["unicode_characters"], plain["fits"]) == ("GSM-7", 11, 160, [], True)
    # Given text with a tick and an emoji / Then UCS-2, with exactly those characters named, in UTF-16 units
    mixed = browser.get("/compose/analysis", query_string={"text": "Hi ✓ 😀 ok"}).get_json()
    assert (mixed["label"], mixed["length"], mixed["limit"], mixed["unicode_characters"]) == ("UCS-2", 10, 70, ["✓", "😀"])
    # Given text too long for one SMS / Then the meter is over its limit and the API's words say why
    long = browser.get("/compose/analysis", query_string={"text": "x" * 161}).get_json()
    assert (long["length"], long["limit"], long["fits"]) == (161, 160, False)
    assert "message too long for one SMS" in long["error"]


def test_data_is_measured_in_octets_against_its_data_codings_limit_and_sent_as_data(browser, console, api):
    # Given five octets of 8-bit data / When analysed / Then 8-bit, 5 of the 140 octets
    query = {"content": "data", "data": "48656C6C6F", "data_coding": "4"}
    found = browser.get("/compose/analysis", query_string=query).get_json()
    assert (found["label"], found["length"], found["limit"], found["unit"]) == ("8-bit", 5, 140, "octets")
    # When the form sends them to a SIM / Then the message carries the data with its coding
    message = api.get_message(created_id(compose(browser, console, target="sim", to=sim(32), text="", **query), "/messages"))
    assert (message["data"], message["data_coding"], message.get("text")) == ("48656C6C6F", "4", None)


def test_a_forced_encoding_that_cannot_carry_the_text_names_the_characters_in_the_apis_words(browser):
    # When text with a tick is analysed with GSM-7 forced
    found = browser.get("/compose/analysis", query_string={"text": "OK ✓", "encoding": "gsm7"}).get_json()
    # Then the API's refusal is shown and the tick is the character to mark
    assert found["unicode_characters"] == ["✓"] and found["fits"] is False
    assert "outside the GSM 03.38 basic alphabet" in found["error"]


def test_the_compose_page_marks_each_character_that_forces_ucs2_with_the_text_escaped(browser):
    # When the page opens with a text holding markup and a non-GSM character
    response = browser.get("/compose", query_string={"text": "<b>café ✓</b>"})
    # Then the analysis says UCS-2 with its length against the limit
    document = page(response)
    assert document.one(id="analysis-encoding").raw_text() == "UCS-2"
    assert document.one(id="analysis-length").raw_text() == "13 / 70"
    meter = document.one("meter", id="analysis-meter")
    assert (meter.attrs["value"], meter.attrs["max"]) == ("13", "70")
    # and the preview marks the tick alone, and shows the markup as text, not as elements
    preview = document.one(id="analysis-preview")
    assert [m.raw_text() for m in preview.all("mark", class_="forces-ucs2")] == ["✓"]
    assert preview.raw_text() == "<b>café ✓</b>" and not preview.all("b")
    assert document.one(id="analysis-summary").attrs["aria-live"] == "polite"


def test_a_keystrokes_dry_run_stores_nothing_and_spends_no_idempotency_key(api, local_stack):
    # Given a dry run that carries a client_ref and an Idempotency-Key
    to, key, ref = sim(11), uuid.uuid4().hex, f"dry-{uuid.uuid4().hex[:12]}"
    answer = api.send_message(to, "PROBE", dry_run=True, client_ref=ref, idempotency_key=key)
    assert answer["dry_run"] is True
    # When a real send then uses the same key with another body
    sent = api.send_message(to, "REAL", idempotency_key=key)
    # Then it is a send of its own (a stored key would have answered 409), and the dry run left no message
    assert sent["text"] == "REAL" and sent["status"] in ("sent", "pending", "queued")
    assert api.list_messages(client_ref=ref)["items"] == []
    assert [m["text"] for m in api.list_messages(msisdn=to)["items"]] == ["REAL"]


# --- sending ----------------------------------------------------------------------------------------------


def test_a_single_send_redirects_to_its_timeline_and_the_message_exists(browser, console, api):
    # Given a SIM / When the form sends to it
    to = sim(12)
    response = compose(browser, console, target="sim", to=to, text="CONSOLE HELLO", client_ref="console-e2e")
    # Then the console redirects to the new message's timeline, and the API has it as sent
    message_id = created_id(response, "/messages")
    message = api.get_message(message_id)
    assert (message["to"], message["text"], message["client_ref"]) == (to, "CONSOLE HELLO", "console-e2e")
    assert wait_until(lambda: api.get_message(message_id)["status"] == "delivered", 60, interval=0.3)


def test_a_line_break_is_sent_as_the_operator_typed_it(browser, console, api):
    # Given a two-line text, as a browser submits a textarea (CRLF)
    response = compose(browser, console, target="sim", to=sim(13), text="LINE ONE\r\nLINE TWO")
    # Then the message has one LF between the lines, as the analysis counted it
    assert api.get_message(created_id(response, "/messages"))["text"] == "LINE ONE\nLINE TWO"
    counted = browser.get("/compose/analysis", query_string={"text": "LINE ONE\nLINE TWO"}).get_json()
    assert counted["length"] == 17


def test_a_scheduled_send_is_scheduled_at_its_utc_time(browser, console, api):
    # Given a time ten minutes ahead in the form's UTC field
    when = later(10)
    # When the form sends with it
    response = compose(browser, console, target="sim", to=sim(14), text="LATER", send_at=when)
    # Then the message waits, scheduled for exactly that time
    message = api.get_message(created_id(response, "/messages"))
    assert message["status"] == "scheduled"
    assert datetime.fromisoformat(message["send_at"].replace("Z", "+00:00")) == datetime.fromisoformat(f"{when}:00+00:00")
    api.cancel_message(message["id"])


def test_a_saved_command_offers_its_variables_and_sends_the_text_the_api_renders(browser, console, api):
    # Given a saved command with two variables
    name = f"console-set-{uuid.uuid4().hex[:8]}"
    variables = {"key": {"pattern": "[A-Z]{1,8}", "max_length": 8}, "value": {"pattern": "[0-9]{1,4}", "max_length": 4}}
    api.put_command(name, {"text": "SET {key}={value}", "variables": variables, "description": "set a key"})
    # When the form is opened with it
    document = page(browser.get("/compose", query_string={"command": name}))
    # Then each variable has a labelled input named var.<variable>
    inputs = {e.attrs["name"]: e for e in document.all("input") if e.attrs.get("name", "").startswith("var.")}
    assert set(inputs) == {"var.key", "var.value"}
    assert {e.parent.tag for e in inputs.values()} == {"label"} and inputs["var.key"].parent.raw_text().strip().startswith("key")
    # and choosing it in the page fetches the same inputs alone, as the page's script does
    fragment = browser.get("/compose", query_string={"command": name}, headers={"X-Console-Fragment": "1"})
    assert "<form" not in fragment.get_data(as_text=True)
    assert {e.attrs["name"] for e in page(fragment).all("input")} == {"var.key", "var.value"}
    # and the analysis is the command's worst case while the values are missing, then the rendered text's
    worst = browser.get("/compose/analysis", query_string={"command": name}).get_json()
    assert worst["worst_case"] and (worst["length"], worst["limit"]) == (api.get_command(name)["worst_case"]["length"], 160)
    rendered = browser.get("/compose/analysis", query_string={"command": name, "var.key": "APN", "var.value": "42"}).get_json()
    assert (rendered["preview"], rendered["length"], rendered["label"]) == ("SET APN=42", 10, "GSM-7")
    # When the form sends it to a SIM
    response = compose(browser, console, target="sim", to=sim(15), command=name, **{"var.key": "APN", "var.value": "42"})
    # Then the API rendered the text with the values
    message = api.get_message(created_id(response, "/messages"))
    assert (message["text"], message["command"], message["variables"]) == ("SET APN=42", name, {"key": "APN", "value": "42"})


def test_a_pasted_list_and_a_group_each_become_a_batch(browser, console, api):
    # Given three SIMs pasted one a line and with commas, and a group of two
    listed = [sim(16), sim(17), sim(18)]
    group = f"console-{uuid.uuid4().hex[:8]}"
    api.put_group(group, [sim(19), sim(21)])
    # When the form sends to the list, and to the group
    to_list = compose(browser, console, target="list", recipients=f"{listed[0]}\r\n{listed[1]}, {listed[2]}\r\n", text="FLEET PING")
    to_group = compose(browser, console, target="group", group=group, text="GROUP PING")
    # Then each redirects to its batch, which the API has with those recipients
    list_batch = api.get_batch(created_id(to_list, "/batches"))
    group_batch = api.get_batch(created_id(to_group, "/batches"))
    assert (list_batch["source"], list_batch["total"], list_batch["text"]) == ("to", 3, "FLEET PING")
    assert (group_batch["source"], group_batch["group"], group_batch["text"]) == ("group", group, "GROUP PING")
    # and the group's page lists it in the form's group choices
    options = [o.attrs["value"] for o in page(browser.get("/compose")).one("select", id="group").all("option")]
    assert group in options


def test_a_saved_command_goes_to_every_recipient_of_a_list(browser, console, api):
    # Given a saved command with one variable
    name = f"console-ping-{uuid.uuid4().hex[:8]}"
    api.put_command(name, {"text": "PING {n}", "variables": {"n": {"pattern": "[0-9]{1,3}", "max_length": 3}}})
    listed = [sim(22), sim(23)]
    # When the form sends it to a pasted list
    batch_id = created_id(compose(browser, console, target="list", recipients="\n".join(listed), command=name, **{"var.n": "7"}), "/batches")
    # Then every recipient's message is the rendered text
    done = wait_until(lambda: (b := api.get_batch(batch_id)).get("completed_at") and b, 120, interval=0.5)
    assert done["counts"] == {"delivered": 2}
    assert sorted((m["to"], m["text"]) for m in api.batch_messages(batch_id)["items"]) == [(to, "PING 7") for to in sorted(listed)]


def test_an_invalid_recipient_shows_the_apis_words_and_keeps_the_operators_input(browser, console, api):
    # Given a pasted list with one number that is not an MSISDN
    good, bad = sim(24), "12ab34"
    pasted = f"{good}\n{bad}"
    # When the form sends to it
    response = compose(browser, console, target="list", recipients=pasted, text="KEEP ME", client_ref="kept-ref")
    # Then the API's 422 is shown as the API words it, naming the bad recipient
    assert response.status_code == 422
    document = page(response)
    refusal = document.one(id="compose-error")
    with pytest.raises(ApiError) as direct:
        api.create_batch({"to": [good, bad], "text": "KEEP ME"})
    assert f"422 {direct.value.code}: {direct.value.message}" in " ".join(refusal.raw_text().split())
    assert [li.one("span", class_="recipient").raw_text() for li in refusal.all("li")] == [bad]
    # and the form keeps what the operator entered
    assert document.one("textarea", id="recipients").raw_text() == pasted
    assert document.one("textarea", id="text").raw_text() == "KEEP ME"
    assert document.one("input", id="client_ref").attrs["value"] == "kept-ref"
    target = [e for e in document.all("input") if e.attrs.get("name") == "target" and "checked" in e.attrs]
    assert [e.attrs["value"] for e in target] == ["list"]


def test_a_list_sent_skipping_invalid_numbers_names_them_on_its_batch_page(browser, console, api):
    # Given a pasted list with one number that is not an MSISDN, sent with "skip invalid"
    good, bad = sim(33), "12ab34"
    response = compose(browser, console, target="list", recipients=f"{good}\n{bad}", text="REST", skip_invalid="1")
    # Then the batch goes to the valid one, and its page names the skipped one with the API's reason
    batch_id = created_id(response, "/batches")
    assert (api.get_batch(batch_id)["total"], api.get_batch(batch_id)["skipped"]) == (2, 1)
    skipped = page(browser.get(f"/batches/{batch_id}")).one("details", class_="skipped")
    assert [li.one("span", class_="recipient").raw_text() for li in skipped.all("li")] == [bad]
    assert "must be an MSISDN" in skipped.raw_text()


def test_a_refused_single_send_shows_the_fields_the_api_names(browser, console):
    # When the form sends to a number that is not an MSISDN
    response = compose(browser, console, target="sim", to="not-a-sim", text="HELLO")
    # Then the API's words name the field, and the form keeps the SIM typed
    assert response.status_code == 422
    document = page(response)
    assert "to: must be an MSISDN in international format" in document.one(id="compose-error").raw_text()
    assert document.one("input", id="to").attrs["value"] == "not-a-sim"


def test_an_encoding_the_api_does_not_know_keeps_the_form_and_says_why(browser, console):
    # Given an encoding no form offers (a hand-edited URL, an old bookmark)
    # When compose is opened with it; Then the form, with the analysis saying the API's refusal
    opened = browser.get("/compose", query_string={"encoding": "klingon"})
    assert opened.status_code == 200
    document = page(opened)
    assert document.one("form", id="compose-form") and "encoding: must be one of" in document.one(id="analysis-error").raw_text()
    # When it is sent; Then the API's refusal above the form, which keeps the text
    sent = compose(browser, console, target="sim", to=sim(40), text="KEEP", encoding="klingon")
    assert sent.status_code == 422
    document = page(sent)
    assert "encoding" in document.one(id="compose-error").raw_text() and document.one("textarea", id="text").raw_text() == "KEEP"


def test_a_negative_reply_wait_is_refused_by_name(browser, console):
    # When the form asks for a reply within -5 seconds
    response = compose(browser, console, target="sim", to=sim(41), text="HELLO", expect_reply_within="-5")
    # Then the API's words name the field and its range (not "the body is not of the documented shape")
    assert response.status_code == 422
    assert "expect_reply_within: must be a whole number of seconds" in page(response).one(id="compose-error").raw_text()


def test_a_pasted_list_over_the_batch_limit_is_refused_in_the_apis_words(browser, console, api):
    # Given a pasted list of 20,000 numbers, more than one batch takes
    recipients = "\n".join(f"4477{n:09d}" for n in range(20_000))
    # When it is sent
    response = compose(browser, console, target="list", recipients=recipients, text="TOO MANY")
    # Then the API's refusal, word for word, and nothing was sent
    with pytest.raises(ApiError) as direct:
        api.create_batch({"to": recipients.split("\n"), "text": "TOO MANY"})
    assert response.status_code == direct.value.status == 422
    assert direct.value.message in " ".join(page(response).one(id="compose-error").raw_text().split())


# --- batches ----------------------------------------------------------------------------------------------


def test_a_batch_is_cancelled_from_its_page(browser, console, api):
    # Given a batch still under way (its SIMs never receipt)
    batch_id = created_id(compose(browser, console, target="list", recipients=f"{silent_sim()}\n{silent_sim()}", text="NEVER"), "/batches")
    document = page(browser.get(f"/batches/{batch_id}"))
    cancel = document.one("form", id="batch-cancel")
    assert cancel.attrs["action"] == f"/batches/{batch_id}/cancel" and cancel.one("button").raw_text().strip() == "Cancel batch"
    # When the operator cancels it
    response = browser.post(f"/batches/{batch_id}/cancel", data={"csrf_token": token(console)})
    # Then the console goes back to the batch, which the API has cancelled, and the page says so
    assert (response.status_code, response.headers["Location"]) == (303, f"/batches/{batch_id}")
    assert api.get_batch(batch_id)["state"] == "cancelled"
    after = page(browser.get(f"/batches/{batch_id}"))
    assert after.one(id="batch-state").raw_text() == "cancelled"
    assert not after.all("form", id="batch-cancel")
    assert "cancelled" in after.one("p", class_="success").raw_text()
    # and the live parts the page re-fetches say so too: cancelled, and no Cancel button any more
    summary = page(browser.get(f"/batches/{batch_id}", query_string={"part": "summary"}, headers={"X-Console-Fragment": "1"}))
    assert summary.one(id="batch-state").raw_text() == "cancelled"
    actions = browser.get(f"/batches/{batch_id}", query_string={"part": "actions"}, headers={"X-Console-Fragment": "1"})
    assert actions.status_code == 200 and not page(actions).all("form")


def test_cancelling_a_batch_that_has_ended_shows_the_apis_refusal(browser, console, api):
    # Given a batch that completed
    batch_id = created_id(compose(browser, console, target="list", recipients=sim(31), text="DONE"), "/batches")
    wait_until(lambda: api.get_batch(batch_id).get("completed_at"), 120, interval=0.5)
    # When a page opened earlier still sends its Cancel
    response = browser.post(f"/batches/{batch_id}/cancel", data={"csrf_token": token(console)}, follow_redirects=True)
    # Then the API's 409 is shown in its own words
    with pytest.raises(ApiError) as direct:
        api.cancel_batch(batch_id)
    assert f"409 {direct.value.code}: {direct.value.message}" in page(response).one("p", class_="error").raw_text()


def test_a_scheduled_batch_waits_for_its_send_at_and_cancels_whole(browser, console, api):
    # Given a batch the form schedules half an hour ahead
    batch_id = created_id(compose(browser, console, target="list", recipients=f"{sim(25)}\n{sim(26)}", text="LATER", send_at=later(30)), "/batches")
    # Then its messages wait, scheduled
    wait_until(lambda: sum(api.get_batch(batch_id)["counts"].values()) == 2 and "accepted" not in api.get_batch(batch_id)["counts"], 60, interval=0.5)
    assert api.get_batch(batch_id)["counts"] == {"scheduled": 2}
    # When it is cancelled from its page / Then every message ends cancelled
    browser.post(f"/batches/{batch_id}/cancel", data={"csrf_token": token(console)})
    assert wait_until(lambda: api.get_batch(batch_id)["counts"] == {"cancelled": 2}, 60, interval=0.5)


def test_the_batches_list_shows_each_batchs_progress_and_counts_live(browser, console, api):
    # Given a batch of two SIMs that completes
    batch_id = created_id(compose(browser, console, target="list", recipients=f"{sim(27)}\n{sim(28)}", text="COUNT ME"), "/batches")
    wait_until(lambda: api.get_batch(batch_id).get("completed_at"), 120, interval=0.5)
    # When the batches page is opened, and its rows fetched as the live script does
    document = page(browser.get("/batches"))
    fragment = page(browser.get("/batches", headers={"X-Console-Fragment": "1"}))
    # Then its row shows it completed, its progress full and its messages counted by status
    assert document.one("tbody", id="batch-rows").attrs["data-live"].startswith("/batches")
    for found in (document, fragment):
        row = found.one("tr", data_batch_id=batch_id)
        assert row.attrs["data-state"] == "completed"
        bar = row.one("progress")
        assert (bar.attrs["value"], bar.attrs["max"]) == ("2", "2")
        assert {li.attrs["data-status"]: li.one("span", class_="count").raw_text() for li in row.all("li")} == {"delivered": "2"}
        assert not row.all("form")  # nothing to cancel
    # and the batch's page shows the same, and its messages by status
    detail = page(browser.get(f"/batches/{batch_id}", query_string={"status": "delivered"}))
    assert detail.one(id="batch-state").raw_text() == "completed"
    assert len(detail.one("tbody", id="batch-message-rows").all("tr", data_status="delivered")) == 2


def test_an_active_batch_has_a_cancel_form_in_the_list(browser, console):
    # Given a batch still under way
    batch_id = created_id(compose(browser, console, target="list", recipients=silent_sim(), text="UNDER WAY"), "/batches")
    # When the batches page is opened
    row = page(browser.get("/batches")).one("tr", data_batch_id=batch_id)
    # Then its row has a Cancel batch form, which goes back to the list
    form = row.one("form")
    assert form.attrs["action"] == f"/batches/{batch_id}/cancel" and form.one("button").raw_text() == "Cancel batch"
    response = browser.post(form.attrs["action"], data={"csrf_token": token(console), "back": "index"})
    assert (response.status_code, response.headers["Location"]) == (303, "/batches")
