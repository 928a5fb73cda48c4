"""The steady rate toward Eseye (logic/pacing.py): the GCRA decisions, and slots taken on the rate's item in moto.

Time is simulated: the senders' clock moves only when they sleep, so the tests are exact and fast.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from smsgw.logic import pacing
from smsgw.logic.pacing import BATCH, HORIZON_US, SINGLE, plan

T = 50_000  # the gap between two sends at the default 20 per second, in microseconds
NOW = 1_800_000_000_000_000
DEADLINE = NOW + 5_000_000  # a sender that may wait five seconds


# --- the decisions -------------------------------------------------------------------------------


@pytest.mark.parametrize("lane", [SINGLE, BATCH])
@pytest.mark.parametrize("tat", [None, NOW - 10 * T, NOW])
def test_an_idle_rate_gives_either_lane_the_present_moment(lane, tat):
    # Given no send queued ahead (no counter yet, or one in the past)
    # When a sender plans
    step = plan(tat, NOW, lane, DEADLINE)
    # Then it reserves now, with the idle write
    assert (step.action, step.reset) == ("reserve", False)
    assert step.seen is None or step.seen <= NOW


def test_a_single_send_takes_the_slot_behind_the_backlog():
    # Given three sends already queued ahead
    step = plan(NOW + 3 * T, NOW, SINGLE, DEADLINE)
    # Then a single send reserves behind them, as long as the slot comes before its deadline
    assert (step.action, step.seen, step.ceiling) == ("reserve", NOW + 3 * T, DEADLINE)


def test_a_single_send_is_never_turned_away_by_batch_traffic_within_its_wait():
    # Given a backlog well past the batches' horizon (singles queue there; batches never do)
    tat = NOW + 2 * HORIZON_US
    # When a single send plans
    step = plan(tat, NOW, SINGLE, DEADLINE)
    # Then it still reserves its slot
    assert step.action == "reserve"


def test_a_single_send_whose_slot_would_come_after_its_deadline_defers_until_the_backlog_has_gone():
    # Given a backlog longer than the sender may wait
    tat = DEADLINE + T
    step = plan(tat, NOW, SINGLE, DEADLINE)
    # Then it reserves nothing and learns when to come back: delayed, not refused
    assert (step.action, step.until) == ("defer", tat)


def test_a_batch_send_joins_a_backlog_shorter_than_the_horizon():
    step = plan(NOW + HORIZON_US - T, NOW, BATCH, DEADLINE)
    assert (step.action, step.ceiling) == ("reserve", NOW + HORIZON_US)


def test_a_batch_send_yields_to_a_backlog_over_the_horizon_and_waits_for_it_to_shrink():
    # Given a backlog past the horizon
    tat = NOW + HORIZON_US + 7 * T
    # When a batch send plans
    step = plan(tat, NOW, BATCH, DEADLINE)
    # Then it reserves nothing now, and comes back when the backlog is down to the horizon
    assert (step.action, step.until) == ("wait", tat - HORIZON_US)


def test_a_batch_send_that_could_not_wait_long_enough_defers():
    tat = NOW + HORIZON_US + 7 * T
    step = plan(tat, NOW, BATCH, NOW + 6 * T)
    assert (step.action, step.until) == ("defer", tat - HORIZON_US)


def test_a_counter_far_beyond_any_wait_was_written_by_a_wrong_clock_and_starts_again():
    step = plan(NOW + 3_600_000_000, NOW, SINGLE, DEADLINE)
    assert (step.action, step.reset) == ("reserve", True)


def test_the_interval_is_whole_microseconds():
    assert (pacing.interval_us(20), pacing.interval_us(3), pacing.interval_us(1000)) == (50_000, 333_333, 1000)
    assert pacing.micros(datetime(2027, 1, 15, 8, 0, 0, 123_456, tzinfo=UTC)) % 1_000_000 == 123_456


# --- slots on the rate's item (moto) ---------------------------------------------------------------


class SimulatedTime:
    """A clock that moves only when a sender sleeps (or the test says so)."""

    def __init__(self):
        self.now = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=max(0.0, seconds))


@pytest.fixture
def paced(stack):
    """A sender's collaborators on the moto table, with simulated time."""
    time = SimulatedTime()
    deps = stack.deps("SendFunction")
    deps.clock, deps.sleep = time.clock, time.sleep
    return deps, time


def other_container(stack, time: SimulatedTime):
    deps = stack.deps("DispatcherFunction")
    deps.clock, deps.sleep = time.clock, time.sleep
    return deps


def test_a_burst_of_single_sends_leaves_one_per_interval_and_none_is_refused(paced):
    deps, time = paced
    start = pacing.micros(time.now)
    # When forty sends arrive at once (two seconds' worth at 20 per second)
    slots = []
    for _ in range(40):
        time.now = datetime.fromtimestamp(start / 1e6, UTC)  # every one of them asks at the same moment
        slots.append(pacing.take_slot(deps, SINGLE))
    # Then each gets a slot of its own, exactly one interval apart, and waits until it
    assert [s.at - start for s in slots] == [i * T for i in range(40)]
    assert [round(s.waited * 1e6) for s in slots] == [i * T for i in range(40)]


def test_an_idle_rate_costs_one_conditional_write_per_send(paced, stack):
    deps, time = paced
    other = other_container(stack, time)
    # Given sends from two containers, far enough apart that the rate is idle each time
    writes = []
    for sender in (deps, other, deps, other):
        writes.append(pacing.take_slot(sender, SINGLE).writes)
        time.sleep(1)
    # Then each took one write, and nobody waited
    assert writes == [1, 1, 1, 1]


def test_a_container_that_guessed_wrong_learns_the_counter_from_its_failed_write(paced, stack):
    deps, time = paced
    other = other_container(stack, time)
    first = pacing.take_slot(deps, SINGLE)  # this container's guess: idle after its slot
    time.sleep(0.2)
    # When another container has just queued three sends
    start = pacing.micros(time.now)
    for _ in range(3):
        time.now = datetime.fromtimestamp(start / 1e6, UTC)
        pacing.take_slot(other, SINGLE)
    time.now = datetime.fromtimestamp(start / 1e6, UTC)
    # Then the first container's next send takes the slot after them, in two writes (idle guessed, then behind)
    slot = pacing.take_slot(deps, SINGLE)
    assert (slot.at - start, slot.writes) == (3 * T, 2)
    assert first.at < start


def test_a_container_whose_last_slot_was_behind_a_backlog_expects_one_and_needs_one_write(paced, stack):
    deps, time = paced
    other = other_container(stack, time)

    def burst(sender, count):
        start = time.now
        for _ in range(count):
            time.now = start
            pacing.take_slot(sender, SINGLE)
        time.now = start

    # Given this container's last send queued behind another container's burst
    burst(other, 3)
    assert pacing.take_slot(deps, SINGLE).writes == 2  # it guessed idle, and learned
    # When, later than the slot after its own, the other container queues another burst
    time.sleep(1.5 * T / 1e6)
    burst(other, 3)
    # Then this container's next send plans on a backlog and takes its slot in one write
    assert pacing.take_slot(deps, SINGLE).writes == 1


def test_single_sends_are_not_delayed_behind_a_batch_backlog(paced, stack):
    deps, time = paced
    batch = other_container(stack, time)
    start = pacing.micros(time.now)
    # Given batch senders that keep the backlog as full as the horizon allows
    batch_slots = []
    for _ in range(HORIZON_US // T):
        time.now = datetime.fromtimestamp(start / 1e6, UTC)
        batch_slots.append(pacing.take_slot(batch, BATCH).at)
    # When a single send arrives at that moment
    time.now = datetime.fromtimestamp(start / 1e6, UTC)
    single = pacing.take_slot(deps, SINGLE)
    # Then it waits at most the horizon, not for the batches' whole volume
    assert single.waited <= HORIZON_US / 1e6
    # and a batch send arriving now yields: it sleeps until the backlog is under the horizon, then queues behind the single send
    time.now = datetime.fromtimestamp(start / 1e6, UTC)
    late = pacing.take_slot(batch, BATCH)
    assert late.at > single.at
    assert max(batch_slots) < single.at


def test_a_single_send_that_cannot_wait_for_its_slot_reserves_nothing(paced, stack):
    deps, time = paced
    start = pacing.micros(time.now)
    for _ in range(10):
        time.now = datetime.fromtimestamp(start / 1e6, UTC)
        pacing.take_slot(deps, SINGLE)
    before = deps.store.rates.current(pacing.LIMIT)
    # When a sender that may wait only 0.2 s asks (the backlog is 0.5 s)
    time.now = datetime.fromtimestamp(start / 1e6, UTC)
    with pytest.raises(pacing.NoSlot) as raised:
        pacing.take_slot(deps, SINGLE, max_wait=0.2)
    # Then it is told when the backlog will have gone, and the counter did not move
    assert raised.value.retry_in == pytest.approx(10 * T / 1e6)
    assert deps.store.rates.current(pacing.LIMIT) == before


def test_a_guarded_reservation_reserves_nothing_when_its_guard_fails(paced):
    deps, _ = paced
    # Given a batch that was cancelled
    deps.store.table.put({"PK": "BATCH#b-cancelled", "SK": "META", "state": "cancelled"})
    guard = deps.store.batches.guard("b-cancelled")
    # When one of its messages asks for a slot under the batch's guard
    with pytest.raises(pacing.GuardFailed):
        pacing.take_slot(deps, BATCH, guard)
    # Then no slot was taken
    assert deps.store.rates.current(pacing.LIMIT) is None
    # while a batch still sending gets its slot, guard and all
    deps.store.table.put({"PK": "BATCH#b-live", "SK": "META", "state": "sending"})
    assert pacing.take_slot(deps, BATCH, deps.store.batches.guard("b-live")).writes == 1


def test_a_batch_block_takes_consecutive_slots_in_one_write_and_ends_within_the_horizon(paced, stack):
    deps, time = paced
    deps.store.table.put({"PK": "BATCH#b-block", "SK": "META", "state": "sending"})
    guard = deps.store.batches.guard("b-block")
    start = pacing.micros(time.now)
    # When a batch's chunk asks for more slots than a block holds, under its guard
    block = pacing.take_slot(deps, BATCH, guard, slots=100)
    # Then it gets one block of consecutive slots, in one write, no longer than half the horizon
    size = pacing.block_size(deps)
    assert (block.count, block.writes, size) == (size, 1, HORIZON_US // 2 // T)
    assert block.moments() == [start + n * T for n in range(size)]
    assert deps.store.rates.current(pacing.LIMIT) == start + size * T
    # and a single send arriving now queues right behind it: at most the horizon
    time.now = datetime.fromtimestamp(start / 1e6, UTC)
    single = pacing.take_slot(other_container(stack, time), SINGLE)
    assert single.at == start + size * T and single.waited <= HORIZON_US / 1e6
    # while another block would end past the horizon, so it waits until the backlog allows a whole block
    time.now = datetime.fromtimestamp(start / 1e6, UTC)
    second = pacing.take_slot(deps, BATCH, guard, slots=size)
    assert second.at == single.at + T
    assert second.at + (size - 1) * T - pacing.micros(time.now) <= HORIZON_US


def test_a_block_is_planned_so_that_its_last_slot_is_inside_the_horizon():
    span = 4 * T
    # Given a backlog that leaves room for a single batch slot but not for a block of five
    tat = NOW + HORIZON_US - 2 * T
    assert plan(tat, NOW, BATCH, DEADLINE).action == "reserve"
    step = plan(tat, NOW, BATCH, DEADLINE, span)
    # Then the block waits until the whole of it fits
    assert (step.action, step.until) == ("wait", tat + span - HORIZON_US)
