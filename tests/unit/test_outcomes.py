"""POST /messages' outcomes: kept by the idempotency store, and mapped to HTTP in one place (http.py)."""

import json

import pytest

from smsgw import http
from smsgw.outcomes import Accepted, DryRun, Rejected, from_record, to_record

VIEW = {"id": "m1", "to": "447700900123", "status": "rejected", "eseye_code": 570}


@pytest.mark.parametrize(
    "outcome",
    [Accepted({**VIEW, "status": "sent"}), Rejected(VIEW, 570, "Destination MSISDN (447700900123) has no credit"), DryRun({"to": "1", "length": 3})],
)
def test_an_outcome_survives_the_idempotency_store(outcome):
    # Given an outcome saved as the idempotency store keeps it (JSON)
    saved = json.loads(json.dumps(to_record(outcome)))
    # When a retried request reads it back
    # Then it is the same outcome, so the same HTTP answer
    assert from_record(saved) == outcome
    assert http.send_response(from_record(saved)).body == http.send_response(outcome).body


def test_a_record_saved_before_outcomes_were_typed_still_answers_a_retry_the_same():
    # Given the records the previous release kept: the HTTP status and body
    accepted = {"status_code": 202, "body": {**VIEW, "status": "sent"}}
    rejected_body = json.loads(http.send_response(Rejected(VIEW, 570, "no credit")).body)
    rejected = {"status_code": 422, "body": rejected_body}
    # When a retry within the key's window reads them
    # Then it gets the answer the first request got
    for record in (accepted, rejected):
        response = http.send_response(from_record(record))
        assert (response.status_code, json.loads(response.body)) == (record["status_code"], record["body"])


def test_a_rejection_is_the_eseye_rejected_error_with_the_message():
    # Given Eseye's refusal of a message
    response = http.send_response(Rejected(VIEW, 570, "no credit"))
    # Then the client gets 422 eseye_rejected, naming Eseye's code and carrying the stored message
    assert response.status_code == 422
    assert json.loads(response.body) == {
        "error": {
            "code": "eseye_rejected",
            "message": "Eseye rejected the message: error 570 no credit",
            "details": {"eseye_code": 570, "eseye_description": "no credit", "id": "m1", "message": VIEW},
        }
    }
