"""Size limits of the services the gateway writes to, and the one way we cut text to fit them."""

from __future__ import annotations

from typing import Any

SNS_MAX_BYTES = 256 * 1024  # one SNS message with its attributes, and one PublishBatch request in all
DYNAMODB_MAX_ITEM_BYTES = 400 * 1000
TRUNCATED = "…[truncated]"


def bounded(value: Any, limit: int) -> Any:
    """`value` with every string longer than `limit` UTF-8 bytes cut to it, and marked as cut."""
    if isinstance(value, str):
        if len(value) * 4 <= limit or len(value.encode()) <= limit:
            return value
        keep = max(limit - len(TRUNCATED.encode()), 0)
        return value.encode()[:keep].decode(errors="ignore") + TRUNCATED
    if isinstance(value, dict):
        return {k: bounded(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [bounded(v, limit) for v in value]
    return value


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON: close to what DynamoDB counts for it, and never less."""
    import json

    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())
