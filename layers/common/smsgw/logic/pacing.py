"""A steady rate toward Eseye: every send, from any function and any container, takes a slot first.

GCRA (the generic cell rate algorithm, virtual-scheduling form) on one counter in the table: `tat`, the
theoretical arrival time of the next send, in integer microseconds. With T = 1 / EseyeMaxSendsPerSecond,
a sender at `now` takes the slot max(tat, now), moves tat to slot + T, and sleeps until its slot. Sends
therefore start at most one per T however many senders there are: a burst becomes a short queue in
time, not a refusal. The counter is one number, so there is no refill to compute and no drift.

Lanes. `single` (a send from the API, a retry) takes the next slot however far the backlog reaches,
within the wait its function can afford. `batch` (a message of a batch) takes a slot only while the
backlog (tat - now) is under HORIZON, and otherwise waits for it to shrink: batch senders never queue
far ahead, so a single send waits behind at most HORIZON of batch sends, however large the batches.
A sender that gets no slot within its wait raises NoSlot, and the caller hands the message back to
the retry queue for when the backlog has gone: the send is delayed, never refused.

Cost: each send makes one conditional UpdateItem on the rate's item when the container's guess of the
counter is right (idle; or busy, when its last slot was behind a backlog), two when it is not; a batch
message's reservation is a transaction with its batch's guard, which must name the counter exactly.
README.md ("Pacing") has the arithmetic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from smsgw.adapters.store import ConditionFailed
from smsgw.adapters.table import Contention
from smsgw.deps import Deps
from smsgw.observability import count, milliseconds

SINGLE, BATCH = "single", "batch"
LIMIT = "eseye"  # the rate's name in the store
HORIZON_US = 500_000  # the most batch sends may queue ahead: what a single send can wait behind them
MAX_WAIT_SECONDS = 5.0  # a sender's default wait for its slot: inside the API's and the dispatcher's timeouts
MAX_WAIT_CAP_SECONDS = 60.0
# A counter further ahead than any wait can reserve was written by a clock that was wrong: start again
# from now rather than hold every send back until then.
STALE_US = int(2 * MAX_WAIT_CAP_SECONDS * 1_000_000)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A container whose last slot was behind a backlog, this recently, guesses that the backlog is still there.
BUSY_MEMORY_US = 2_000_000
MAX_TRIES = 50  # conditional writes one sender makes for one slot, at most


class NoSlot(Exception):
    """No slot within the sender's wait; `retry_in` seconds from now the backlog it saw will have gone."""

    def __init__(self, lane: str, retry_in: float):
        super().__init__(f"no {lane} send slot within the wait; retry in {retry_in:.1f} s")
        self.lane = lane
        self.retry_in = retry_in


class GuardFailed(Exception):
    """The guard's condition did not hold: nothing was reserved, and the send must not happen."""


@dataclass(frozen=True)
class Slot:
    at: int  # the reserved moment (the first, of several), microseconds since the epoch
    waited: float  # seconds from the call to the slot
    writes: int  # conditional writes it took
    count: int = 1  # consecutive slots reserved at once (a batch's chunk)
    spacing: int = 0  # microseconds between them

    def moments(self) -> list[int]:
        """Each reserved slot, in order."""
        return [self.at + n * self.spacing for n in range(self.count)]


@dataclass(frozen=True)
class Plan:
    """What a sender does next, given the counter as it last saw it."""

    action: str  # reserve | wait | defer
    seen: int | None = None  # reserve: the counter it plans on (None or <= now: idle)
    ceiling: int | None = None  # reserve behind: the counter must still be under this
    reset: bool = False  # reserve: the counter is stale, start again from now
    until: int = 0  # wait | defer: when the lane has room again (microseconds)


def block_size(deps: Deps) -> int:
    """The most batch slots one write reserves: as many as fit in half the horizon (the rest of the horizon
    is for where the block starts), so a batch costs about one write per block rather than one per send."""
    return max(1, (HORIZON_US // 2) // interval_us(deps.settings.eseye_max_sends_per_second))


def interval_us(rate_per_second: float) -> int:
    """T, the gap between two sends, in whole microseconds (at least 1)."""
    return max(1, round(1_000_000 / rate_per_second))


def micros(moment: datetime) -> int:
    """A moment as integer microseconds since the epoch, exactly."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def plan(tat: int | None, now: int, lane: str, deadline: int, span: int = 0) -> Plan:
    """The GCRA decision for one sender, from the counter `tat` as last seen, at `now`, when it may wait
    until `deadline` at the latest (all in microseconds). `span` is how far past its first slot a block of
    slots reaches: a batch's block must end within the horizon too."""
    if tat is None or tat <= now:
        return Plan("reserve", seen=tat)  # idle: the slot is now
    if tat - now > STALE_US:
        return Plan("reserve", seen=tat, reset=True)
    if lane == BATCH and tat + span >= now + HORIZON_US:
        wake = tat + span - HORIZON_US  # yield: the backlog is single sends' (or full); come back when it has shrunk
        return Plan("wait", until=wake) if wake < deadline else Plan("defer", until=wake)
    if tat >= deadline:
        return Plan("defer", until=tat)
    ceiling = min(deadline, now + HORIZON_US - span) if lane == BATCH else deadline
    return Plan("reserve", seen=tat, ceiling=ceiling)


def take_slot(deps: Deps, lane: str = SINGLE, guard: dict[str, Any] | None = None, max_wait: float = MAX_WAIT_SECONDS, slots: int = 1) -> Slot:
    """Reserve the next send slot toward Eseye in `lane` and sleep until it comes; returns the slot.
    With `slots`, that many consecutive slots in one write (batch lane: a block that ends within the
    horizon, so it holds no more than a single reservation could), and the caller sleeps to each one after the first.

    `guard` is an extra transaction item (a ConditionCheck from a repository) committed with the reservation.
    Raises NoSlot when no slot comes within `max_wait` seconds (nothing is reserved), GuardFailed when the
    guard's condition failed (nothing is reserved), StoreUnavailable when DynamoDB cannot be reached.
    """
    if lane not in (SINGLE, BATCH):
        raise ValueError(f"unknown lane {lane!r}")
    interval = interval_us(deps.settings.eseye_max_sends_per_second)
    slots = max(1, min(slots, block_size(deps) if lane == BATCH else 1))
    span = (slots - 1) * interval
    seen: dict[str, int] = deps.once("pacing", dict)  # the counter as this container last saw it: one write when it is right
    start = micros(deps.clock())
    deadline = start + int(min(max_wait, MAX_WAIT_CAP_SECONDS) * 1_000_000)
    tat: int | None = seen.get("tat")
    if guard is None and tat is not None and tat <= start and start - seen.get("busy_at", 0) < BUSY_MEMORY_US:
        # Others have surely moved the counter on since: plan on a backlog, whose write needs no exact value.
        tat = start + 1
    for writes in range(1, MAX_TRIES + 1):
        now = micros(deps.clock())
        step = plan(tat, now, lane, deadline, span)
        while step.action == "wait":
            # Jitter, so that batch senders waiting for the same moment do not all try at once.
            deps.sleep((step.until - now + random.randrange(interval)) / 1_000_000)
            now = micros(deps.clock())
            step = plan(tat, now, lane, deadline, span)
        if step.action == "defer":
            count("SendSlotDeferred")
            raise NoSlot(lane, max(0, step.until - now) / 1_000_000)
        try:
            slot = deps.store.rates.reserve(
                LIMIT, now=now, interval=interval * slots, seen=step.seen, ceiling=step.ceiling, guard=guard, reset=step.reset
            )
        except ConditionFailed as exc:
            if 1 in exc.failed:
                raise GuardFailed() from exc
            tat = exc.item  # planned on a stale counter: plan again on the one stored
            continue
        except Contention:
            deps.sleep(random.randrange(interval) / 1_000_000)  # a guarded reservation held the item
            continue
        seen["tat"] = slot + interval * slots
        if slot > now:
            seen["busy_at"] = now  # this slot was behind a backlog
        wait = slot - micros(deps.clock())
        if wait > 0:
            deps.sleep(wait / 1_000_000)
        waited = (micros(deps.clock()) - start) / 1_000_000
        milliseconds("SendSlotWait", waited)
        return Slot(slot, waited, writes, slots, interval)
    raise NoSlot(lane, interval / 1_000_000)
