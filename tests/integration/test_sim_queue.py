"""Each SIM's delivery queue (issue 13), in-process against moto: the API, the stream consumer
(SimQueueFunction), the minute's sweeps (SchedulerFunction's use case, with a clock the test moves), the
dispatcher, and Eseye through the simulator."""

from __future__ import annotations

import itertools
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from smsgw import models
from smsgw.logic import messages as message_logic
from smsgw.logic import receipt as receipt_logic
from smsgw.logic import send as send_logic
from smsgw.logic import sims
from tests.helpers import (
    StreamTail,
    body_of,
    cancel,
    get,
    mo,
    receipt,
    received_events,
    run_dispatcher,
    send,
    sim_request,
    subscribe,
)

SIM = "447700900123"
SILENT_SIM = "447700900001"  # the simulator accepts its messages and never sends a receipt
RECEIPT_BASE = "http://127.0.0.1:9/webhooks/tok-primary-0123456789/receipt"  # receipts are fed by the tests


@pytest.fixture
def stack_parameters():
    """The per-SIM queue as the template configures it by default: one message in flight per SIM."""
    return {}


@pytest.fixture
def tail(stack):
    """SimQueueFunction's place on the table's stream."""
    return StreamTail(stack)


def follow(stack, tail):
    """Hand the stream's new message records to SimQueueFunction until nothing new comes."""
    for _ in range(20):
        records = tail()
        if not records["Records"]:
            return
        assert stack.invoke("SimQueueFunction", records) == {"batchItemFailures": []}
    raise AssertionError("the stream kept changing")


def status_of(stack, message_id):
    return body_of(get(stack, message_id))["status"]


def at_eseye(stack):
    """The message ids Eseye accepted, in the order it accepted them."""
    return [r["form"]["message_id"] for r in stack.eseye.requests if r["request"] == "mtsmsapi"]


def clock(offset: timedelta):
    return lambda: models.now() + offset


def sweeper(stack, offset=timedelta(0)):
    """SchedulerFunction's collaborators, with a clock `offset` ahead of now."""
    deps = stack.deps("SchedulerFunction")
    deps.clock = clock(offset)
    return deps


def sent_to(stack, to, text="REBOOT", **fields):
    response = send(stack, body={"to": to, "text": text, **fields})
    assert response["statusCode"] == 202, response["body"]
    return body_of(response)


# --- a busy SIM ------------------------------------------------------------------------------------


def test_a_second_send_to_a_busy_sim_waits_and_goes_out_once_the_first_is_delivered(stack, tail):
    events = subscribe(stack)
    # Given a SIM with one command at Eseye
    first = sent_to(stack, SIM, "first")
    assert first["status"] == "sent"
    # When a second command is sent to it
    second = sent_to(stack, SIM, "second")
    # Then it is accepted (202) and waits, and Eseye has not seen it
    assert second["status"] == "queued"
    assert [(h["event"], h["status"]) for h in second["history"]] == [("accepted", "queued")]
    assert at_eseye(stack) == [first["id"]]
    # and subscribers hear that it waits
    publisher_tail = StreamTail(stack)
    assert stack.invoke("PublisherFunction", publisher_tail()) == {"batchItemFailures": []}
    heard = [(e["data"]["id"], e["data"]["status"]) for e in received_events(stack, events) if e["type"] == "sms.mt.status"]
    assert (second["id"], "queued") in heard
    # When the first one's receipt comes, and the stream is followed
    receipt(stack, first["id"])
    follow(stack, tail)
    # Then the second leaves the queue, its send is handed to the dispatcher, which sends it
    assert status_of(stack, second["id"]) == "pending"
    jobs, _ = run_dispatcher(stack)
    assert jobs == [{"id": second["id"], "attempt": 1, "ambiguous": False}]
    assert status_of(stack, second["id"]) == "sent"
    assert at_eseye(stack) == [first["id"], second["id"]]
    state = body_of(sim_request(stack, SIM))
    assert (state["in_flight"], state["queued"]) == (1, 0)
    assert [m["id"] for m in state["in_flight_messages"]] == [second["id"]]
    # and subscribers hear it go: queued, then pending, then sent
    assert stack.invoke("PublisherFunction", publisher_tail()) == {"batchItemFailures": []}
    heard = [e["data"]["status"] for e in received_events(stack, events) if e["type"] == "sms.mt.status" and e["data"]["id"] == second["id"]]
    assert heard == ["pending", "sent"]


def drain(stack, tail, ids, *, cap=1, receipted=None, rounds=60):
    """Run the gateway until every message in `ids` is final: follow the stream, run the dispatcher, and
    deliver the receipt of each message at Eseye, one step at a time, checking the cap after each step.
    Returns the final statuses; `receipted` collects when each receipt was sent."""
    receipted = {} if receipted is None else receipted
    for _ in range(rounds):
        follow(stack, tail)
        run_dispatcher(stack)
        follow(stack, tail)
        within_cap(stack, SIM, cap)
        statuses = {i: status_of(stack, i) for i in ids}
        if all(s in models.FINAL_STATUSES for s in statuses.values()):
            return statuses
        for message_id, status in statuses.items():
            if status == "sent" and message_id not in receipted:
                receipted[message_id] = time.time()
                receipt(stack, message_id, reference=f"ref-{message_id[:8]}")
    raise AssertionError(f"messages not final after {rounds} rounds: {statuses}")


def within_cap(stack, msisdn, cap):
    state = stack.deps("SimsFunction").store.sims.get(msisdn)
    assert len(state.holders) <= cap, state


def test_messages_reach_eseye_one_at_a_time_in_the_order_they_were_accepted(stack, tail):
    # Given five commands posted to one SIM in a row
    ids = [sent_to(stack, SIM, f"step {n}")["id"] for n in range(5)]
    # When each is delivered as it reaches Eseye
    receipted: dict[str, float] = {}
    statuses = drain(stack, tail, ids, receipted=receipted)
    # Then all are delivered, they reached Eseye in order, each only after the one before had its receipt
    assert set(statuses.values()) == {"delivered"}
    assert at_eseye(stack) == ids
    for earlier, later in itertools.pairwise(ids):
        assert stack.eseye.messages[later].received_at >= receipted[earlier]


# --- collapse_key --------------------------------------------------------------------------------


def test_a_collapse_key_replaces_the_waiting_push_in_its_place(stack, tail):
    # Given a busy SIM with a configuration push waiting, and a ping behind it
    busy = sent_to(stack, SIM, "busy")
    old = sent_to(stack, SIM, "APN=old", collapse_key="apn-config")
    ping = sent_to(stack, SIM, "PING")
    assert (old["status"], ping["status"]) == ("queued", "queued")
    # When a newer push comes with the same collapse_key
    new = sent_to(stack, SIM, "APN=new", collapse_key="apn-config")
    # Then it replaces the old one, which ends cancelled naming its successor
    assert (new["status"], new["supersedes"]) == ("queued", old["id"])
    replaced = body_of(get(stack, old["id"]))
    assert (replaced["status"], replaced["superseded_by"]) == ("cancelled", new["id"])
    assert replaced["history"][-1]["event"] == "superseded"
    assert new["id"] in replaced["history"][-1]["cause"]
    # and takes its place in the queue, which is no longer
    state = body_of(sim_request(stack, SIM))
    assert state["queued"] == 2
    assert [(m["id"], m["position"], m.get("collapse_key")) for m in state["queued_messages"]] == [
        (new["id"], 1, "apn-config"),
        (ping["id"], 2, None),
    ]
    # When the queue runs, Eseye gets the new push before the ping, and never the old one
    statuses = drain(stack, tail, [busy["id"], new["id"], ping["id"]])
    assert set(statuses.values()) == {"delivered"}
    assert at_eseye(stack) == [busy["id"], new["id"], ping["id"]]
    assert status_of(stack, old["id"]) == "cancelled"


def test_a_collapse_key_never_replaces_a_message_already_at_eseye(stack):
    # Given a push already at Eseye
    sent = sent_to(stack, SIM, "APN=old", collapse_key="apn-config")
    assert sent["status"] == "sent"
    # When a newer push with the same key comes
    newer = sent_to(stack, SIM, "APN=new", collapse_key="apn-config")
    # Then it waits behind it; the one at Eseye is untouched
    assert (newer["status"], newer.get("supersedes")) == ("queued", None)
    assert status_of(stack, sent["id"]) == "sent"


# --- the depth cap ---------------------------------------------------------------------------------


def test_a_full_queue_answers_429_naming_the_sim_and_its_depth(stack):
    # Given a SIM allowed two waiting messages, with a message at Eseye and two waiting
    settings = sim_request(stack, SIM, "PUT", {"max_queued": 2})
    assert settings["statusCode"] == 200
    assert body_of(settings)["settings"]["max_queued"] == 2
    sent_to(stack, SIM, "at eseye")
    sent_to(stack, SIM, "APN=old", collapse_key="apn-config")
    sent_to(stack, SIM, "waits")
    stored = stack.clients["dynamodb"].scan(TableName=stack.table)["Count"]
    # When one more is sent
    response = send(stack, body={"to": SIM, "text": "one too many"})
    # Then it is refused with 429, naming the SIM, the depth and the limit, and nothing is stored or sent
    assert response["statusCode"] == 429
    error = body_of(response)["error"]
    assert error["code"] == "sim_queue_full"
    assert error["details"] == {"msisdn": SIM, "depth": 2, "max_queued": 2}
    assert stack.clients["dynamodb"].scan(TableName=stack.table)["Count"] == stored
    assert len(at_eseye(stack)) == 1
    assert body_of(sim_request(stack, SIM))["queued"] == 2
    # ...while a push that replaces a waiting one still fits
    assert sent_to(stack, SIM, "APN=new", collapse_key="apn-config")["status"] == "queued"
    # and another SIM is not affected
    assert sent_to(stack, "447700900124", "elsewhere")["status"] == "sent"


def test_beyond_the_hourly_cap_sends_wait_rather_than_being_refused(stack, tail):
    # Given a SIM allowed one message an hour, with room for more in flight
    assert sim_request(stack, SIM, "PUT", {"max_per_hour": 1, "max_in_flight": 5})["statusCode"] == 200
    first = sent_to(stack, SIM, "first")
    # When a second is sent within the hour
    second = sent_to(stack, SIM, "second")
    # Then it is accepted and waits, even once the first is delivered
    assert (first["status"], second["status"]) == ("sent", "queued")
    receipt(stack, first["id"])
    follow(stack, tail)
    assert sims.every_minute(sweeper(stack, timedelta(minutes=30)))["dequeued_by_repair"] == 0
    assert status_of(stack, second["id"]) == "queued"
    # and goes out once the hour has rolled on
    assert sims.every_minute(sweeper(stack, timedelta(minutes=61)))["dequeued_by_repair"] == 1
    follow(stack, tail)
    run_dispatcher(stack)
    assert status_of(stack, second["id"]) == "sent"
    assert at_eseye(stack) == [first["id"], second["id"]]


# --- exits from the queue ----------------------------------------------------------------------------


def test_a_queued_message_past_its_expiry_fails_and_eseye_never_sees_it(stack, tail):
    # Given a message waiting behind another, that expires in 90 seconds
    first = sent_to(stack, SIM, "first")
    late = sent_to(stack, SIM, "late", expires_at=models.iso(models.now() + timedelta(seconds=90)))
    assert late["status"] == "queued"
    # When the first is delivered, and the stream is followed after the expiry
    receipt(stack, first["id"])
    later = stack.deps("SimQueueFunction")
    later.clock = clock(timedelta(minutes=5))
    assert sims.handle_stream_batch(tail()["Records"], later) == {"batchItemFailures": []}
    # Then the waiting message failed as expired, and Eseye never saw it
    message = body_of(get(stack, late["id"]))
    assert message["status"] == "failed"
    assert message["history"][-1]["event"] == "expired"
    assert late["id"] not in stack.eseye.messages
    state = body_of(sim_request(stack, SIM))
    assert (state["in_flight"], state["queued"]) == (0, 0)


def test_a_sim_blocklisted_while_its_message_waits_never_gets_it(stack, tail):
    from smsgw.logic import lists

    # Given a message waiting behind another
    first = sent_to(stack, SIM, "first")
    waiting = sent_to(stack, SIM, "waiting")
    # When the SIM is put on the blocklist, and the first is delivered
    lists.put_entry("block", SIM, "ops@example.com", deps=stack.deps())
    receipt(stack, first["id"])
    follow(stack, tail)
    run_dispatcher(stack)
    # Then the waiting one ends blocked, and Eseye never saw it
    message = body_of(get(stack, waiting["id"]))
    assert (message["status"], message["history"][-1]["event"]) == ("blocked", "blocked")
    assert at_eseye(stack) == [first["id"]]
    state = body_of(sim_request(stack, SIM))
    assert (state["in_flight"], state["queued"]) == (0, 0)


def test_a_scheduled_message_that_expires_before_its_time_fails_unsent(stack, tail):
    # Given a message scheduled in two minutes that expires in three
    now = models.now()
    fields = {"send_at": models.iso(now + timedelta(minutes=2)), "expires_at": models.iso(now + timedelta(minutes=3))}
    message = sent_to(stack, SIM, "too late", **fields)
    # When the sweep that should let it in runs only after its expiry (the scheduler was down)
    assert sims.every_minute(sweeper(stack, timedelta(minutes=4)))["scheduled_started"] == 1
    follow(stack, tail)
    run_dispatcher(stack)
    # Then it failed as expired, unsent
    final = body_of(get(stack, message["id"]))
    assert (final["status"], final["history"][-1]["event"]) == ("failed", "expired")
    assert stack.eseye.requests == []


def test_cancelling_a_queued_message_is_local_and_the_queue_moves_on_without_it(stack, tail):
    # Given a busy SIM with two messages waiting
    first = sent_to(stack, SIM, "first")
    dropped = sent_to(stack, SIM, "never mind")
    kept = sent_to(stack, SIM, "still wanted")
    calls_before = len(stack.eseye.requests)
    # When the first waiting one is cancelled
    response = cancel(stack, dropped["id"])
    # Then it is cancelled at once, without asking Eseye
    assert response["statusCode"] == 200
    assert body_of(response)["status"] == "cancelled"
    assert len(stack.eseye.requests) == calls_before
    assert [m["id"] for m in body_of(sim_request(stack, SIM))["queued_messages"]] == [kept["id"]]
    # and when the queue moves on, the next one goes and the cancelled one never does
    statuses = drain(stack, tail, [first["id"], kept["id"]])
    assert set(statuses.values()) == {"delivered"}
    assert at_eseye(stack) == [first["id"], kept["id"]]
    assert status_of(stack, dropped["id"]) == "cancelled"


def test_a_missing_receipt_releases_the_next_message_after_the_in_flight_timeout(stack, tail):
    timeout = stack.deps("SchedulerFunction").settings.sim_in_flight_timeout_seconds
    # Given a SIM whose message at Eseye never gets a receipt, and a message waiting behind it
    lost = sent_to(stack, SILENT_SIM, "lost")
    waiting = sent_to(stack, SILENT_SIM, "waiting")
    assert (lost["status"], waiting["status"]) == ("sent", "queued")
    # When the minute's sweep runs before the timeout
    assert sims.every_minute(sweeper(stack, timedelta(seconds=timeout // 2))) == {"scheduled_started": 0, "dequeued_by_repair": 0}
    # Then nothing moves
    assert status_of(stack, waiting["id"]) == "queued"
    # When it runs after the timeout
    assert sims.every_minute(sweeper(stack, timedelta(seconds=timeout + 60))) == {"scheduled_started": 0, "dequeued_by_repair": 1}
    # Then the waiting message goes out, and the lost one stays sent, with a note why it let go of its slot
    follow(stack, tail)
    run_dispatcher(stack)
    assert status_of(stack, waiting["id"]) == "sent"
    assert at_eseye(stack) == [lost["id"], waiting["id"]]
    lost_now = body_of(get(stack, lost["id"]))
    assert lost_now["status"] == "sent"
    assert lost_now["history"][-1]["event"] == "in_flight_timeout"


# --- scheduled sends -----------------------------------------------------------------------------------


def test_a_scheduled_send_goes_out_at_its_time(stack, tail):
    # Given a command to send in two minutes
    send_at = models.iso(models.now() + timedelta(minutes=2))
    message = sent_to(stack, SIM, "at two", send_at=send_at)
    # Then it is scheduled, and Eseye has not seen it
    assert (message["status"], message["send_at"]) == ("scheduled", send_at)
    assert at_eseye(stack) == []
    # When the minute's sweep runs before its time
    assert sims.every_minute(sweeper(stack))["scheduled_started"] == 0
    # Then it still waits
    assert status_of(stack, message["id"]) == "scheduled"
    # When the sweep runs once its time has come
    assert sims.every_minute(sweeper(stack, timedelta(minutes=2, seconds=30)))["scheduled_started"] == 1
    follow(stack, tail)
    run_dispatcher(stack)
    # Then it goes out
    final = body_of(get(stack, message["id"]))
    assert final["status"] == "sent"
    assert at_eseye(stack) == [message["id"]]
    assert [(h["event"], h["status"]) for h in final["history"]][:3] == [("accepted", "scheduled"), ("send_at", "pending"), ("eseye_send", "sent")]
    # and a later sweep does not send it again
    assert sims.every_minute(sweeper(stack, timedelta(minutes=4)))["scheduled_started"] == 0
    assert at_eseye(stack) == [message["id"]]


def test_a_scheduled_send_whose_sim_is_busy_at_its_time_joins_the_queue(stack, tail):
    scheduled = sent_to(stack, SIM, "at two", send_at=models.iso(models.now() + timedelta(minutes=2)))
    busy = sent_to(stack, SIM, "busy")
    queued = sent_to(stack, SIM, "queued first")
    assert sims.every_minute(sweeper(stack, timedelta(minutes=3)))["scheduled_started"] == 1
    # It joins the end of the queue: behind the message that waited before its time came
    assert [m["id"] for m in body_of(sim_request(stack, SIM))["queued_messages"]] == [queued["id"], scheduled["id"]]
    statuses = drain(stack, tail, [busy["id"], queued["id"], scheduled["id"]])
    assert set(statuses.values()) == {"delivered"}
    assert at_eseye(stack) == [busy["id"], queued["id"], scheduled["id"]]


def test_a_scheduled_send_cancelled_before_its_time_never_reaches_eseye(stack, tail):
    # Given a command scheduled for two minutes from now
    message = sent_to(stack, SIM, "at two", send_at=models.iso(models.now() + timedelta(minutes=2)))
    # When it is cancelled before then
    response = cancel(stack, message["id"])
    assert (response["statusCode"], body_of(response)["status"]) == (200, "cancelled")
    # Then its time comes and goes, and Eseye never hears of it
    assert sims.every_minute(sweeper(stack, timedelta(minutes=3)))["scheduled_started"] == 0
    follow(stack, tail)
    run_dispatcher(stack)
    assert status_of(stack, message["id"]) == "cancelled"
    assert stack.eseye.requests == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"send_at": "+30s"}, "send_at"),  # too soon: the sweep runs every minute
        ({"send_at": "+36d"}, "send_at"),  # too far
        ({"send_at": "2030-01-01T12:00:00"}, "send_at"),  # no zone
        ({"send_at": "next tuesday"}, "send_at"),
        ({"send_at": "+10m", "expires_at": "+5m"}, "expires_at"),  # it would expire before it went
    ],
)
def test_send_at_must_be_a_zoned_time_from_a_minute_to_35_days_ahead(stack, fields, named):
    def resolve(value):
        if not value.startswith("+"):
            return value
        unit = {"s": "seconds", "m": "minutes", "d": "days"}[value[-1]]
        return models.iso(models.now() + timedelta(**{unit: int(value[1:-1])}))

    response = send(stack, body={"to": SIM, "text": "x", **{k: resolve(v) for k, v in fields.items()}})
    assert response["statusCode"] == 422
    error = body_of(response)["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]["fields"]) == {named}
    assert stack.clients["dynamodb"].scan(TableName=stack.table)["Count"] == 0


# --- races around the last slot --------------------------------------------------------------------------


def test_receipts_cancels_sends_and_sweeps_at_once_never_exceed_the_cap_nor_strand_the_queue(stack, tail, atomic_items):
    """Two receipts for the message holding the last slot, a cancel of the next in line, new sends, the
    stream consumers of each change (Lambda runs shards side by side) and the minute's repair, at once."""
    random.seed(13)
    accepted: list[str] = []
    cancelled: set[str] = set()
    receipted: dict[str, float] = {}
    lock = threading.Lock()

    def new_send(n):
        outcome = send_logic.send_message({"to": SIM, "text": f"race {n}"}, RECEIPT_BASE, deps=stack.deps("SendFunction"))
        with lock:
            accepted.append(outcome.view["id"])

    def deliver(message_id, reference):
        with lock:
            receipted.setdefault(message_id, time.time())
        fields = {"messageid": message_id, "referenceid": reference, "statuscode": "delivered", "status": "delivered"}
        receipt_logic.process_receipt(fields, stack.deps("ReceiptWebhookFunction"))

    def cancel_one(message_id):
        try:
            message_logic.cancel_message(message_id, stack.deps("CancelMessageFunction"))
            with lock:
                cancelled.add(message_id)
        except Exception as exc:  # it left the queue first: a 409 for the caller, not a lost message
            assert type(exc).__name__ == "Conflict", exc

    def consume(records):
        if records:
            assert sims.handle_stream_batch(records, stack.deps("SimQueueFunction")) == {"batchItemFailures": []}

    def repair():
        sims.repair_waiting_queues(sweeper(stack, timedelta(minutes=2)))

    def at_once(tasks):
        barrier = threading.Barrier(len(tasks))

        def run(task):
            barrier.wait()
            task()

        with ThreadPoolExecutor(len(tasks)) as pool:
            for future in [pool.submit(run, task) for task in tasks]:
                future.result()
        within_cap(stack, SIM, 1)

    # Given a SIM holding its only slot, with three messages waiting
    for n in range(4):
        new_send(n)
    for round_number in range(4):
        state = body_of(sim_request(stack, SIM))
        holder, waiting = state["in_flight_messages"][0]["id"], [m["id"] for m in state["queued_messages"]]
        assert status_of(stack, holder) == "sent"
        # When two receipts for the holder, a cancel of the next in line and two new sends arrive at once
        tasks = [
            lambda h=holder: deliver(h, "ref-a"),
            lambda h=holder: deliver(h, "ref-b"),
            lambda n=round_number: new_send(100 + 2 * n),
            lambda n=round_number: new_send(101 + 2 * n),
        ]
        if waiting:
            tasks.append(lambda w=waiting[0]: cancel_one(w))
        random.shuffle(tasks)
        at_once(tasks)
        # and the stream consumers of those changes run side by side, with the minute's repair
        records = tail()["Records"]
        by_message: dict[str, list] = {}
        for record in records:
            by_message.setdefault(record["dynamodb"]["Keys"]["PK"]["S"], []).append(record)
        at_once([*(lambda r=r: consume(r) for r in by_message.values()), repair])
        # and the dispatcher sends what left the queue
        follow(stack, tail)
        run_dispatcher(stack)
        follow(stack, tail)
        within_cap(stack, SIM, 1)
    # Then, once everything settles, every message ended: the cancelled ones cancelled, all others delivered
    statuses = drain(stack, tail, accepted, receipted=receipted)
    assert {i for i, s in statuses.items() if s == "cancelled"} == cancelled
    assert {i for i, s in statuses.items() if s != "cancelled"} == set(accepted) - cancelled
    assert {s for i, s in statuses.items() if i not in cancelled} == {"delivered"}
    state = body_of(sim_request(stack, SIM))
    assert (state["in_flight"], state["queued"]) == (0, 0)
    # and Eseye had one at a time: each message reached it only after the one before had its receipt,
    # each exactly once, and never a cancelled one
    order = at_eseye(stack)
    assert sorted(order) == sorted(set(accepted) - cancelled)
    for earlier, later in itertools.pairwise(order):
        assert stack.eseye.messages[later].received_at >= receipted[earlier], (earlier, later)


# --- the buffer estimate -------------------------------------------------------------------------------


def test_buffer_risk_is_published_once_per_crossing_and_again_only_after_the_device_spoke(stack, tail):
    warn_at = int(stack.environment("SimQueueFunction")["SIM_BUFFER_WARN_AT"])
    events = subscribe(stack)
    publisher_tail = StreamTail(stack, ("MSG#", "SIM#"))
    # A SIM with room for them all at once, so the test sends without waiting on the queue
    assert sim_request(stack, SIM, "PUT", {"max_in_flight": 10})["statusCode"] == 200

    def delivered_commands(count):
        ids = [sent_to(stack, SIM, f"cmd {n}")["id"] for n in range(count)]
        for message_id in ids:
            receipt(stack, message_id, reference=f"ref-{message_id[:8]}")
        follow(stack, tail)
        assert stack.invoke("PublisherFunction", publisher_tail()) == {"batchItemFailures": []}
        return [e for e in received_events(stack, events) if e["type"] == "sms.sim.buffer_risk"]

    # Given a device that has not read its SMS, delivered one fewer than the threshold
    assert delivered_commands(warn_at - 1) == []
    # When one more is delivered
    risks = delivered_commands(1)
    # Then one buffer_risk event names the SIM and the count
    assert len(risks) == 1
    data = risks[0]["data"]
    assert (data["msisdn"], data["delivered_since_last_mo"], data["threshold"]) == (SIM, warn_at, warn_at)
    assert risks[0]["id"].startswith(f"{SIM}:buffer_risk:")
    # When more are delivered while the device stays silent, no further event
    assert delivered_commands(2) == []
    assert body_of(sim_request(stack, SIM))["delivered_since_last_mo"] == warn_at + 2
    # When the device speaks, the estimate starts again
    mo(stack, {"source": SIM, "message_id": "mo-1", "text": "ACK"})
    follow(stack, tail)
    assert body_of(sim_request(stack, SIM))["delivered_since_last_mo"] == 0
    assert delivered_commands(warn_at - 1) == []
    # and the next crossing is published, once
    again = delivered_commands(1)
    assert len(again) == 1 and again[0]["id"] != risks[0]["id"]
    assert again[0]["data"]["delivered_since_last_mo"] == warn_at


def test_the_reconciler_repairs_a_queue_whose_hand_over_never_ran(stack, tail):
    from smsgw.logic import reconcile

    # Given a SIM whose first message was delivered while a second waited, and the stream record that
    # would have freed the slot was lost (the queue consumer never ran)
    first = sent_to(stack, SIM, "first")
    waiting = sent_to(stack, SIM, "waiting")
    receipt(stack, first["id"])
    assert (status_of(stack, first["id"]), status_of(stack, waiting["id"])) == ("delivered", "queued")
    deps = stack.deps("ReconcilerFunction")
    # When the reconciler runs before the queue has been still for five minutes
    deps.clock = clock(timedelta(minutes=1))
    assert reconcile.repair_sim_queues(deps) == 0
    # Then it leaves the queue to the minute's sweep
    assert status_of(stack, waiting["id"]) == "queued"
    # When it runs once the queue has been stuck longer than that
    deps.clock = clock(timedelta(minutes=6))
    assert reconcile.repair_sim_queues(deps) == 1
    # Then the slot of the delivered message is free, the waiting one leaves the queue and goes out
    follow(stack, tail)
    run_dispatcher(stack)
    assert status_of(stack, waiting["id"]) == "sent"
    assert at_eseye(stack) == [first["id"], waiting["id"]]


def test_a_waiting_commands_reply_window_starts_when_it_leaves_the_queue(stack, tail):
    from smsgw.logic import replies

    # Given a busy SIM and a command behind it that expects the device's reply within a minute
    first = sent_to(stack, SIM, "first")
    command = sent_to(stack, SIM, "status?", expect_reply_within=60)
    assert command["status"] == "queued"
    # Then while it waits no reply window runs: a sweep long after its window would have closed finds nothing
    assert "reply_deadline" not in command and "GSI2PK" not in stack.message_item(command["id"])
    later = stack.deps("ReplyTimeoutsFunction")
    later.clock = clock(timedelta(minutes=5))
    assert replies.sweep_timeouts(later) == 0
    assert body_of(get(stack, command["id"])).get("reply_state") is None
    # When the first is delivered and the command leaves the queue
    receipt(stack, first["id"])
    follow(stack, tail)
    # Then its window starts then: a minute from the moment it left the queue
    moved = body_of(get(stack, command["id"]))
    left_at = next(h["at"] for h in moved["history"] if h["event"] == "dequeued")
    assert moved["reply_state"] == "waiting"
    assert moved["reply_deadline"] >= models.iso(models.parse_time(left_at) + timedelta(seconds=60))
    assert moved["history"][-1]["event"] == "reply_wait"
