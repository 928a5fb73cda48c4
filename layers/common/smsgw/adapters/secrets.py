"""Eseye credentials and webhook tokens from Secrets Manager, through Powertools Parameters with a cache age."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from smsgw.adapters import aws


@dataclass(frozen=True)
class GatewaySecret:
    username: str
    password: str
    webhook_tokens: tuple[str, ...]

    def __repr__(self) -> str:  # never print the password, even by accident
        return f"GatewaySecret(username={self.username!r}, tokens={len(self.webhook_tokens)})"


class SecretSource:
    """Reads the gateway secret, cached for `max_age` seconds so rotation needs no deploy."""

    def __init__(self, secret_id: str, max_age: int = 300, client: Any = None, version_stage: str | None = None):
        self.secret_id = secret_id
        self.max_age = max_age
        self._client = client
        self._provider: Any = None
        # Powertools caches by name only, so another stage of the same secret needs a provider of its own.
        self._options = {"VersionStage": version_stage} if version_stage else {}

    def _get_provider(self) -> Any:
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider

            self._provider = SecretsProvider(boto3_client=self._client or aws.client("secretsmanager"))
        return self._provider

    def get_text(self, force: bool = False) -> str:
        """The secret's value as a string (a signing key); `force` reads it again whatever the cache holds."""
        from smsgw.errors import ServiceUnavailable

        try:
            return str(self._get_provider().get(self.secret_id, max_age=self.max_age, force_fetch=force, **self._options))
        except Exception as exc:
            raise ServiceUnavailable("secret could not be read") from exc

    def get(self) -> GatewaySecret:
        from smsgw.errors import ServiceUnavailable

        try:
            value = self._get_provider().get(self.secret_id, max_age=self.max_age, transform="json")
        except Exception as exc:  # Powertools wraps SDK errors in its own GetParameterError
            raise ServiceUnavailable("gateway secret could not be read") from exc
        tokens = value.get("webhook_tokens") or []
        if isinstance(tokens, str):
            tokens = [t for t in tokens.split(",") if t]
        return GatewaySecret(
            username=str(value.get("username", "")),
            password=str(value.get("password", "")),
            webhook_tokens=tuple(str(t) for t in tokens if t),
        )


class CursorKeys:
    """The page-cursor signing key. The current version signs; the current and previous versions verify,
    so cursors issued just before a rotation keep working. The previous version (or its absence) is
    cached like the current one, so a stream of forged cursors costs no extra Secrets Manager reads.
    A container that still caches the key from before a rotation may meet a cursor signed with the new
    one: the current key is then read again, at most once every REFRESH_SECONDS."""

    REFRESH_SECONDS = 30.0

    def __init__(self, secret_id: str, max_age: int = 300, client: Any = None, clock: Any = None):
        import time

        self.current = SecretSource(secret_id, max_age, client)
        self.previous = SecretSource(secret_id, max_age, client, version_stage="AWSPREVIOUS")
        self.max_age = max_age
        self._clock = clock or time.monotonic
        self._previous: tuple[float, str | None] | None = None
        self._refreshed = float("-inf")

    def signing_key(self) -> str:
        """Raises ServiceUnavailable when the secret cannot be read."""
        return self.current.get_text()

    def verifying_keys(self) -> Iterator[str]:
        """The current key, then (read lazily, only if asked for) the previous one."""
        yield self.current.get_text()
        now = self._clock()
        if self._previous is None or now - self._previous[0] >= self.max_age:
            from smsgw.errors import ServiceUnavailable

            try:
                value: str | None = self.previous.get_text()
            except ServiceUnavailable:  # no previous version yet (never rotated)
                value = None
            self._previous = (now, value)
        if self._previous[1]:
            yield self._previous[1]
        if now - self._refreshed >= self.REFRESH_SECONDS:
            self._refreshed = now
            yield self.current.get_text(force=True)
