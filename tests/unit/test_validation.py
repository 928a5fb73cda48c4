"""The validation module and openapi/openapi.yaml state the same rules, and the rules say what they mean."""

import json
import re

import pytest
import yaml

from local_stack.template import ROOT
from smsgw import encoding, errors, models, simqueue, validation
from smsgw.logic import replay, send, sims

OPENAPI = yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text())
SCHEMAS = OPENAPI["components"]["schemas"]


def parameter(path: str, method: str, name: str) -> dict:
    [found] = [p for p in OPENAPI["paths"][path][method]["parameters"] if p.get("name") == name]
    return found["schema"]


def test_every_documented_msisdn_pattern_is_the_one_the_gateway_checks():
    patterns = {
        SCHEMAS["SendRequest"]["properties"]["to"]["pattern"],
        SCHEMAS["SendRequest"]["properties"]["source"]["pattern"],
        SCHEMAS["ReplayRequest"]["properties"]["msisdn"]["pattern"],
        OPENAPI["components"]["parameters"]["Msisdn"]["schema"]["pattern"],
    }
    assert patterns == {validation.MSISDN_PATTERN.pattern}


def test_the_send_request_rules_agree_with_the_document():
    fields = SCHEMAS["SendRequest"]["properties"]
    assert fields["data"]["pattern"] == validation.HEX_PATTERN.pattern
    assert {c.upper() for c in fields["data_coding"]["enum"]} == set(encoding.DATA_CODINGS)
    assert tuple(fields["encoding"]["enum"]) == encoding.ENCODINGS
    assert (fields["client_ref"]["minLength"], fields["client_ref"]["maxLength"]) == (1, validation.CLIENT_REF_MAX)
    assert fields["status_callback"]["maxLength"] == validation.CALLBACK_URL_MAX
    assert fields["status_callback"]["pattern"] == "^https://"
    assert (fields["expect_reply_within"]["minimum"], fields["expect_reply_within"]["maximum"]) == (1, validation.REPLY_WINDOW_MAX_SECONDS)
    assert fields["text"]["minLength"] == 1
    key = parameter("/messages", "post", "Idempotency-Key")
    assert (key["minLength"], key["maxLength"]) == (1, validation.IDEMPOTENCY_KEY_MAX)
    assert (fields["collapse_key"]["minLength"], fields["collapse_key"]["maxLength"]) == (1, validation.COLLAPSE_KEY_MAX)
    assert fields["send_at"]["format"] == "date-time"
    assert (send.SEND_AT_MIN.total_seconds(), send.SEND_AT_MAX.days) == (60, 35)
    assert "from 1 minute to 35 days ahead" in fields["send_at"]["description"]
    assert set(fields) == send.ALLOWED_FIELDS


def test_every_documented_status_list_is_the_gateways():
    statuses = [*models.MT_STATUSES, models.RECEIVED]
    assert SCHEMAS["Message"]["properties"]["status"]["enum"] == statuses
    assert parameter("/messages", "get", "status")["enum"] == statuses
    event = json.loads((ROOT / "schemas" / "sms.mt.status.schema.json").read_text())
    assert event["properties"]["data"]["properties"]["status"]["enum"] == list(models.MT_STATUSES)


def test_the_sim_settings_rules_agree_with_the_document():
    for name in ("SimSettingsRequest", "SimSettings"):
        fields = SCHEMAS[name]["properties"]
        assert {k: (v["minimum"], v["maximum"]) for k, v in fields.items()} == sims.SETTING_RANGES
        assert SCHEMAS[name]["additionalProperties"] is False
    assert SCHEMAS["SimSettingsRequest"]["minProperties"] == 1
    # Given a SIM with an override and messages in flight and waiting
    state = simqueue.SimState("447700900123", overrides={"max_queued": 5})
    state, _ = state.admit("a" * 32, models.now(), simqueue.SimSettings())
    state, _ = state.admit("b" * 32, models.now(), simqueue.SimSettings(), collapse_key="cfg")
    # Then GET /sims/{msisdn} shows exactly the documented fields
    view = state.view(simqueue.SimSettings())
    assert set(view) == set(SCHEMAS["SimState"]["required"])
    # and GET adds where the SIM stands with the lists (PUT and DELETE of its settings answer the view alone)
    assert set(SCHEMAS["SimState"]["properties"]) == set(view) | {"lists"}
    standing = SCHEMAS["SimState"]["properties"]["lists"]
    assert (
        set(standing["properties"])
        == set(standing["required"])
        == {"on_blocklist", "on_allowlist", "allowlist_in_force", "traffic_allowed", "refusal_reason"}
    )
    assert set(view["queued_messages"][0]) == set(SCHEMAS["SimState"]["properties"]["queued_messages"]["items"]["properties"])


def test_the_queue_full_answer_is_documented_with_its_details():
    answer = OPENAPI["paths"]["/messages"]["post"]["responses"][str(errors.SimQueueFull.status)]
    assert answer == {"$ref": "#/components/responses/SimQueueFull"}
    error = SCHEMAS["SimQueueFullError"]["properties"]["error"]["properties"]
    assert error["code"]["enum"] == [errors.SimQueueFull.code]
    full = simqueue.QueueFull("447700900123", 100, 100)
    assert set(error["details"]["required"]) == {"msisdn", "depth", "max_queued"} == set(vars(full)) - {"args"}


def test_the_query_and_replay_rules_agree_with_the_document():
    limit = parameter("/messages", "get", "limit")
    assert (limit["minimum"], limit["maximum"]) == (1, validation.HISTORY_LIMIT_MAX)
    assert tuple(parameter("/messages", "get", "direction")["enum"]) == validation.DIRECTIONS
    fields = SCHEMAS["ReplayRequest"]["properties"]
    assert (fields["limit"]["minimum"], fields["limit"]["maximum"]) == (1, validation.REPLAY_LIMIT_MAX)
    assert tuple(fields["type"]["enum"]) == replay.TYPES
    assert set(fields) == validation.REPLAY_FIELDS
    assert SCHEMAS["ListEntryRequest"]["properties"]["note"]["maxLength"] == validation.NOTE_MAX


@pytest.mark.parametrize("value", ["447700900123", "+447700900123", "12345678", "123456789012345"])
def test_msisdns_in_international_format_pass(value):
    assert validation.is_msisdn(value)
    assert re.fullmatch(SCHEMAS["SendRequest"]["properties"]["to"]["pattern"].strip("^$"), value)


@pytest.mark.parametrize("value", ["1234567", "1234567890123456", "+44 7700 900123", "44770090012a", "", None, 447700900123, "٤٤٧٧٠٠٩٠٠١٢٣"])
def test_anything_else_is_not_an_msisdn(value):
    assert not validation.is_msisdn(value)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/h",
        "https://127.1/h",
        "https://2130706433/h",
        "https://0x7f000001/h",
        "https://10.1.2.3/h",
        "https://172.16.0.1/h",
        "https://192.168.1.1/h",
        "https://169.254.169.254/latest",
        "https://100.100.100.200/h",
        "https://[::1]/h",
        "https://[::ffff:127.0.0.1]/h",
        "https://[fe80::1]/h",
        "https://[fd00:ec2::254]/h",
        "https://224.0.0.251/h",
        "https://0.0.0.0/h",
    ],
)
def test_a_callback_to_a_literal_non_public_address_is_refused(url):
    assert validation.callback_problem(url) == "must not name a private, loopback, link-local, multicast or metadata address"


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34/h", "https://[2606:2800:220:1::1]/h", "https://hooks.example.com/h", "https://10.example.com/h"]
)
def test_a_public_address_or_a_name_passes_without_asking_dns(url, monkeypatch):
    import socket

    def no_dns(*args, **kwargs):
        raise AssertionError("DNS asked at send time")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    assert validation.callback_problem(url) is None


def test_the_local_stack_may_call_loopback_over_http():
    assert validation.callback_problem("http://127.0.0.1:8080/h", allow_insecure=True) is None
    assert validation.callback_problem("http://127.0.0.1:8080/h") is not None


@pytest.mark.parametrize("value", ["ok", "a" * 64, "ünïcödé"])
def test_printable_strings_pass(value):
    assert validation.printable(value, 1, 64)


@pytest.mark.parametrize("value", ["", "a" * 65, "tab\there", "nul\x00", "del\x7f", "c1\x85", 5, None])
def test_control_characters_wrong_lengths_and_non_strings_do_not(value):
    assert not validation.printable(value, 1, 64)
