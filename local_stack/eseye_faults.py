"""Fault injection for the Eseye simulator: the next N API calls misbehave, one way each.

Modes, and whether Eseye processes the request:
- timeout: no answer for `delay` seconds, then the connection closes. Not processed.
- drop: the connection closes at once. Not processed.
- http500, http503: an HTML error page with that status. Not processed.
- empty: an empty 200. html: a 200 HTML page. unknown_code: `Error599`, a code nobody documented. Not processed.
- slow: processed at once, answered `delay` seconds late.
- drop_after_accept: processed, never answered.
- status_<word>: answers that status (e.g. status_queued to a cancel) without processing the request.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

FAULT_MODES = frozenset({"timeout", "drop", "http500", "http503", "empty", "html", "unknown_code", "slow", "drop_after_accept"})
_STATUS_MODE = re.compile(r"status_[a-z_-]{1,32}")
HTML_PAGE = "<html><body><h1>Service temporarily unavailable</h1></body></html>"


@dataclass(frozen=True)
class Fault:
    mode: str
    delay: float = 0.0

    @property
    def answers_late(self) -> bool:
        """The request is processed as usual and only its answer waits (the caller sleeps `delay`)."""
        return self.mode == "slow"


class Channel(Protocol):
    """What a fault needs of the connection it misbehaves on."""

    def reply(self, status: int, body: str, content_type: str) -> None: ...

    def close(self) -> None: ...


class FaultQueue:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(self, mode: str, count: int = 1, delay: float = 0.0) -> None:
        """Raises ValueError for a mode the simulator does not know, so a typo never passes silently."""
        if mode not in FAULT_MODES and not _STATUS_MODE.fullmatch(mode):
            raise ValueError(f"unknown fault mode {mode!r}: one of {', '.join(sorted(FAULT_MODES))} or status_<word>")
        with self._lock:
            self._faults.extend(Fault(mode, delay) for _ in range(count))

    def next(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        return len(self._faults)


def act(fault: Fault, channel: Channel, process: Callable[[], object]) -> bool:
    """Misbehave on one request. Returns True when the fault has dealt with it (answered, or never will);
    False when the request goes on as usual (`slow`, which the caller answers late)."""
    from local_stack.eseye_rules import status_xml

    mode = fault.mode
    if fault.answers_late:
        return False
    if mode == "timeout":
        time.sleep(fault.delay or 30)
        channel.close()
    elif mode == "drop":
        channel.close()
    elif mode == "drop_after_accept":
        process()
        time.sleep(fault.delay or 30)
        channel.close()
    elif mode in ("http500", "http503"):
        channel.reply(int(mode[4:]), HTML_PAGE, "text/html")
    elif mode == "empty":
        channel.reply(200, "", "text/html")
    elif mode == "html":
        channel.reply(200, HTML_PAGE, "text/html")
    elif mode == "unknown_code":
        channel.reply(200, "Error599: Something new went wrong", "text/html")
    else:
        channel.reply(200, status_xml(mode.removeprefix("status_"), "as injected"), "application/xml")
    return True
