"""The Eseye SMS API client: form-encoded POSTs with only documented parameters (eseye-sms-api.md §2-§4)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from smsgw.eseye_protocol import EseyeReply, parse_reply

SEND_PARAMETERS = frozenset({"destination", "text", "short_message", "message_id", "receipt_url", "source", "mode", "expiry", "data_coding"})


class EseyeUnavailable(Exception):
    """No usable answer: a timeout, a refused connection or an HTTP 5xx.

    `ambiguous` is True when the request may have reached Eseye (read timeout, 5xx), so a retry must
    first ask Eseye whether it already has the message.
    """

    def __init__(self, reason: str, ambiguous: bool, http_status: int | None = None, raw: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.ambiguous = ambiguous
        self.http_status = http_status
        self.raw = raw

    def as_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"kind": "unavailable", "reason": self.reason, "ambiguous": self.ambiguous}
        if self.http_status is not None:
            detail["http_status"] = self.http_status
        if self.raw:
            detail["raw"] = self.raw[:2000]
        return detail


@dataclass
class Credentials:
    username: str
    password: str


class EseyeClient:
    def __init__(
        self,
        base_url: str,
        credentials: Callable[[], Credentials],
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        session: Any = None,
        on_latency: Callable[[str, float], None] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self.timeout = (connect_timeout, read_timeout)
        self._session = session
        self._on_latency = on_latency

    def _get_session(self) -> Any:
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def _post(self, request: str, fields: dict[str, str]) -> EseyeReply:
        import requests

        creds = self._credentials()
        form = {"username": creds.username, "password": creds.password, **fields}
        # Eseye's encoding table is Latin-1 (eseye-sms-api.md §8.3); callers only pass Latin-1 text.
        body = urlencode(form, encoding="latin-1")
        started = time.perf_counter()
        try:
            response = self._get_session().post(
                f"{self.base_url}/{request}/index/post",
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise EseyeUnavailable("connect timeout", ambiguous=False) from exc
        except requests.exceptions.ConnectionError as exc:
            # A connection refused never reached Eseye; one dropped mid-response may have.
            text = str(exc).lower()
            ambiguous = "refused" not in text and "failed to establish a new connection" not in text
            raise EseyeUnavailable("connection failed", ambiguous=ambiguous) from exc
        except requests.exceptions.Timeout as exc:
            raise EseyeUnavailable("read timeout", ambiguous=True) from exc
        except requests.exceptions.RequestException as exc:
            raise EseyeUnavailable(f"request failed: {type(exc).__name__}", ambiguous=True) from exc
        finally:
            if self._on_latency:
                self._on_latency(request, time.perf_counter() - started)
        text = response.content.decode("utf-8", errors="replace")
        if response.status_code >= 500:
            reply = parse_reply(response.status_code, text)
            if reply.kind != "error":  # a 5xx that carries an Eseye error code is still that error
                raise EseyeUnavailable(f"HTTP {response.status_code}", True, response.status_code, text)
            return reply
        return parse_reply(response.status_code, text)

    def send(self, fields: dict[str, str]) -> EseyeReply:
        unknown = set(fields) - SEND_PARAMETERS
        if unknown:  # Eseye answers 519 to any parameter it does not know: never send one
            raise ValueError(f"undocumented mtsmsapi parameters: {sorted(unknown)}")
        return self._post("mtsmsapi", {k: v for k, v in fields.items() if v not in (None, "")})

    def cancel(self, message_id: str) -> EseyeReply:
        return self._post("mtcancelapi", {"message_id": message_id})

    def status(self, message_id: str) -> EseyeReply:
        return self._post("mtstatusapi", {"message_id": message_id})
