"""make load, part two: one batch of LOAD_BATCH recipients (10,000 by default) through the local stack.

Posts the batch, times the API's answer, follows GET /batches/{id} until every message is final, then
reconciles: every recipient reached Eseye exactly once (the simulator's record of send requests), every
message is delivered, and the batch's counts say so. Prints the fan-out time (until every message
exists), the end-to-end time (until the batch completed) and the rate Eseye saw. The exit status is 0
only if nothing was lost and nothing was sent twice.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from load.run_load import start_stack  # the same stack, started the same way

RECIPIENTS = int(os.environ.get("LOAD_BATCH", "10000"))
TIMEOUT_SECONDS = float(os.environ.get("LOAD_BATCH_TIMEOUT", "7200"))
POLL_SECONDS = 5.0


def recipients(count: int) -> list[str]:
    """Distinct SIMs whose last four digits carry no simulator rule (0000 fails, 0001 gets no receipt, 0570 is refused)."""
    out: list[str] = []
    n = 0
    while len(out) < count:
        n += 1
        if n % 10000 in (0, 1, 570):
            continue
        out.append(f"4478{n:08d}")
    return out


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="smsgw-batch-load-") as directory:
        state = Path(directory)
        process, outputs = start_stack(state)
        api, eseye = outputs["ApiUrl"], outputs["EseyeBaseUrl"]
        session = requests.Session()
        try:
            sims = recipients(RECIPIENTS)
            started = time.time()
            posted = time.perf_counter()
            body = {"to": sims, "text": "LOAD FW CHECK"}
            response = session.post(f"{api}/batches", json=body, headers={"Idempotency-Key": "batch-load"}, timeout=60)
            answer = time.perf_counter() - posted
            if response.status_code != 202:
                print(f"POST /batches answered {response.status_code}: {response.text[:300]}")
                return 1
            batch_id = response.json()["id"]
            print(f"batch of {RECIPIENTS} recipients accepted in {answer:.2f} s (POST /batches, {len(response.request.body or b'') / 1024:.0f} KB)")
            fanned_out = None
            batch: dict = {}
            deadline = time.monotonic() + TIMEOUT_SECONDS
            last_print = 0.0
            while time.monotonic() < deadline:
                batch = session.get(f"{api}/batches/{batch_id}", timeout=60).json()
                counts = batch.get("counts") or {}
                if fanned_out is None and batch.get("state") in ("sending", "completed") and "accepted" not in counts:
                    fanned_out = time.time() - started
                if batch.get("completed_at"):
                    break
                if time.monotonic() - last_print > 30:
                    print(f"  {time.time() - started:6.0f} s  {batch.get('state')}  {counts}", flush=True)
                    last_print = time.monotonic()
                time.sleep(POLL_SECONDS)
            end_to_end = time.time() - started
            seen = session.get(f"{eseye}/_sim/sends", params={"since": started - 1}, timeout=120).json()
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)
    per_sim = Counter(s["destination"] for s in seen["sends"])
    missing = [s for s in sims if per_sim.get(s, 0) == 0]
    twice = [s for s, n in per_sim.items() if n > 1]
    counts = batch.get("counts") or {}
    print(f"state {batch.get('state')}, counts {counts}")
    if fanned_out is not None:
        print(f"fan-out: every message created {fanned_out:.0f} s after the POST")
    print(f"end to end: completed {end_to_end:.0f} s after the POST ({RECIPIENTS / end_to_end:.1f} recipients/s)")
    rate = f"{seen.get('per_second') or 0:.1f}/s (at most {seen.get('max_in_any_second')} in one second)"
    print(f"Eseye saw {len(seen['sends'])} sends at {rate}; missing {len(missing)}, sent twice {len(twice)}")
    ok = batch.get("completed_at") and counts == {"delivered": RECIPIENTS} and not missing and not twice
    print("reconciled: nothing lost, nothing sent twice" if ok else "NOT RECONCILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
