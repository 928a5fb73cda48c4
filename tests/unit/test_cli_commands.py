"""What `smsgw command ...` and `smsgw send --command` send and print, without a stack."""

import argparse
import json

import pytest

from smsgw_cli import main as cli
from smsgw_cli import saved_commands


def test_a_variable_is_given_as_name_max_length_and_pattern():
    assert saved_commands.variable_spec("pin:4=[0-9]{4}") == ("pin", {"pattern": "[0-9]{4}", "max_length": 4})
    assert saved_commands.variable_spec("kv:8=a=b") == ("kv", {"pattern": "a=b", "max_length": 8})  # the pattern may hold =
    for bad in ("pin=[0-9]", "pin:x=[0-9]", ":4=[0-9]"):
        with pytest.raises(argparse.ArgumentTypeError):
            saved_commands.variable_spec(bad)
    assert saved_commands.variable_value("apn=iot=1") == ("apn", "iot=1")


def test_save_sends_the_definition_merged_over_a_file(tmp_path):
    # Given a definition file, and options that change part of it
    path = tmp_path / "cmd.json"
    path.write_text(json.dumps({"text": "OLD {a}", "variables": {"a": {"pattern": "[0-9]", "max_length": 1}}, "description": "kept"}))
    args = argparse.Namespace(
        from_file=str(path), text="NEW {a} {b}", data=None, data_coding=None, var=[("b", {"pattern": "x", "max_length": 1})], description=None
    )
    # Then the body has the new text, both variables and the file's description
    assert saved_commands.definition(args) == {
        "text": "NEW {a} {b}",
        "variables": {"a": {"pattern": "[0-9]", "max_length": 1}, "b": {"pattern": "x", "max_length": 1}},
        "description": "kept",
    }


def test_a_command_is_shown_with_its_worst_case_and_variables():
    command = {
        "name": "set-apn",
        "text": "SET APN {apn}",
        "variables": {"apn": {"pattern": "[a-z.]{1,32}", "max_length": 32}},
        "worst_case": {"encoding": "gsm7", "length": 40, "limit": 160},
        "updated_at": "2026-11-26T02:00:00.000Z",
        "updated_by": "ops",
    }
    lines = saved_commands.show(command).splitlines()
    assert lines[:3] == ["set-apn  worst case gsm7 40/160", "  SET APN {apn}", "  {apn}  at most 32  pattern [a-z.]{1,32}"]


def test_send_takes_a_text_or_a_command_not_both_nor_neither(capsys):
    for argv in (["send", "447700900123"], ["send", "447700900123", "TEXT", "--command", "c"]):
        with pytest.raises(SystemExit) as exited:
            cli.main(["--api", "http://127.0.0.1:9", *argv])
        assert exited.value.code == 2
    assert "a text or --command" in capsys.readouterr().err
