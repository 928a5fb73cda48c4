"""An Eseye SMS API simulator that follows ../shared/eseye-sms-api.md to the letter.

- POST /mtsmsapi/index/post    -> `OK!` or an error (text/html)
- POST /mtcancelapi/index/post -> XML statusResponse
- POST /mtstatusapi/index/post -> XML statusResponse
- any other method on those paths -> ERROR 503 (PUT/GET) or 502 (INDEX)
Errors come back in the forms §5 documents: `Error<N>: text`, or inside the XML statusResponse with
`<status>error</status>` and a description with or without the number. The form is chosen per request
by a seeded random generator, or fixed (`error_form`: text | xml | xml_bare | random).
Form bodies are decoded as Latin-1 (§8.3). After `receipt_delay` seconds a delivery receipt is sent as a
GET with the fields appended to the message's receipt_url (§6.2). Destinations ending in 0000 fail;
destinations ending in 0001 never get a receipt; destinations ending in 0570 are refused with ERROR 570
(no credit), so that a rejection by Eseye can be seen.

The protocol's rules are pure functions in `eseye_rules`; fault injection is `eseye_faults`; this
module holds the state (messages, timers) and the HTTP server.

Control endpoints (not part of Eseye), for people and tests:
- POST /_sim/mo {"source", "text"[, "binary", "destination"]}: a device sends an MO message to the gateway.
- POST /_sim/faults {"mode", "count", "delay"}: the next `count` API calls misbehave (see eseye_faults).
- POST /_sim/config {"error_form", "seed"}: how errors are answered from now on.
- GET /_sim/messages[/<message_id>], GET /_sim/receipts: what the simulator holds and has sent.
- GET /_sim/sends[?since=<epoch seconds>]: when each send request arrived, and the rate that makes
  (`count`, `per_second` over the span, `max_in_any_second`), to hold the gateway to EseyeMaxSendsPerSecond.
- POST /_sim/reset.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from urllib.request import Request, urlopen

from local_stack import eseye_rules as rules
from local_stack.eseye_faults import Fault, FaultQueue, act
from local_stack.eseye_rules import ERROR_FORMS, EseyeError, status_xml

__all__ = ["ERROR_FORMS", "EseyeError", "EseyeSimulator", "SimMessage", "status_xml"]


@dataclass
class SimMessage:
    message_id: str
    destination: str
    fields: dict[str, str]
    reference_id: str
    status: str = "queued"  # queued | delivered | failed | cancelling
    sends: int = 1
    received_at: float = field(default_factory=time.time)


class EseyeSimulator:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5010,
        username: str = "dev-user",
        password: str = "dev-password",  # noqa: S107 - the simulator's development credential
        receipt_delay: float = 1.0,
        mo_url: str | None = None,
        api_msisdn: str = "447000000001",
        ip_allowlist: list[str] | None = None,
        error_form: str = "random",
        seed: int = 0,
        log: Callable[[str], Any] = print,
    ):
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.receipt_delay = receipt_delay
        self.mo_url = mo_url
        self.api_msisdn = api_msisdn
        self.ip_allowlist = ip_allowlist
        self.log = log
        self.messages: dict[str, SimMessage] = {}
        self.faults = FaultQueue()
        self.requests: list[dict[str, Any]] = []
        self.receipts_sent: list[dict[str, Any]] = []
        self.send_arrivals: list[dict[str, Any]] = []  # every mtsmsapi request as it arrived, faults included
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._timers: set[threading.Timer] = set()
        self.connections: set[Any] = set()
        self.error_form = "random"
        self._random = random.Random(seed)
        self.configure(error_form, seed)

    # --- lifecycle ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def credentials(self) -> rules.Credentials:
        return rules.Credentials(self.username, self.password, tuple(self.ip_allowlist) if self.ip_allowlist is not None else None)

    def start(self) -> EseyeSimulator:
        simulator = self

        class Handler(_Handler):
            sim = simulator

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True, name="eseye-sim").start()
        return self

    def stop(self) -> None:
        """Stop as an outage would: no listener, every open keep-alive connection dropped, and no
        receipt or settling still to come."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.connections.clear()
        with self.lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()

    @property
    def pending_timers(self) -> int:
        with self.lock:
            return len(self._timers)

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.requests.clear()
            self.receipts_sent.clear()
            self.send_arrivals.clear()
        self.faults.clear()

    def configure(self, error_form: str | None = None, seed: int | None = None) -> None:
        if error_form is not None:
            if error_form not in (*ERROR_FORMS, "random"):
                raise ValueError(f"error_form must be one of {', '.join(ERROR_FORMS)} or random")
            self.error_form = error_form
        if seed is not None:
            self._random = random.Random(seed)

    def render_error(self, error: EseyeError) -> str:
        with self.lock:
            form = self._random.choice(ERROR_FORMS) if self.error_form == "random" else self.error_form
        return rules.render_error(error, form)

    def inject(self, mode: str, count: int = 1, delay: float = 0.0) -> None:
        self.faults.inject(mode, count, delay)

    def next_fault(self) -> Fault | None:
        return self.faults.next()

    def _later(self, delay: float, action: Callable[..., None], *args: Any) -> None:
        """Run `action` after `delay` seconds, unless the simulator stops first."""

        def run() -> None:
            with self.lock:
                if timer not in self._timers:
                    return  # cancelled by stop()
                self._timers.discard(timer)
            action(*args)

        timer = threading.Timer(delay, run)
        timer.daemon = True
        with self.lock:
            self._timers.add(timer)
        timer.start()

    # --- what Eseye saw -------------------------------------------------------------------------------
    def arrived(self, request: str, form: dict[str, str]) -> None:
        if request == "mtsmsapi":
            with self.lock:
                self.send_arrivals.append({"at": time.time(), "message_id": form.get("message_id"), "destination": form.get("destination")})

    def sends_seen(self, since: float = 0.0) -> dict[str, Any]:
        """The send requests that arrived at or after `since` (epoch seconds), oldest first, and their rate."""
        with self.lock:
            sends = [dict(s) for s in self.send_arrivals if s["at"] >= since]
        return {**arrival_rate([s["at"] for s in sends]), "sends": sends}

    # --- the API -------------------------------------------------------------------------------------
    def send(self, form: dict[str, str], client_ip: str) -> str:
        accepted = rules.check_send(form, client_ip, self.credentials)
        key = accepted.message_id or uuid.uuid4().hex
        with self.lock:
            existing = self.messages.get(key)
            if existing:
                existing.sends += 1
                return "OK!"
            message = SimMessage(key, accepted.destination, {k: v for k, v in form.items() if k != "password"}, uuid.uuid4().hex)
            self.messages[key] = message
        if rules.gets_receipt(accepted.destination):
            if accepted.receipt_url:
                self._later(self.receipt_delay, self._deliver, message, accepted.receipt_url)
            else:
                self._later(self.receipt_delay, self._settle, message)
        return "OK!"

    def _settle(self, message: SimMessage) -> str | None:
        with self.lock:
            if message.status != "queued":
                return None
            message.status = rules.final_status(message.destination)
            return message.status

    def _deliver(self, message: SimMessage, receipt_url: str) -> None:
        status = self._settle(message)
        if status is None:
            return
        url, fields = rules.receipt_request_url(receipt_url, message.message_id, message.reference_id, status)
        try:
            with urlopen(Request(url, method="GET"), timeout=10) as response:
                outcome: Any = response.status
        except Exception as exc:  # the receiver is down: Eseye's retry policy is undocumented, so we do not retry
            outcome = f"error: {exc}"
        self.receipts_sent.append({**fields, "outcome": outcome})
        self.log(f"eseye-sim  receipt {status} for {message.message_id[:8]} -> {outcome}")

    def status_or_cancel(self, form: dict[str, str], client_ip: str, cancel: bool) -> str:
        message_id = rules.check_status_request(form, client_ip, self.credentials)
        with self.lock:
            message = self.messages.get(message_id)
            new_status, answer = rules.status_answer(message.status if message else None, cancel)
            if message and new_status:
                message.status = new_status
        return answer

    # --- MO -------------------------------------------------------------------------------------------
    def send_mo(self, source: str, text: str | None = None, binary: str | None = None, destination: str | None = None) -> dict:
        if not self.mo_url:
            raise RuntimeError("no MO URL configured")
        fields = {"source": source, "destination": destination or self.api_msisdn, "message_id": uuid.uuid4().hex}
        if text is not None:
            fields["text"] = text
        if binary is not None:
            fields["binary"] = binary
        body = urlencode(fields).encode("utf-8")
        request = Request(self.mo_url, data=body, method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urlopen(request, timeout=10) as response:
            return {"status": response.status, "body": response.read().decode("utf-8", "replace"), "message_id": fields["message_id"]}


def arrival_rate(times: list[float], window: float = 1.0) -> dict[str, Any]:
    """The rate of arrivals at `times` (epoch seconds): the count, the mean rate over their span (n - 1
    gaps over last - first), and the most that fell in any `window` seconds."""
    times = sorted(times)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return {
        "count": len(times),
        "first_at": times[0] if times else None,
        "last_at": times[-1] if times else None,
        "span_seconds": span,
        "per_second": (len(times) - 1) / span if span > 0 else None,
        "max_in_any_second": most,
    }


class _Handler(BaseHTTPRequestHandler):
    sim: EseyeSimulator
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; without TCP_NODELAY, Nagle meets the client's delayed ACK
    # and every answer waits ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the simulator logs its own lines
        pass

    def setup(self) -> None:
        super().setup()
        self.sim.connections.add(self.connection)

    def finish(self) -> None:
        self.sim.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # The Channel a fault misbehaves on.
    def reply(self, status: int, body: str, content_type: str = "text/html") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def close(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _json(self, status: int, body: Any) -> None:
        self.reply(status, json.dumps(body, default=str), "application/json")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _api_request(self) -> str | None:
        match = re.fullmatch(r"/(mtsmsapi|mtcancelapi|mtstatusapi)/index/post/?", urlsplit(self.path).path)
        return match.group(1) if match else None

    def _unsupported(self) -> None:
        if self._api_request():
            self._body()
            self.reply(200, self.sim.render_error(EseyeError(502 if self.command == "INDEX" else 503)))
        else:
            self.reply(404, "Not Found", "text/plain")

    do_PUT = do_INDEX = do_DELETE = do_PATCH = _unsupported

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/_sim/messages":
            return self._json(200, [vars(m) for m in self.sim.messages.values()])
        if path.startswith("/_sim/messages/"):
            message = self.sim.messages.get(path.rsplit("/", 1)[1])
            return self._json(200, vars(message)) if message else self._json(404, {"error": "unknown message"})
        if path == "/_sim/receipts":
            return self._json(200, self.sim.receipts_sent)
        if path == "/_sim/sends":
            try:
                since = float(dict(parse_qsl(urlsplit(self.path).query)).get("since", 0))
            except ValueError:
                return self._json(400, {"error": "since is epoch seconds"})
            return self._json(200, self.sim.sends_seen(since))
        return self._unsupported()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/_sim/"):
            return self._control(path)
        request = self._api_request()
        raw = self._body()
        if not request:
            return self.reply(404, "Not Found", "text/plain")
        form = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1"))
        self.sim.requests.append({"request": request, "form": {k: v for k, v in form.items() if k != "password"}})
        self.sim.arrived(request, form)
        client_ip = self.client_address[0]
        fault = self.sim.next_fault()
        if fault:
            self.sim.log(f"eseye-sim  fault {fault.mode} on {request}")
            if act(fault, self, lambda: self._answer(request, form, client_ip)):
                return
        body = self._answer(request, form, client_ip)
        outcome = body.splitlines()[0] if "<" not in body else body.split("<status>")[1].split("<")[0]
        self.sim.log(f"eseye-sim  {request} {form.get('message_id', '-')[:8]} -> {outcome}")
        if fault and fault.answers_late:  # processed already; only the answer is late
            time.sleep(fault.delay)
        self.reply(200, body, "application/xml" if body.startswith("<") else "text/html")

    def _answer(self, request: str, form: dict[str, str], client_ip: str) -> str:
        try:
            if request == "mtsmsapi":
                return self.sim.send(form, client_ip)
            return self.sim.status_or_cancel(form, client_ip, cancel=request == "mtcancelapi")
        except EseyeError as error:
            return self.sim.render_error(error)

    def _control(self, path: str) -> None:
        raw = self._body()
        try:
            payload = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return self._json(400, {"error": "send JSON"})
        if path == "/_sim/mo":
            if not payload.get("source"):
                return self._json(400, {"error": "source is required"})
            try:
                result = self.sim.send_mo(str(payload["source"]), payload.get("text"), payload.get("binary"), payload.get("destination"))
            except Exception as exc:
                return self._json(502, {"error": f"MO delivery failed: {exc}"})
            return self._json(200, result)
        try:
            if path == "/_sim/faults":
                self.sim.inject(str(payload.get("mode", "")), int(payload.get("count", 1)), float(payload.get("delay", 0)))
                return self._json(200, {"queued_faults": len(self.sim.faults)})
            if path == "/_sim/config":
                self.sim.configure(payload.get("error_form"), payload.get("seed"))
                return self._json(200, {"error_form": self.sim.error_form})
        except (TypeError, ValueError) as exc:
            return self._json(400, {"error": str(exc)})
        if path == "/_sim/reset":
            self.sim.reset()
            return self._json(200, {"reset": True})
        return self._json(404, {"error": "unknown control path"})
