"""A SIM's delivery queue as pure state (smsgw.simqueue, issue 13): random sends, receipts, cancels,
starts, setting changes and the passing of time never break what the queue promises a user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from smsgw import models, simqueue
from smsgw.simqueue import QueueFull, SimSettings, SimState

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEYS = st.one_of(st.none(), st.sampled_from(["config", "firmware", "apn"]))


class SimQueueMachine(RuleBasedStateMachine):
    """A model of what a user was promised, next to the real SimState: `expected` is the queue as a
    user would see it (acceptance order; a superseding send takes the place of the one it replaced)."""

    @initialize(
        max_in_flight=st.integers(1, 3),
        max_queued=st.integers(1, 6),
        max_per_hour=st.sampled_from([0, 0, 1, 2, 5]),
        warn_at=st.integers(0, 4),
    )
    def setup(self, max_in_flight, max_queued, max_per_hour, warn_at):
        self.defaults = SimSettings(max_in_flight, max_queued, max_per_hour)
        self.warn_at = warn_at
        self.state = SimState("447700900123")
        self.now = T0
        self.serial = 0
        self.fate: dict[str, str] = {}  # id -> holder | queued | superseded | dropped | released
        self.expected: list[str] = []  # the queue's ids, in the order they must start
        self.ordinal: dict[str, int] = {}  # place in acceptance order (a successor inherits its predecessor's)
        self.started: list[str] = []  # queued ids in the order they left the queue for a slot
        self.grants: list[datetime] = []  # when slots were granted, since the hourly cap was last switched on
        self.cap = max_per_hour
        # The buffer estimate: deliveries counted since the last MO, and the crossings of warn_at.
        self.delivered_ids: list[str] = []
        self.count_since_mo = 0
        self.crossings = 0
        self.seen_risk_at = None

    # --- helpers -------------------------------------------------------------------------------
    def settings(self) -> SimSettings:
        return self.state.settings(self.defaults)

    def tick(self) -> None:
        self.now += timedelta(milliseconds=1)  # one event a millisecond: stored times stay distinct

    def granted(self, count: int) -> None:
        self.grants += [self.now] * count
        settings = self.settings()
        # Then the slots never exceed max_in_flight when a start or an admission fills one
        assert len(self.state.holders) <= settings.max_in_flight
        if settings.max_per_hour:
            # ...and no rolling hour holds more grants than the hourly cap
            recent = [g for g in self.grants if g > self.now - simqueue.HOUR]
            assert len(recent) <= settings.max_per_hour, (recent, settings)

    # --- what happens to a SIM -----------------------------------------------------------------
    @rule(collapse_key=KEYS)
    def send(self, collapse_key):
        self.serial += 1
        message_id = f"m{self.serial:04d}"
        before = self.state
        free = before.slots_free(self.defaults, self.now)
        same_key = [w for w in before.queue if collapse_key is not None and w.collapse_key == collapse_key]
        try:
            self.state, admission = before.admit(message_id, self.now, self.defaults, collapse_key)
        except QueueFull as full:
            # A full queue refuses, naming its depth; it never refuses a replacement or a free slot
            assert not same_key
            assert len(before.queue) >= self.settings().max_queued and (before.queue or not free)
            assert (full.depth, full.max_queued) == (len(before.queue), self.settings().max_queued)
            assert self.state == before
            self.tick()
            return
        note(f"{message_id} {collapse_key} -> {admission}")
        if admission.supersedes:
            # A superseding send takes the replaced message's place: same position, same depth
            replaced = same_key[0]
            assert admission.supersedes == replaced.id and admission.status == models.QUEUED
            index = self.expected.index(replaced.id)
            assert admission.position == index + 1
            assert len(self.state.queue) == len(before.queue)
            assert self.state.queue[index].at == replaced.at  # it waits since the first of them joined
            self.expected[index] = message_id
            self.fate[replaced.id] = "superseded"
            self.fate[message_id] = "queued"
            self.ordinal[message_id] = self.ordinal.pop(replaced.id)
        elif admission.status == models.PENDING:
            # Straight into a slot only when one is free and nobody waits before it
            assert not before.queue and free > 0
            self.fate[message_id] = "holder"
            self.granted(1)
        else:
            assert admission.status == models.QUEUED and admission.position == len(self.state.queue)
            assert len(self.state.queue) <= self.settings().max_queued  # admit never overfills the queue
            self.expected.append(message_id)
            self.fate[message_id] = "queued"
            self.ordinal[message_id] = self.serial
        self.tick()

    @precondition(lambda self: self.state.queue)
    @rule(data=st.data())
    def start_next(self, data):
        heads = self.state.next_to_start(self.defaults, self.now)
        # The heads are the front of the queue, as many as may start now
        assert [h.id for h in heads] == self.expected[: len(heads)]
        assert len(heads) == min(len(self.state.queue), self.state.slots_free(self.defaults, self.now))
        ids = [h.id for h in heads]
        self.state = self.state.start(ids, self.now, self.defaults)
        for message_id in ids:
            self.fate[message_id] = "holder"
            self.expected.remove(message_id)
            self.started.append(message_id)
        if ids:
            self.granted(len(ids))
        self.tick()

    @precondition(lambda self: self.state.holders)
    @rule(data=st.data())
    def final_status(self, data):
        # A receipt, a rejection or a timeout frees a slot
        holder = data.draw(st.sampled_from(self.state.holders))
        self.state = self.state.release([holder.id])
        self.fate[holder.id] = "released"
        self.tick()

    @precondition(lambda self: self.state.queue)
    @rule(data=st.data())
    def leave_queue(self, data):
        # A cancel, an expiry or the blocklist takes a waiting message out
        waiting = data.draw(st.sampled_from(self.state.queue))
        self.state = self.state.drop([waiting.id])
        self.expected.remove(waiting.id)
        self.fate[waiting.id] = "dropped"
        self.tick()

    @rule(data=st.data())
    def release_or_drop_twice(self, data):
        # A stream record seen twice, or an id the SIM never held, changes nothing
        gone = [i for i, f in self.fate.items() if f in ("released", "dropped", "superseded")] or ["nobody"]
        message_id = data.draw(st.sampled_from(gone))
        assert self.state.release([message_id]).drop([message_id]) == self.state

    @rule(
        max_in_flight=st.one_of(st.none(), st.integers(*simqueue.MAX_IN_FLIGHT_RANGE).map(lambda n: min(n, 3))),
        max_queued=st.one_of(st.none(), st.integers(1, 6)),
        max_per_hour=st.one_of(st.none(), st.sampled_from([0, 1, 2, 5])),
    )
    def change_settings(self, max_in_flight, max_queued, max_per_hour):
        overrides = {
            k: v for k, v in {"max_in_flight": max_in_flight, "max_queued": max_queued, "max_per_hour": max_per_hour}.items() if v is not None
        }
        self.state = self.state.with_overrides(overrides)
        cap = self.settings().max_per_hour
        if cap and not self.cap:
            # 0 switches the cap off (and the state stops keeping its window): count afresh from here
            self.grants = []
        self.cap = cap
        assert self.settings() == SimSettings(**{**self.defaults.as_dict(), **overrides})

    @rule(seconds=st.sampled_from([1, 59, 600, 1799, 3599, 3600, 3601, 7200]))
    def time_passes(self, seconds):
        self.now += timedelta(seconds=seconds)

    # --- the buffer estimate -------------------------------------------------------------------
    @rule(data=st.data())
    def delivered(self, data):
        fresh = f"d{len(self.delivered_ids):04d}"
        # A delivery, or the same stream record again (a recent one): counted once
        message_id = data.draw(st.sampled_from([fresh, *self.delivered_ids[-3:]]))
        before = self.state
        self.state = self.state.delivered(message_id, models.iso(self.now), self.warn_at)
        if message_id == fresh:
            self.delivered_ids.append(fresh)
            self.count_since_mo += 1
            if self.warn_at and self.count_since_mo == self.warn_at:
                self.crossings += 1
        else:
            assert self.state == before
        self.tick()

    @rule()
    def device_speaks(self):
        self.state = self.state.device_spoke(models.iso(self.now))
        self.count_since_mo = 0
        self.tick()

    # --- what must always hold -----------------------------------------------------------------
    @invariant()
    def queue_is_in_acceptance_order(self):
        if not hasattr(self, "state"):
            return
        assert [w.id for w in self.state.queue] == self.expected
        for index, message_id in enumerate(self.expected):
            assert self.state.position(message_id) == index + 1

    @invariant()
    def messages_start_in_acceptance_order(self):
        if not hasattr(self, "state"):
            return
        order = [self.ordinal[i] for i in self.started]
        assert order == sorted(order)
        # ...and nobody still waiting was accepted before one that already started
        if self.expected and self.started:
            assert min(self.ordinal[i] for i in self.expected) > max(order)

    @invariant()
    def no_message_is_lost(self):
        if not hasattr(self, "state"):
            return
        holders = {h.id for h in self.state.holders}
        queued = {w.id for w in self.state.queue}
        assert not holders & queued
        for message_id, fate in self.fate.items():
            assert (message_id in holders) == (fate == "holder"), (message_id, fate)
            assert (message_id in queued) == (fate == "queued"), (message_id, fate)
        assert holders | queued <= set(self.fate)

    @invariant()
    def the_state_survives_storage(self):
        if not hasattr(self, "state"):
            return
        item = {**self.state.to_item(), "rev": self.state.rev}
        assert SimState.from_item(self.state.msisdn, item) == self.state

    @invariant()
    def buffer_risk_marks_each_crossing_once(self):
        if not hasattr(self, "state"):
            return
        assert self.state.delivered_since_last_mo == self.count_since_mo
        if self.state.buffer_risk_at != self.seen_risk_at:
            # A new mark is one new crossing of the threshold
            self.crossings -= 1
            self.seen_risk_at = self.state.buffer_risk_at
            assert self.state.buffer_risk_threshold == self.warn_at
        assert self.crossings == 0


TestSimQueue = SimQueueMachine.TestCase


# --- examples a reader can follow --------------------------------------------------------------


def test_a_busy_sim_queues_in_order_and_hands_over_one_at_a_time():
    # Given a SIM with one slot, holding a message
    defaults = SimSettings(max_in_flight=1, max_queued=3)
    state, first = SimState("447700900123").admit("a", T0, defaults)
    assert first.status == models.PENDING
    # When three more are sent
    for index, message_id in enumerate("bcd"):
        state, admission = state.admit(message_id, T0, defaults)
        assert (admission.status, admission.position) == (models.QUEUED, index + 1)
    # Then a fifth is refused, naming the SIM and the depth
    with pytest.raises(QueueFull) as refused:
        state.admit("e", T0, defaults)
    assert (refused.value.msisdn, refused.value.depth, refused.value.max_queued) == ("447700900123", 3, 3)
    # ...and when the first one's receipt frees the slot, only the next in line starts
    state = state.release(["a"])
    assert [w.id for w in state.next_to_start(defaults, T0)] == ["b"]


def test_a_collapse_key_replaces_the_waiting_message_in_its_place():
    defaults = SimSettings(max_in_flight=1, max_queued=5)
    state, _ = SimState("447700900123").admit("busy", T0, defaults)
    state, _ = state.admit("cfg-1", T0, defaults, collapse_key="config")
    state, _ = state.admit("other", T0 + timedelta(seconds=1), defaults)
    # When a newer config push comes with the same key
    state, admission = state.admit("cfg-2", T0 + timedelta(seconds=2), defaults, collapse_key="config")
    # Then it replaces the old one in its place, and the queue is no longer
    assert (admission.status, admission.position, admission.supersedes) == (models.QUEUED, 1, "cfg-1")
    assert [w.id for w in state.queue] == ["cfg-2", "other"]
    # ...but a message already in flight is never replaced
    state = state.release(["busy"]).start(["cfg-2"], T0, defaults)
    state, admission = state.admit("cfg-3", T0, defaults, collapse_key="config")
    assert admission.supersedes is None and [w.id for w in state.queue] == ["other", "cfg-3"]


def test_the_hourly_cap_holds_messages_back_until_the_hour_rolls_on():
    defaults = SimSettings(max_in_flight=5, max_queued=10, max_per_hour=2)
    state = SimState("447700900123")
    for message_id in "abc":
        state, _ = state.admit(message_id, T0, defaults)
    assert [h.id for h in state.holders] == ["a", "b"] and [w.id for w in state.queue] == ["c"]
    state = state.release(["a", "b"])
    # The slots are free, but the hour is not over
    assert state.next_to_start(defaults, T0 + timedelta(minutes=59)) == []
    assert [w.id for w in state.next_to_start(defaults, T0 + simqueue.HOUR)] == ["c"]


def test_settings_stay_within_their_documented_ranges():
    assert simqueue.MAX_IN_FLIGHT_RANGE == (1, 10)
    assert simqueue.MAX_QUEUED_RANGE == (1, 1000)
    assert simqueue.MAX_PER_HOUR_RANGE == (0, 3600)


def test_lowering_the_hourly_cap_and_raising_it_again_does_not_forget_the_hour():
    # Given a SIM capped at five an hour that sent five in the last ten minutes
    defaults = SimSettings(max_in_flight=5, max_queued=10, max_per_hour=5)
    state = SimState("447700900123")
    for n in range(5):
        state, _ = state.admit(f"m{n}", T0 + timedelta(minutes=n), defaults)
    state = state.release([f"m{n}" for n in range(5)])
    # When an operator lowers the cap to one (PUT settings settles the queue: a start of nobody)...
    state = state.with_overrides({"max_per_hour": 1}).start([], T0 + timedelta(minutes=10), defaults)
    # ...and puts it back to five within the same hour
    state = state.with_overrides({"max_per_hour": 5})
    # Then the five sent this hour still count: nothing more may start before the hour rolls on
    assert state.slots_free(defaults, T0 + timedelta(minutes=11)) == 0
