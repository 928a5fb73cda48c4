"""The SIM queue's functions as deployed (SimQueue, Scheduler, Sims), called with their sample events against moto."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import load_event
from tests.helpers import body_of, send, sqs_event, stream_batch

SIM = "447700900123"  # the MSISDN of the sample events
SAMPLE_ID = "5a0d3c9e8b7f4e21a6c5d4b3a2918f7e"  # the message of sim_queue_stream.json


@pytest.fixture
def stack_parameters():
    """The per-SIM queue as the template configures it by default: one message in flight per SIM."""
    return {}


def sims(stack, sample: str, body=None):
    event = load_event(sample)
    if body is not None:
        event["body"] = json.dumps(body)
    return stack.invoke("SimsFunction", event)


def moves_of(stack, message_id: str) -> dict:
    """The stream records of one message, as Lambda delivers them."""
    records = stream_batch(stack)["Records"]
    return {"Records": [r for r in records if r["dynamodb"]["Keys"]["PK"]["S"] == f"MSG#{message_id}"]}


def test_a_final_status_on_the_stream_frees_the_slot_and_dispatches_the_next_queued_message(stack):
    # Given a SIM with one message at Eseye and one waiting behind it
    first = body_of(send(stack, body={"to": SIM, "text": "first"}))
    second_response = send(stack, body={"to": SIM, "text": "second"})
    second = body_of(second_response)
    assert (first["status"], second_response["statusCode"], second["status"]) == ("sent", 202, "queued")
    stack.queue_jobs()  # nothing else waits for the dispatcher
    # When the stream brings the first message's move from sent to delivered (the sample record, for this message)
    record = json.loads(json.dumps(load_event("sim_queue_stream")).replace(SAMPLE_ID, first["id"]))
    assert stack.invoke("SimQueueFunction", record) == {"batchItemFailures": []}
    # Then the second message left the queue
    assert stack.deps().store.messages.get(second["id"]).status == "pending"
    # and once the stream brings that move too, its send is handed to the dispatcher
    assert stack.invoke("SimQueueFunction", moves_of(stack, second["id"])) == {"batchItemFailures": []}
    assert stack.queue_jobs() == [{"id": second["id"], "attempt": 1, "ambiguous": False}]
    # and the SIM shows it in flight, with the delivery counted towards the buffer estimate
    state = body_of(sims(stack, "sims_get"))
    assert (state["in_flight"], state["queued"], state["delivered_since_last_mo"]) == (1, 0, 1)
    assert [m["id"] for m in state["in_flight_messages"]] == [second["id"]]


def test_the_same_stream_records_twice_start_nothing_twice(stack):
    # Given the first message's final status was already followed
    first = body_of(send(stack, body={"to": SIM, "text": "first"}))
    second = body_of(send(stack, body={"to": SIM, "text": "second"}))
    third = body_of(send(stack, body={"to": SIM, "text": "third"}))
    stack.queue_jobs()
    record = json.loads(json.dumps(load_event("sim_queue_stream")).replace(SAMPLE_ID, first["id"]))
    stack.invoke("SimQueueFunction", record)
    stack.invoke("SimQueueFunction", moves_of(stack, second["id"]))
    # When Lambda delivers the same records again (a retried batch)
    assert stack.invoke("SimQueueFunction", record) == {"batchItemFailures": []}
    assert stack.invoke("SimQueueFunction", moves_of(stack, second["id"])) == {"batchItemFailures": []}
    # Then only the second message is in flight, the third still waits, and the delivery counted once
    state = body_of(sims(stack, "sims_get"))
    assert [m["id"] for m in state["in_flight_messages"]] == [second["id"]]
    assert [m["id"] for m in state["queued_messages"]] == [third["id"]]
    assert state["delivered_since_last_mo"] == 1
    # and the dispatch jobs (one per delivery of the record) reach Eseye with the second message once
    jobs = stack.queue_jobs()
    assert {j["id"] for j in jobs} == {second["id"]}
    assert stack.invoke("DispatcherFunction", sqs_event(jobs)) == {"batchItemFailures": []}
    assert [r["form"]["message_id"] for r in stack.eseye.requests if r["form"].get("message_id") != first["id"]] == [second["id"]]


def test_a_sims_settings_are_shown_set_and_reset(stack):
    # Given a SIM the gateway never saw: the template's defaults
    response = sims(stack, "sims_get")
    assert response["statusCode"] == 200
    state = body_of(response)
    assert state["msisdn"] == SIM and state["settings"] == {"max_in_flight": 1, "max_queued": 100, "max_per_hour": 0}
    assert (state["in_flight"], state["queued"]) == (0, 0)
    # When settings of its own are put
    response = sims(stack, "sims_put_settings")
    # Then they apply to it, over the defaults
    assert response["statusCode"] == 200
    assert body_of(response)["settings"] == {"max_in_flight": 2, "max_queued": 100, "max_per_hour": 30}
    assert body_of(sims(stack, "sims_get"))["overrides"] == {"max_in_flight": 2, "max_per_hour": 30}
    # And when they are deleted, the defaults are back; a second delete finds nothing to delete
    response = sims(stack, "sims_delete_settings")
    assert response["statusCode"] == 200 and body_of(response)["overrides"] == {}
    assert body_of(response)["settings"]["max_in_flight"] == 1
    again = sims(stack, "sims_delete_settings")
    assert again["statusCode"] == 404 and body_of(again)["error"]["code"] == "not_found"


def test_settings_out_of_range_are_refused_naming_the_field(stack):
    response = sims(stack, "sims_put_settings", body={"max_in_flight": 11, "colour": "red"})
    assert response["statusCode"] == 422
    fields = json.dumps(body_of(response)["error"])
    assert "max_in_flight" in fields and "colour" in fields


def test_a_higher_in_flight_limit_starts_waiting_messages_at_once(stack):
    # Given a SIM with one message at Eseye and one waiting
    body_of(send(stack, body={"to": SIM, "text": "first"}))
    second = body_of(send(stack, body={"to": SIM, "text": "second"}))
    stack.queue_jobs()
    # When its in-flight limit goes up to 2
    state = body_of(sims(stack, "sims_put_settings"))
    # Then the waiting message starts now, without waiting for the first one's receipt
    assert (state["in_flight"], state["queued"]) == (2, 0)
    assert stack.deps().store.messages.get(second["id"]).status == "pending"


def test_the_minute_tick_leaves_a_message_whose_time_has_not_come(stack):
    # Given a message scheduled for ten minutes from now
    send_at = (datetime.now(UTC) + timedelta(minutes=10)).isoformat(timespec="seconds")
    response = send(stack, body={"to": SIM, "text": "later", "send_at": send_at})
    assert (response["statusCode"], body_of(response)["status"]) == (202, "scheduled")
    # When the scheduler's minute comes
    result = stack.invoke("SchedulerFunction", load_event("scheduler_tick"))
    # Then nothing was due and the message still waits for its time, with no send handed to anyone
    assert result == {"scheduled_started": 0, "dequeued_by_repair": 0}
    assert stack.deps().store.messages.get(body_of(response)["id"]).status == "scheduled"
    assert stack.queue_jobs() == [] and stack.eseye.requests == []


def test_a_sim_says_whether_the_gateway_would_send_to_it_now_and_why_not(stack):
    from smsgw.logic import lists

    # Given no lists: a SIM is open to traffic
    assert body_of(sims(stack, "sims_get"))["lists"] == {
        "on_blocklist": False,
        "on_allowlist": False,
        "allowlist_in_force": False,
        "traffic_allowed": True,
        "refusal_reason": None,
    }
    # When another SIM is allowlisted, the allowlist is in force and shuts this one out
    lists.put_entry("allow", "447700900999", "ops", deps=stack.deps())
    assert body_of(sims(stack, "sims_get"))["lists"] == {
        "on_blocklist": False,
        "on_allowlist": False,
        "allowlist_in_force": True,
        "traffic_allowed": False,
        "refusal_reason": f"{SIM} is not on the allowlist",
    }
    # When this SIM is allowlisted too, and then blocklisted: the blocklist wins, as a send finds
    lists.put_entry("allow", SIM, "ops", deps=stack.deps())
    assert body_of(sims(stack, "sims_get"))["lists"]["traffic_allowed"] is True
    lists.put_entry("block", SIM, "ops", deps=stack.deps())
    view = body_of(sims(stack, "sims_get"))["lists"]
    assert view == {**view, "on_blocklist": True, "on_allowlist": True, "traffic_allowed": False, "refusal_reason": f"{SIM} is on the blocklist"}
    assert send(stack, body={"to": SIM, "text": "hi"})["statusCode"] == 403
