"""The collaborators logic needs, built lazily once per container and injectable in tests."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from smsgw import models
from smsgw.adapters.eseye import Credentials, EseyeClient
from smsgw.adapters.events import EventPublisher
from smsgw.adapters.queue import JobQueue, RedeliveryQueue, RetryQueue
from smsgw.adapters.secrets import CursorKeys, SecretSource
from smsgw.adapters.store import Store
from smsgw.config import Settings, settings
from smsgw.cursor import CursorCodec

if TYPE_CHECKING:
    from smsgw.adapters.outbound import CallbackPoster

T = TypeVar("T")


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
    callback_queue: RedeliveryQueue
    batch_queue: JobQueue
    clock: Callable[[], datetime] = models.now
    # How a sender waits for its turn (logic/pacing.py): tests hand in one that moves their clock instead.
    sleep: Callable[[float], None] = time.sleep
    # What a use case builds on first use and keeps for the container's life (the idempotent runner, the
    # callback breaker, the tracer): on the Deps, so a new Deps (a new container, a test) starts afresh.
    _built: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def now_iso(self) -> str:
        return models.iso(self.clock())

    def tracer(self) -> Any:
        """The container's tracer: Powertools' Tracer with detailed tracing on, else a no-op stand-in."""
        from smsgw.observability import make_tracer

        return self.once("tracer", lambda: make_tracer(self.settings.detailed_tracing))

    def callback_http(self) -> CallbackPoster:
        """The status-callback POSTer (its resolver threads, its TLS context); imported only where callbacks go."""
        from smsgw.adapters.outbound import CallbackPoster

        return self.once("callback_http", CallbackPoster)

    def once(self, name: str, build: Callable[[], T]) -> T:
        """`build()` on the first call for `name`, the same object on every later one (also across the
        callback deliverer's threads: should two build at once, both keep the one stored first)."""
        if name not in self._built:
            self._built.setdefault(name, build())
        return cast(T, self._built[name])


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
        callback_queue=RedeliveryQueue(config.callback_queue_url, clients.get("sqs")),
        batch_queue=JobQueue(config.batch_queue_url, clients.get("sqs")),
    )


@functools.cache
def default_deps() -> Deps:
    return build_deps(settings())
