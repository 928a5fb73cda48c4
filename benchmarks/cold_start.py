"""Cold start per function: the time to import its handler in a fresh interpreter, as Lambda does.

Compared with the floor, a fresh interpreter that imports only boto3 and the Powertools Logger, in
two ways: with the layer as this project builds it (bytecode compiled for Python 3.13), and as a
plain `sam build` would ship it (no __pycache__: Lambda's code directories are read-only, so every
cold start compiles every module it imports). Times are medians of fresh-interpreter runs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "import boto3\nfrom aws_lambda_powertools import Logger"
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "POWERTOOLS_SERVICE_NAME": "eseye-sms-gateway",
    "POWERTOOLS_METRICS_NAMESPACE": "EseyeSmsGateway",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "TABLE_NAME": "t",
    "SECRET_ID": "s",
}


def build_layer(destination: Path) -> Path:
    """Build the layer exactly as sam build does (layers/common/Makefile). Returns its python/ directory."""
    command = ["make", "-s", "-C", str(ROOT / "layers" / "common"), "build-CommonLayer", f"ARTIFACTS_DIR={destination}", f"PYTHON={sys.executable}"]
    subprocess.run(command, check=True)
    return destination / "python"


def strip_bytecode(layer: Path, destination: Path) -> Path:
    shutil.copytree(layer, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


def import_seconds(paths: list[Path], statement: str, compile_allowed: bool) -> float:
    script = (
        "import sys, time\n"
        f"sys.path[:0] = {[str(p) for p in paths]!r}\n"
        "started = time.perf_counter()\n"
        f"{statement}\n"
        "print(time.perf_counter() - started)\n"
    )
    flags = [] if compile_allowed else ["-B"]  # -B: like a read-only directory, nothing cached between runs
    result = subprocess.run([sys.executable, *flags, "-c", script], capture_output=True, text=True, check=True, env={**os.environ, **ENVIRONMENT})
    return float(result.stdout.strip().splitlines()[-1])


def median(paths: list[Path], statement: str, runs: int, compile_allowed: bool) -> float:
    return statistics.median(import_seconds(paths, statement, compile_allowed) for _ in range(runs))


def functions() -> dict[str, Path]:
    sys.path.insert(0, str(ROOT)) if str(ROOT) not in sys.path else None
    from local_stack.template import load_template

    resources = load_template()["Resources"]
    return {name: ROOT / r["Properties"]["CodeUri"] for name, r in sorted(resources.items()) if r["Type"] == "AWS::Serverless::Function"}


# The handlers build their boto3 clients on first use, so the honest total also builds one.
WITH_CLIENT = "import app\nfrom smsgw.adapters import aws\naws.client('dynamodb')"


def measure(layer: Path, runs: int, compile_allowed: bool, only: list[str] | None = None, with_client: bool = True) -> dict[str, dict[str, float]]:
    floor = median([layer], FLOOR, runs, compile_allowed)
    floor_with_client = median([layer], FLOOR + "\nboto3.client('dynamodb')", runs, compile_allowed) if with_client else 0.0
    results = {"floor": {"seconds": floor, "ratio": 1.0, "with_client": floor_with_client, "with_client_ratio": 1.0}}
    for name, code in functions().items():
        if only and name not in only:
            continue
        seconds = median([code, layer], "import app", runs, compile_allowed)
        results[name] = {"seconds": seconds, "ratio": seconds / floor}
        if with_client:
            total = median([code, layer], WITH_CLIENT, runs, compile_allowed)
            results[name].update(with_client=total, with_client_ratio=total / floor_with_client)
    return results


def main() -> None:
    runs = int(os.environ.get("COLD_START_RUNS", "10"))
    with tempfile.TemporaryDirectory(prefix="smsgw-cold-") as directory:
        layer = build_layer(Path(directory) / "built")
        plain = strip_bytecode(layer, Path(directory) / "plain")
        compiled = measure(layer, runs, compile_allowed=True)
        uncompiled = measure(plain, runs, compile_allowed=False)
    print(f"Cold start: median import time of each handler over {runs} fresh interpreters (Python {sys.version.split()[0]})")
    print("floor: a fresh interpreter importing boto3 and the Powertools Logger; 'with client': both sides also build a boto3 client")
    print(f"{'function':<24} {'bytecode shipped':>17} {'ratio':>6} {'with client':>12} {'ratio':>6} {'no bytecode':>12} {'ratio':>6}")
    for name in compiled:
        a, b = compiled[name], uncompiled[name]
        print(
            f"{name:<24} {a['seconds'] * 1000:>14.0f} ms {a['ratio']:>5.2f}x {a['with_client'] * 1000:>9.0f} ms {a['with_client_ratio']:>5.2f}x"
            f" {b['seconds'] * 1000:>9.0f} ms {b['ratio']:>5.2f}x"
        )
    (ROOT / ".local").mkdir(exist_ok=True)
    (ROOT / ".local" / "cold_start.json").write_text(json.dumps({"runs": runs, "compiled": compiled, "uncompiled": uncompiled}, indent=2))


if __name__ == "__main__":
    main()
