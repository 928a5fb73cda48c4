"""The safety net: a message must never sit `pending` with nothing scheduled to move it, a long MO
must never wait for ever for a part that will not come, and a SIM's queue must never stay stuck.

That can happen when the create lands but every answer to it is lost, or when a retry job dies in
the dead-letter queue. Every few minutes, messages still pending and untouched for longer than any
retry backoff get a retry job that asks Eseye first (the earlier attempt may have arrived), and the
parts of long MOs older than the window are published as one MO marked incomplete.
"""

from __future__ import annotations

from datetime import timedelta

from smsgw import models
from smsgw.deps import Deps, default_deps
from smsgw.logic.delivery import note
from smsgw.observability import count

STALE_AFTER = timedelta(minutes=20)  # longer than the longest retry backoff (15 min)


def reconcile_pending(deps: Deps | None = None, stale_after: timedelta = STALE_AFTER, limit: int = 200) -> int:
    """Schedule a probe-first retry for each stale pending message. Returns how many were scheduled."""
    deps = deps or default_deps()
    cutoff = models.iso(deps.clock() - stale_after)
    scheduled = 0
    for message_id in deps.store.messages.stale_pending(cutoff, limit):
        message = deps.store.messages.get(message_id)
        if not message or message.status != models.PENDING or (message.updated_at or "") >= cutoff:
            continue  # moved on, or a retry is at work on it
        attempt = int(message.attempts or 0) + 1
        note(deps, message, "reconcile", f"pending with no retry in progress; attempt {attempt} scheduled (Eseye asked first)")
        deps.retry_queue.schedule({"id": message.id, "attempt": attempt, "ambiguous": True}, 0)
        scheduled += 1
    if scheduled:
        count("StalePendingRescheduled", scheduled)
    return scheduled


def publish_incomplete_mos(deps: Deps | None = None) -> int:
    """Publish, as `incomplete` MOs, the long MOs whose parts did not all arrive within the window. Returns how many."""
    from smsgw.logic import webhooks

    published = webhooks.publish_stale_buffers(deps or default_deps())
    if published:
        count("IncompleteMoPublished", published)
    return published


# Longer than the minute sweep's (SchedulerFunction's) own idle time: a second net behind it, should it fail.
SIM_QUEUE_STUCK_AFTER = timedelta(minutes=5)


def repair_sim_queues(deps: Deps | None = None) -> int:
    """Repair the SIM queues that have not moved for SIM_QUEUE_STUCK_AFTER (logic/sims.py): free slots
    whose message ended, vanished or outlived the in-flight timeout, and start what may go. Returns how
    many messages started."""
    from smsgw.logic import sims

    return sims.repair_waiting_queues(deps or default_deps(), idle_for=SIM_QUEUE_STUCK_AFTER)
