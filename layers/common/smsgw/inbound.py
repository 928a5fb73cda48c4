"""An Eseye webhook request as the handler layer hands it to logic: plain data, no AWS, no logic imports.

It lives apart from logic/webhooks.py so that http.py (the handler layer) can build one without
importing logic, and logic never imports the handler layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_WEBHOOK_BYTES = 64 * 1024
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "x-api-key"})


def decode_text(raw: bytes) -> str:
    """Eseye's character set is undocumented: UTF-8 when it is valid, else Latin-1 (which never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass
class WebhookRequest:
    method: str
    kind: str  # receipt | mo
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    source_ip: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def raw(self) -> dict[str, Any]:
        """The request as received, minus the token and credentials, for the quarantine."""
        return {
            "method": self.method,
            "kind": self.kind,
            "query": self.query,
            "headers": {k: v for k, v in self.headers.items() if k.lower() not in SENSITIVE_HEADERS},
            "body": decode_text(self.body[:MAX_WEBHOOK_BYTES]),
            "source_ip": self.source_ip,
        }
