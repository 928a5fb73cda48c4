"""Verifying what the gateway sends you: its signed status callbacks, and SNS HTTPS deliveries of its events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import requests

SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")

# The fields SNS signs, in this order, per message type (AWS: "Verifying the signatures of Amazon SNS messages")
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # HTTP header names are case-insensitive; frameworks hand them over in any case
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def verify_callback(body: bytes, headers: Mapping[str, str], key: str, tolerance: int = 300) -> bool:
    """True if a status callback carries the gateway's signature over "<timestamp>.<body>" and is recent."""
    timestamp, signature = _header(headers, "X-Smsgw-Timestamp"), _header(headers, "X-Smsgw-Signature")
    if not timestamp or not signature:
        return False
    try:
        if abs(time.time() - int(timestamp)) > tolerance:
            return False  # too old (or from the future): a replay
    except ValueError:
        return False
    expected = "v1=" + hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    fields = NOTIFICATION_FIELDS if message.get("Type") == "Notification" else CONFIRMATION_FIELDS
    # an absent optional field (Subject) is left out, name and all
    return "".join(f"{name}\n{message[name]}\n" for name in fields if message.get(name) is not None).encode()


def is_sns_certificate_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(SNS_HOST.match(parts.hostname or "")) and parts.port in (None, 443)


@lru_cache(maxsize=32)
def _fetch_certificate(url: str) -> bytes:
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return response.content


def verify_sns_message(message: Mapping[str, Any], *, fetch_certificate: Callable[[str], bytes] = _fetch_certificate) -> bool:
    """True if an SNS HTTPS delivery (the parsed JSON body) is signed by SNS.

    Refuses a SigningCertURL that is not https on an sns.<region>.amazonaws.com host before fetching anything.
    The certificate (PEM) is fetched with `fetch_certificate` (by default over HTTPS, cached per URL).
    """
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    version = str(message.get("SignatureVersion", ""))
    algorithms: dict[str, Any] = {"1": hashes.SHA1, "2": hashes.SHA256}  # SignatureVersion 1 is SHA1 by AWS's definition
    url, signature = message.get("SigningCertURL"), message.get("Signature")
    if version not in algorithms or not isinstance(url, str) or not isinstance(signature, str) or not is_sns_certificate_url(url):
        return False
    if message.get("Type") not in ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"):
        return False
    try:
        certificate = x509.load_pem_x509_certificate(fetch_certificate(url))
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        key.verify(base64.b64decode(signature, validate=True), sns_string_to_sign(message), padding.PKCS1v15(), algorithms[version]())
    except (InvalidSignature, ValueError, KeyError, requests.RequestException):
        return False
    return True
