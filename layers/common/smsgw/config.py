"""Typed settings, read once per cold start from the environment that template.yaml sets."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

from smsgw.simqueue import SimSettings


@dataclass(frozen=True)
class Settings:
    table_name: str
    secret_id: str
    eseye_base_url: str = "https://messaging.eseye.com"
    eseye_connect_timeout: float = 3.05
    eseye_read_timeout: float = 10.0
    secret_max_age_seconds: int = 300
    send_queue_url: str = ""
    batch_queue_url: str = ""  # the batches' fan-out jobs (logic/batches.py)
    send_max_attempts: int = 8
    retry_base_delay_seconds: int = 10
    # Longer than any function that sends can run, so a lease past its time has no live holder.
    send_lease_seconds: int = 180
    retention_days: int = 400
    # What a webhook token holder can create expires in days, not with the messages' retention.
    orphan_receipt_retention_days: int = 7
    quarantine_retention_days: int = 14
    concat_buffer_retention_days: int = 3
    public_base_url: str = ""  # custom domain of the API; when empty the request context tells it
    events_topic_arn: str = ""
    publisher_dead_letter_url: str = ""  # where the publisher sets aside records that will never publish
    # The other dead-letter queues, for the operators' health page (logic/health.py): depths and redrives.
    send_retry_dead_letter_url: str = ""
    callback_dead_letter_url: str = ""
    sim_queue_dead_letter_url: str = ""
    batch_dead_letter_url: str = ""
    callback_queue_url: str = ""
    callback_secret_id: str = ""
    cursor_secret_id: str = ""
    allow_insecure_callbacks: bool = False  # the local stack only: receivers on http://127.0.0.1
    callback_deadline_seconds: float = 10.0  # one status_callback delivery, everything included
    callback_allowed_ports: frozenset[int] = frozenset({443})
    max_body_bytes: int = 16 * 1024
    concat_window_hours: float = 24.0  # how long the parts of a long MO wait for the rest
    detailed_tracing: bool = False  # the X-Ray SDK's subsegments (observability.py says what it costs)
    # Each SIM's delivery queue (simqueue.py): defaults a SIM's own settings override.
    sim_max_in_flight: int = 1
    sim_max_queued: int = 100
    sim_max_per_hour: int = 0  # 0: no hourly cap
    sim_in_flight_timeout_seconds: int = 600  # a message with no receipt stops holding its slot after this
    sim_buffer_warn_at: int = 8  # MT delivered since the device last spoke that publishes sms.sim.buffer_risk
    # Sends toward Eseye per second, all senders together (logic/pacing.py): singles, retries and batches.
    eseye_max_sends_per_second: float = 20.0

    def sim_defaults(self) -> SimSettings:
        return SimSettings(self.sim_max_in_flight, self.sim_max_queued, self.sim_max_per_hour)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            table_name=env.get("TABLE_NAME", ""),
            secret_id=env.get("SECRET_ID", ""),
            eseye_base_url=env.get("ESEYE_BASE_URL", cls.eseye_base_url).rstrip("/"),
            eseye_connect_timeout=float(env.get("ESEYE_CONNECT_TIMEOUT", cls.eseye_connect_timeout)),
            eseye_read_timeout=float(env.get("ESEYE_READ_TIMEOUT", cls.eseye_read_timeout)),
            secret_max_age_seconds=int(env.get("SECRET_MAX_AGE_SECONDS", cls.secret_max_age_seconds)),
            send_queue_url=env.get("SEND_QUEUE_URL", ""),
            batch_queue_url=env.get("BATCH_QUEUE_URL", ""),
            send_max_attempts=int(env.get("SEND_MAX_ATTEMPTS", cls.send_max_attempts)),
            retry_base_delay_seconds=int(env.get("RETRY_BASE_DELAY_SECONDS", cls.retry_base_delay_seconds)),
            send_lease_seconds=int(env.get("SEND_LEASE_SECONDS", cls.send_lease_seconds)),
            retention_days=int(env.get("RETENTION_DAYS", cls.retention_days)),
            orphan_receipt_retention_days=int(env.get("ORPHAN_RECEIPT_RETENTION_DAYS", cls.orphan_receipt_retention_days)),
            quarantine_retention_days=int(env.get("QUARANTINE_RETENTION_DAYS", cls.quarantine_retention_days)),
            concat_buffer_retention_days=int(env.get("CONCAT_BUFFER_RETENTION_DAYS", cls.concat_buffer_retention_days)),
            public_base_url=env.get("PUBLIC_BASE_URL", "").rstrip("/"),
            events_topic_arn=env.get("EVENTS_TOPIC_ARN", ""),
            publisher_dead_letter_url=env.get("PUBLISHER_DEAD_LETTER_URL", ""),
            send_retry_dead_letter_url=env.get("SEND_RETRY_DEAD_LETTER_URL", ""),
            callback_dead_letter_url=env.get("CALLBACK_DEAD_LETTER_URL", ""),
            sim_queue_dead_letter_url=env.get("SIM_QUEUE_DEAD_LETTER_URL", ""),
            batch_dead_letter_url=env.get("BATCH_DEAD_LETTER_URL", ""),
            callback_queue_url=env.get("CALLBACK_QUEUE_URL", ""),
            callback_secret_id=env.get("CALLBACK_SECRET_ID", ""),
            cursor_secret_id=env.get("CURSOR_SECRET_ID", ""),
            allow_insecure_callbacks=env.get("ALLOW_INSECURE_CALLBACKS", "").lower() == "true",
            callback_deadline_seconds=float(env.get("CALLBACK_DEADLINE_SECONDS", cls.callback_deadline_seconds)),
            callback_allowed_ports=frozenset(int(p) for p in env.get("CALLBACK_ALLOWED_PORTS", "443").split(",") if p.strip()),
            concat_window_hours=float(env.get("CONCAT_WINDOW_HOURS", cls.concat_window_hours)),
            detailed_tracing=env.get("DETAILED_TRACING", "false").lower() == "true",
            sim_max_in_flight=int(env.get("SIM_MAX_IN_FLIGHT", cls.sim_max_in_flight)),
            sim_max_queued=int(env.get("SIM_MAX_QUEUED", cls.sim_max_queued)),
            sim_max_per_hour=int(env.get("SIM_MAX_PER_HOUR", cls.sim_max_per_hour)),
            sim_in_flight_timeout_seconds=int(env.get("SIM_IN_FLIGHT_TIMEOUT_SECONDS", cls.sim_in_flight_timeout_seconds)),
            sim_buffer_warn_at=int(env.get("SIM_BUFFER_WARN_AT", cls.sim_buffer_warn_at)),
            eseye_max_sends_per_second=float(env.get("ESEYE_MAX_SENDS_PER_SECOND", cls.eseye_max_sends_per_second)),
        )


@functools.cache
def settings() -> Settings:
    return Settings.from_env()
