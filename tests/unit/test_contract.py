"""The API contract: openapi/openapi.yaml, the routes in template.yaml and the handlers agree."""

import importlib.util
import json
import sys

import pytest
import yaml

from local_stack.template import ROOT, api_routes, load_template

OPENAPI = yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text())
METHODS = {"get", "put", "post", "delete", "patch"}


def openapi_routes() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item if method in METHODS}


def test_the_document_is_valid_openapi():
    from openapi_spec_validator import validate

    validate(OPENAPI)


def test_the_document_and_the_template_have_the_same_routes():
    assert openapi_routes() == {(r.method, r.path) for r in api_routes(load_template())}


def handler_routes(logical_id: str) -> set[tuple[str, str]]:
    code_dir = ROOT / load_template()["Resources"][logical_id]["Properties"]["CodeUri"]
    name = f"contract_{logical_id}"
    module_spec = importlib.util.spec_from_file_location(name, code_dir / "app.py")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return {(route.method, route.openapi_path) for route in module.app._static_routes + module.app._dynamic_routes}


@pytest.mark.parametrize("logical_id", sorted({r.function for r in api_routes(load_template())}))
def test_each_handler_serves_exactly_its_template_routes(logical_id):
    declared = {(r.method, r.path) for r in api_routes(load_template()) if r.function == logical_id}
    served = handler_routes(logical_id)
    # A handler may serve one rule for several declared paths (/lists/{list_name}/{msisdn} for allow and block).
    generic = {(m, p) for m, p in served if "{list_name}" in p}
    concrete = {(m, p.replace("{list_name}", name)) for m, p in generic for name in ("allow", "block")}
    assert declared == (served - generic) | concrete


@pytest.mark.parametrize("model", ["SendRequest", "ReplayRequest"])
def test_api_gateway_models_are_the_documented_schemas_projected_to_field_types(model):
    schema = OPENAPI["components"]["schemas"][model]
    expected = {"type": "object", "properties": {k: {"type": v["type"]} for k, v in schema["properties"].items()}}
    [api] = [r for r in load_template()["Resources"].values() if r["Type"] == "AWS::Serverless::Api"]
    assert api["Properties"]["Models"][model] == expected


def test_every_sample_event_targets_a_declared_route():
    routes = {(r.method, r.path) for r in api_routes(load_template())}
    for path in sorted((ROOT / "events").glob("*.json")):
        event = json.loads(path.read_text())
        if "httpMethod" in event:
            assert (event["httpMethod"], event["resource"]) in routes, path.name
            assert event["requestContext"]["resourcePath"] == event["resource"], path.name
        elif "Records" in event:
            assert event["Records"] and all(r["eventSource"] in ("aws:sqs", "aws:dynamodb") for r in event["Records"]), path.name
        else:
            assert (event["source"], event["detail-type"]) == ("aws.events", "Scheduled Event"), path.name


def test_every_function_has_a_sample_event():
    template = load_template()
    events = [json.loads(p.read_text()) for p in (ROOT / "events").glob("*.json")]
    api_events = {(e["httpMethod"], e["resource"]) for e in events if "httpMethod" in e}
    routes = api_routes(template)
    assert {r.function for r in routes} == {r.function for r in routes if (r.method, r.path) in api_events}
    sources = " ".join(e["Records"][0]["eventSourceARN"] for e in events if "Records" in e)
    assert all(name in sources for name in ("SendRetryQueue", "CallbackQueue", ":table/"))  # dispatcher, callbacks, publisher
    assert any(e.get("source") == "aws.events" for e in events)  # the scheduled functions


def test_valid_sample_bodies_match_the_documented_request_schema():
    import jsonschema

    schema = {**OPENAPI["components"]["schemas"]["SendRequest"]}
    schema["properties"] = {k: {kk: vv for kk, vv in v.items() if kk != "format"} for k, v in schema["properties"].items()}
    for name in ("send_gsm7", "send_ucs2", "send_binary_data", "send_dry_run", "send_idempotent", "send_too_long", "send_rejected_by_eseye"):
        body = json.loads(json.loads((ROOT / "events" / f"{name}.json").read_text())["body"])
        jsonschema.validate(body, schema)


def _operations():
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield method.upper(), path, operation


def test_every_operation_has_one_of_the_documents_tags():
    # Given the tags the document declares (what a generated client groups its methods by)
    declared = [t["name"] for t in OPENAPI["tags"]]
    # Then every operation carries exactly one of them, and every tag is used
    used = {(method, path): operation.get("tags") for method, path, operation in _operations()}
    assert all(tags is not None and len(tags) == 1 and tags[0] in declared for tags in used.values()), used
    assert {tags[0] for tags in used.values()} == set(declared)


def _enums(node, where="#"):
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            yield where, node["enum"]
        for key, value in node.items():
            yield from _enums(value, f"{where}/{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _enums(value, f"{where}/{n}")


def test_no_enum_spells_one_value_twice():
    # Given every enum in the document (a generator turns each value into a name: F6 and f6 collide)
    # Then each value has one spelling; the API itself may still accept other cases (data_coding f6)
    for where, values in _enums(OPENAPI):
        spellings = [str(v).lower() for v in values]
        assert len(spellings) == len(set(spellings)), f"{where}: {values}"
