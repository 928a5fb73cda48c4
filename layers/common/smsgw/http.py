"""The API resolver, the error model, and the one exception-to-HTTP mapping shared by the API functions.

Every error leaves as {"error": {"code", "message", "details"}} with the right status. Nothing a client
sends produces a 500 or a stack trace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from smsgw.config import settings
from smsgw.errors import BadRequest, EseyeRejected, GatewayError, PayloadTooLarge, UnsupportedMediaType
from smsgw.inbound import WebhookRequest
from smsgw.observability import count, logger, metrics, tracer
from smsgw.outcomes import Accepted, DryRun, Rejected, SendOutcome

JSON = "application/json"


def error_response(status: int, code: str, message: str, details: Any = None) -> Response[str]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return Response(status_code=status, content_type=JSON, body=json.dumps(body, default=str))


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status_code=status, content_type=JSON, body=json.dumps(body, default=str), headers=headers)


def gateway_error_response(exc: GatewayError) -> Response[str]:
    return error_response(exc.status, exc.code, exc.message, exc.details)


def eseye_rejection(outcome: Rejected) -> EseyeRejected:
    """Eseye's refusal as the API reports it: its code and text, and the message as stored (rejected)."""
    description = f"error {outcome.eseye_code} {outcome.eseye_description or ''}".strip()
    details = {
        "eseye_code": outcome.eseye_code,
        "eseye_description": outcome.eseye_description,
        "id": outcome.view["id"],
        "message": outcome.view,
    }
    return EseyeRejected(f"Eseye rejected the message: {description}", details)


def send_response(outcome: SendOutcome) -> Response[str]:
    """POST /messages: 202 with the message (sent or queued for a retry), 200 with a dry run's analysis,
    or 422 eseye_rejected with the rejected message in its details."""
    if isinstance(outcome, Accepted):
        return json_response(202, outcome.view)
    if isinstance(outcome, DryRun):
        return json_response(200, {"dry_run": True, **outcome.analysis})
    return gateway_error_response(eseye_rejection(outcome))


def resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()

    @app.exception_handler(GatewayError)  # type: ignore[untyped-decorator]  # Powertools' decorators are untyped
    def handle_gateway_error(exc: GatewayError) -> Response[str]:
        if exc.status >= 500:
            logger.warning("request failed", extra={"error_code": exc.code, "reason": exc.message})
        return gateway_error_response(exc)

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def handle_unexpected(exc: Exception) -> Response[str]:
        # A bug of ours, not the client's: log it with the trace, answer without it.
        logger.exception("unhandled error")
        count("UnhandledError")
        request_id = getattr(app.lambda_context, "aws_request_id", None)
        return error_response(500, "internal_error", "the gateway failed to handle the request", {"request_id": request_id})

    @app.not_found
    def handle_not_found(exc: Exception) -> Response[str]:
        return error_response(404, "route_not_found", f"no route {app.current_event.http_method} {app.current_event.path}")

    return app


def raw_body(app: APIGatewayRestResolver) -> bytes:
    """The request body as the bytes the client sent. Raises BadRequest if API Gateway's base64 is broken."""
    event = app.current_event
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode("utf-8", errors="surrogatepass")
    import base64

    try:
        return base64.b64decode(body)
    except ValueError as exc:
        raise BadRequest("the body is not valid base64") from exc


def json_body(app: APIGatewayRestResolver, limit: int | None = None) -> Any:
    """The request body as JSON, within `limit` bytes (the API's default when None: bulk routes such as
    POST /batches allow more). Raises PayloadTooLarge, UnsupportedMediaType or BadRequest."""
    event = app.current_event
    raw_bytes = raw_body(app)
    limit = limit or settings().max_body_bytes
    if len(raw_bytes) > limit:
        raise PayloadTooLarge(f"the body is {len(raw_bytes)} bytes; the limit is {limit}", {"limit": limit})
    content_type = (event.headers or {}).get("content-type") or (event.headers or {}).get("Content-Type") or ""
    if content_type and "json" not in content_type.lower():
        raise UnsupportedMediaType(f"send the body as application/json, not {content_type.split(';')[0]}")
    if not raw_bytes.strip():
        raise BadRequest("the body is empty; send a JSON object")
    try:
        return json.loads(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest("the body is not valid UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


def query_flag(app: APIGatewayRestResolver, name: str) -> bool:
    value = (app.current_event.query_string_parameters or {}).get(name, "false").lower()
    if value not in ("true", "false", "1", "0", ""):
        raise BadRequest(f"query parameter {name} must be true or false")
    return value in ("true", "1")


def header(app: APIGatewayRestResolver, name: str) -> str | None:
    headers = app.current_event.headers or {}
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def api_base_url(app: APIGatewayRestResolver) -> str:
    """The API's public base URL: the custom domain when configured, else what the request came in on.
    The default execute-api host carries the stage in the path; a custom domain does not."""
    configured = settings().public_base_url
    if configured:
        return configured
    context = app.current_event.request_context
    domain = context.domain_name or header(app, "Host") or "localhost"
    scheme = header(app, "X-Forwarded-Proto") or "https"
    if domain.endswith(".amazonaws.com") and context.stage:
        return f"{scheme}://{domain}/{context.stage}"
    return f"{scheme}://{domain}"


def caller_identity(app: APIGatewayRestResolver) -> str:
    """Who is calling, as Idempotency-Keys are scoped: two callers' keys never collide."""
    identity = app.current_event.request_context.identity
    return idempotency_scope(identity.user_arn, identity.api_key_id, identity.caller)


def idempotency_scope(user_arn: str | None, api_key_id: str | None, caller: str | None) -> str:
    """The IAM principal (account and user or role) or the API key. An assumed role's session name is not
    part of it: every worker of a service runs under one role with sessions of its own, and a retry from
    another worker must find the first request."""
    if user_arn:
        match = re.fullmatch(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+", user_arn)
        return f"arn:{match.group(1)}:iam::{match.group(2)}:role/{match.group(3)}" if match else user_arn
    if api_key_id:
        return api_key_id
    if caller:
        return caller.split(":", 1)[0]  # <role unique id>:<session name> for an assumed role
    return "anonymous"


def text_response(status: int, text: str) -> Response[str]:
    return Response(status_code=status, content_type="text/plain", body=text)


def webhook_request(app: APIGatewayRestResolver, kind: str) -> WebhookRequest:
    """The raw webhook request, whatever its method and content type."""
    event = app.current_event
    return WebhookRequest(
        method=event.http_method,
        kind=kind,
        query=dict(event.query_string_parameters or {}),
        headers=dict(event.headers or {}),
        body=raw_body(app),
        source_ip=event.request_context.identity.source_ip or "",
    )


def handler(app: APIGatewayRestResolver) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point for an API function: logging context, tracing, metrics, then the routes."""

    @logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)  # type: ignore[untyped-decorator]  # Powertools' Tracer is untyped
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        resolved: dict[str, Any] = app.resolve(event, context)
        return resolved

    entry: Callable[[dict[str, Any], Any], dict[str, Any]] = lambda_handler
    return entry
