"""A REST API Gateway for the local stack: routes from template.yaml, genuine proxy events, API Gateway's answers."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local_stack.apigw import loggable_path, rest_event
from local_stack.template import Route
from local_stack.workers import FunctionPool, InvocationError, InvocationTimeout

MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway's own limit
# template.yaml's BAD_REQUEST_BODY gateway response, as API Gateway sends it.
BAD_BODY = b'{"error": {"code": "bad_request", "message": "the body is not a JSON object of the documented shape (openapi/openapi.yaml)"}}'


def body_fits_model(body: bytes | None, model: dict, content_type: str) -> bool:
    """API Gateway's request validation: JSON bodies (the model's content type) must match the model."""
    import jsonschema

    if content_type and "application/json" not in content_type.lower():
        return True  # no model for this content type: API Gateway passes it through
    try:
        document = json.loads(body or b"")
    except ValueError:
        return False
    return jsonschema.Draft4Validator(model).is_valid(document)


class Gateway:
    def __init__(self, routes: list[Route], pools: dict[str, FunctionPool], host: str, port: int, stage: str, log: Callable[[str], None]):
        self.routes, self.pools, self.stage, self.log = routes, pools, stage, log
        gateway = self

        class Handler(_GatewayHandler):
            owner = gateway

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | tuple[None, None]:
        for route in self.routes:
            found = route.pattern.match(path)
            if found and route.method in (method, "ANY"):
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None, None


class _GatewayHandler(BaseHTTPRequestHandler):
    owner: Gateway
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; without TCP_NODELAY, Nagle meets the client's delayed ACK
    # and every answer waits ~40 ms.
    disable_nagle_algorithm = True
    timeout = 30  # a client that declares more body than it sends cannot hold a thread for ever

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        started = time.perf_counter()
        parts = urlsplit(self.path)
        shown = loggable_path(parts.path)  # the console never shows a webhook token
        declared = (self.headers.get("Content-Length") or "0").strip()
        # Only digits, and no more than a length could be: "-1" would read until the client hangs up.
        if not declared.isdigit() or len(declared) > 15:
            self.close_connection = True
            self._send(400, b'{"message":"Invalid Content-Length"}', {"Content-Type": "application/json"})
            return self.owner.log(f"api   {self.command} {shown} -> 400 (Content-Length {declared[:20]!r})")
        length = int(declared)
        if length > MAX_PAYLOAD:
            self.close_connection = True
            return self._send(413, b'{"message":"Request Too Long"}', {"Content-Type": "application/json"})
        try:
            body = self.rfile.read(length) if length else None
        except TimeoutError:
            body = None
        if length and (body is None or len(body) < length):
            self.close_connection = True
            return self._send(400, b'{"message":"Request body shorter than its Content-Length"}', {"Content-Type": "application/json"})
        route, parameters = self.owner.match(self.command, parts.path)
        if route is None:
            # What API Gateway answers for a route it does not have.
            status, payload = 403, b'{"message":"Missing Authentication Token"}'
            self._send(status, payload, {"Content-Type": "application/json", "x-amzn-ErrorType": "MissingAuthenticationTokenException"})
            return self.owner.log(f"api   {self.command} {shown} -> {status} (no such route)")
        if route.model is not None and not body_fits_model(body, route.model, self.headers.get("Content-Type", "")):
            self._send(400, BAD_BODY, {"Content-Type": "application/json", "x-amzn-ErrorType": "BadRequestException"})
            return self.owner.log(f"api   {self.command} {shown} -> 400 (request body fails the model)")
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name, []).append(value)
        headers.setdefault("X-Forwarded-Proto", ["http"])
        headers.setdefault("X-Forwarded-For", [self.client_address[0]])
        event = rest_event(
            self.command,
            parts.path,
            route.path,
            path_parameters=parameters,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
            stage=self.owner.stage,
            domain=f"{self.owner.host}:{self.owner.port}",
            source_ip=self.client_address[0],
        )
        try:
            result = self.owner.pools[route.function].invoke(event)
            status = int(result.get("statusCode", 200))
            response_headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
            for name, values in (result.get("multiValueHeaders") or {}).items():
                response_headers[name] = ", ".join(str(v) for v in values)
            raw = result.get("body") or ""
            payload = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
        except InvocationTimeout:
            status, payload, response_headers = 504, b'{"message": "Endpoint request timed out"}', {"Content-Type": "application/json"}
        except (InvocationError, Exception) as exc:
            self.owner.log(f"api   {route.function} failed: {exc}")
            status, payload, response_headers = 502, b'{"message": "Internal server error"}', {"Content-Type": "application/json"}
        self._send(status, payload, response_headers)
        elapsed = (time.perf_counter() - started) * 1000
        summary = ""
        if response_headers.get("Content-Type", "").startswith("application/json") and payload:
            try:
                document = json.loads(payload)
                if isinstance(document, dict):
                    summary = (
                        document.get("status") or document.get("error", {}).get("code", "") if isinstance(document.get("error", {}), dict) else ""
                    )
            except ValueError:
                summary = ""
        self.owner.log(f"api   {self.command} {shown} -> {status} {summary} ({elapsed:.0f} ms)".replace("  (", " ("))

    # Every method, even one no RFC names, reaches the router: an undeclared one gets API Gateway's 403, not a 501.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)
