"""HTTP POSTs to customers' status_callback URLs: bounded in time and size, and never to our own insides.

- One total deadline covers name resolution, connect, TLS, the request, the headers and the body: a
  watchdog shuts the socket when it passes, so a receiver that trickles bytes cannot hold a delivery.
- At most MAX_RESPONSE_BYTES of the answer are read; only its status matters.
- The name is resolved once, every address it resolves to is checked, and the connection goes to the
  checked address (TLS still verifies the certificate against the name). A second lookup, which DNS
  rebinding would answer differently, never happens; the peer address is checked again once connected.
- Only port 443 unless the deployment allows others.

A CallbackPoster is built once per container (on Deps) and keeps its resolver threads and TLS context.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit

from smsgw.validation import public_address

MAX_RESPONSE_BYTES = 64 * 1024


class DestinationRefused(Exception):
    """The URL may never be called (scheme, port or address). Retrying cannot help."""


class DeliveryFailed(Exception):
    """The receiver could not be reached in time or answered badly. A later retry may succeed."""


class CallbackPoster:
    """POSTs to customers' URLs. Its name-resolution threads and TLS context are made on first use."""

    def __init__(self) -> None:
        self._resolver: concurrent.futures.ThreadPoolExecutor | None = None
        self._tls: ssl.SSLContext | None = None

    def post(
        self, url: str, body: bytes, headers: dict[str, str], deadline_seconds: float, allowed_ports: frozenset[int], local: bool = False
    ) -> int:
        """POST `body` to `url`; returns the HTTP status. `local` (the local stack only) admits http:// and loopback.

        Raises DestinationRefused (never retry) or DeliveryFailed (retry later)."""
        return _post(self, url, body, headers, deadline_seconds, allowed_ports, local)

    def resolver(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._resolver is None:
            self._resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")
        return self._resolver

    def tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            try:
                import certifi

                self._tls = ssl.create_default_context(cafile=certifi.where())
            except ImportError:
                self._tls = ssl.create_default_context()
        return self._tls


def _post(
    poster: CallbackPoster, url: str, body: bytes, headers: dict[str, str], deadline_seconds: float, allowed_ports: frozenset[int], local: bool
) -> int:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    if not (secure or (local and parts.scheme == "http")) or not parts.hostname:
        raise DestinationRefused("only https:// URLs")
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError as exc:
        raise DestinationRefused("bad port") from exc
    if port not in allowed_ports and not local:
        raise DestinationRefused(f"port {port} is not allowed")
    host = parts.hostname
    deadline = time.monotonic() + deadline_seconds

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeliveryFailed("deadline passed")
        return left

    address = _resolve(poster, host, port, remaining(), local)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    watchdog = threading.Timer(remaining(), _shut, (sock,))
    watchdog.daemon = True
    watchdog.start()
    try:
        sock.settimeout(remaining())
        sock.connect((address, port))
        if not local and not public_address(sock.getpeername()[0]):  # the address actually connected to
            raise DestinationRefused("connected address is not public")
        stream: Any = sock
        if secure:
            stream = poster.tls_context().wrap_socket(sock, server_hostname=host)
        return _exchange(stream, host, port, secure, parts, body, headers, remaining)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise DeliveryFailed(type(exc).__name__) from exc
    finally:
        watchdog.cancel()
        sock.close()


def _exchange(
    stream: Any, host: str, port: int, secure: bool, parts: SplitResult, body: bytes, headers: dict[str, str], remaining: Callable[[], float]
) -> int:
    import http.client

    connection = http.client.HTTPConnection(host, port, timeout=remaining())
    connection.sock = stream  # already connected to the checked address
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = host if port == (443 if secure else 80) else f"{host}:{port}"
    try:
        connection.request("POST", path, body=body, headers={**headers, "Host": host_header, "Content-Length": str(len(body)), "Connection": "close"})
        stream.settimeout(remaining())
        response = connection.getresponse()
        received = 0
        while received < MAX_RESPONSE_BYTES:
            stream.settimeout(remaining())
            chunk = response.read1(MAX_RESPONSE_BYTES - received) if hasattr(response, "read1") else response.read(4096)
            if not chunk:
                break
            received += len(chunk)
        return response.status
    except http.client.HTTPException as exc:
        raise DeliveryFailed(type(exc).__name__) from exc


def _resolve(poster: CallbackPoster, host: str, port: int, timeout: float, local: bool) -> str:
    """One lookup, bounded by the deadline; every address must be allowed. Returns the one to connect to."""
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    if literal:
        infos: list[Any] = [(None, None, None, None, (host, port))]
    else:
        future = poster.resolver().submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        try:
            infos = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError as exc:
            raise DeliveryFailed("name resolution timed out") from exc
        except OSError as exc:
            raise DeliveryFailed("name does not resolve") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise DeliveryFailed("name does not resolve")
    if not local and not all(public_address(a) for a in addresses):
        raise DestinationRefused("the name resolves to a non-public address")
    return addresses[0]


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
