"""Tie a device's reply to the command that asked for it.

A send with `expect_reply_within` waits on a sparse index (GSI2, partition REPLYWAIT, sorted by
deadline). The first MO from that MSISDN inside the window claims the oldest waiting command; a
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

WAITING = "REPLYWAIT"
CANDIDATES = 25  # newest messages of the MSISDN looked at for a waiting command


def waiting_fields(created: Any, window_seconds: int | None, message_id: str) -> dict[str, Any]:
    if not window_seconds:
        return {}
    deadline = models.iso(created + timedelta(seconds=window_seconds))
    return {"reply_deadline": deadline, "reply_state": "waiting", "GSI2PK": WAITING, "GSI2SK": f"{deadline}#{message_id}"}


def claim_command(sender: str, mo_id: str, deps: Deps) -> str | None:
    """Link the MO `mo_id` to the oldest command to `sender` still waiting for a reply. Returns its id."""
    now = deps.now_iso()
    items, _ = deps.store.query(
        index="GSI1",
        key_condition="#pk = :pk",
        names={"#pk": "GSI1PK", "#dir": "direction", "#wait": "GSI2PK"},
        values={":pk": f"MSISDN#{sender}", ":mt": "mt"},
        filter_expression="#dir = :mt AND attribute_exists(#wait)",
        forward=False,
        limit=CANDIDATES,
    )
    for command in sorted((i for i in items if i.get("reply_deadline", "") >= now), key=lambda i: i["created_at"]):
        try:
            deps.store.update_message(
                command["id"],
                models.history_entry(now, "reply", command["status"], f"reply received: MO {mo_id}"),
                sets={"reply_id": mo_id, "reply_state": "replied"},
                remove=("GSI2PK", "GSI2SK"),
                require=("GSI2PK",),
            )
        except ConditionFailed as exc:
            if exc.item and exc.item.get("reply_id") == mo_id:
                return command["id"]  # the same MO, delivered again
            continue  # another MO claimed it first
        count("RepliesLinked")
        return command["id"]
    return None


def sweep_timeouts(deps: Deps | None = None, limit: int = 500) -> int:
    """Mark commands whose reply window has passed. Returns how many timed out."""
    deps = deps or default_deps()
    now = deps.now_iso()
    items, _ = deps.store.query(
        index="GSI2",
        key_condition="#pk = :pk AND #sk < :now",
        names={"#pk": "GSI2PK", "#sk": "GSI2SK"},
        values={":pk": WAITING, ":now": now},
        limit=limit,
    )
    timed_out = 0
    for command in items:
        try:
            deps.store.update_message(
                command["id"],
                models.history_entry(now, "reply_timeout", command["status"], "no reply within the window"),
                sets={"reply_state": "timed_out"},
                remove=("GSI2PK", "GSI2SK"),
                require=("GSI2PK",),
            )
            timed_out += 1
        except ConditionFailed:
            continue  # a reply arrived meanwhile
    if timed_out:
        count("ReplyTimeouts", timed_out)
    return timed_out
