"""Powertools Logger and Metrics for every function, and the X-Ray SDK Tracer only when asked for.

Constructing Powertools' Tracer loads the X-Ray SDK and patches botocore and requests: as much time
as importing boto3 itself, on every cold start. Lambda's active tracing (Tracing: Active) records
every invocation without it; the SDK adds a subsegment per AWS and Eseye call. So it is opt-in:
the template's DetailedTracing parameter sets DETAILED_TRACING=true.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics(namespace="EseyeSmsGateway")

Handler = Callable[[Any, Any], Any]


class UntracedHandler:
    """Stands in for Powertools' Tracer when detailed tracing is off: decorators that change nothing."""

    def capture_lambda_handler(self, handler: Handler | None = None, **_: Any) -> Any:
        if handler is None:
            return lambda inner: inner
        return handler


def make_tracer(detailed: bool) -> Any:
    """Powertools' Tracer when detailed tracing is on, else a stand-in. Deps.tracer builds it once per container."""
    if detailed:
        from aws_lambda_powertools import Tracer

        return Tracer()
    return UntracedHandler()


class _DeferredTracer:
    """What the functions decorate their handlers with at import: the choice of tracer waits for the first
    invocation (the container's Deps), so importing a handler builds nothing. Holds no state of its own."""

    def capture_lambda_handler(self, handler: Handler | None = None, **options: Any) -> Any:
        if handler is None:
            return functools.partial(self.capture_lambda_handler, **options)
        wrapped: list[tuple[Any, Handler]] = []  # (tracer, handler it wrapped): per decorated handler

        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            from smsgw.deps import default_deps

            tracer = default_deps().tracer()
            if not wrapped or wrapped[0][0] is not tracer:
                wrapped[:] = [(tracer, tracer.capture_lambda_handler(handler, **options))]
            return wrapped[0][1](event, context)

        return run


tracer = _DeferredTracer()


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, seconds: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=round(seconds * 1000, 1))


def follow(message_id: str) -> None:
    """Tag every following log line of this invocation with the message it is about."""
    logger.append_keys(message_id=message_id)
