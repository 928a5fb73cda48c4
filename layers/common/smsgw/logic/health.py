"""GET /health and POST /health/redrive: what an operator checks when something goes wrong, and the one
repair the API makes: the dead-letter queues' depths (and moving their messages back, for the queues whose
consumers can take them again), the webhook requests quarantined, and Eseye's recent error rate, computed as
template.yaml's EseyeErrorRateAlarm computes it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from smsgw import models, validation
from smsgw.adapters.operations import MetricReader, Queues
from smsgw.config import Settings
from smsgw.deps import Deps, default_deps
from smsgw.errors import NotRedrivable, ValidationFailed

# What the alarm reads (template.yaml, EseyeErrorRateAlarm): errors (retries), rejections and sends, Sum.
NAMESPACE = "EseyeSmsGateway"
DIMENSIONS = {"service": "eseye-sms-gateway"}
RETRIED, REJECTED, SENT = "SendRetried", "Rejected", "Sent"
WINDOW = timedelta(minutes=15)  # the alarm's three periods of 300 s
ALARM_THRESHOLD = 0.2  # its Threshold (20, in percent)

QUARANTINE_MAX_QUERIES = 40  # a day's partition is one Query unless a flood filled it past 1 MB
REDRIVE_SECONDS = 10.0  # moving stops by then, so the answer comes well inside API Gateway's 29 s
REDRIVE_LIMIT_MAX = 1000
REDRIVE_FIELDS = frozenset({"queue", "limit"})

# template.yaml's DeadLetterQueueAdvice, word for word (tests/unit/test_health.py holds the two together).
ADVICE = {
    "SendRetry": "SendRetryDeadLetterQueue is not empty: sends whose retries crashed: redrive with smsgw redrive-sends once fixed.",
    "Publisher": (
        "PublisherDeadLetterQueue is not empty: stream batches the publisher gave up on, or single records set aside (reason "
        "sns_refused or unreadable_record, with the event id and SNS's answer): fix the cause, then replay their time range "
        "with POST /events/replay."
    ),
    "Callback": "CallbackDeadLetterQueue is not empty: status callbacks a receiver kept refusing; smsgw redrive-callbacks once it is fixed.",
    "SimQueue": (
        "SimQueueDeadLetterQueue is not empty: stream batches the SIM queue follower gave up on (see SimQueueFunction's errors). "
        "Their SIMs' queues are not lost: SchedulerFunction repairs a queue that stopped for a minute, and the reconciler "
        "retries messages left pending."
    ),
    "Batch": (
        "BatchDeadLetterQueue is not empty: batch fan-out jobs that kept failing (see BatchFanoutFunction's errors). Their "
        "messages are not sent twice: once fixed, redrive the jobs to BatchQueue (message ids come from the batch and the recipient)."
    ),
}


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str  # as the API names it
    template_name: str  # <template_name>DeadLetterQueue in template.yaml
    url: str
    source_url: str | None  # where its messages came from, when they can go back there


def dead_letter_queues(settings: Settings) -> list[DeadLetterQueue]:
    """The five dead-letter queues, in the template's order. Stream batches (publisher, SIM queue) have no
    queue to go back to: their records are replayed or repaired another way, as their advice says."""
    return [
        DeadLetterQueue("send-retries", "SendRetry", settings.send_retry_dead_letter_url, settings.send_queue_url),
        DeadLetterQueue("publisher", "Publisher", settings.publisher_dead_letter_url, None),
        DeadLetterQueue("callbacks", "Callback", settings.callback_dead_letter_url, settings.callback_queue_url),
        DeadLetterQueue("sim-queue", "SimQueue", settings.sim_queue_dead_letter_url, None),
        DeadLetterQueue("batch-jobs", "Batch", settings.batch_dead_letter_url, settings.batch_queue_url),
    ]


def _queues(deps: Deps) -> Queues:
    return deps.once("health.queues", Queues)


def _metrics(deps: Deps) -> MetricReader:
    return deps.once("health.metrics", MetricReader)


def error_rate(retried: float, rejected: float, sent: float) -> float | None:
    """The alarm's expression, (errors + rejected) / MAX([1, errors + rejected + sent]), as a fraction;
    None when nothing was attempted (the alarm treats that as not breaching)."""
    attempts = retried + rejected + sent
    return None if attempts <= 0 else (retried + rejected) / max(1.0, attempts)


def overview(deps: Deps | None = None) -> dict[str, Any]:
    """The health page: every dead-letter queue's depth, the quarantine's count over its retention, and
    Eseye's error rate over the last 15 minutes. Raises ServiceUnavailable when SQS, CloudWatch or
    DynamoDB cannot be asked."""
    deps = deps or default_deps()
    now = deps.clock()
    queues = []
    for queue in dead_letter_queues(deps.settings):
        depth = _queues(deps).depth(queue.url)
        queues.append(
            {
                "name": queue.name,
                "depth": depth.visible,
                "in_flight": depth.in_flight,
                "redrive": queue.source_url is not None,
                "advice": ADVICE[queue.template_name],
            }
        )
    days = deps.settings.quarantine_retention_days
    tally = deps.store.inbound.count_quarantined(models.iso(now - timedelta(days=days)), models.iso(now), QUARANTINE_MAX_QUERIES)
    # Minute-aligned, as CloudWatch aggregates: the current minute and the fourteen before it.
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    sums = _metrics(deps).sums(NAMESPACE, (RETRIED, REJECTED, SENT), DIMENSIONS, end - WINDOW, end)
    retried, rejected, sent = (round(sums[name]) for name in (RETRIED, REJECTED, SENT))
    return {
        "dead_letter_queues": queues,
        "quarantine": {"count": tally.count, "days": days, "latest_at": tally.latest_at, "complete": tally.complete},
        "eseye": {
            "window_minutes": int(WINDOW.total_seconds() // 60),
            "sent": sent,
            "rejected": rejected,
            "retried": retried,
            "error_rate": error_rate(retried, rejected, sent),
            "alarm_threshold": ALARM_THRESHOLD,
        },
        "checked_at": models.iso(now),
    }


def parse_redrive(body: Any, queues: list[DeadLetterQueue]) -> tuple[DeadLetterQueue, str, int]:
    """The queue, the queue its messages go back to, and the limit a redrive asks for. Raises ValidationFailed naming each bad field, or
    NotRedrivable for a queue whose messages cannot go back (naming those that can)."""
    names = [q.name for q in queues]
    redrivable = [q.name for q in queues if q.source_url is not None]
    if not isinstance(body, dict):
        raise ValidationFailed('the body must be a JSON object: {"queue": ..., "limit": ...}', {"fields": {"queue": "required"}})
    problems = {name: "unknown field" for name in sorted(set(body) - REDRIVE_FIELDS)}
    if body.get("queue") not in names:
        problems["queue"] = f"must be one of {', '.join(names)}"
    limit = body.get("limit", 100)
    if not validation.whole_number(limit, 1, REDRIVE_LIMIT_MAX):
        problems["limit"] = f"must be a whole number from 1 to {REDRIVE_LIMIT_MAX}"
    if problems:
        raise validation.invalid(problems)
    [queue] = [q for q in queues if q.name == body["queue"]]
    if queue.source_url is None:
        raise NotRedrivable(
            f"{queue.name} cannot be redriven: its messages have no queue to go back to. Redrivable: {', '.join(redrivable)}",
            {"queue": queue.name, "redrivable": redrivable, "advice": ADVICE[queue.template_name]},
        )
    return queue, queue.source_url, int(limit)


def redrive(body: Any, deps: Deps | None = None) -> dict[str, Any]:
    """Move up to `limit` dead-lettered messages back to the queue they came from, for at most
    REDRIVE_SECONDS. Returns {"queue", "moved", "remaining"} (remaining: still in the dead-letter queue,
    in flight included). Raises ValidationFailed, NotRedrivable, or ServiceUnavailable when SQS fails."""
    deps = deps or default_deps()
    queue, target, limit = parse_redrive(body, dead_letter_queues(deps.settings))
    moved = _queues(deps).move(queue.url, target, limit, time.monotonic() + REDRIVE_SECONDS)
    depth = _queues(deps).depth(queue.url)
    return {"queue": queue.name, "moved": moved, "remaining": depth.visible + depth.in_flight}
