"""Test modules share helpers through tests/helpers.py and fixtures through conftest.py, never through each other:
importing another test module makes pytest collect (and a reader chase) its tests from the wrong place."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("tests", "load", "benchmarks") for p in sorted((ROOT / folder).rglob("*.py"))]


def is_test_module(module: str) -> bool:
    return module.split(".")[-1].startswith("test_")


def imported_modules(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:  # relative: resolve against the importing file's package
                package = path.relative_to(ROOT).parent.parts[: len(path.relative_to(ROOT).parent.parts) - node.level + 1]
                found.append(".".join([*package, node.module]))
            else:
                found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]  # `from tests.unit import test_x`
    return found


def test_the_guard_sees_test_module_imports():
    assert is_test_module("tests.integration.test_inbound")
    assert not is_test_module("tests.helpers") and not is_test_module("tests.conftest")


def test_no_module_imports_a_test_module():
    # Given every Python file under tests/, load/ and benchmarks/
    assert SOURCES, "no sources found"
    # When their imports are read / Then none of them is a test module
    offenders = [f"{path.relative_to(ROOT)}: {module}" for path in SOURCES for module in imported_modules(path) if is_test_module(module)]
    assert offenders == [], "move shared helpers to tests/helpers.py and fixtures to a conftest.py:\n" + "\n".join(offenders)
