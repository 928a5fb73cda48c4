"""make load: a bounded load on loopback against the local stack, then a reconciliation of every message.

Starts the stack as `make run` does (free ports, its own state directory), runs CLIENTS threads that
each send MESSAGES messages while the simulator returns receipts, waits for every accepted message to
reach a final status, and prints throughput, latency, errors and the number of messages lost (which
must be 0: the exit status says so).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = int(os.environ.get("LOAD_CLIENTS", "8"))
MESSAGES = int(os.environ.get("LOAD_MESSAGES", "50"))  # per client
SETTLE_SECONDS = float(os.environ.get("LOAD_SETTLE_SECONDS", "120"))
RECEIPTS = int(os.environ.get("LOAD_RECEIPTS", "200"))  # receipts posted straight at the webhook, as Eseye would
FINAL = {"delivered", "failed", "rejected", "cancelled", "blocked"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_stack(state: Path) -> tuple[subprocess.Popen, dict]:
    env = {
        **os.environ,
        "API_PORT": str(free_port()),
        "AWS_PORT": str(free_port()),
        "DYNAMODB_PORT": str(free_port()),
        "SIM_PORT": str(free_port()),
        "LOCAL_STATE_DIR": str(state),
        "RECEIPT_DELAY": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(state / "stack.log", "w")  # noqa: SIM115 - lives as long as the stack
    process = subprocess.Popen([sys.executable, "-m", "local_stack.run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while not (state / "outputs.json").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the local stack did not start; see {state / 'stack.log'}")
        time.sleep(0.2)
    return process, json.loads((state / "outputs.json").read_text())


def client(api: str, index: int, results: list, errors: list) -> None:
    session = requests.Session()
    for n in range(MESSAGES):
        # One in twenty to a destination the simulator fails, so both receipt outcomes are exercised.
        to = f"4477009{index:02d}{'0000' if n % 20 == 19 else f'{n % 9000 + 1000:04d}'}"
        started = time.perf_counter()
        try:
            response = session.post(f"{api}/messages", json={"to": to, "text": f"load {index}-{n}"}, timeout=30)
            elapsed = time.perf_counter() - started
            if response.status_code == 202:
                results.append((response.json()["id"], elapsed, to.endswith("0000")))
            else:
                errors.append(f"{response.status_code} {response.text[:120]}")
        except requests.RequestException as exc:
            errors.append(type(exc).__name__)


def receipt_phase(api: str, token: str) -> tuple[float, int]:
    """Messages that get no simulated receipt (destinations ending 0001), then receipts for all of them at once.
    Each to a SIM of its own, so that each is at Eseye (a SIM has one message in flight at a time)."""
    session = requests.Session()
    ids = [session.post(f"{api}/messages", json={"to": f"447{n:07d}0001", "text": "r"}, timeout=30).json()["id"] for n in range(RECEIPTS)]
    chunks = [ids[i::CLIENTS] for i in range(CLIENTS)]
    failures: list[str] = []

    def post_receipts(chunk: list[str]) -> None:
        client = requests.Session()
        for message_id in chunk:
            fields = {"messageid": message_id, "referenceid": message_id[:16], "statuscode": "delivered", "status": "delivered"}
            response = client.get(f"{api}/webhooks/{token}/receipt", params=fields, timeout=30)
            if response.status_code != 200:
                failures.append(message_id)

    started = time.perf_counter()
    threads = [threading.Thread(target=post_receipts, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    not_delivered = [i for i in ids if session.get(f"{api}/messages/{i}", timeout=30).json().get("status") != "delivered"]
    return RECEIPTS / elapsed, len(set(failures) | set(not_delivered))


def cpu_seconds(root: int) -> dict[str, float]:
    """CPU time used so far by the stack's processes, by kind: a figure other load on the machine barely moves."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (command, (int(fields[11]) + int(fields[12])) / ticks)
    kinds: dict[str, float] = {}
    for pid, (command, seconds) in used.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor != root:
            continue
        kind = "moto" if "local_stack.moto_server" in command else "functions" if "multiprocessing" in command else "stack"
        if kind == "moto" and pid != root:
            kind = f"moto :{command.rsplit(' ', 1)[-1]}"
        kinds[kind] = kinds.get(kind, 0.0) + seconds
    return kinds


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="smsgw-load-") as directory:
        state = Path(directory)
        process, outputs = start_stack(state)
        api = outputs["ApiUrl"]
        try:
            results: list = []
            errors: list = []
            threads = [threading.Thread(target=client, args=(api, i, results, errors)) for i in range(CLIENTS)]
            cpu_before = cpu_seconds(process.pid)
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            duration = time.perf_counter() - started
            cpu_at_sends = {kind: seconds - cpu_before.get(kind, 0.0) for kind, seconds in cpu_seconds(process.pid).items()}
            # Reconcile: every accepted message must reach a final status, the expected one.
            pending = {message_id: should_fail for message_id, _, should_fail in results}
            wrong: list[str] = []
            deadline = time.monotonic() + SETTLE_SECONDS
            session = requests.Session()
            while pending and time.monotonic() < deadline:
                for message_id in list(pending):
                    response = session.get(f"{api}/messages/{message_id}", timeout=30)
                    status = response.json().get("status") if response.status_code == 200 else None
                    if status in FINAL:
                        expected = "failed" if pending.pop(message_id) else "delivered"
                        if status != expected:
                            wrong.append(f"{message_id}: {status}, expected {expected}")
                if pending:
                    time.sleep(1)
            settle = time.perf_counter() - started - duration
            receipts_per_second, receipt_failures = receipt_phase(api, outputs["WebhookToken"])
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(20)
    latencies = [elapsed for _, elapsed, _ in results]
    sent = CLIENTS * MESSAGES
    print(f"clients {CLIENTS}, messages {sent}, accepted {len(results)}, errors {len(errors)}")
    print(f"throughput {len(results) / duration:.1f} sends/s over {duration:.1f} s")
    if latencies:
        p50, p99, mean = percentile(latencies, 0.5), percentile(latencies, 0.99), statistics.mean(latencies)
        print(f"latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, mean {mean * 1000:.0f} ms")
    print(f"all receipts applied {settle:.1f} s after the last send")
    print(f"lost {len(pending)} (not final after {SETTLE_SECONDS:.0f} s), wrong status {len(wrong)}")
    print(f"receipt webhook {receipts_per_second:.1f} receipts/s ({RECEIPTS} receipts, {CLIENTS} senders), not applied {receipt_failures}")
    if results:
        # CPU the stack spent while the sends were accepted, per accepted send (pipeline work included)
        ports = {
            outputs.get("DynamoDbEndpointUrl", "").rsplit(":", 1)[-1]: "DynamoDB server",
            outputs["AwsEndpointUrl"].rsplit(":", 1)[-1]: "AWS server",
        }
        named = {ports.get(kind.rsplit(":", 1)[-1], kind) if kind.startswith("moto") else kind: seconds for kind, seconds in cpu_at_sends.items()}
        parts = ", ".join(f"{kind} {seconds / len(results) * 1000:.0f}" for kind, seconds in sorted(named.items()))
        print(f"stack CPU {sum(named.values()) / len(results) * 1000:.0f} ms per send ({parts})")
    for line in errors[:5] + wrong[:5]:
        print("  ", line)
    return 0 if not pending and not wrong and not errors and not receipt_failures else 1


if __name__ == "__main__":
    sys.exit(main())
