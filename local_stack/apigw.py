"""API Gateway REST (v1) proxy events and Lambda contexts, shaped exactly as API Gateway and Lambda send them."""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


def rest_event(
    method: str,
    path: str,
    resource: str,
    *,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, list[str]] | None = None,
    headers: dict[str, list[str]] | None = None,
    body: bytes | None = None,
    stage: str = "v1",
    domain: str = "127.0.0.1:3000",
    source_ip: str = "127.0.0.1",
    user_arn: str | None = "arn:aws:iam::123456789012:user/local-developer",
) -> dict[str, Any]:
    headers = headers or {}
    query = query or {}
    is_text = body is None or _is_text(headers)
    encoded_body = None
    if body is not None and is_text:
        try:
            encoded_body = body.decode("utf-8")
        except UnicodeDecodeError:
            is_text = False  # bytes that are not UTF-8 travel base64-encoded, never altered
    if body is not None and not is_text:
        encoded_body = base64.b64encode(body).decode("ascii")
    now = time.time()
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in headers.items()} or None,
        "multiValueHeaders": headers or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": uuid.uuid4().hex[:6],
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{stage}{path}" if domain.endswith(".amazonaws.com") else path,
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": domain.split(".")[0],
            "requestTimeEpoch": int(now * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": user_arn,
                "userAgent": (headers.get("User-Agent") or [None])[-1],
                "user": None,
                "apiKey": None,
                "apiKeyId": None,
            },
            "domainName": domain,
            "apiId": "local",
        },
        "body": encoded_body,
        "isBase64Encoded": not is_text,
    }


_WEBHOOK_TOKEN = re.compile(r"(/webhooks/)[^/?]+")


def loggable_path(path: str) -> str:
    """A request path as logs may show it: the webhook token, a credential, masked."""
    return _WEBHOOK_TOKEN.sub(r"\1****", path)


def _is_text(headers: dict[str, list[str]]) -> bool:
    content_type = ""
    for key, values in headers.items():
        if key.lower() == "content-type":
            content_type = values[-1].lower()
    return not content_type or any(t in content_type for t in ("json", "text", "xml", "x-www-form-urlencoded"))


@dataclass
class LambdaContext:
    function_name: str = "local-function"
    memory_limit_in_mb: int = 256
    timeout_seconds: int = 25
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-west-1:123456789012:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))
