"""The retry dispatcher: sends that Eseye did not answer, tried again from SQS with backoff."""

from __future__ import annotations

from typing import Any

from smsgw import models
from smsgw.deps import Deps, default_deps
from smsgw.logic import delivery
from smsgw.observability import follow, logger


def parse_job(body: str) -> dict[str, Any]:
    import json

    job = json.loads(body)
    if not isinstance(job, dict) or not models.MESSAGE_ID_PATTERN.match(str(job.get("id", ""))):
        raise ValueError("retry job without a valid message id")
    return {"id": job["id"], "attempt": int(job.get("attempt", 2)), "ambiguous": bool(job.get("ambiguous", False))}


def dispatch(job: dict[str, Any], deps: Deps | None = None) -> str:
    """Run one retry job. Returns what happened. Raises on infrastructure errors, so SQS redelivers the job.

    The job only names the message: attempts, and whether Eseye may already have it, are read from the
    message itself, so duplicate jobs, rescued jobs and stale jobs all come to the same decision, and
    only the one holding the lease acts on it.
    """
    deps = deps or default_deps()
    follow(job["id"])
    logger.info("retry job", extra={"attempt": job["attempt"], "ambiguous": job["ambiguous"]})
    claimed = delivery.claim(deps, job["id"], delivery.new_lease_owner(), for_attempt=True)
    if claimed.after is None or claimed.before is None:
        if claimed.refused == "unknown":
            logger.warning("retry job for an unknown message", extra={"message_id": job["id"]})
        return claimed.refused
    message = claimed.after
    if message.get("expires_at") and message["expires_at"] <= deps.now_iso():
        delivery.record(deps, message, models.FAILED, "expired", "the message expired before Eseye accepted it", release=True)
        return "expired"
    # Ask Eseye first if an earlier attempt may have reached it (as known before this claim marked it so).
    ask_first = job["ambiguous"] or bool(claimed.before.get("may_be_at_eseye"))
    return delivery.attempt(deps, message, ask_first=ask_first).status or "unknown"
