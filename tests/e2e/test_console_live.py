"""The messages log's live refresh reads only the span of time the page shows (issue 15's console cost).

An open Messages tab re-fetches its first page every 2 s. Without a since, each fetch is the API's whole
24-hour window, which on a quiet fleet is up to 200 index queries (16 shards an hour) for a handful of
rows. The page's live URL carries live_since (a minute before the oldest row shown; 15 minutes back on an
empty page), the refresh asks the API only from there, and new messages and status changes of the rows shown still appear.
Flask's test client over the local stack's real API; the figures are benchmarks/console.py's.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from smsgw_client import Client
from smsgw_console.pages.messages import LIVE_MARGIN, ROW_MARGIN, narrowed_since
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


def test_the_live_log_asks_only_for_the_span_it_shows_and_still_shows_new_messages_and_status_changes(local_stack, console, recorded, slow_receipts):
    # Given a message in flight (its receipt takes 4 s), and the fleet's log opened while it is
    shown = local_stack.send(to=new_sim(), text="LIVE 1").json()
    document = dom(console.get("/messages"))
    listed = rows(document.one("tbody", id="message-rows"))
    assert dict((i, s) for i, s, _ in listed)[shown["id"]] in {"pending", "sent"}

    # Then its live URL starts just before the oldest row shown (a minute: an index entry may come late)
    live_url = document.one("tbody", id="message-rows")["data-live"]
    since = live_query(live_url)["live_since"]
    assert moment(since) == min(moment(created) for _, _, created in listed) - ROW_MARGIN

    # When another message is sent and the page refreshes until the first is delivered
    newer = local_stack.send(to=new_sim(), text="LIVE 2").json()
    local_stack.wait_for_status(shown["id"], {"delivered"}, timeout=30)
    recorded.calls.clear()
    fragment = console.get(live_url, headers={FRAGMENT_HEADER: "1"})

    # Then the API was asked only from the page's live_since
    assert fragment.status_code == 200
    [asked] = recorded.fleet_listings()
    assert asked["since"] == [since] and asked["limit"] == ["50"]
    # And the refresh shows the new message and the row's new status
    refreshed = rows(dom(fragment))
    statuses = {i: s for i, s, _ in refreshed}
    assert newer["id"] in statuses and statuses[shown["id"]] == "delivered"
    # And the same rows, in the same order, as a reload of the whole page lists (less any message newer than them)
    reloaded = rows(dom(console.get("/messages")).one("tbody", id="message-rows"))
    newest = max(moment(created) for _, _, created in refreshed)
    older_part = [i for i, _, created in reloaded if moment(created) <= newest]
    assert older_part == [i for i, _, _ in refreshed][: len(older_part)]
    assert len(older_part) == min(len(refreshed), 50 - (len(reloaded) - len(older_part)))
    # And the answer names the URL of the next refresh, moved with the rows it shows
    next_url = fragment.headers[LIVE_URL_HEADER]
    assert next_url.startswith("/messages?") and moment(live_query(next_url)["live_since"]) <= min(moment(c) for _, _, c in refreshed)


def test_a_page_read_with_filters_keeps_them_in_its_live_url_and_its_refresh(local_stack, console, recorded):
    # Given a message with a client_ref of its own
    sim, ref = new_sim(), f"live-{new_sim()}"
    sent = local_stack.send(to=sim, text="FILTERED", client_ref=ref).json()

    # When the log is filtered by it and the live fragment is fetched
    document = dom(console.get("/messages", query_string={"client_ref": ref, "direction": "mt"}))
    live_url = document.one("tbody", id="message-rows")["data-live"]
    query = live_query(live_url)
    recorded.calls.clear()
    fragment = dom(console.get(live_url, headers={FRAGMENT_HEADER: "1"}))

    # Then the refresh asks for the same filters, from the row's own time
    assert query["client_ref"] == ref and query["direction"] == "mt"
    [asked] = recorded.fleet_listings()
    assert asked["client_ref"] == [ref] and asked["direction"] == ["mt"] and asked["since"] == [query["live_since"]]
    assert moment(query["live_since"]) <= moment(sent["created_at"])
    assert [i for i, _, _ in rows(fragment)] == [sent["id"]]


def test_a_status_filtered_log_refreshes_its_whole_window(local_stack, console, recorded):
    # Given the log filtered by status: an older message may change into the filter at any time
    document = dom(console.get("/messages", query_string={"status": "failed"}))
    live_url = document.one("tbody", id="message-rows")["data-live"]

    # When its live fragment is fetched, even with a live_since added by hand
    recorded.calls.clear()
    console.get(live_url, headers={FRAGMENT_HEADER: "1"})
    console.get(f"{live_url}&live_since={datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}", headers={FRAGMENT_HEADER: "1"})

    # Then neither refresh narrows the API's window
    assert "live_since" not in live_query(live_url)
    assert [query.get("since") for query in recorded.fleet_listings()] == [None, None]


def test_a_live_since_that_would_not_narrow_or_is_not_a_time_is_ignored(local_stack, console, recorded):
    # Given live_since values a hand-edited URL may carry: not a time, older than the API's window
    day_ago = (datetime.now(UTC) - timedelta(hours=25)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recorded.calls.clear()
    for value in ("yesterday", "2026-13-45T99:00:00Z", day_ago):
        # When the fragment is asked with it; Then it answers rows, and the API is asked without a since
        response = console.get("/messages", query_string={"live_since": value}, headers={FRAGMENT_HEADER: "1"})
        assert response.status_code == 200, value
    assert [query.get("since") for query in recorded.fleet_listings()] == [None, None, None]
    # And a full page (not a refresh) never narrows, whatever its URL says
    recorded.calls.clear()
    console.get("/messages", query_string={"live_since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})
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
    assert abs(moment(live_query(live_url)["live_since"]) - (datetime.now(UTC) - LIVE_MARGIN)) < timedelta(seconds=30)
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
    assert moment(live_query(live_url)["live_since"]) <= moment(sent["created_at"])
    assert page.errors() == []
