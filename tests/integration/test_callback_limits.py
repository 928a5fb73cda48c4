"""Status callbacks: bounded in time and size, never to our own insides, and one bad receiver harms no other."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from smsgw.logic import callbacks

PUBLIC = "93.184.216.34"  # a public address; nothing answers there from this sandbox, which is the point


class Server:
    """A loopback receiver whose behaviour a test chooses: answer, trickle, stream for ever, or hang."""

    def __init__(self, mode: str = "ok", seconds: float = 4.0):
        self.mode, self.seconds, self.hits = mode, seconds, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                server.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.mode == "hang":
                    time.sleep(server.seconds)
                    return
                if server.mode == "trickle":  # headers a byte at a time, each well inside any read timeout
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    end = time.monotonic() + server.seconds
                    while time.monotonic() < end:
                        self.wfile.write(b"X")
                        self.wfile.flush()
                        time.sleep(0.2)
                    return
                self.send_response(200)
                self.end_headers()
                if server.mode == "flood":  # an endless body, until the gateway hangs up (as it must)
                    end = time.monotonic() + server.seconds
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        while time.monotonic() < end:
                            self.wfile.write(b"x" * 65536)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}/hooks/sms"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers():
    made = []

    def make(mode="ok", seconds=4.0):
        made.append(Server(mode, seconds))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.fixture
def deliverer(stack):
    """deliver_record with the CallbacksFunction's own settings, a short deadline, and a clean circuit breaker
    (a fresh Deps: a new container)."""
    deps = stack.deps("CallbacksFunction")

    def deliver(url: str, deadline: float = 1.0, local: bool = True, ports=frozenset({443}), receive_count: int = 1):
        deps.settings = dataclasses.replace(
            deps.settings, callback_deadline_seconds=deadline, allow_insecure_callbacks=local, callback_allowed_ports=ports
        )
        sqs = stack.clients["sqs"]
        queue = stack.physical("CallbackQueue")
        data = {"id": "m1", "status": "sent", "status_callback": url}
        event = {"type": "sms.mt.status", "id": "m1:sent", "time": "2026-11-25T12:00:00.000Z", "data": data}
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))
        [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"]
        started = time.monotonic()
        try:
            return callbacks.deliver_record(message["Body"], message["ReceiptHandle"], receive_count, deps), time.monotonic() - started
        except callbacks.CallbackFailed:
            return "failed", time.monotonic() - started

    yield deliver


@pytest.fixture
def resolver(monkeypatch):
    """Make names resolve to chosen addresses, in turn (DNS rebinding answers differently the second time)."""
    answers: dict[str, list[str]] = {}
    asked: list[str] = []
    original = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return original(host, port, *args, **kwargs)
        asked.append(host)
        address = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, asked


def test_a_receiver_that_trickles_its_headers_is_cut_off_at_the_deadline(servers, deliverer):
    # Given a receiver that sends its headers a byte every 0.2 s for 60 s
    slow = servers("trickle", seconds=60)
    # When an event is delivered with a 1 s deadline
    outcome, elapsed = deliverer(slow.url(), deadline=1.0)
    # Then the delivery gives up at the deadline, to be retried later (the bound leaves room for a busy machine)
    assert outcome == "failed"
    assert elapsed < 10.0


def test_an_endless_answer_is_read_only_up_to_64_kb(servers, deliverer):
    # Given a receiver that answers 200 and then streams a body for ever
    flood = servers("flood", seconds=60)
    # When an event is delivered / Then it counts as delivered as soon as the bounded read is done, long
    # before the deadline would have ended it
    outcome, elapsed = deliverer(flood.url(), deadline=30.0)
    assert outcome == 200
    assert elapsed < 10.0


INSIDE = ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1"]  # noqa: S104


@pytest.mark.parametrize("address", [*INSIDE, "::1", "fd00:ec2::254", "fe80::1"])
def test_destinations_that_resolve_inside_are_refused_and_not_retried(servers, deliverer, resolver, address):
    # Given a callback host that resolves to a non-public address, where something listens
    answers, _ = resolver
    answers["hooks.customer.test"] = [address]
    inside = servers("ok")
    # When its event is delivered by a deployed function (https, no local allowance)
    outcome, _ = deliverer(f"https://hooks.customer.test:{inside.port}/x", local=False, ports=frozenset({443, inside.port}))
    # Then it is refused for good (not retried), and nothing was contacted
    assert outcome == 0
    assert inside.hits == 0


def test_a_literal_private_address_is_refused(servers, deliverer):
    inside = servers("ok")
    outcome, _ = deliverer(f"https://127.0.0.1:{inside.port}/x", local=False, ports=frozenset({443, inside.port}))
    assert (outcome, inside.hits) == (0, 0)


def test_ports_other_than_443_are_refused_unless_allowed(deliverer, resolver):
    answers, asked = resolver
    answers["hooks.customer.test"] = [PUBLIC]
    # When the URL names port 8443 and only 443 is allowed / Then it is refused without even a lookup
    assert deliverer("https://hooks.customer.test:8443/x", local=False)[0] == 0
    assert asked == []
    # When the deployment allows 8443 / Then the delivery is attempted (and here times out: nothing answers)
    outcome, elapsed = deliverer("https://hooks.customer.test:8443/x", local=False, ports=frozenset({443, 8443}), deadline=0.5)
    assert outcome == "failed" and asked == ["hooks.customer.test"] and elapsed < 10.0  # the deadline, not the OS's 2-minute connect timeout


def test_dns_rebinding_does_not_reach_inside(servers, deliverer, resolver):
    # Given a name that resolves to a public address once, and to loopback (where a service listens) after
    inside = servers("ok")
    answers, asked = resolver
    answers["rebind.customer.test"] = [PUBLIC, "127.0.0.1"]
    # When its event is delivered
    outcome, _ = deliverer(f"https://rebind.customer.test:{inside.port}/x", local=False, ports=frozenset({443, inside.port}), deadline=0.5)
    # Then the name was looked up once and the connection went to the address that was checked
    assert asked == ["rebind.customer.test"]
    assert inside.hits == 0 and outcome == "failed"


def test_a_receiver_that_keeps_failing_does_not_hold_up_healthy_ones(servers, deliverer):
    # Given a receiver that never answers, with six events waiting, and a healthy receiver after them
    dead, healthy = servers("hang", seconds=60), servers("ok")
    started = time.monotonic()
    outcomes = [deliverer(dead.url(), deadline=2.0)[0] for _ in range(6)]
    # When the healthy receiver's event comes next / Then it is delivered at once
    assert deliverer(healthy.url(), deadline=2.0)[0] == 200
    # and the dead receiver cost three deadlines (6 s), not six (12 s): after three failures its events wait their turn untried
    assert outcomes == ["failed"] * 6
    assert dead.hits == 3
    assert time.monotonic() - started < 10.0


def test_a_slow_receiver_does_not_hold_up_the_others_in_its_batch(stack, monkeypatch):
    from tests.conftest import load_event

    monkeypatch.setenv("ALLOW_INSECURE_CALLBACKS", "true")  # loopback receivers
    healthy_hits = threading.Semaphore(0)
    seen_while_waiting = []

    class Slow(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            # Hold the answer until the healthy receiver has had its three events (or 5 s pass)
            seen_while_waiting.append(all(healthy_hits.acquire(timeout=5) for _ in range(3)))
            self.send_response(200)
            self.end_headers()

    slow = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    slow.daemon_threads = True
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    healthy = Server("ok")
    original_do_post = healthy.server.RequestHandlerClass.do_POST

    def counting(self):
        original_do_post(self)
        healthy_hits.release()

    monkeypatch.setattr(healthy.server.RequestHandlerClass, "do_POST", counting)
    template = load_event("dispatcher_retry")["Records"][0]

    def record(n, url):
        event = {
            "type": "sms.mt.status",
            "id": f"m{n}:sent",
            "time": "2026-11-25T12:00:00.000Z",
            "data": {"id": f"m{n}", "status": "sent", "status_callback": url},
        }
        return {**template, "messageId": f"r{n}", "body": json.dumps(event), "eventSourceARN": stack.physical("CallbackQueue", "Arn")}

    # Given a batch whose first event goes to a receiver that answers slowly, and three to a healthy one
    batch = {"Records": [record(0, f"http://127.0.0.1:{slow.server_address[1]}/hook"), *(record(n, healthy.url()) for n in (1, 2, 3))]}
    try:
        # When the batch is delivered
        assert stack.invoke("CallbacksFunction", batch) == {"batchItemFailures": []}
    finally:
        slow.shutdown()
        healthy.close()
    # Then the healthy receiver had all its events while the slow one was still answering
    assert seen_while_waiting == [True]
