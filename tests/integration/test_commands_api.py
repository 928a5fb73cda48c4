"""Saved commands through CommandsFunction and SendFunction, handlers in-process against moto and the Eseye simulator."""

import json

import pytest

from tests.conftest import load_event
from tests.helpers import body_of, send

SIM = "447700900123"
SET_APN = json.loads(load_event("commands_put")["body"])  # SET APN {apn} PIN {pin}


def commands_call(stack, method, name=None, body=None, query=None):
    sample = {"PUT": "commands_put", "GET": "commands_get" if name else "commands_list", "DELETE": "commands_delete"}[method]
    event = load_event(sample)
    if name is not None:
        event["path"] = f"/commands/{name}"
        event["pathParameters"] = {"name": name}
    if body is not None:
        event["body"] = json.dumps(body)
    if query is not None or sample == "commands_list":
        event["queryStringParameters"] = query
    return stack.invoke("CommandsFunction", event)


def save(stack, name, body):
    return commands_call(stack, "PUT", name, body)


def error_fields(response):
    assert response["statusCode"] == 422, response
    return body_of(response)["error"]["details"]["fields"]


def test_the_sample_events_save_show_list_and_delete_a_command(stack):
    # Given no commands / When the sample PUT runs
    created = stack.invoke("CommandsFunction", load_event("commands_put"))
    # Then the command is stored with its worst case and who saved it
    assert created["statusCode"] == 201
    command = body_of(created)
    assert command["name"] == "set-apn" and command["text"] == "SET APN {apn} PIN {pin}"
    assert command["worst_case"] == {"encoding": "gsm7", "length": 49, "limit": 160}
    assert command["created_by"] == command["updated_by"] == "arn:aws:iam::123456789012:user/local-developer"
    # and the other samples show it, list it and delete it
    assert body_of(stack.invoke("CommandsFunction", load_event("commands_get"))) == command
    assert body_of(stack.invoke("CommandsFunction", load_event("commands_list"))) == {"items": [command], "next_cursor": None}
    deleted = stack.invoke("CommandsFunction", load_event("commands_delete"))
    assert (deleted["statusCode"], body_of(deleted)) == (200, {"deleted": True, "name": "set-apn"})
    assert stack.invoke("CommandsFunction", load_event("commands_get"))["statusCode"] == 404


def test_saving_again_replaces_the_command_and_keeps_when_it_was_created(stack):
    first = body_of(save(stack, "reboot", {"text": "REBOOT"}))
    # When the same name is saved with another text
    replaced = save(stack, "reboot", {"text": "REBOOT {delay}", "variables": {"delay": {"pattern": "[0-9]{1,3}", "max_length": 3}}})
    # Then it is 200, the new text, the first creation kept
    assert replaced["statusCode"] == 200
    command = body_of(replaced)
    assert (command["text"], command["created_at"]) == ("REBOOT {delay}", first["created_at"])
    assert body_of(commands_call(stack, "GET", "reboot"))["variables"] == {"delay": {"pattern": "[0-9]{1,3}", "max_length": 3}}
    # and each change is in the audit trail, with who made it
    audit, _ = stack.deps("CommandsFunction").store.table.query(key_condition="#pk = :pk", names={"#pk": "PK"}, values={":pk": "CMDLOG"})
    assert [(a["name"], a["action"], a["actor"]) for a in audit] == [
        ("reboot", "created", "arn:aws:iam::123456789012:user/local-developer"),
        ("reboot", "replaced", "arn:aws:iam::123456789012:user/local-developer"),
    ]


def test_the_list_pages_by_name_with_a_cursor(stack):
    for name in ("c-one", "a-two", "b-three"):
        save(stack, name, {"text": name.upper()})
    # When the list is read a page of two at a time
    first = body_of(commands_call(stack, "GET", query={"limit": "2"}))
    second = body_of(commands_call(stack, "GET", query={"limit": "2", "cursor": first["next_cursor"]}))
    # Then every command comes once, by name
    assert [c["name"] for c in first["items"] + second["items"]] == ["a-two", "b-three", "c-one"]
    assert second["next_cursor"] is None
    # and a forged cursor or a bad limit is refused
    assert body_of(commands_call(stack, "GET", query={"cursor": "abc.def"}))["error"]["code"] == "invalid_cursor"
    assert "limit" in error_fields(commands_call(stack, "GET", query={"limit": "0"}))


def test_a_command_that_could_exceed_one_sms_is_refused_with_its_worst_case_and_nothing_is_stored(stack):
    # Given a text of 140 characters and a variable that may hold 21 more
    body = {"text": "X" * 140 + "{v}", "variables": {"v": {"pattern": "[A-Z]+", "max_length": 21}}}
    response = save(stack, "too-long", body)
    # Then it is 422 saying the worst case, and nothing is saved
    error = body_of(response)["error"]
    assert (response["statusCode"], error["code"]) == (422, "validation_error")
    assert error["details"]["worst_case"] == {"encoding": "gsm7", "length": 161, "limit": 160}
    assert "161" in error["message"] and "160" in error["message"]
    assert commands_call(stack, "GET", "too-long")["statusCode"] == 404
    # and at 20 it fits exactly
    body["variables"]["v"]["max_length"] = 20
    assert body_of(save(stack, "too-long", body))["worst_case"] == {"encoding": "gsm7", "length": 160, "limit": 160}


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("bad name!", {"text": "GO"}, "name"),
        ("ok", {"text": "GO {x}"}, "variables.x"),
        ("ok", {"text": "GO {x}", "variables": {"x": {"pattern": "(", "max_length": 3}}}, "variables.x.pattern"),
        ("ok", {"text": "GO {x}", "variables": {"x": {"pattern": "[0-9]", "max_length": "3"}}}, "variables.x.max_length"),
        ("ok", {"data": "0102", "variables": {"x": {"pattern": "[0-9]", "max_length": 3}}}, "variables"),
        ("ok", {"text": "GO", "data": "01"}, "text"),
        ("ok", {"text": "GO", "extra": 1}, "extra"),
    ],
)
def test_a_bad_definition_is_422_naming_the_field(stack, name, body, field):
    event = load_event("commands_put")
    event.update(path=f"/commands/{name}", pathParameters={"name": name}, body=json.dumps(body))
    assert field in error_fields(stack.invoke("CommandsFunction", event))


def test_bodies_that_are_not_json_objects_are_4xx_never_500(stack):
    for raw, status in (("not json", 400), ("[1, 2]", 422), ("", 400)):
        event = load_event("commands_put")
        event["body"] = raw
        response = stack.invoke("CommandsFunction", event)
        assert response["statusCode"] == status and "error" in body_of(response), raw


def test_deleting_an_absent_command_is_404(stack):
    response = commands_call(stack, "DELETE", "never-saved")
    assert (response["statusCode"], body_of(response)["error"]["code"]) == (404, "not_found")


# --- POST /messages with a command -------------------------------------------------------------------------------


def test_the_sample_send_renders_the_command_and_eseye_gets_the_text(stack):
    # Given the set-apn command is saved
    stack.invoke("CommandsFunction", load_event("commands_put"))
    # When the sample send names it with its variables
    response = send(stack, "send_command")
    # Then Eseye gets the rendered text, and the message records the command and its variables
    assert response["statusCode"] == 202
    message = body_of(response)
    assert message["status"] == "sent"
    variables = {"apn": "iot.eseye.com", "pin": "1234"}
    assert (message["text"], message["command"], message["variables"]) == ("SET APN iot.eseye.com PIN 1234", "set-apn", variables)
    assert (message["encoding"], message["length"]) == ("gsm7", 30)
    [request] = stack.eseye.requests
    assert (request["form"]["text"], request["form"]["destination"]) == ("SET APN iot.eseye.com PIN 1234", SIM)
    stored = stack.deps().store.messages.get(message["id"])
    assert (stored.command, stored.variables, stored.text) == ("set-apn", {"apn": "iot.eseye.com", "pin": "1234"}, "SET APN iot.eseye.com PIN 1234")


def test_a_data_command_sends_its_octets_with_its_data_coding(stack):
    save(stack, "wake", {"data": "0a0b", "data_coding": "f6"})
    message = body_of(send(stack, body={"to": SIM, "command": "wake"}))
    assert (message["data"], message["data_coding"], message["command"]) == ("0A0B", "F6", "wake")
    form = stack.eseye.requests[0]["form"]
    assert (form["short_message"], form["data_coding"]) == ("0A0B", "F6")
    assert "takes no variables" in error_fields(send(stack, body={"to": SIM, "command": "wake", "variables": {"x": "1"}}))["variables"]


def test_a_dry_run_with_a_command_shows_the_rendered_texts_analysis(stack):
    save(stack, "set-apn", SET_APN)
    response = send(stack, body={"to": SIM, "command": "set-apn", "variables": {"apn": "a.b", "pin": "0000"}}, query={"dry_run": "true"})
    assert (response["statusCode"], body_of(response)["length"]) == (200, 20)
    assert stack.eseye.requests == []


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"command": "no-such-command"}, {"command"}),
        ({"command": "set-apn"}, {"variables.apn", "variables.pin"}),
        ({"command": "set-apn", "variables": {"apn": "iot", "pin": "12345", "colour": "red"}}, {"variables.pin", "variables.colour"}),
        ({"command": "set-apn", "variables": {"apn": "IOT!", "pin": 1234}}, {"variables.apn", "variables.pin"}),
        ({"command": "set-apn", "variables": ["iot", "1234"]}, {"variables"}),
        ({"command": "set-apn", "text": "SET APN x", "variables": {"apn": "x", "pin": "1234"}}, {"text"}),
        ({"text": "hello", "variables": {"apn": "x"}}, {"variables"}),
        ({"command": "bad name!"}, {"command"}),
        ({"command": "set-apn", "variables": {"apn": "x", "pin": "1234"}, "data_coding": "0"}, {"data_coding"}),
    ],
)
def test_a_bad_command_send_is_422_naming_each_field_and_nothing_is_sent(stack, body, fields):
    save(stack, "set-apn", SET_APN)
    response = send(stack, body={"to": SIM, **body})
    assert set(error_fields(response)) == fields
    assert stack.eseye.requests == []


def test_a_command_deleted_after_a_send_leaves_the_message_as_it_was(stack):
    save(stack, "set-apn", SET_APN)
    message = body_of(send(stack, body={"to": SIM, "command": "set-apn", "variables": {"apn": "x", "pin": "1234"}}))
    commands_call(stack, "DELETE", "set-apn")
    assert stack.deps().store.messages.get(message["id"]).text == "SET APN x PIN 1234"
    assert "command" in error_fields(send(stack, body={"to": SIM, "command": "set-apn", "variables": {"apn": "x", "pin": "1234"}}))


def test_a_retried_command_send_with_an_idempotency_key_is_one_message_at_eseye(stack):
    save(stack, "set-apn", SET_APN)
    body = {"to": SIM, "command": "set-apn", "variables": {"apn": "iot.example", "pin": "1234"}}
    # When a client sends it twice with the same Idempotency-Key
    first = body_of(send(stack, body=body, headers={"Idempotency-Key": "apn-change-1"}))
    again = body_of(send(stack, body=body, headers={"Idempotency-Key": "apn-change-1"}))
    # Then both answers are the one message, and Eseye saw one request
    assert again["id"] == first["id"] and again["text"] == "SET APN iot.example PIN 1234"
    assert len(stack.eseye.requests) == 1
    # and the same key with other values is a conflict, not a second message
    body["variables"]["pin"] = "9999"
    assert send(stack, body=body, headers={"Idempotency-Key": "apn-change-1"})["statusCode"] == 409
