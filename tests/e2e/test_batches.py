"""Batches through the running local stack: the CLI's progress bar, groups with saved commands, and the
steady rate toward Eseye under two batches and single sends at once."""

import threading
import time
from collections import Counter

import pytest
import requests

from tests.e2e.conftest import running_stack, smsgw
from tests.helpers import wait_until

BATCH_SIZE = 100  # make test's batch; `make load` sends 10,000 (load/run_load.py)


def sends_per_destination(stack, since: float) -> Counter:
    return Counter(s["destination"] for s in stack.eseye.send_arrivals if s["at"] >= since)


def test_a_batch_sent_from_a_file_with_the_cli_reaches_every_sim_exactly_once_and_completes(local_stack, subscriber, tmp_path):
    # Given a file of SIMs, with a header and one bad line
    sims = [f"4477031{n:05d}" for n in range(1001, 1001 + BATCH_SIZE)]  # no simulator rule on the last four digits
    path = tmp_path / "sims.csv"
    path.write_text("msisdn\n" + "\n".join(sims[:50]) + "\nnot-a-number\n" + "\n".join(sims[50:]) + "\n")
    started = time.time()
    # When the batch is sent with the CLI, skipping the bad line, and followed to its end
    result = smsgw(local_stack, "batch", "send", "--to-file", str(path), "CONFIG RELOAD", "--skip-invalid", "--interval", "1", "--timeout", "280")
    # Then the CLI showed its progress and the completion
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"accepted: {BATCH_SIZE + 1} recipients, 1 skipped" in result.stdout
    assert "final" in result.stdout and "completed at" in result.stdout
    batch_id = result.stdout.split()[1]
    # and every SIM got the command exactly once
    assert sends_per_destination(local_stack, started) == Counter(dict.fromkeys(sims, 1))
    # and the batch counts every message delivered
    batch = requests.get(f"{local_stack.api}/batches/{batch_id}", timeout=30).json()
    assert (batch["state"], batch["counts"], batch["skipped"]) == ("completed", {"delivered": BATCH_SIZE}, 1)
    # and subscribers heard sms.batch.completed once
    events = subscriber(lambda seen: any(e["type"] == "sms.batch.completed" and e["data"]["id"] == batch_id for e in seen), timeout=60)
    completed = [e for e in events if e["type"] == "sms.batch.completed" and e["data"]["id"] == batch_id]
    assert [e["data"]["counts"] for e in completed] == [{"delivered": BATCH_SIZE}]


def test_a_batch_to_a_group_renders_a_saved_command_with_the_batch_and_each_recipients_variables(local_stack):
    api = local_stack.api
    # Given a group of three SIMs and a saved command with two variables
    sims = [f"4477032{n:05d}" for n in range(2001, 2004)]
    assert requests.put(f"{api}/groups/e2e-batch-fleet", json={"members": sims}, timeout=30).status_code in (200, 201)
    command = {
        "text": "SET {key}={value}",
        "variables": {"key": {"pattern": "[A-Z]{1,8}", "max_length": 8}, "value": {"pattern": "[0-9]{1,4}", "max_length": 4}},
    }
    assert requests.put(f"{api}/commands/e2e-set", json=command, timeout=30).status_code in (200, 201)
    started = time.time()
    # When a batch sends it to the group with shared variables
    response = requests.post(
        f"{api}/batches", json={"group": "e2e-batch-fleet", "command": "e2e-set", "variables": {"key": "APN", "value": "42"}}, timeout=30
    )
    assert response.status_code == 202, response.text
    group_batch = response.json()["id"]
    # and another sends it to listed SIMs with a value each
    recipients = [{"to": sim, "variables": {"value": str(n)}} for n, sim in enumerate(sims)]
    response = requests.post(f"{api}/batches", json={"recipients": recipients, "command": "e2e-set", "variables": {"key": "TIMER"}}, timeout=30)
    assert response.status_code == 202, response.text
    listed_batch = response.json()["id"]

    def completed(batch_id):
        batch = requests.get(f"{api}/batches/{batch_id}", timeout=30).json()
        return batch if batch.get("completed_at") else None

    # Then both complete, every message rendered from the command and recorded with it
    for batch_id in (group_batch, listed_batch):
        assert wait_until(lambda b=batch_id: completed(b), 120, interval=0.5)["counts"] == {"delivered": 3}
    group_page = requests.get(f"{api}/batches/{group_batch}/messages", timeout=30).json()["items"]
    assert sorted((m["to"], m["text"], m["command"]) for m in group_page) == [(sim, "SET APN=42", "e2e-set") for sim in sims]
    listed_page = requests.get(f"{api}/batches/{listed_batch}/messages", timeout=30).json()["items"]
    assert sorted((m["to"], m["text"], m["variables"]["value"]) for m in listed_page) == [
        (sim, f"SET TIMER={n}", str(n)) for n, sim in enumerate(sims)
    ]
    # and Eseye got each text once per SIM
    assert sends_per_destination(local_stack, started) == Counter(dict.fromkeys(sims, 2))


RATE = 4.0  # sends per second toward Eseye in the paced stack: below what the local stack can do


@pytest.fixture(scope="module")
def paced_stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("paced-stack"), ESEYE_MAX_SENDS_PER_SECOND=str(RATE)) as stack:
        yield stack


def test_two_batches_and_single_sends_together_reach_eseye_at_the_configured_rate(paced_stack):
    api = paced_stack.api
    started = time.time()
    # When two batches of 30 SIMs each are posted at once, while single sends keep coming
    batches = []
    for offset in (0, 30):
        response = requests.post(
            f"{api}/batches", json={"to": [f"4477033{n:05d}" for n in range(3001 + offset, 3031 + offset)], "text": "PING"}, timeout=30
        )
        assert response.status_code == 202
        batches.append(response.json()["id"])
    single_latencies = []

    def singles():
        for n in range(8):
            time.sleep(1.0)
            before = time.monotonic()
            response = requests.post(f"{api}/messages", json={"to": f"4477034{4001 + n:05d}", "text": "SINGLE"}, timeout=30)
            single_latencies.append(time.monotonic() - before)
            assert response.status_code == 202

    sender = threading.Thread(target=singles)
    sender.start()
    sender.join()
    for batch_id in batches:
        wait_until(lambda b=batch_id: requests.get(f"{api}/batches/{b}", timeout=30).json().get("completed_at"), 120, interval=0.5)
    # Then Eseye saw them at the configured rate, never faster
    arrivals = sorted(s["at"] for s in paced_stack.eseye.send_arrivals if s["at"] >= started)
    assert len(arrivals) == 68
    sustained = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    print(f"\nEseye saw {len(arrivals)} sends at {sustained:.2f}/s sustained, at most {busiest} in any second (configured {RATE}/s)")
    assert sustained <= RATE * 1.05
    assert busiest <= RATE + 1  # a window's edges can hold one more slot than the rate
    # and the single sends went first: none waited behind the batches' backlog
    assert max(single_latencies) < 3.0, single_latencies
