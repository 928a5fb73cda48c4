"""Powertools Logger and Metrics for every function, and the X-Ray SDK Tracer only when asked for.

Constructing Powertools' Tracer loads the X-Ray SDK and patches botocore and requests: as much time
as importing boto3 itself, on every cold start. Lambda's active tracing (Tracing: Active) records
every invocation without it; the SDK adds a subsegment per AWS and Eseye call. So it is opt-in:
the template's DetailedTracing parameter sets DETAILED_TRACING=true.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics(namespace="EseyeSmsGateway")


class _UntracedHandler:
    """Stands in for Powertools' Tracer when detailed tracing is off: decorators that change nothing."""

    def capture_lambda_handler(self, handler: Callable | None = None, **_: Any) -> Callable:
        if handler is None:
            return lambda inner: inner
        return handler


def _tracer() -> Any:
    if os.environ.get("DETAILED_TRACING", "false").lower() == "true":
        from aws_lambda_powertools import Tracer

        return Tracer()
    return _UntracedHandler()


tracer = _tracer()


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, seconds: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=round(seconds * 1000, 1))


def follow(message_id: str) -> None:
    """Tag every following log line of this invocation with the message it is about."""
    logger.append_keys(message_id=message_id)
