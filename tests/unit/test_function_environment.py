"""Each function gets exactly the environment its code reads: no variable missing, none extra.

What a function reads is found statically. From its app.py, follow every name it uses into layers/common/smsgw
(functions, classes, modules), and collect there:
  - Settings fields read off a settings object (`settings().x`, `deps.settings.x`, `config.x`);
  - Deps fields used (`deps.store`, ...), each costing the Settings fields build_deps builds it from;
  - variables read straight from os.environ.
Each Settings field maps to the variable Settings.from_env reads it from. The template, as the local stack
resolves it, must give the function exactly those variables (Powertools' own settings apart).
An over-approximation on purpose: a function is charged for every name it can reach, called or not.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from local_stack.template import ROOT, Context, default_parameters, functions, load_template

LAYER = ROOT / "layers" / "common"
# Read by Settings, left at their defaults in the deployed stack on purpose.
DEFAULTED = {
    "ESEYE_CONNECT_TIMEOUT": "a TCP connect to Eseye that takes longer than 3 s is a failure either way",
    "ALLOW_INSECURE_CALLBACKS": "the local stack only (callback receivers on http://127.0.0.1)",
}
NOT_OURS = "POWERTOOLS_"  # read by Powertools itself, the same for every function


def module_path(name: str) -> Path | None:
    for path in (LAYER / (name.replace(".", "/") + ".py"), LAYER / name.replace(".", "/") / "__init__.py"):
        if path.exists():
            return path
    return None


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def bindings(nodes: list[ast.AST]) -> dict[str, tuple[str, str | None]]:
    """Local name -> (smsgw module, attribute or None for the module itself), from the imports among nodes."""
    bound: dict[str, tuple[str, str | None]] = {}
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "smsgw":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                bound[alias.asname or alias.name] = (submodule, None) if module_path(submodule) else (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "smsgw" and alias.asname:
                    bound[alias.asname] = (alias.name, None)
    return bound


def settings_fields() -> set[str]:
    [settings] = [n for n in parsed(LAYER / "smsgw" / "config.py").body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    return {n.target.id for n in settings.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}


def settings_methods() -> dict[str, set[str]]:
    """Settings method -> the Settings fields it reads off `self` (settings().sim_defaults() reads three)."""
    [settings] = [n for n in parsed(LAYER / "smsgw" / "config.py").body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    known = settings_fields()
    return {
        method.name: {
            n.attr
            for n in ast.walk(method)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self" and n.attr in known
        }
        for method in settings.body
        if isinstance(method, ast.FunctionDef) and not any(ast.unparse(d) == "classmethod" for d in method.decorator_list)
    }


def variable_of_field() -> dict[str, str]:
    """Settings field -> the environment variable Settings.from_env reads it from."""
    found = {}
    for node in ast.walk(parsed(LAYER / "smsgw" / "config.py")):
        if isinstance(node, ast.keyword) and node.arg:
            names = [
                c.args[0].value
                for c in ast.walk(node.value)
                if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "get" and ast.unparse(c.func.value) == "env"
            ]
            if names:
                found[node.arg] = names[0]
    return found


def deps_fields() -> dict[str, set[str]]:
    """Deps field -> the Settings fields build_deps builds it from (through its local names)."""
    tree = parsed(LAYER / "smsgw" / "deps.py")
    [build] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_deps"]
    config = build.args.args[0].arg
    local: dict[str, ast.AST] = {}
    for node in ast.walk(build):
        if isinstance(node, ast.Assign):
            local.update({t.id: node.value for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.FunctionDef) and node is not build:
            local[node.name] = node

    def reads(expression: ast.AST, seen: frozenset[str]) -> set[str]:
        fields = set()
        for node in ast.walk(expression):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == config:
                fields.add(node.attr)
            elif isinstance(node, ast.Name) and node.id in local and node.id not in seen:
                fields |= reads(local[node.id], seen | {node.id})
        return fields

    [made] = [n for n in ast.walk(build) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Deps"]
    return {k.arg: reads(k.value, frozenset()) for k in made.keywords if k.arg and k.arg != "settings"}


def _is_settings(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    return (isinstance(node, ast.Name) and node.id in ("settings", "config")) or (isinstance(node, ast.Attribute) and node.attr == "settings")


def _is_deps(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id == "default_deps"
    return (isinstance(node, ast.Name) and node.id == "deps") or (isinstance(node, ast.Attribute) and node.attr == "deps")


def _environ_read(node: ast.AST) -> str | None:
    if (
        isinstance(node, ast.Call)
        and ast.unparse(node.func) in ("os.environ.get", "os.getenv", "environ.get")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    if isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ") and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return None


def reads_of(app: Path) -> tuple[set[str], set[str], set[str]]:
    """(Settings fields, Deps fields, environment variables) that the code reachable from app.py reads."""
    known = settings_fields()
    settings_reads = settings_methods()
    wiring = deps_fields()
    fields: set[str] = set()
    used_deps: set[str] = set()
    variables: set[str] = set()
    done: set[tuple[str, str | None]] = set()
    todo: list[tuple[str, str | None]] = []

    def scan(module: str, nodes: list[ast.AST], module_bindings: dict, defs: dict) -> None:
        names = {**module_bindings, **bindings([n for top in nodes for n in ast.walk(top)])}
        for top in nodes:
            for node in ast.walk(top):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    if node.id in defs:
                        todo.append((module, node.id))
                    elif node.id in names:
                        target, attribute = names[node.id]
                        todo.append((target, None))
                        if attribute:
                            todo.append((target, attribute))
                elif isinstance(node, ast.Attribute):
                    base = node.value
                    if isinstance(base, ast.Name) and base.id in names and names[base.id][1] is None:
                        todo.append((names[base.id][0], node.attr))
                    if node.attr in known and _is_settings(base):
                        fields.add(node.attr)
                    elif node.attr in settings_reads and _is_settings(base):
                        fields.update(settings_reads[node.attr])
                    if node.attr in wiring and _is_deps(base):
                        used_deps.add(node.attr)
                    elif _is_deps(base):  # a method of Deps (deps.tracer()): what it reads counts
                        todo.append(("smsgw.deps", f"Deps.{node.attr}"))
                if (variable := _environ_read(node)) is not None:
                    variables.add(variable)

    tree = parsed(app)
    scan("app", list(tree.body), {}, {})
    while todo:
        module, name = todo.pop()
        # config and deps read every setting to build everything; what is used of them is counted above.
        if (module, name) in done or module == "smsgw.config" or (module == "smsgw.deps" and not (name or "").startswith("Deps.")):
            continue
        done.add((module, name))
        path = module_path(module)
        if path is None:
            continue
        body = parsed(path).body
        if name and name.startswith("Deps."):
            [deps_class] = [n for n in body if isinstance(n, ast.ClassDef) and n.name == "Deps"]
            methods = [n for n in deps_class.body if isinstance(n, ast.FunctionDef) and n.name == name.split(".", 1)[1]]
            scan(module, methods, bindings(body), {})
            continue
        defs = {n.name: n for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
        top_imports = bindings(body)
        if name is None:  # importing a module runs its top level (not the bodies of its functions)
            scan(module, [n for n in body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)], top_imports, defs)
        elif name in defs:
            todo.append((module, None))
            scan(module, [defs[name]], top_imports, defs)
        elif module_path(f"{module}.{name}"):
            todo.append((f"{module}.{name}", None))
    for used in used_deps:
        fields |= wiring[used]
    return fields, used_deps, variables


def needed_variables(app: Path) -> set[str]:
    fields, _, variables = reads_of(app)
    by_field = variable_of_field()
    needed = {by_field[f] for f in fields if f in by_field} | variables
    return {v for v in needed if v not in DEFAULTED and not v.startswith(NOT_OURS)}


class _Placeholder(dict):
    """A resource's attributes before it exists: any attribute resolves to a stand-in."""

    def __missing__(self, attribute: str) -> str:
        return f"<{attribute}>"


@cache
def deployed() -> dict:
    template = load_template()
    context = Context(template, default_parameters(template))
    context.physical.update({logical_id: _Placeholder() for logical_id in template["Resources"]})
    return functions(context)


@pytest.mark.parametrize("function", sorted(deployed()))
def test_each_function_gets_exactly_the_variables_its_code_reads(function):
    # Given what the function's code can reach in the shared layer
    spec = deployed()[function]
    needed = needed_variables(spec.code_dir / (spec.handler.split(".")[0] + ".py"))
    # Then the template gives it each of those variables, and no other
    given = {v for v in spec.environment if not v.startswith(NOT_OURS)}
    assert sorted(needed - given) == [], f"{function} reads variables the template does not give it"
    assert sorted(given - needed) == [], f"{function} is given variables its code never reads"


def test_every_function_gets_the_powertools_settings():
    for name, spec in deployed().items():
        assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(spec.environment), name


def test_the_reader_sees_what_a_function_reads():
    # The analysis itself: the send function reaches the table, Eseye and the retry queue; history only its cursors
    send = needed_variables(ROOT / "functions" / "send" / "app.py")
    assert {"TABLE_NAME", "SECRET_ID", "ESEYE_BASE_URL", "SEND_QUEUE_URL", "SEND_MAX_ATTEMPTS", "DETAILED_TRACING"} <= send
    history = needed_variables(ROOT / "functions" / "history" / "app.py")
    assert {"TABLE_NAME", "CURSOR_SECRET_ID"} <= history and "ESEYE_BASE_URL" not in history
    # a method of Settings counts the fields it reads: sending admits into the SIM's queue under its defaults
    assert {"SIM_MAX_IN_FLIGHT", "SIM_MAX_QUEUED", "SIM_MAX_PER_HOUR"} <= send
