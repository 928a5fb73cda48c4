"""Each SIM's delivery queue end to end (issue 13): a runaway script posts fifty commands to one SIM at
once, over HTTP against the local stack, with receipts coming from the simulator as it sends them."""

import itertools
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.helpers import wait_until

COMMANDS = 50


def unused_sim() -> str:
    """A SIM no other test sends to (they use 4477009...), whose messages the simulator delivers (its
    last four digits are never 0000, 0001 or 0570)."""
    return f"4477008{random.randrange(1, 9):01d}{random.randrange(1000, 9999):04d}"


def test_fifty_commands_at_once_reach_eseye_one_at_a_time_in_acceptance_order_and_all_are_delivered(local_stack, monkeypatch):
    sim = unused_sim()
    eseye = local_stack.eseye
    max_in_flight = local_stack.session.get(f"{local_stack.api}/sims/{sim}", timeout=30).json()["settings"]["max_in_flight"]
    # When the simulator starts each receipt: until then Eseye has the message in flight
    receipt_started: dict[str, float] = {}
    deliver = eseye._deliver

    def timed_deliver(message, receipt_url):
        receipt_started.setdefault(message.message_id, time.time())
        deliver(message, receipt_url)

    monkeypatch.setattr(eseye, "_deliver", timed_deliver)

    # Given a script that posts fifty commands to one SIM at once
    timings: dict[int, tuple[float, float]] = {}
    lock = threading.Lock()

    def post(n):
        session = requests.Session()  # a client of its own per thread
        started = time.monotonic()
        response = session.post(f"{local_stack.api}/messages", json={"to": sim, "text": f"CMD {n:02d}"}, timeout=60)
        with lock:
            timings[n] = (started, time.monotonic())
        return response

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(post, range(COMMANDS)))

    # Then the API accepts every one of them
    assert [r.status_code for r in responses] == [202] * COMMANDS, [r.text for r in responses if r.status_code != 202][:3]
    ids = [r.json()["id"] for r in responses]
    assert {r.json()["status"] for r in responses} <= {"queued", "pending", "sent"}

    # and all of them end delivered
    def all_delivered():
        statuses = [local_stack.get(message_id)["status"] for message_id in ids]
        return statuses if set(statuses) == {"delivered"} else None

    wait_until(all_delivered, timeout=600, interval=1, message="all fifty delivered")
    wait_until(lambda: set(ids) <= set(receipt_started), timeout=60, message="the simulator started every receipt")

    # and Eseye got each exactly once, and never had more than max_in_flight of them in flight
    held = {message_id: eseye.messages[message_id] for message_id in ids}
    assert all(m.sends == 1 and m.destination == sim for m in held.values())
    spans = sorted((m.received_at, receipt_started[i], i) for i, m in held.items())
    for accepted_at, _, message_id in spans:
        in_flight = [i for start, end, i in spans if start <= accepted_at < end]
        assert len(in_flight) <= max_in_flight, (message_id, in_flight)

    # and they reached Eseye in the order the API accepted them: a command whose 202 came back before
    # another was posted reached Eseye first
    eseye_order = [i for _, _, i in spans]
    place = {message_id: eseye_order.index(message_id) for message_id in ids}
    ordered_pairs = [(a, b) for a, b in itertools.permutations(range(COMMANDS), 2) if timings[a][1] < timings[b][0]]
    assert ordered_pairs, "the posts all overlapped: nothing to compare"
    out_of_order = [(a, b) for a, b in ordered_pairs if place[ids[a]] > place[ids[b]]]
    assert out_of_order == []

    # and the SIM's queue empties, nothing stranded and no slot held (once the stream has been followed)
    def idle():
        state = local_stack.session.get(f"{local_stack.api}/sims/{sim}", timeout=30).json()
        return (state["in_flight"], state["queued"]) == (0, 0)

    wait_until(idle, timeout=60, interval=0.5, message="the SIM's queue empties")
