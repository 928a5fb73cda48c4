"""A SIM's delivery queue, as pure state and decisions (no I/O): what logic/sims.py stores and acts on.

An AnyNet SIM holds at most ten SMS (eseye-sms-api.md §9), so the gateway keeps, per SIM:
- holders: the MT messages that occupy an in-flight slot (`pending` while the gateway hands them to
  Eseye, then `sent` until a final status). At most `max_in_flight` of them.
- queue: the messages waiting (`queued`), in the order the API accepted them. At most `max_queued`.
- window: when an hourly cap is set, the times the latest slots were granted (at most `max_per_hour`).

Every change is computed here from a consistent read and written with a condition on the state's
revision (`rev`), in the same DynamoDB transaction as the messages it moves. Two writers that saw the
same revision cannot both win, so no interleaving of sends, receipts and cancels ever puts more than
`max_in_flight` messages in flight or loses a queued one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from smsgw import models

# Bounds of the per-SIM settings (also the template parameters' bounds). A SIM holds ten SMS, so more
# than ten in flight can only overflow it; a thousand waiting keeps the state item small (~60 KB).
MAX_IN_FLIGHT_RANGE = (1, 10)
MAX_QUEUED_RANGE = (1, 1000)
MAX_PER_HOUR_RANGE = (0, 3600)  # 0: no hourly cap
SETTING_NAMES = ("max_in_flight", "max_queued", "max_per_hour")
HOUR = timedelta(hours=1)
RECENT_DELIVERIES = 20


class QueueFull(Exception):
    """The SIM already has `max_queued` messages waiting."""

    def __init__(self, msisdn: str, depth: int, max_queued: int):
        super().__init__(f"{depth} messages already wait for SIM {msisdn} (max_queued {max_queued})")
        self.msisdn, self.depth, self.max_queued = msisdn, depth, max_queued


@dataclass(frozen=True)
class SimSettings:
    max_in_flight: int = 1
    max_queued: int = 100
    max_per_hour: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Holder:
    """A message in an in-flight slot, and when the slot was granted."""

    id: str
    since: str


@dataclass(frozen=True)
class Waiting:
    """A queued message: when it joined the queue, its collapse key and its expiry, if any."""

    id: str
    at: str
    collapse_key: str | None = None
    expires_at: str | None = None


@dataclass(frozen=True)
class Admission:
    """Where a new message goes: straight into a slot (`pending`) or into the queue (`queued`), with
    its place in the queue (1 = next) and the queued message it replaces (collapse_key), if any."""

    status: str
    position: int = 0
    supersedes: str | None = None


@dataclass(frozen=True)
class SimState:
    msisdn: str
    rev: int = 0  # 0: never stored
    holders: tuple[Holder, ...] = ()
    queue: tuple[Waiting, ...] = ()
    window: tuple[str, ...] = ()
    overrides: Mapping[str, int] = field(default_factory=dict)
    last_mo_at: str | None = None
    last_delivered_at: str | None = None
    delivered_since_last_mo: int = 0
    buffer_risk_at: str | None = None  # when delivered_since_last_mo last crossed the warning threshold
    buffer_risk_threshold: int | None = None  # the threshold it crossed
    recent_deliveries: tuple[str, ...] = ()  # ids counted lately: a stream record seen twice counts once

    # --- reading -------------------------------------------------------------------------------
    def settings(self, defaults: SimSettings) -> SimSettings:
        return dataclasses.replace(defaults, **{k: int(v) for k, v in self.overrides.items() if k in SETTING_NAMES})

    def holds(self, message_id: str) -> bool:
        return any(h.id == message_id for h in self.holders)

    def position(self, message_id: str) -> int:
        """1-based place of a queued message; 0 when it is not queued."""
        return next((i + 1 for i, w in enumerate(self.queue) if w.id == message_id), 0)

    def slots_free(self, defaults: SimSettings, now: datetime) -> int:
        """How many messages may start now: free in-flight slots, within the hourly cap."""
        settings = self.settings(defaults)
        free = max(settings.max_in_flight - len(self.holders), 0)
        if settings.max_per_hour:
            hour_ago = models.iso(now - HOUR)
            recent = [t for t in self.window if t > hour_ago]
            free = min(free, max(settings.max_per_hour - len(recent), 0))
        return free

    # --- changes (each returns a new state; the caller stores it under the old revision) --------
    def admit(
        self, message_id: str, now: datetime, defaults: SimSettings, collapse_key: str | None = None, expires_at: str | None = None
    ) -> tuple[SimState, Admission]:
        """A new message for this SIM. It starts at once if a slot is free and nothing waits before it;
        it replaces a queued message with the same collapse key; otherwise it joins the end of the queue.
        Raises QueueFull when the queue is at its depth."""
        at = models.iso(now)
        if collapse_key is not None:
            index = next((i for i, w in enumerate(self.queue) if w.collapse_key == collapse_key), None)
            if index is not None:
                replaced = self.queue[index]
                queue = (*self.queue[:index], Waiting(message_id, replaced.at, collapse_key, expires_at), *self.queue[index + 1 :])
                return dataclasses.replace(self, queue=queue), Admission(models.QUEUED, index + 1, replaced.id)
        if not self.queue and self.slots_free(defaults, now) > 0:
            return self._start([message_id], now, defaults), Admission(models.PENDING)
        settings = self.settings(defaults)
        if len(self.queue) >= settings.max_queued:
            raise QueueFull(self.msisdn, len(self.queue), settings.max_queued)
        queue = (*self.queue, Waiting(message_id, at, collapse_key, expires_at))
        return dataclasses.replace(self, queue=queue), Admission(models.QUEUED, len(queue))

    def _start(self, message_ids: Iterable[str], now: datetime, defaults: SimSettings) -> SimState:
        ids = list(message_ids)
        at = models.iso(now)
        window = self.window
        cap = self.settings(defaults).max_per_hour
        if cap:  # the grants of the last hour; at most `cap` of them, as grants happen only below the cap
            hour_ago = models.iso(now - HOUR)
            window = tuple(t for t in (*window, *([at] * len(ids))) if t > hour_ago)
        elif window:
            window = ()
        holders = (*self.holders, *(Holder(i, at) for i in ids))
        return dataclasses.replace(self, holders=holders, queue=tuple(w for w in self.queue if w.id not in ids), window=window)

    def next_to_start(self, defaults: SimSettings, now: datetime) -> list[Waiting]:
        """The messages at the head of the queue that may start now, in order."""
        return list(self.queue[: self.slots_free(defaults, now)])

    def start(self, message_ids: Iterable[str], now: datetime, defaults: SimSettings) -> SimState:
        """Move queued messages into in-flight slots."""
        return self._start(message_ids, now, defaults)

    def release(self, message_ids: Iterable[str]) -> SimState:
        """Free the slots of messages that reached a final status (or stopped holding for another reason)."""
        gone = set(message_ids)
        return dataclasses.replace(self, holders=tuple(h for h in self.holders if h.id not in gone))

    def drop(self, message_ids: Iterable[str]) -> SimState:
        """Take messages out of the queue (cancelled, expired, blocked, or no longer queued)."""
        gone = set(message_ids)
        return dataclasses.replace(self, queue=tuple(w for w in self.queue if w.id not in gone))

    def delivered(self, message_id: str, at: str, warn_at: int) -> SimState:
        """An MT message reached the device. Counts towards buffer pressure unless the device has spoken
        since (a delivery reported after a later MO was already read), once per message. Marks the
        crossing of `warn_at`."""
        if message_id in self.recent_deliveries:
            return self
        recent = (*self.recent_deliveries, message_id)[-RECENT_DELIVERIES:]
        last = max(self.last_delivered_at or "", at)
        if self.last_mo_at and at <= self.last_mo_at:
            return dataclasses.replace(self, last_delivered_at=last, recent_deliveries=recent)
        count = self.delivered_since_last_mo + 1
        crossed = warn_at > 0 and self.delivered_since_last_mo < warn_at <= count
        return dataclasses.replace(
            self,
            last_delivered_at=last,
            delivered_since_last_mo=count,
            recent_deliveries=recent,
            buffer_risk_at=at if crossed else self.buffer_risk_at,
            buffer_risk_threshold=warn_at if crossed else self.buffer_risk_threshold,
        )

    def device_spoke(self, at: str) -> SimState:
        """An MO came from the device: it is reading its SMS, so the pressure estimate starts again."""
        if self.last_mo_at and at <= self.last_mo_at:
            return self
        return dataclasses.replace(self, last_mo_at=at, delivered_since_last_mo=0)

    def with_overrides(self, overrides: Mapping[str, int]) -> SimState:
        return dataclasses.replace(self, overrides=dict(overrides))

    # --- the API's view ------------------------------------------------------------------------
    def view(self, defaults: SimSettings) -> dict[str, Any]:
        view = {
            "msisdn": self.msisdn,
            "in_flight": len(self.holders),
            "queued": len(self.queue),
            "settings": self.settings(defaults).as_dict(),
            "overrides": dict(self.overrides),
            "last_mo_at": self.last_mo_at,
            "last_delivered_at": self.last_delivered_at,
            "delivered_since_last_mo": self.delivered_since_last_mo,
            "in_flight_messages": [{"id": h.id, "since": h.since} for h in self.holders],
            "queued_messages": [
                {k: v for k, v in {"id": w.id, "position": i + 1, "queued_at": w.at, "collapse_key": w.collapse_key}.items() if v is not None}
                for i, w in enumerate(self.queue)
            ],
        }
        return view

    # --- storage form --------------------------------------------------------------------------
    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "msisdn": self.msisdn,
            "holders": [{"id": h.id, "since": h.since} for h in self.holders],
            "queue": [{k: v for k, v in dataclasses.asdict(w).items() if v is not None} for w in self.queue],
            "window": list(self.window),
            "delivered_since_last_mo": self.delivered_since_last_mo,
            "last_mo_at": self.last_mo_at,
            "last_delivered_at": self.last_delivered_at,
            "buffer_risk_at": self.buffer_risk_at,
            "buffer_risk_threshold": self.buffer_risk_threshold,
            "recent_deliveries": list(self.recent_deliveries),
        }
        item.update({name: int(value) for name, value in self.overrides.items()})
        return item

    @classmethod
    def from_item(cls, msisdn: str, item: Mapping[str, Any] | None) -> SimState:
        if not item:
            return cls(msisdn)
        return cls(
            msisdn=msisdn,
            rev=int(item.get("rev") or 0),
            holders=tuple(Holder(str(h["id"]), str(h.get("since", ""))) for h in item.get("holders") or []),
            queue=tuple(Waiting(str(w["id"]), str(w.get("at", "")), w.get("collapse_key"), w.get("expires_at")) for w in item.get("queue") or []),
            window=tuple(str(t) for t in item.get("window") or []),
            overrides={name: int(item[name]) for name in SETTING_NAMES if item.get(name) is not None},
            last_mo_at=item.get("last_mo_at"),
            last_delivered_at=item.get("last_delivered_at"),
            delivered_since_last_mo=int(item.get("delivered_since_last_mo") or 0),
            buffer_risk_at=item.get("buffer_risk_at"),
            buffer_risk_threshold=None if item.get("buffer_risk_threshold") is None else int(item["buffer_risk_threshold"]),
            recent_deliveries=tuple(str(i) for i in item.get("recent_deliveries") or []),
        )
