"""Saved commands end to end: `smsgw command ...` and `smsgw send --command` against the running local stack,
and what reaches the Eseye simulator."""

import json
import random

from tests.e2e.conftest import smsgw
from tests.helpers import wait_until


def unused_sim() -> str:
    """A SIM no other test sends to, whose messages the simulator delivers (not ending 0000, 0001 or 0570)."""
    return f"44770071{random.randrange(1000, 9999):04d}"


def test_a_saved_command_sent_with_variables_reaches_eseye_rendered(local_stack):
    name = f"set-apn-{random.randrange(10**6):06d}"
    sim = unused_sim()
    # Given an operator saves a command with two variables
    saved = smsgw(local_stack, "command", "save", name, "SET APN {apn} PIN {pin}", "--var", "apn:32=[a-z0-9.-]{1,32}", "--var", "pin:4=[0-9]{4}")
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.startswith(f"created {name}  worst case gsm7 49/160")
    # and it is listed and shown
    assert name in smsgw(local_stack, "command", "list").stdout
    shown = json.loads(smsgw(local_stack, "--json", "command", "show", name).stdout)
    assert shown["variables"] == {"apn": {"pattern": "[a-z0-9.-]{1,32}", "max_length": 32}, "pin": {"pattern": "[0-9]{4}", "max_length": 4}}
    # When it is sent to a SIM with values for its variables
    sent = smsgw(local_stack, "--json", "send", sim, "--command", name, "--var", "apn=iot.example", "--var", "pin=4321")
    message = json.loads(sent.stdout)
    assert (sent.returncode, message["command"], message["variables"]) == (0, name, {"apn": "iot.example", "pin": "4321"})

    # Then Eseye receives the rendered text for that SIM, and the message is delivered with it
    def at_eseye():
        return [r["form"] for r in list(local_stack.eseye.requests) if r["form"].get("message_id") == message["id"]]

    [form] = wait_until(at_eseye, timeout=60, message="the command reaches Eseye")
    assert (form["destination"], form["text"], form.get("mode", "7")) == (sim, "SET APN iot.example PIN 4321", "7")
    final = local_stack.wait_for_status(message["id"], {"delivered"})
    assert (final["text"], final["command"]) == ("SET APN iot.example PIN 4321", name)
    # and once deleted, the command cannot be sent again, while the message keeps its text
    assert smsgw(local_stack, "command", "delete", name).returncode == 0
    refused = smsgw(local_stack, "send", sim, "--command", name, "--var", "apn=x", "--var", "pin=1234")
    assert refused.returncode == 1 and "error 422" in refused.stderr and "command" in refused.stderr
    assert local_stack.get(message["id"])["text"] == "SET APN iot.example PIN 4321"


def test_the_api_refuses_a_command_that_could_exceed_one_sms_and_bad_variables_naming_them(local_stack):
    api, session = local_stack.api, local_stack.session
    name = f"too-long-{random.randrange(10**6):06d}"
    # Given a definition whose variable could hold any Unicode digit (\d), two UTF-16 units each
    reading = {"text": "READING {n}", "variables": {"n": {"pattern": r"\d+", "max_length": 40}}}
    too_long = session.put(f"{api}/commands/{name}", json=reading, timeout=30)
    # Then it is refused with the worst case, and the hint to write [0-9]
    error = too_long.json()["error"]
    assert too_long.status_code == 422 and error["details"]["worst_case"] == {"encoding": "ucs2", "length": 88, "limit": 70}
    assert "[0-9]" in error["message"]
    # and written with [0-9] it is saved
    reading["variables"]["n"]["pattern"] = "[0-9]+"
    fits = session.put(f"{api}/commands/{name}", json=reading, timeout=30)
    assert (fits.status_code, fits.json()["worst_case"]) == (201, {"encoding": "gsm7", "length": 48, "limit": 160})
    # When it is sent with a bad value and an unknown variable / Then the 422 names each
    bad = local_stack.send(to=unused_sim(), command=name, variables={"n": "12a", "colour": "red"})
    assert bad.status_code == 422 and set(bad.json()["error"]["details"]["fields"]) == {"variables.n", "variables.colour"}
    # and variables that are not an object are stopped by API Gateway's model (400) before any function runs
    assert local_stack.send(to=unused_sim(), command=name, variables=["12"]).status_code == 400
    assert session.delete(f"{api}/commands/{name}", timeout=30).status_code == 200
    assert session.delete(f"{api}/commands/{name}", timeout=30).status_code == 404
