"""The retry dispatcher, GET /messages/{id} (with refresh) and DELETE /messages/{id}."""

from tests.helpers import body_of, cancel, get, restart, run_dispatcher, send, wait_until


def test_eseye_down_then_up_ends_sent_with_both_attempts(stack):
    # Given Eseye is down
    stack.eseye.stop()
    response = send(stack)
    # Then the message is accepted and left pending for a retry
    assert response["statusCode"] == 202
    message = body_of(response)
    assert message["status"] == "pending"
    # When Eseye is back and the dispatcher runs the retry
    restart(stack.eseye)
    jobs, result = run_dispatcher(stack)
    assert jobs == [{"id": message["id"], "attempt": 2, "ambiguous": False}]
    assert result == {"batchItemFailures": []}
    # Then the message is sent, and its history shows both attempts
    final = body_of(get(stack, message["id"]))
    assert final["status"] == "sent"
    events = [h["event"] for h in final["history"]]
    assert events == ["accepted", "retry_scheduled", "eseye_send"]
    assert final["attempts"] == 2


def test_an_answer_lost_after_eseye_accepted_is_probed_not_resent(stack, monkeypatch):
    # Given Eseye takes the message but its answer never arrives (read timeout)
    monkeypatch.setitem(stack.context.parameters, "EseyeReadTimeoutSeconds", "1")
    stack.eseye.inject("drop_after_accept", delay=2)
    message = body_of(send(stack))
    assert message["status"] == "pending"
    # When the dispatcher retries
    jobs, _ = run_dispatcher(stack)
    assert jobs[0]["ambiguous"] is True
    # Then it asks Eseye first, finds the message, and never sends it twice
    final = body_of(get(stack, message["id"]))
    assert final["status"] == "delivered"  # the simulator delivered it before the probe asked
    assert [h["event"] for h in final["history"]][-1] == "eseye_probe"
    assert stack.eseye.messages[message["id"]].sends == 1


def test_an_http_500_is_retried_after_a_probe_that_finds_nothing(stack):
    stack.eseye.inject("http500")
    message = body_of(send(stack))
    assert message["status"] == "pending"
    run_dispatcher(stack)
    final = body_of(get(stack, message["id"]))
    assert final["status"] == "sent"
    assert [h["event"] for h in final["history"]] == ["accepted", "retry_scheduled", "eseye_probe", "eseye_send"]


def test_retries_exhausted_end_failed_with_the_cause(stack):
    # Given Eseye stays down (the stack allows 3 attempts)
    stack.eseye.stop()
    message = body_of(send(stack))
    run_dispatcher(stack)
    run_dispatcher(stack)
    # Then after the third attempt the message is failed, with the reason, and nothing is left queued
    final = body_of(get(stack, message["id"]))
    assert final["status"] == "failed"
    assert "after 3 attempts" in final["history"][-1]["cause"]
    assert stack.queue_jobs() == []


def test_unknown_and_malformed_ids_are_404(stack):
    assert get(stack, "0" * 32)["statusCode"] == 404
    assert get(stack, "not-an-id")["statusCode"] == 404
    assert cancel(stack, "0" * 32)["statusCode"] == 404


def test_refresh_records_what_eseye_says(stack):
    message = body_of(send(stack))
    wait_until(lambda: stack.eseye.messages[message["id"]].status == "delivered", message="the simulator to deliver it")
    refreshed = body_of(get(stack, message["id"], refresh=True))
    assert refreshed["status"] == "delivered"
    assert refreshed["refresh"] == {"ok": True, "eseye_status": "delivered"}
    assert refreshed["history"][-1]["event"] == "refresh"


def test_pending_message_is_cancelled_without_eseye(stack):
    stack.eseye.stop()
    message = body_of(send(stack))
    response = cancel(stack, message["id"])
    assert response["statusCode"] == 200
    assert body_of(response)["status"] == "cancelled"
    # the retry that was queued finds it cancelled and does nothing
    restart(stack.eseye)
    run_dispatcher(stack)
    assert body_of(get(stack, message["id"]))["status"] == "cancelled"
    assert stack.eseye.messages == {}


def test_sent_message_is_cancelled_through_eseye(stack):
    message = body_of(send(stack, body={"to": "447700900001", "text": "never delivered"}))
    response = cancel(stack, message["id"])
    assert response["statusCode"] == 200
    assert body_of(response)["status"] == "cancelled"
    assert stack.eseye.messages[message["id"]].status == "cancelling"


def test_delivered_message_cannot_be_cancelled(stack):
    message = body_of(send(stack))
    wait_until(lambda: stack.eseye.messages[message["id"]].status == "delivered", message="the simulator to deliver it")
    response = cancel(stack, message["id"])
    assert response["statusCode"] == 409
    assert body_of(get(stack, message["id"]))["status"] == "delivered"
    assert cancel(stack, message["id"])["statusCode"] == 409
