"""Lazily built, cached boto3 clients. Nothing is created at import time, so cold starts stay cheap."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def client(service: str) -> Any:
    import boto3  # deferred: importing boto3 is the largest part of a cold start
    from botocore.config import Config

    # Standard retry mode backs off (with jitter) on throttling and transient errors, at most 4 tries in all.
    # The stubs type one overload per service name; this builds whichever service it is asked for.
    config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=10)
    return boto3.client(service, config=config)  # type: ignore[call-overload]
