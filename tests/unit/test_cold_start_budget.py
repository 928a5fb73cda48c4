"""Cold-start budgets: ratios against the floor on the same machine, in CPU time and best of interleaved
rounds, so a busy machine does not flake them. And the layer's bytecode: the runtime's, or none.

The floor is a fresh interpreter importing boto3 and the Powertools Logger; the layer is built as
sam build builds it. `make bench` prints the full table (wall time, medians of 10 runs).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cold_start import ENVIRONMENT, FLOOR, ROOT, WITH_CLIENT, build_layer, functions

IMPORT_BUDGET = 1.3  # handler import / floor (measured 0.25-0.84)
WITH_CLIENT_BUDGET = 1.8  # handler import + first boto3 client / floor + client (measured 1.04-1.36)


@pytest.fixture(scope="module")
def cold_starts(tmp_path_factory):
    layer = build_layer(tmp_path_factory.mktemp("layer"))
    return best_of_interleaved_rounds(layer, rounds=5)


def cpu_seconds(paths: list[Path], statement: str) -> float:
    """The CPU time a fresh interpreter spends on `statement`: unlike wall time, not stretched by other processes."""
    script = f"import sys, time\nsys.path[:0] = {[str(p) for p in paths]!r}\nstarted = time.process_time()\n{statement}\n"
    script += "print(time.process_time() - started)\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env={**os.environ, **ENVIRONMENT})
    return float(result.stdout.strip().splitlines()[-1])


def best_of_interleaved_rounds(layer: Path, rounds: int) -> dict[str, dict[str, float]]:
    """CPU time, each figure its best round, each round timing the floors and every handler back to back: on a
    busy machine wall times (medians of separate runs) flaked, as a busy spell landed on some measurements only."""
    statements = {"floor": ([layer], FLOOR), "floor with client": ([layer], FLOOR + "\nboto3.client('dynamodb')")}
    for name, code in functions().items():
        statements[name] = ([code, layer], "import app")
        statements[f"{name} with client"] = ([code, layer], WITH_CLIENT)
    best = dict.fromkeys(statements, float("inf"))
    for _ in range(rounds):
        for key, (paths, statement) in statements.items():
            best[key] = min(best[key], cpu_seconds(paths, statement))
    return {
        name: {"ratio": best[name] / best["floor"], "with_client_ratio": best[f"{name} with client"] / best["floor with client"]}
        for name in functions()
    }


def test_every_handler_imports_within_budget(cold_starts):
    over = {name: round(r["ratio"], 2) for name, r in cold_starts.items() if r["ratio"] > IMPORT_BUDGET}
    assert not over, f"handlers over {IMPORT_BUDGET}x the floor: {over}"


def test_every_handler_with_its_first_client_stays_within_budget(cold_starts):
    over = {name: round(r["with_client_ratio"], 2) for name, r in cold_starts.items() if r["with_client_ratio"] > WITH_CLIENT_BUDGET}
    assert not over, f"handlers over {WITH_CLIENT_BUDGET}x the floor with a client: {over}"


# importlib.util.MAGIC_NUMBER of each CPython (the first two bytes, little-endian, of every pyc it writes).
# A runtime not listed here fails the tests below: add its number, from `pythonX.Y -c "import importlib.util as u;
# print(int.from_bytes(u.MAGIC_NUMBER[:2], 'little'))"`.
MAGIC_NUMBERS = {"3.11": 3495, "3.12": 3531, "3.13": 3571}
LAYER_MAKEFILE = ROOT / "layers" / "common" / "Makefile"


def runtime_version(template) -> str:
    return template["Globals"]["Function"]["Runtime"].removeprefix("python")


def build_layer_with_output(destination: Path, *variables: str) -> tuple[Path, str]:
    command = ["make", "-s", "-C", str(LAYER_MAKEFILE.parent), "build-CommonLayer", f"ARTIFACTS_DIR={destination}", f"PYTHON={sys.executable}"]
    result = subprocess.run([*command, *variables], check=True, capture_output=True, text=True)
    return destination / "python", result.stdout


def pycs_of_another_magic(layer: Path, version: str) -> list[str]:
    magic = MAGIC_NUMBERS[version].to_bytes(2, "little") + b"\r\n"
    return sorted(str(p.relative_to(layer)) for p in layer.rglob("*.pyc") if p.read_bytes()[:4] != magic)


def test_the_layer_is_built_for_the_runtime_the_template_declares(template):
    # Given the runtime template.yaml gives every function and the layer
    version = runtime_version(template)
    assert template["Resources"]["CommonLayer"]["Properties"]["CompatibleRuntimes"] == [f"python{version}"]
    # Then the layer's Makefile builds for that runtime, and we know its bytecode's magic number
    assert re.search(rf"^RUNTIME := python{re.escape(version)}$", LAYER_MAKEFILE.read_text(), re.MULTILINE)
    assert version in MAGIC_NUMBERS, f"add Python {version}'s magic number to MAGIC_NUMBERS"


def test_the_layer_ships_bytecode_for_the_runtime_or_none(template, tmp_path):
    # Given the layer built as sam build builds it, by whatever Python runs the tests
    version = runtime_version(template)
    layer, output = build_layer_with_output(tmp_path)
    sources = {p.relative_to(layer).with_suffix("") for p in layer.rglob("*.py")}
    tag = f"cpython-{version.replace('.', '')}"
    compiled = {(p.parent.parent / p.name.split(".")[0]).relative_to(layer) for p in layer.rglob(f"__pycache__/*.{tag}.pyc")}
    # Then any bytecode in it is the runtime's (another version's would be dead weight the runtime ignores)
    assert not pycs_of_another_magic(layer, version)
    assert not [p for p in layer.rglob("*.pyc") if f".{tag}." not in p.name]
    if compiled or sys.version_info[:2] == tuple(map(int, version.split("."))):
        # and when the runtime's Python was at hand (it runs these tests, or was found), every module has its pyc
        assert sources <= compiled, sorted(sources - compiled)[:5]
    else:
        # and without it the build ships none and says so, naming the cost
        assert "ships NO BYTECODE" in output and "40-110 ms" in output
    assert not (layer / "botocore").exists(), "the runtime provides botocore; a second one would shadow it"


def test_a_build_with_another_python_version_ships_no_bytecode_and_says_so(template, tmp_path):
    # Given the only Python offered to compile the layer is not the runtime's version
    version = runtime_version(template)
    other = tmp_path / "python-other"
    other.write_text("#!/bin/sh\necho 3.11\n")  # answers the version check as a Python 3.11 would
    other.chmod(0o755)
    # When the layer is built with it
    layer, output = build_layer_with_output(tmp_path / "built", f"BYTECODE_PYTHON={other}")
    # Then no bytecode is shipped, and the build says why and what it costs
    assert not list(layer.rglob("*.pyc"))
    assert (layer / "smsgw" / "__init__.py").exists()
    assert "ships NO BYTECODE" in output
    assert f"No Python {version}" in output and "is Python 3.11" in output
    assert "40-110 ms" in output and "docs/performance.md" in output
