"""The retry dispatcher: sends that Eseye did not answer, tried again from SQS with backoff."""

from __future__ import annotations

from typing import Any

from smsgw import models
from smsgw.adapters.eseye import EseyeUnavailable
from smsgw.deps import Deps, default_deps
from smsgw.logic.delivery import attempt_send, give_up_or_retry, record
from smsgw.logic.messages import apply_eseye_status
from smsgw.observability import follow, logger

# Eseye's answers to a status request for a message_id it never received.
UNKNOWN_MESSAGE_CODES = frozenset({535, 555})


def parse_job(body: str) -> dict[str, Any]:
    import json

    job = json.loads(body)
    if not isinstance(job, dict) or not models.MESSAGE_ID_PATTERN.match(str(job.get("id", ""))):
        raise ValueError("retry job without a valid message id")
    return {"id": job["id"], "attempt": int(job.get("attempt", 2)), "ambiguous": bool(job.get("ambiguous", False))}


def dispatch(job: dict[str, Any], deps: Deps | None = None) -> str:
    """Run one retry job. Returns what happened. Raises on infrastructure errors, so SQS redelivers the job."""
    deps = deps or default_deps()
    follow(job["id"])
    logger.info("retry job", extra={"attempt": job["attempt"], "ambiguous": job["ambiguous"]})
    message = deps.store.get_message(job["id"])
    if not message or not message.get("status"):
        logger.warning("retry job for an unknown message", extra={"message_id": job["id"]})
        return "unknown"
    if message["status"] != models.PENDING:
        return f"skipped:{message['status']}"
    attempt = job["attempt"]
    if message.get("expires_at") and message["expires_at"] <= deps.now_iso():
        record(deps, message, models.FAILED, "expired", "the message expired before Eseye accepted it")
        return "expired"

    if job["ambiguous"]:
        # The last attempt may have reached Eseye: ask before sending, so a device never gets a command twice.
        try:
            reply = deps.eseye.status(message["id"])
        except EseyeUnavailable as exc:
            give_up_or_retry(deps, message, attempt, EseyeUnavailable(f"status probe: {exc.reason}", True, exc.http_status, exc.raw))
            return "probe_unavailable"
        if reply.kind == "status" and reply.status in models.ESEYE_STATUS_MEANING:
            apply_eseye_status(deps, message, reply, "eseye_probe")
            return "probe_found"
        if not (reply.kind == "error" and reply.code in UNKNOWN_MESSAGE_CODES):
            message = record(
                deps, message, None, "eseye_probe", "Eseye's status answer does not say whether it has the message", eseye=reply.as_detail()
            )
            give_up_or_retry(deps, message, attempt, EseyeUnavailable("status probe inconclusive", True, reply.http_status, reply.raw))
            return "probe_inconclusive"
        message = record(
            deps,
            message,
            None,
            "eseye_probe",
            f"Eseye does not know the message (error {reply.code}); sending again",
            eseye=reply.as_detail(),
        )

    message = attempt_send(deps, message, attempt)
    return message["status"]
