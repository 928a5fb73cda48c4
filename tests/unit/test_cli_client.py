"""The smsgw CLI talks to the API through smsgw_client: its retries and idempotency keys, one way of showing
the API's refusals, and the settings lookup the console builds its client with.

The API is played by tests.helpers.ScriptedApi, mounted as the transport of every requests session."""

import json
import subprocess
import sys

import pytest
import requests

import smsgw_client.client
from smsgw_cli import main as cli
from smsgw_cli.errors import show_error
from smsgw_cli.settings import NoApi, client_from_settings
from smsgw_client import ApiError
from tests.conftest import ROOT
from tests.helpers import ScriptedApi

API = "https://api.example.test/v1"
MESSAGE = {"id": "m1", "direction": "mt", "status": "sent", "to": "447700900001", "text": "hello", "encoding": "gsm7", "length": 5}


@pytest.fixture
def scripted(monkeypatch):
    """Make the CLI's API answer from a script, with no waits between retries."""
    monkeypatch.setattr(smsgw_client.client, "BASE_DELAY", 0.0)
    monkeypatch.delenv("SMSGW_API_KEY", raising=False)

    def play(*script) -> ScriptedApi:
        api = ScriptedApi(*script)
        monkeypatch.setattr(requests.Session, "get_adapter", lambda self, url: api)
        return api

    return play


def error(status: int, code: str, message: str, details=None) -> tuple[int, dict]:
    return status, {"error": {"code": code, "message": message, **({"details": details} if details else {})}}


def test_a_send_is_retried_by_the_library_under_one_idempotency_key(scripted, capsys):
    # Given an API that answers a send 503 once, then takes it
    api = scripted(error(503, "unavailable", "try again"), (202, MESSAGE))
    # When a message is sent from the CLI
    status = cli.main(["--api", API, "send", "447700900001", "hello", "--client-ref", "r1"])
    # Then it is sent once for the user, and both attempts carried the same key, so the gateway sends it once
    assert status == 0 and capsys.readouterr().out.startswith("m1  MT  sent")
    keys = {request.headers["Idempotency-Key"] for request in api.requests}
    assert len(api.requests) == 2 and len(keys) == 1 and next(iter(keys))
    assert json.loads(api.requests[0].body) == {"to": "447700900001", "text": "hello", "client_ref": "r1"}


def test_a_refusal_is_shown_in_the_apis_words_and_its_body_as_sent_with_json(scripted, capsys):
    refusal = error(404, "not_found", "no message m9")
    scripted(refusal, refusal)
    assert cli.main(["--api", API, "get", "m9"]) == 1
    assert capsys.readouterr().err == "error 404: no message m9\n"
    assert cli.main(["--api", API, "--json", "get", "m9"]) == 1
    assert capsys.readouterr().out == json.dumps(refusal[1]) + "\n"


def test_one_renderer_shows_every_kind_of_refusal():
    def shown(status, body, headers=None):
        response = requests.Response()
        response.status_code, response.headers = status, requests.structures.CaseInsensitiveDict(headers or {})
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return show_error(ApiError.from_response(response))

    # a batch's invalid recipients, one a line
    invalid = [{"index": 3, "to": "44x", "problems": {"to": "must be an MSISDN"}}, {"index": 7, "problems": {"recipient": "must be an object"}}]
    batch = shown(*error(422, "validation_error", "2 of 9 recipients are not valid", {"invalid": invalid, "invalid_count": 2}))
    lines = ["error 422: 2 of 9 recipients are not valid", "  #3 44x: to: must be an MSISDN", "  #7 : recipient: must be an object"]
    assert batch.splitlines() == lines
    # any other details as the API's JSON (a group's invalid members are plain strings)
    group = shown(*error(422, "validation_error", "1 of the members are not MSISDNs", {"invalid": ["x"], "invalid_count": 1}))
    assert group.splitlines() == ["error 422: 1 of the members are not MSISDNs", '  {"invalid": ["x"], "invalid_count": 1}']
    # API Gateway's own refusals, and answers that are not JSON
    assert shown(403, {"message": "Missing Authentication Token"}) == "error 403: Missing Authentication Token"
    assert shown(502, b"<html>Bad Gateway</html>") == "error 502: <html>Bad Gateway</html>"


def test_a_batch_of_a_file_refused_for_its_recipients_lists_them_with_the_files_numbering(scripted, capsys, tmp_path):
    sims = tmp_path / "sims.txt"
    sims.write_text("447700900001\n44x\n")
    invalid = [{"index": 1, "to": "44x", "problems": {"to": "must be an MSISDN"}}]
    api = scripted(error(422, "validation_error", "1 of 2 recipients are not valid", {"invalid": invalid, "invalid_count": 1}))
    assert cli.main(["--api", API, "batch", "send", "--to-file", str(sims), "HELLO"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error 422: 1 of 2 recipients are not valid",
        "  #1 44x: to: must be an MSISDN",
        "  (#N is the N-th MSISDN of the file, from 0)",
    ]
    assert api.requests[0].headers["Idempotency-Key"]


def test_an_unreachable_api_is_said_so_after_the_librarys_retries(scripted, capsys):
    api = scripted(*[requests.ConnectionError("connection refused")] * 4)
    assert cli.main(["--api", API, "sim", "447700900001"]) == 2
    assert capsys.readouterr().err.startswith(f"cannot reach {API}: connection refused")
    assert len(api.requests) == 4


def test_the_client_comes_from_the_stacks_outputs_with_iam_signing_or_an_api_key(tmp_path, monkeypatch):
    # Given the local stack's outputs where the CLI looks for them
    (tmp_path / "outputs.json").write_text(json.dumps({"ApiUrl": "http://127.0.0.1:3000", "Region": "eu-west-1"}))
    monkeypatch.setenv("LOCAL_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("SMSGW_API_KEY", raising=False)
    local = client_from_settings()
    assert (local.api_url, local.sign, local.region, local.api_key) == ("http://127.0.0.1:3000", False, "eu-west-1", None)
    # A deployed API Gateway URL is signed (IAM), unless an API key is the credential
    deployed = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"
    assert client_from_settings(deployed).sign is True
    monkeypatch.setenv("SMSGW_API_KEY", "k-env")
    keyed = client_from_settings(deployed)
    assert (keyed.sign, keyed.api_key) == (False, "k-env")
    # And with no outputs and no URL there is nothing to talk to
    with pytest.raises(NoApi, match="pass --api"):
        client_from_settings(settings={})


def test_console_serves_with_the_clis_client_and_is_loaded_only_for_that_command(tmp_path, monkeypatch):
    import smsgw_console.server

    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"ApiUrl": "http://127.0.0.1:3000"}))
    served = []
    monkeypatch.setattr(smsgw_console.server, "serve", lambda client, port: served.append((client.api_url, port)))
    assert cli.main(["--outputs", str(outputs), "console"]) == 0
    assert cli.main(["--outputs", str(outputs), "console", "--api", "http://127.0.0.1:3999", "--port", "8399"]) == 0
    assert cli.main(["--outputs", str(outputs), "--api", "http://127.0.0.1:3998", "console"]) == 0
    assert served == [("http://127.0.0.1:3000", 8300), ("http://127.0.0.1:3999", 8399), ("http://127.0.0.1:3998", 8300)]
    # the other commands do not pay for the console's web stack
    check = "import sys, smsgw_cli.main; sys.exit(any(m.startswith('smsgw_console') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", check], cwd=ROOT, env={"PYTHONPATH": str(ROOT / "cli")}).returncode == 0


def test_a_batch_from_a_file_that_cannot_be_read_says_so_without_a_traceback(scripted, capsys, tmp_path):
    # Given a recipients file that does not exist
    missing = tmp_path / "missing.csv"
    api = scripted()
    # When the operator sends a batch from it
    status = cli.main(["--api", API, "batch", "send", "--to-file", str(missing), "HELLO"])
    # Then the CLI names the file and why, exits 2 as for other unusable arguments, and asks the API nothing
    assert status == 2
    err = capsys.readouterr().err
    assert f"cannot read {missing}" in err and "No such file" in err
    assert "Traceback" not in err
    assert api.requests == []
