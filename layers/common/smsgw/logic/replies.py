"""Tie a device's reply to the command that asked for it.

A send with `expect_reply_within` waits for a reply until its deadline (the message repository keeps
waiting commands by deadline). The first MO from that MSISDN inside the window claims the oldest waiting command; a
scheduled sweeper marks the commands whose window passed, and the publisher turns that change into
an `sms.mt.reply_timeout` event.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from smsgw import models
from smsgw.adapters.store import ConditionFailed
from smsgw.deps import Deps, default_deps
from smsgw.observability import count

CANDIDATES = 25  # newest messages of the MSISDN looked at for a waiting command


def waiting_fields(created: Any, window_seconds: int | None) -> dict[str, Any]:
    """The fields of a new command that waits `window_seconds` for a reply (none if it waits for none)."""
    if not window_seconds:
        return {}
    deadline = models.iso(created + timedelta(seconds=window_seconds))
    return {"reply_deadline": deadline, "reply_state": "waiting"}


def claim_command(sender: str, mo_id: str, deps: Deps) -> str | None:
    """Link the MO `mo_id` to the oldest command to `sender` still waiting for a reply. Returns its id."""
    now = deps.now_iso()
    items = deps.store.messages.waiting_replies(sender, CANDIDATES)
    for command in sorted((i for i in items if (i.reply_deadline or "") >= now), key=lambda i: i.created_at or ""):
        try:
            deps.store.messages.link_reply(command.id, models.history_entry(now, "reply", str(command.status), f"reply received: MO {mo_id}"), mo_id)
        except ConditionFailed as exc:
            if exc.item and exc.item.reply_id == mo_id:
                return command.id  # the same MO, delivered again
            continue  # another MO claimed it first
        count("RepliesLinked")
        return command.id
    return None


def sweep_timeouts(deps: Deps | None = None, limit: int = 500) -> int:
    """Mark commands whose reply window has passed. Returns how many timed out."""
    deps = deps or default_deps()
    now = deps.now_iso()
    items = deps.store.messages.replies_due(now, limit)
    timed_out = 0
    for command in items:
        try:
            deps.store.messages.time_out_reply(
                command.id, models.history_entry(now, "reply_timeout", str(command.status), "no reply within the window")
            )
            timed_out += 1
        except ConditionFailed:
            continue  # a reply arrived meanwhile
    if timed_out:
        count("ReplyTimeouts", timed_out)
    return timed_out
