"""Powertools Logger, Tracer and Metrics shared by every function (cheap to build; the X-Ray SDK loads lazily)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="EseyeSmsGateway")


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, seconds: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=round(seconds * 1000, 1))


def follow(message_id: str) -> None:
    """Tag every following log line of this invocation with the message it is about."""
    logger.append_keys(message_id=message_id)
