"""The collaborators logic needs, built lazily once per container and injectable in tests."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from smsgw import models
from smsgw.adapters.eseye import Credentials, EseyeClient
from smsgw.adapters.events import EventPublisher
from smsgw.adapters.queue import RetryQueue
from smsgw.adapters.secrets import CursorKeys, SecretSource
from smsgw.adapters.store import Store
from smsgw.config import Settings, settings
from smsgw.cursor import CursorCodec


@dataclass
class Deps:
    settings: Settings
    store: Store
    secrets: SecretSource
    eseye: EseyeClient
    retry_queue: RetryQueue
    events: EventPublisher
    callback_secret: SecretSource
    cursors: CursorCodec
    clock: Callable[[], datetime] = models.now

    def now_iso(self) -> str:
        return models.iso(self.clock())


def build_deps(config: Settings, clients: dict[str, Any] | None = None, session: Any = None) -> Deps:
    """Wire the adapters. `clients` maps service names to boto3 clients (tests pass moto-backed ones)."""
    clients = clients or {}
    secrets = SecretSource(config.secret_id, config.secret_max_age_seconds, clients.get("secretsmanager"))
    cursor_keys = CursorKeys(config.cursor_secret_id, config.secret_max_age_seconds, clients.get("secretsmanager"))

    def credentials() -> Credentials:
        secret = secrets.get()
        return Credentials(secret.username, secret.password)

    def on_latency(request: str, seconds: float) -> None:
        from smsgw.observability import milliseconds

        milliseconds("EseyeLatency", seconds)

    return Deps(
        settings=config,
        store=Store(config.table_name, clients.get("dynamodb"), config.retention_days * 86400),
        secrets=secrets,
        eseye=EseyeClient(config.eseye_base_url, credentials, config.eseye_connect_timeout, config.eseye_read_timeout, session, on_latency),
        retry_queue=RetryQueue(config.send_queue_url, clients.get("sqs")),
        events=EventPublisher(config.events_topic_arn, clients.get("sns"), config.publisher_dead_letter_url, clients.get("sqs")),
        callback_secret=SecretSource(config.callback_secret_id, config.secret_max_age_seconds, clients.get("secretsmanager")),
        cursors=CursorCodec(cursor_keys.signing_key, cursor_keys.verifying_keys),
    )


@functools.cache
def default_deps() -> Deps:
    return build_deps(settings())
