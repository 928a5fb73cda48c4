"""The operator console's cost on the local stack: server time per page and per live refresh, the API
requests each makes, and the DynamoDB requests behind them; the fleet listing (GET /messages without
msisdn) on a quiet fleet and on a busy one.

Starts its own stack as tests/e2e's running_stack does, with moto's request recorder on the DynamoDB
server (only DynamoDB's own requests are counted, not its stream's; the stack's minute sweeps and
workers run too, so a page's count may include a background request now and then: the idle rate is
printed). Pages are served in-process by the console's Flask app (the test client), so a page's time is
the console's own work plus its API calls over loopback. Figures are printed, not asserted.

CONSOLE_BENCH_RUNS (20) requests per figure; CONSOLE_BENCH_MESSAGES (500) single sends and CONSOLE_BENCH_BATCH (200)
recipients of a batch for the busy fleet.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "cli"), str(ROOT / "layers" / "common")]
RUNS = int(os.environ.get("CONSOLE_BENCH_RUNS", "20"))
MESSAGES = int(os.environ.get("CONSOLE_BENCH_MESSAGES", "500"))
SIMS = 50
BATCH = int(os.environ.get("CONSOLE_BENCH_BATCH", "200"))
MOS = 20
FINAL = {"delivered", "failed", "rejected", "cancelled", "blocked", "received"}


class DynamoDbRequests:
    """DynamoDB requests the local stack's DynamoDB server received, from moto's request recorder."""

    def __init__(self, endpoint: str, path: Path):
        import requests

        self.endpoint, self.path, self.http = endpoint, path, requests.Session()

    def __enter__(self) -> DynamoDbRequests:
        self.http.post(f"{self.endpoint}/moto-api/recorder/reset-recording", timeout=10).raise_for_status()
        self.http.post(f"{self.endpoint}/moto-api/recorder/start-recording", timeout=10).raise_for_status()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        return self

    def __exit__(self, *_: Any) -> None:
        self.http.post(f"{self.endpoint}/moto-api/recorder/stop-recording", timeout=10).raise_for_status()
        for line in self.path.read_text().splitlines() if self.path.exists() else []:
            entry = json.loads(line)
            target = {k.lower(): v for k, v in entry["headers"].items()}.get("x-amz-target", "")
            if not target.startswith("DynamoDB_"):
                continue  # the stream's GetRecords polls, and the recorder's own calls
            body = base64.b64decode(entry["body"]) if entry.get("body_encoded") else (entry.get("body") or "{}")
            self.requests.append((target.split(".", 1)[1], json.loads(body or "{}")))

    def kinds(self, background: bool = False) -> Counter[str]:
        """Requests by operation; a Query by its index and partition's prefix (Query GSI4 FLEET). Unless
        `background`, without the stack's own sweeps (GSI2 and GSI3 queries), which no console page makes."""
        counts: Counter[str] = Counter()
        for operation, body in self.requests:
            if operation == "Query":
                pk = str(body.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S", ""))
                index = body.get("IndexName", "table")
                if index in ("GSI2", "GSI3") and not background:
                    continue
                operation = f"Query {index} {pk.split('#', 1)[0]}".strip()
            counts[operation] += 1
        return counts


def quantiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


def per_call(counts: Counter[str], calls: int) -> str:
    return ", ".join(f"{kind} {count / calls:.1f}" for kind, count in counts.most_common()) or "none"


class Bench:
    def __init__(self, stack: Any, state: Path):
        import requests

        from smsgw_client import Client
        from smsgw_console.server import create_app

        self.stack, self.api, self.http = stack, stack.api, requests.Session()
        self.recording = state / "dynamodb-requests.jsonl"
        session = requests.Session()
        self.api_calls = 0

        def count(response: Any, *_: Any, **__: Any) -> None:
            self.api_calls += 1

        session.hooks["response"].append(count)
        app = create_app(Client(self.api, session=session))
        app.testing = True
        self.console = app.test_client()

    def dynamodb(self) -> DynamoDbRequests:
        return DynamoDbRequests(self.stack.outputs["DynamoDbEndpointUrl"], self.recording)

    # -- seeding

    def send(self, to: str, text: str) -> str:
        response = self.http.post(f"{self.api}/messages", json={"to": to, "text": text}, timeout=60)
        response.raise_for_status()
        return str(response.json()["id"])

    def settle(self, sims: list[str], expected: int, timeout: float = 900) -> None:
        """Until every message to and from `sims` is in a final status (receipts in, queues drained)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            settled = 0
            for sim in sims:
                items = self.http.get(f"{self.api}/messages", params={"msisdn": sim, "limit": 100}, timeout=60).json()["items"]
                settled += sum(1 for m in items if m["status"] in FINAL)
            if settled >= expected:
                return
            time.sleep(3)
        raise RuntimeError(f"only {settled} of {expected} messages settled")

    def backdate(self, message_id: str, hours_ago: list[float]) -> list[str]:
        """Copies of a delivered message, created `hours_ago`: a quiet fleet's day, written to the table."""
        from smsgw.adapters.store import fleet_shard

        dynamodb, table = self.stack.client("dynamodb"), self.stack.outputs["TableName"]
        ids = []
        item = dynamodb.get_item(TableName=table, Key={"PK": {"S": f"MSG#{message_id}"}, "SK": {"S": "META"}})["Item"]
        for hours in hours_ago:
            new_id = uuid.uuid4().hex
            created = (datetime.now(UTC) - timedelta(hours=hours)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            copy = {k: v for k, v in item.items() if not k.startswith(("GSI2", "GSI3"))}
            copy.update(
                PK={"S": f"MSG#{new_id}"},
                created_at={"S": created},
                updated_at={"S": created},
                GSI1SK={"S": f"{created}#{new_id}"},
                GSI4PK={"S": f"FLEET#{created[:13]}#{fleet_shard(new_id)}"},
                GSI4SK={"S": f"{created}#{new_id}"},
            )
            if "id" in copy:
                copy["id"] = {"S": new_id}
            dynamodb.put_item(TableName=table, Item=copy)
            ids.append(new_id)
        return ids

    # -- measuring

    def fleet_listing(self, label: str, params: dict[str, str] | None = None) -> None:
        params = {"limit": "50", **(params or {})}
        times, rows = [], 0
        with self.dynamodb() as recorded:
            for _ in range(RUNS):
                started = time.perf_counter()
                response = self.http.get(f"{self.api}/messages", params=params, timeout=120)
                times.append(time.perf_counter() - started)
                rows = len(response.json()["items"])
        p50, p95 = quantiles(times)
        kinds = recorded.kinds()
        total = sum(kinds.values()) / RUNS
        print(f"  {label:<44} {p50:7.0f} {p95:7.0f} ms  {rows:3d} rows  DynamoDB {total:6.1f}/call ({per_call(kinds, RUNS)})")

    def page(self, label: str, path: str, fragment: bool = False) -> None:
        headers = {"X-Console-Fragment": "1"} if fragment else {}
        times = []
        self.api_calls = 0
        with self.dynamodb() as recorded:
            for _ in range(RUNS):
                started = time.perf_counter()
                response = self.console.get(path, headers=headers)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:500])
        p50, p95 = quantiles(times)
        kinds = recorded.kinds()
        total, api = sum(kinds.values()) / RUNS, self.api_calls / RUNS
        print(f"  {label:<44} {p50:7.0f} {p95:7.0f} ms  API {api:4.1f}  DynamoDB {total:6.1f}  ({per_call(kinds, RUNS)})")

    def page_and_live(self, name: str, path: str) -> None:
        body = self.console.get(path).get_data(as_text=True)
        self.page(name, path)
        for live in dict.fromkeys(html.unescape(url) for url in re.findall(r'data-live="([^"]+)"', body)):
            self.page(f"  live {re.sub(r'[0-9a-f]{32}', '<id>', live)[:40]}", live, fragment=True)

    def idle(self, seconds: float = 10) -> None:
        with self.dynamodb() as recorded:
            time.sleep(seconds)
        print(f"  background (no page open), over {seconds:.0f} s: {per_call(recorded.kinds(background=True), int(seconds))} per second")
        print("  (the sweeps' GSI2 and GSI3 queries are left out of the figures below: no console page makes them)")

    def messages_page(self, label: str, query: str = "") -> str:
        """The Messages page; its live refresh as the page now asks it (new rows and the rows that may change:
        newer_than and shown); the listing the refresh asked before (from a minute before the oldest row shown);
        and the whole window (a status filter's refresh). Returns the live URL."""
        path = f"/messages{query}"
        body = self.console.get(path).get_data(as_text=True)
        live = html.unescape(re.search(r'tbody id="message-rows" data-live="([^"]+)"', body).group(1))  # type: ignore[union-attr]
        self.page(f"Messages{query} ({label})"[:44], path)
        if "newer_than" in live:
            self.page(f"  live refresh, new and changed rows ({label})", live, fragment=True)
            created = re.findall(r'<time datetime="([^"]+)"', body)
            if created and "since=" not in query:
                oldest = min(datetime.fromisoformat(c.replace("Z", "+00:00")) for c in created) - timedelta(minutes=1)
                since = oldest.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                filters = dict(pair.split("=", 1) for pair in query.lstrip("?").split("&") if pair)
                self.fleet_listing(f"  before: GET /messages from the oldest row ({label})", {**filters, "since": since})
        self.page(f"  live refresh, whole window ({label})", path, fragment=True)
        return live

    def watching(self, label: str, live: str, ids: list[str]) -> None:
        """A refresh whose page shows `ids` as not final yet, outside its window: each is read by id."""
        from urllib.parse import parse_qsl, urlencode, urlsplit

        url = urlsplit(live)
        query = dict(parse_qsl(url.query))
        query["shown"] = ",".join([*filter(None, query.get("shown", "").split(",")), *(f"{message_id}.sent" for message_id in ids)])
        self.page(f"  live refresh, {len(ids)} rows shown not final ({label})", f"{url.path}?{urlencode(query)}", fragment=True)


def main() -> None:
    import requests

    from tests.e2e.conftest import running_stack

    state = Path(tempfile.mkdtemp(prefix="console-bench-"))
    started = time.monotonic()
    with running_stack(state, MOTO_RECORDER_FILEPATH=str(state / "dynamodb-requests.jsonl"), POWERTOOLS_LOG_LEVEL="WARNING") as stack:
        bench = Bench(stack, state)
        print(f"Console and fleet listing on the local stack, {RUNS} requests per figure; p50 and p95 ms, then per request")
        print(f"(stack up in {time.monotonic() - started:.0f} s; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")

        # A quiet fleet: five messages in the last minutes, nothing else in the API's 24 h window
        quiet_sims = [f"4477009{n:05d}" for n in range(11, 16)]
        quiet = [bench.send(sim, f"QUIET {n}") for n, sim in enumerate(quiet_sims)]
        bench.settle(quiet_sims, len(quiet))
        time.sleep(2)
        print("\nQuiet fleet: 5 messages, all in the last minutes")
        bench.idle()
        bench.fleet_listing("GET /messages?limit=50 (the API's 24 h)")
        bench.messages_page("quiet")

        # The same quiet day, with a message every 2 hours over the last 24 h
        older = bench.backdate(quiet[0], [2 * n + 0.5 for n in range(12)])
        time.sleep(3)
        print("\nQuiet fleet over a day: those 5, and one message every 2 h over the last 24 h (17)")
        bench.fleet_listing("GET /messages?limit=50 (the API's 24 h)")
        live = bench.messages_page("quiet day")
        bench.watching("quiet day", live, older)

        # A busy fleet: MESSAGES single sends over SIMS SIMs with receipts, MOs, a batch of BATCH
        sims = [f"4477009{n:05d}" for n in range(100, 100 + SIMS)]
        seeding = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda n: bench.send(sims[n % SIMS], f"STATUS {n}"), range(MESSAGES)))
        for n in range(MOS):
            requests.post(f"{stack.eseye.url}/_sim/mo", json={"source": sims[n], "text": f"TEMP {n}C"}, timeout=10).raise_for_status()
        batch_sims = [f"4477008{n:05d}" for n in range(100, 100 + BATCH)]
        batch = requests.post(f"{stack.api}/batches", json={"to": batch_sims, "text": "FIRMWARE CHECK"}, timeout=60)
        batch.raise_for_status()
        batch_id = batch.json()["id"]
        bench.settle(sims, MESSAGES + MOS)
        deadline = time.monotonic() + 900
        while requests.get(f"{stack.api}/batches/{batch_id}", timeout=30).json().get("state") not in ("completed", "cancelled"):
            if time.monotonic() > deadline:
                raise RuntimeError("the batch did not complete")
            time.sleep(3)
        time.sleep(5)
        total = len(quiet) + 12 + MESSAGES + MOS + BATCH
        seeded = time.monotonic() - seeding
        print(f"\nBusy fleet: {total} messages ({MESSAGES} sends to {SIMS} SIMs, receipts, {MOS} MOs, a batch of {BATCH}), seeded in {seeded:.0f} s")
        bench.idle()
        bench.fleet_listing("GET /messages?limit=50 (the API's 24 h)")
        bench.fleet_listing("GET /messages?limit=50&status=failed", {"status": "failed"})
        bench.fleet_listing("GET /messages?limit=50&batch_id=<the batch>", {"batch_id": batch_id})
        print("\nConsole pages, busy fleet (full page, then each live fragment it re-fetches)")
        bench.messages_page("busy")
        bench.messages_page("busy", f"?batch_id={batch_id}")
        bench.messages_page("busy", "?status=failed")
        bench.page_and_live("A SIM", f"/sims/{sims[0]}")
        bench.page_and_live("A message (delivered)", f"/messages/{ids[0]}")
        bench.page_and_live("Compose", "/compose")
        bench.page_and_live("Batches", "/batches")
        bench.page_and_live("A batch", f"/batches/{batch_id}")
        bench.page_and_live("Health", "/health")
    shutil.rmtree(state, ignore_errors=True)  # the stack's state and the recording
    print(f"\n(whole run {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
