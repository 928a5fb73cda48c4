"""The local API gateway: refuses broken Content-Length values and never prints a webhook token."""

from __future__ import annotations

import socket
import threading

import pytest

from local_stack.apigw import loggable_path
from local_stack.gateway import Gateway
from local_stack.template import api_routes, load_template

TOKEN = "tok-primary-0123456789"


class AnsweringPool:
    """Stands in for a function's worker pool: answers 200 and remembers the event."""

    def __init__(self):
        self.events = []

    def invoke(self, event):
        self.events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "OK"}


@pytest.fixture
def gateway():
    routes = api_routes(load_template())
    pools = {route.function: AnsweringPool() for route in routes}
    lines: list[str] = []
    gw = Gateway(routes, pools, "127.0.0.1", 0, "v1", lines.append)
    threading.Thread(target=gw.server.serve_forever, daemon=True).start()
    yield gw, lines
    gw.server.shutdown()
    gw.server.server_close()


def raw_request(gw, head: str, body: bytes = b"", timeout: float = 5.0) -> bytes:
    with socket.create_connection((gw.host, gw.port), timeout=timeout) as conn:
        conn.sendall(head.encode() + b"\r\n" + body)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and b"Content-Length: " in received:
                    header, _, rest = received.partition(b"\r\n\r\n")
                    length = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    if len(rest) >= length:
                        break
        except TimeoutError:
            pass
        return received


@pytest.mark.parametrize("length", ["-1", "-99999", "99999999999999999999999999", "12abc", "0x10", " "])
def test_a_negative_or_absurd_content_length_is_400_at_once(gateway, length):
    gw, _ = gateway
    # When a request declares a Content-Length that no body can have
    answer = raw_request(gw, f"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n", b"{}")
    # Then the gateway answers 400 straight away (a negative length would otherwise read until the client hangs up)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_a_body_over_api_gateways_limit_is_413(gateway):
    gw, _ = gateway
    answer = raw_request(gw, "POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: 10485761\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_the_console_never_shows_the_webhook_token(gateway):
    gw, lines = gateway
    # Given webhook requests, routed and refused
    raw_request(gw, f"GET /webhooks/{TOKEN}/receipt?messageid=abc HTTP/1.1\r\nHost: x\r\n")
    raw_request(gw, f"POST /webhooks/{TOKEN}/nothing-here HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n")
    raw_request(gw, f"POST /webhooks/{TOKEN}/mo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n")
    # Then the console shows the requests, with the token masked
    console = "\n".join(lines)
    assert "/webhooks/****/receipt" in console and TOKEN not in console
    assert loggable_path(f"/webhooks/{TOKEN}/mo") == "/webhooks/****/mo"
