"""Domain errors. Each carries the HTTP status and error code the API maps it to, in one place (http.py)."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(GatewayError):
    status, code = 400, "bad_request"


class Forbidden(GatewayError):
    status, code = 403, "forbidden"


class NotFound(GatewayError):
    status, code = 404, "not_found"


class Conflict(GatewayError):
    status, code = 409, "conflict"


class PayloadTooLarge(GatewayError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status, code = 415, "unsupported_media_type"


class SimQueueFull(GatewayError):
    """The SIM already has its maximum of messages waiting (simqueue.py); retry once some have gone."""

    status, code = 429, "sim_queue_full"


class ValidationFailed(GatewayError):
    status, code = 422, "validation_error"


class NotRedrivable(ValidationFailed):
    """A dead-letter queue whose messages POST /health/redrive does not move back (its advice says what to do)."""

    code = "not_redrivable"


class EseyeRejected(GatewayError):
    """Eseye refused the message with a documented error code; the message is `rejected`."""

    status, code = 422, "eseye_rejected"


class UpstreamError(GatewayError):
    """Eseye answered, but not with something that lets us complete the request."""

    status, code = 502, "eseye_error"


class ServiceUnavailable(GatewayError):
    """A dependency (Eseye, DynamoDB, SQS) could not be reached; the client may retry."""

    status, code = 503, "service_unavailable"


class StoreUnavailable(ServiceUnavailable):
    """DynamoDB could not be reached or throttled us beyond the SDK's retries."""


class InvalidCursor(BadRequest):
    """A cursor this API did not issue for this query (forged, edited, or from another query)."""

    code = "invalid_cursor"

    def __init__(self, message: str = "the cursor is not one this API issued for this query; start again without it", details: Any = None):
        super().__init__(message, details)
