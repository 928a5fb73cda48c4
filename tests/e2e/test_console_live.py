"""The messages log's live refresh reads only what can have changed (issue 15's console cost).

An open Messages tab re-fetches its first page every 2 s. Re-reading the span its rows show costs a quiet
fleet whose rows spread over a day up to 200 index queries (16 shards an hour) a refresh. A row in a settled
status (delivered, rejected, blocked, received) never changes, so the page's live URL carries newer_than
(the newest row's time, or 15 minutes before the console's clock if later) and the rows shown that may still
change or lie in that window (shown=<id>.<status>). The refresh asks the fleet listing from a minute before
newer_than, GET /messages/{id} for each row not settled outside it, and answers only new rows and rows whose
status changed; the page's script merges them by data-message-id. A status-filtered page still refreshes its
whole window. Flask's test client over the local stack's real API; the figures are benchmarks/console.py's.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from smsgw_client import Client
from smsgw_console.pages.messages import LIVE_MARGIN, PATCH_HEADER, ROW_MARGIN, SETTLED, narrowed_since
from smsgw_console.server import FRAGMENT_HEADER, LIVE_URL_HEADER, create_app
from tests.e2e.chromium import LIVE
from tests.helpers import new_sim, wait_until
from tests.html_page import dom

# The log's refreshes the browser made so far (its resource timings)
LOG_FETCHES = (
    "return performance.getEntriesByType('resource').filter(r => r.initiatorType === 'fetch' && new URL(r.name).pathname === '/messages').length"
)


class Recorded:
    """The console's client, with every API request it makes written down (method, path, query)."""

    def __init__(self, api: str):
        session = requests.Session()
        self.calls: list[tuple[str, str, dict[str, list[str]]]] = []
        session.hooks["response"].append(self._record)
        self.client = Client(api, session=session)

    def _record(self, response: requests.Response, *_, **__) -> None:
        url = urlsplit(response.request.url)
        self.calls.append((str(response.request.method), url.path, parse_qs(url.query)))

    def message_reads(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for method, path, _ in self.calls if method == "GET" and "/messages/" in path]

    def fleet_listings(self) -> list[dict[str, list[str]]]:
        return [query for method, path, query in self.calls if method == "GET" and path.endswith("/messages") and "msisdn" not in query]


@pytest.fixture
def recorded(local_stack):
    return Recorded(local_stack.api)


@pytest.fixture
def console(recorded):
    app = create_app(recorded.client)
    app.testing = True
    return app.test_client()


@pytest.fixture
def slow_receipts(local_stack):
    eseye = local_stack.eseye
    before, eseye.receipt_delay = eseye.receipt_delay, 4.0
    yield
    eseye.receipt_delay = before


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def rows(root) -> list[tuple[str, str, str]]:
    """(id, status, created_at) of each row, as the page lists them."""
    return [(r["data-message-id"], r["data-status"], r.one("time")["datetime"]) for r in root.all("tr", data_message_id=True)]


def live_query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def shown(url: str) -> dict[str, str]:
    """The rows a live URL watches: id -> the status the page shows."""
    entries = [entry.split(".") for entry in live_query(url).get("shown", "").split(",") if entry]
    return {message_id: status for message_id, status in entries}


def merged(page: list[tuple[str, str, str]], answer: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """What console.js makes of a patch: rows replaced or inserted by id, newest first, the 50 newest kept."""
    rows_by_id = {row[0]: row for row in page} | {row[0]: row for row in answer}
    return sorted(rows_by_id.values(), key=lambda row: (moment(row[2]), row[0]), reverse=True)[:50]


def refresh(console, url: str):
    response = console.get(url, headers={FRAGMENT_HEADER: "1"})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response


def test_a_refresh_asks_only_for_newer_rows_and_answers_new_and_changed_rows_as_a_reload_lists_them(local_stack, console, recorded, slow_receipts):
    # Given a message in flight (its receipt takes 4 s), and the fleet's log opened while it is
    shown_message = local_stack.send(to=new_sim(), text="LIVE 1").json()
    document = dom(console.get("/messages"))
    page = rows(document.one("tbody", id="message-rows"))
    assert dict((i, s) for i, s, _ in page)[shown_message["id"]] in {"pending", "sent"}

    # Then its live URL starts at the newest row (or 15 minutes back) and watches the rows that may change
    live_url = document.one("tbody", id="message-rows")["data-live"]
    newer_than = moment(live_query(live_url)["newer_than"])
    assert newer_than >= max(moment(created) for _, _, created in page)
    assert abs(newer_than - max([datetime.now(UTC) - LIVE_MARGIN, *(moment(c) for _, _, c in page)])) < timedelta(seconds=30)
    watched = shown(live_url)
    assert watched[shown_message["id"]] in {"pending", "sent"}
    assert {i for i, status, _ in page if status not in SETTLED} <= set(watched) and len(watched) <= 50

    # When another message is sent and the page refreshes once the first is delivered
    newer = local_stack.send(to=new_sim(), text="LIVE 2").json()
    local_stack.wait_for_status(shown_message["id"], {"delivered"}, timeout=30)
    recorded.calls.clear()
    fragment = refresh(console, live_url)

    # Then the API was asked once for the fleet's messages from a minute before newer_than, and by id only for
    # the rows shown that may still change and lie before that window (other tests' on this shared stack: a
    # message to a SIM that never receipts stays `sent`); the message in flight is in the window
    [asked] = recorded.fleet_listings()
    assert asked["since"] == [(newer_than - ROW_MARGIN).isoformat(timespec="milliseconds").replace("+00:00", "Z")] and asked["limit"] == ["50"]
    before_window = {i for i, status, created in page if status not in SETTLED and moment(created) < newer_than - ROW_MARGIN}
    assert sorted(recorded.message_reads()) == sorted(before_window) and shown_message["id"] not in before_window
    # And the answer is a patch of only the new message and the row that changed (inserted on top, replaced)
    assert fragment.headers[PATCH_HEADER] == "1"
    answer = rows(dom(fragment))
    before = {i: s for i, s, _ in page}
    assert all(before.get(i) != s for i, s, _ in answer), "a row answered that neither is new nor changed"
    statuses = {i: s for i, s, _ in answer}
    assert newer["id"] in statuses and statuses[shown_message["id"]] == "delivered"
    # And the page patched with it lists the same rows, in the same order, as a reload (less messages newer still)
    patched = merged(page, answer)
    reloaded = rows(dom(console.get("/messages")).one("tbody", id="message-rows"))
    newest = max(moment(created) for _, _, created in patched)
    assert [i for i, _, c in reloaded if moment(c) <= newest][: len(patched)] == [i for i, _, _ in patched][
        : len([1 for _, _, c in reloaded if moment(c) <= newest])
    ]
    assert dict((i, s) for i, s, _ in patched)[shown_message["id"]] == "delivered"
    # And the next URL watches the new rows and no longer the delivered one outside its window
    next_url = fragment.headers[LIVE_URL_HEADER]
    assert next_url.startswith("/messages?") and moment(live_query(next_url)["newer_than"]) >= moment(newer["created_at"])
    assert newer["id"] in shown(next_url)

    # When nothing changed since: the refresh answers no row at all
    time.sleep(0.5)
    quiet = rows(dom(refresh(console, next_url)))
    assert all(shown(next_url).get(i) != s for i, s, _ in quiet)


def test_a_shown_row_not_final_outside_the_window_is_read_by_id_and_patched_when_its_status_changes(local_stack, console, recorded, slow_receipts):
    # Given a message in flight, and a page whose window starts after it (a quiet fleet's older rows)
    sent = local_stack.send(to=new_sim(), text="OLDER").json()
    settled_id = local_stack.send(to=new_sim(), text="SETTLED").json()["id"]
    local_stack.wait_for_status(settled_id, {"delivered"}, timeout=30)
    time.sleep(1.5)
    window = moment(sent["created_at"]) + ROW_MARGIN + timedelta(seconds=1)
    since = (window - ROW_MARGIN).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    newer_than = window.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    url = f"/messages?newer_than={newer_than}&shown={sent['id']}.queued,{settled_id}.delivered"

    # When the page refreshes
    recorded.calls.clear()
    answer = rows(dom(refresh(console, url)))

    # Then the API was asked for the window and for the row not settled by its id, never for the settled one
    [asked] = recorded.fleet_listings()
    assert asked["since"] == [since]
    assert recorded.message_reads() == [sent["id"]]
    # And the row is answered with its status now (it has left queued), the settled one not at all
    statuses = {i: s for i, s, _ in answer}
    assert statuses[sent["id"]] in {"pending", "sent", "delivered"} and settled_id not in statuses

    # When its receipt comes: the next refresh answers it delivered
    local_stack.wait_for_status(sent["id"], {"delivered"}, timeout=30)
    later = f"/messages?newer_than={newer_than}&shown={sent['id']}.{statuses[sent['id']]}"
    final = {i: s for i, s, _ in rows(dom(refresh(console, later)))}
    assert final.get(sent["id"]) == "delivered" or statuses[sent["id"]] == "delivered"


def test_a_page_read_with_filters_keeps_them_in_its_live_url_and_its_refresh(local_stack, console, recorded):
    # Given a message with a client_ref of its own
    sim, ref = new_sim(), f"live-{new_sim()}"
    sent = local_stack.send(to=sim, text="FILTERED", client_ref=ref).json()

    # When the log is filtered by it and the live fragment is fetched
    document = dom(console.get("/messages", query_string={"client_ref": ref, "direction": "mt"}))
    live_url = document.one("tbody", id="message-rows")["data-live"]
    query = live_query(live_url)
    recorded.calls.clear()
    response = refresh(console, live_url)
    fragment = dom(response)

    # Then the refresh asks for the same filters, from a minute before the row's own time
    assert query["client_ref"] == ref and query["direction"] == "mt" and sent["id"] in shown(live_url)
    [asked] = recorded.fleet_listings()
    assert asked["client_ref"] == [ref] and asked["direction"] == ["mt"]
    assert moment(asked["since"][0]) == moment(query["newer_than"]) - ROW_MARGIN <= moment(sent["created_at"])
    # And answers the row only if its status changed meanwhile, and keeps the filters for the next refresh
    assert [i for i, s, _ in rows(fragment) if s != shown(live_url)[sent["id"]]] == [i for i, _, _ in rows(fragment)]
    assert set(i for i, _, _ in rows(fragment)) <= {sent["id"]}
    next_query = live_query(response.headers[LIVE_URL_HEADER])
    assert next_query["client_ref"] == ref and next_query["direction"] == "mt"


def test_a_status_filtered_log_refreshes_its_whole_window(local_stack, console, recorded):
    # Given the log filtered by status: an older message may change into the filter at any time
    document = dom(console.get("/messages", query_string={"status": "failed"}))
    live_url = document.one("tbody", id="message-rows")["data-live"]

    # When its live fragment is fetched, even with a newer_than added by hand
    recorded.calls.clear()
    answers = [
        refresh(console, live_url),
        refresh(console, f"{live_url}&newer_than={datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"),
    ]

    # Then neither refresh narrows the API's window, and each answers the whole fragment (not a patch)
    assert "newer_than" not in live_query(live_url)
    assert [query.get("since") for query in recorded.fleet_listings()] == [None, None]
    assert [PATCH_HEADER in answer.headers for answer in answers] == [False, False]


def test_a_newer_than_that_would_not_narrow_or_is_not_a_time_is_ignored(local_stack, console, recorded):
    # Given newer_than values a hand-edited URL may carry: not a time, older than the API's window
    day_ago = (datetime.now(UTC) - timedelta(hours=25)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recorded.calls.clear()
    for value in ("yesterday", "2026-13-45T99:00:00Z", day_ago):
        # When the fragment is asked with it; Then it answers rows, and the API is asked without a since
        response = console.get("/messages", query_string={"newer_than": value}, headers={FRAGMENT_HEADER: "1"})
        assert response.status_code == 200, value
    assert [query.get("since") for query in recorded.fleet_listings()] == [None, None, None]
    # And a full page (not a refresh) never narrows, whatever its URL says
    recorded.calls.clear()
    console.get("/messages", query_string={"newer_than": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert [query.get("since") for query in recorded.fleet_listings()] == [None]


def test_the_narrowed_since_respects_the_operators_own_window():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    # Given an operator's since later than the page's live_since: theirs is narrower, and stays
    assert narrowed_since({"since": "2026-11-26T11:30:00Z"}, "2026-11-26T11:00:00.000Z", now) is None
    # Given an earlier since of theirs: the live one narrows it
    assert narrowed_since({"since": "2026-11-26T09:00:00Z"}, "2026-11-26T11:00:00.000Z", now) == "2026-11-26T11:00:00.000Z"
    # Given an until before the live_since (an empty past window): no since the API would refuse
    assert narrowed_since({"until": "2026-11-26T10:00:00Z"}, "2026-11-26T11:00:00.000Z", now) is None
    # Given no since of theirs and a live_since older than the API's default day: it would widen, so no
    assert narrowed_since({}, "2026-11-25T11:00:00.000Z", now) is None
    assert narrowed_since({}, "2026-11-26T11:00:00.000Z", now) == "2026-11-26T11:00:00.000Z"


def test_the_live_log_still_lists_a_message_sent_after_an_empty_window(local_stack, console, recorded):
    # Given a log filtered to a client_ref nobody has used yet: an empty page, live from 15 minutes back
    # (the console's clock may be off the API's)
    ref = f"empty-{new_sim()}"
    document = dom(console.get("/messages", query_string={"client_ref": ref}))
    assert not document.one("tbody", id="message-rows").all("tr", data_message_id=True)
    live_url = document.one("tbody", id="message-rows")["data-live"]
    assert abs(moment(live_query(live_url)["newer_than"]) - (datetime.now(UTC) - LIVE_MARGIN)) < timedelta(seconds=30)
    # When a message with that client_ref is sent; Then the next refresh lists it
    sent = local_stack.send(to=new_sim(), text="FIRST", client_ref=ref).json()
    listed = wait_until(
        lambda: rows(dom(console.get(live_url, headers={FRAGMENT_HEADER: "1"}))), 30, interval=0.5, message="the refresh lists the new message"
    )
    assert [i for i, _, _ in listed] == [sent["id"]]


# --- in Chromium: the refresh backs off while nothing changes and nobody uses the page -----------------------


def test_an_idle_log_refreshes_less_often_and_the_operator_brings_it_back_to_every_2_s(page, local_stack):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    # Given the log filtered to a client_ref nobody has used: nothing on it changes
    ref = f"idle-{new_sim()}"
    page.open(f"/messages?client_ref={ref}")
    page.mark()

    # When nobody touches the page for 24 s
    time.sleep(24)

    # Then it refreshed, but far less often than every 2 s (12 times): it backed off towards 10 s
    fetches = page.driver.execute_script(LOG_FETCHES)
    assert 1 <= fetches <= 7, f"{fetches} refreshes in 24 s"

    # When the operator presses a key just after a refresh (the next one is then up to 10 s away)
    wait_until(lambda: page.driver.execute_script(LOG_FETCHES) > fetches, timeout=15, interval=0.05, message="a backed-off refresh")
    pressed, before = time.monotonic(), page.driver.execute_script(LOG_FETCHES)
    ActionChains(page.driver).key_down(Keys.SHIFT).key_up(Keys.SHIFT).perform()

    # Then the next refresh comes within about 2 s, not 10
    wait_until(lambda: page.driver.execute_script(LOG_FETCHES) > before, timeout=15, interval=0.05, message="a refresh after the key")
    assert time.monotonic() - pressed < 7

    # And a message sent with that client_ref appears without a reload, and the live URL moves to its time
    sent = local_stack.send(to=new_sim(), text="AWAKE", client_ref=ref).json()
    row = f"tr[data-message-id='{sent['id']}']"
    wait_until(lambda: page.attribute(row, "data-status"), timeout=LIVE, message=f"{row} appears")
    assert page.was_not_reloaded()
    live_url = page.attribute("tbody#message-rows", "data-live") or ""
    assert live_url.startswith("/messages?") and f"client_ref={ref}" in live_url
    assert moment(live_query(live_url)["newer_than"]) >= moment(sent["created_at"])
    # And it was inserted on top of the rows
    assert page.attribute("tbody#message-rows tr:first-child", "data-message-id") == sent["id"]
    assert page.errors() == []


# Every row of the log as the browser shows it: (id, status), top to bottom
TABLE_ROWS = "return [...document.querySelectorAll('tbody#message-rows tr[data-message-id]')].map(r => [r.dataset.messageId, r.dataset.status])"

FOCUSED_ROW = "const e = document.activeElement; return [e.tagName.toLowerCase(), e.closest('[data-message-id]')?.dataset.messageId ?? '']"


def test_the_browser_patches_a_row_turning_delivered_and_a_new_message_on_top_and_loses_nothing_a_reload_shows(page, local_stack, slow_receipts):
    # Given the log open while a message is in flight (its receipt takes 4 s)
    first = local_stack.send(to=new_sim(), text="PATCH 1").json()
    page.open("/messages")
    page.mark()
    assert page.attribute(f"tr[data-message-id='{first['id']}']", "data-status") in {"pending", "sent"}
    # with focus (from the keyboard) on its link
    page.driver.execute_script("document.querySelector(arguments[0]).focus()", f"tr[data-message-id='{first['id']}'] a")

    # When another message is sent and the first is delivered
    second = local_stack.send(to=new_sim(), text="PATCH 2").json()

    # Then, without a reload, the new message is inserted on top and the first row turns delivered
    wait_until(
        lambda: (
            page.attribute(f"tr[data-message-id='{first['id']}']", "data-status") == "delivered"
            and page.attribute(f"tr[data-message-id='{second['id']}']", "data-status") == "delivered"
        ),
        timeout=LIVE,
        message="both rows delivered in place",
    )
    assert page.was_not_reloaded()
    # And focus stayed on the link of that row, replaced under it
    assert page.driver.execute_script(FOCUSED_ROW) == ["a", first["id"]]
    patched = page.driver.execute_script(TABLE_ROWS)
    assert patched[0][0] == second["id"] and len(patched) <= 50
    assert len({i for i, _ in patched}) == len(patched), "a row shown twice"
    # And the patched table lists the same rows, in the same order, as a reload of the page; a settled row's
    # status the same (another test's row still in flight may have moved on meanwhile)
    page.open("/messages")
    reloaded = page.driver.execute_script(TABLE_ROWS)
    assert [i for i, _ in reloaded] == [i for i, _ in patched]
    assert [row for row in patched if row[1] in SETTLED] == [row for row, was in zip(reloaded, patched, strict=True) if was[1] in SETTLED]
    assert page.errors() == []
