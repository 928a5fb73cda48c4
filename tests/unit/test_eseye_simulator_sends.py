"""The simulator records when each send arrived, so a test can measure the rate Eseye sees (issue 14)."""

import json
import time
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest

from local_stack.eseye_simulator import EseyeSimulator, arrival_rate


@pytest.fixture
def simulator():
    sim = EseyeSimulator(port=0, username="user", password="secret", receipt_delay=60, log=lambda *_: None).start()
    yield sim
    sim.stop()


def post(sim, path, fields):
    request = Request(f"{sim.url}{path}", data=urlencode(fields).encode(), method="POST")
    with urlopen(request, timeout=5) as response:
        return response.read().decode()


def get_json(sim, path):
    with urlopen(f"{sim.url}{path}", timeout=5) as response:
        return json.loads(response.read())


def test_every_send_request_is_recorded_with_its_arrival_time_and_status_requests_are_not(simulator):
    # Given three sends and a status request, one of the sends refused by Eseye's rules
    before = time.time()
    for number, destination in enumerate(("447700900001", "447700900002", "447700900570")):
        form = {"username": "user", "password": "secret", "destination": destination, "text": "x", "message_id": f"a{number}"}
        post(simulator, "/mtsmsapi/index/post", form)
    post(simulator, "/mtstatusapi/index/post", {"username": "user", "password": "secret", "message_id": "a0"})
    # When a test asks what arrived
    seen = get_json(simulator, "/_sim/sends")
    # Then it gets each send request (refused ones too: Eseye saw them), in order, with when it came
    assert [s["message_id"] for s in seen["sends"]] == ["a0", "a1", "a2"]
    assert all(before <= s["at"] <= time.time() for s in seen["sends"])
    assert seen["count"] == 3 and seen["max_in_any_second"] == 3
    # and can ask only for those since a moment
    assert get_json(simulator, f"/_sim/sends?since={seen['sends'][1]['at']}")["count"] == 2
    simulator.reset()
    assert simulator.sends_seen()["count"] == 0


def test_the_rate_is_the_gaps_over_the_span_and_the_busiest_second():
    times = [100.0 + i * 0.1 for i in range(21)] + [103.0, 103.05]  # 10/s for two seconds, then two more
    rate = arrival_rate(times)
    assert rate["count"] == 23
    assert rate["per_second"] == pytest.approx(22 / 3.05)
    assert rate["max_in_any_second"] == 10
    assert arrival_rate([])["per_second"] is None and arrival_rate([5.0])["max_in_any_second"] == 1
