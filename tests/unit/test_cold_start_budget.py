"""Cold-start budgets: ratios against the floor on the same machine, so a noisy machine does not flake them.

The floor is a fresh interpreter importing boto3 and the Powertools Logger; the layer is built as
sam build builds it (bytecode included). `make bench` prints the full table with 10 runs.
"""

import pytest

from benchmarks.cold_start import build_layer, measure

IMPORT_BUDGET = 1.3  # handler import / floor (measured 0.25-0.84)
WITH_CLIENT_BUDGET = 1.8  # handler import + first boto3 client / floor + client (measured 1.04-1.36)


@pytest.fixture(scope="module")
def cold_starts(tmp_path_factory):
    layer = build_layer(tmp_path_factory.mktemp("layer"))
    return measure(layer, runs=5, compile_allowed=True)


def test_every_handler_imports_within_budget(cold_starts):
    over = {name: round(r["ratio"], 2) for name, r in cold_starts.items() if r["ratio"] > IMPORT_BUDGET}
    assert not over, f"handlers over {IMPORT_BUDGET}x the floor: {over}"


def test_every_handler_with_its_first_client_stays_within_budget(cold_starts):
    over = {name: round(r["with_client_ratio"], 2) for name, r in cold_starts.items() if r["with_client_ratio"] > WITH_CLIENT_BUDGET}
    assert not over, f"handlers over {WITH_CLIENT_BUDGET}x the floor with a client: {over}"


def test_the_layer_ships_bytecode_for_every_module(tmp_path):
    layer = build_layer(tmp_path)
    sources = {p.relative_to(layer).with_suffix("") for p in layer.rglob("*.py")}
    compiled = {(p.parent.parent / p.name.split(".")[0]).relative_to(layer) for p in layer.rglob("__pycache__/*.cpython-313.pyc")}
    assert sources <= compiled, sorted(sources - compiled)[:5]
    assert not (layer / "botocore").exists(), "the runtime provides botocore; a second one would shadow it"
