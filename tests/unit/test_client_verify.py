"""smsgw_client's verifiers: a receiver accepts what the gateway (or SNS) signed, and nothing else."""

from __future__ import annotations

import base64
import datetime
import json
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from smsgw.logic import callbacks
from smsgw_client import verify_callback, verify_sns_message
from smsgw_client.verify import sns_string_to_sign

KEY = "callback-secret"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"


def signed_callback(body: bytes, timestamp: int) -> dict[str, str]:
    # signed exactly as the gateway signs its deliveries
    return {"X-Smsgw-Timestamp": str(timestamp), "X-Smsgw-Signature": callbacks.signature(KEY, str(timestamp), body)}


def test_a_callback_signed_by_the_gateway_verifies():
    body = json.dumps({"type": "sms.mt.status", "data": {"id": "m1", "status": "delivered"}}).encode()
    assert verify_callback(body, signed_callback(body, int(time.time())), KEY)


def test_header_names_are_case_insensitive():
    body = b"{}"
    headers = {k.lower(): v for k, v in signed_callback(body, int(time.time())).items()}
    assert verify_callback(body, headers, KEY)


def test_a_tampered_body_an_old_timestamp_a_wrong_key_or_missing_headers_are_refused():
    body, now = b'{"status":"delivered"}', int(time.time())
    assert not verify_callback(b'{"status":"failed"}', signed_callback(body, now), KEY)
    assert not verify_callback(body, signed_callback(body, now - 301), KEY)
    assert verify_callback(body, signed_callback(body, now - 250), KEY)
    assert not verify_callback(body, signed_callback(body, now), "another key")
    assert not verify_callback(body, {}, KEY)
    assert not verify_callback(body, {**signed_callback(body, now), "X-Smsgw-Timestamp": "soon"}, KEY)


def make_certificate() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


KEY_PAIR, CERTIFICATE = make_certificate()


def sns_sign(message: dict, version: str = "1") -> dict:
    """Signs as SNS documents it: the listed fields as "Name\\nValue\\n", RSA PKCS#1 v1.5 with SHA1 (1) or SHA256 (2)."""
    fields = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    if message["Type"] != "Notification":
        fields = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{name}\n{message[name]}\n" for name in fields if name in message).encode()
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS SignatureVersion 1 is SHA1
    signature = KEY_PAIR.sign(text, padding.PKCS1v15(), algorithm)
    return {**message, "SignatureVersion": version, "Signature": base64.b64encode(signature).decode(), "SigningCertURL": CERT_URL}


def notification(**extra) -> dict:
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:smsgw-events",
        "Message": json.dumps({"type": "sms.mt.status"}),
        "Timestamp": "2026-11-26T04:00:00.000Z",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        **extra,
    }


class Certificates:
    def __init__(self):
        self.fetched: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        return CERTIFICATE


def test_notifications_signed_with_either_signature_version_verify_with_or_without_subject():
    fetch = Certificates()
    for version in ("1", "2"):
        assert verify_sns_message(sns_sign(notification(), version), fetch_certificate=fetch)
        assert verify_sns_message(sns_sign(notification(Subject="status"), version), fetch_certificate=fetch)
    assert fetch.fetched == [CERT_URL] * 4


def test_subscription_and_unsubscribe_confirmations_verify_over_their_own_fields():
    for kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        message = notification(Type=kind, Token="2336412f37f", SubscribeURL="https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription")
        signed = sns_sign(message, "2")
        assert verify_sns_message(signed, fetch_certificate=Certificates())
        assert b"Token\n2336412f37f\n" in sns_string_to_sign(signed)
        assert not verify_sns_message({**signed, "Token": "another"}, fetch_certificate=Certificates())


def test_a_tampered_message_is_refused():
    signed = sns_sign(notification())
    assert not verify_sns_message({**signed, "Message": '{"type": "forged"}'}, fetch_certificate=Certificates())
    assert not verify_sns_message({**signed, "SignatureVersion": "2"}, fetch_certificate=Certificates())
    assert not verify_sns_message({**signed, "Signature": "not base64!"}, fetch_certificate=Certificates())


def test_a_certificate_from_anywhere_but_sns_over_https_is_refused_without_fetching_it():
    fetch = Certificates()
    for url in (
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://s3.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
    ):
        assert not verify_sns_message({**sns_sign(notification()), "SigningCertURL": url}, fetch_certificate=fetch), url
    assert fetch.fetched == []
    china = "https://sns.cn-north-1.amazonaws.com.cn/cert.pem"
    assert verify_sns_message({**sns_sign(notification()), "SigningCertURL": china}, fetch_certificate=fetch)
