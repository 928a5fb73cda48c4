"""Retries wait out their backoff in SQS; the tests move the queue clock past it rather than wait it out."""

from tests.helpers import body_of, get, restart, run_dispatcher, send


def test_a_retry_delayed_by_the_deployed_backoff_runs_when_due(stack, monkeypatch):
    # Given the backoff a deployment has by default (10 s, then 20 s), longer than any test should wait
    monkeypatch.setitem(stack.context.parameters, "RetryBaseDelaySeconds", "10")
    stack.eseye.stop()
    message = body_of(send(stack))
    assert message["status"] == "pending"
    # Then the retry job is on the queue, but not yet due
    delayed = stack.clients["sqs"].get_queue_attributes(QueueUrl=stack.physical("SendRetryQueue"), AttributeNames=["All"])["Attributes"]
    assert (delayed["ApproximateNumberOfMessages"], delayed["ApproximateNumberOfMessagesDelayed"]) == ("0", "1")
    # When its delay has passed (on the queue's clock) and Eseye is back
    restart(stack.eseye)
    jobs, result = run_dispatcher(stack)
    # Then the dispatcher runs it, and the message is sent on its second attempt
    assert jobs == [{"id": message["id"], "attempt": 2, "ambiguous": False}]
    assert result == {"batchItemFailures": []}
    assert body_of(get(stack, message["id"]))["status"] == "sent"


def test_a_job_is_not_due_before_its_delay(stack):
    # Given a retry scheduled with a 1 s backoff (this stack's setting)
    stack.eseye.stop()
    send(stack)
    # When less time than that has passed on the queue's clock
    # Then there is nothing to run yet, and the job is still there afterwards
    assert stack.queue_jobs(wait=0.5) == []
    assert len(stack.queue_jobs()) == 1
