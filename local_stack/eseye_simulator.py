"""An Eseye SMS API simulator that follows ../shared/eseye-sms-api.md to the letter.

- POST /mtsmsapi/index/post    -> `OK!` or `Error<N>: <text>` (text/html)
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

Control endpoints (not part of Eseye), for people and tests:
- POST /_sim/mo {"source", "text"[, "binary", "destination"]}: a device sends an MO message to the gateway.
- POST /_sim/faults {"mode", "count", "delay"}: the next `count` API calls misbehave
  (timeout | drop | http500 | http503 | empty | html | unknown_code | slow | drop_after_accept |
  status_<word>, which answers that status without processing the request).
  `slow` processes the request at once and answers `delay` seconds late; `timeout` and `drop` never
  process it (no answer, or the connection closed at once); `drop_after_accept` processes, never answers.
- POST /_sim/config {"error_form", "seed"}: how errors are answered from now on.
- GET /_sim/messages[/<message_id>]: what the simulator holds, with how many times each id was sent.
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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from urllib.request import Request, urlopen

GSM7_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
BASIC_SET = frozenset(GSM7_BASIC) - {"\x1b"}
MT_PARAMETERS = {
    "username",
    "password",
    "destination",
    "text",
    "short_message",
    "message_id",
    "receipt_url",
    "source",
    "mode",
    "expiry",
    "data_coding",
    "pid",
    "esm",
    "Replace",
}
STATUS_PARAMETERS = {"username", "password", "message_id"}
DATA_CODING_LIMITS = {"0": 160, "4": 140, "8": 140, "F6": 140}
MESSAGES = {
    502: "Index is not currently a supported method of this API.",
    503: "PUT is not currently a supported method of this API.",
    510: "API Requests from this IP Address ({}) are not allowed.",
    511: "{} is required.",
    519: "Unknown parameter: {}",
    520: "Mode '{}' is not valid",
    521: "Mode not specified",
    525: "Max message length of {} chars exceeded",
    526: "message_id must be supplied for delivery receipt",
    530: "API Requests authentication failed.",
    533: "Invalid receipt_url value supplied",
    535: "Invalid message_id value supplied",
    536: "Invalid text value supplied",
    555: "Invalid MSISDN ({}) supplied",
    570: "Destination MSISDN ({}) has no credit",
    580: "Please use only GSM 03.38 basic 7 bit characters, or specify 8 bit mode",
}


class EseyeError(Exception):
    def __init__(self, code: int, *args: Any):
        self.code = code
        self.text = MESSAGES[code].format(*args) if args else MESSAGES[code].replace(" ({})", "").replace("{}", "")
        super().__init__(f"{code} {self.text}")


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
        log=print,
    ):
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.receipt_delay = receipt_delay
        self.mo_url = mo_url
        self.api_msisdn = api_msisdn
        self.ip_allowlist = ip_allowlist
        self.log = log
        self.configure(error_form, seed)
        self.messages: dict[str, SimMessage] = {}
        self.faults: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.receipts_sent: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._timers: list[threading.Timer] = []
        self.connections: set[Any] = set()

    # --- lifecycle ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

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
        """Stop as an outage would: no listener, and every open keep-alive connection dropped."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.connections.clear()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.faults.clear()
            self.requests.clear()
            self.receipts_sent.clear()

    def configure(self, error_form: str | None = None, seed: int | None = None) -> None:
        if error_form is not None:
            if error_form not in (*ERROR_FORMS, "random"):
                raise ValueError(f"error_form must be one of {', '.join(ERROR_FORMS)} or random")
            self.error_form = error_form
        if seed is not None:
            self._random = random.Random(seed)

    def render_error(self, error: EseyeError) -> str:
        """An error answer in one of the documented forms (§5), the same for every request type."""
        with self.lock:
            form = self._random.choice(ERROR_FORMS) if self.error_form == "random" else self.error_form
        if form == "text":
            return f"Error{error.code}: {error.text}"
        if form == "xml":
            return status_xml("error", f"ERROR {error.code} – {error.text}")
        return status_xml("error", error.text)

    def inject(self, mode: str, count: int = 1, delay: float = 0.0) -> None:
        with self.lock:
            self.faults.extend({"mode": mode, "delay": delay} for _ in range(count))

    def next_fault(self) -> dict[str, Any] | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    # --- the API -------------------------------------------------------------------------------------
    def _authenticate(self, form: dict[str, str], client_ip: str) -> None:
        if self.ip_allowlist is not None and client_ip not in self.ip_allowlist:
            raise EseyeError(510, client_ip)
        for name in ("username", "password"):
            if not form.get(name):
                raise EseyeError(511, name)
        if form["username"] != self.username or form["password"] != self.password:
            raise EseyeError(530)

    def send(self, form: dict[str, str], client_ip: str) -> str:
        self._authenticate(form, client_ip)
        for name in form:
            if name not in MT_PARAMETERS:
                raise EseyeError(519, name)
        destination = form.get("destination", "")
        if not destination:
            raise EseyeError(511, "destination")
        if not re.fullmatch(r"[0-9]{8,15}", destination):
            raise EseyeError(555, destination)
        source = form.get("source", "")
        if source and not re.fullmatch(r"[0-9]{1,15}", source):
            raise EseyeError(555, source)
        text, short_message = form.get("text"), form.get("short_message")
        if text is None and short_message is None:
            raise EseyeError(511, "text")
        message_id = form.get("message_id")
        receipt_url = form.get("receipt_url")
        if receipt_url is not None:
            parts = urlsplit(receipt_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise EseyeError(533)
            if not message_id:
                raise EseyeError(526)
        if message_id is not None and not re.fullmatch(r"[0-9A-Za-z]{1,64}", message_id):
            raise EseyeError(535)
        if "expiry" in form and not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", form["expiry"]):
            raise EseyeError(555)
        if text is not None:  # `text` wins over short_message (§3.1)
            mode = form.get("mode", "7")
            if "mode" in form and mode == "":
                raise EseyeError(521)
            if mode not in ("7", "8"):
                raise EseyeError(520, mode)
            if not text:
                raise EseyeError(536)
            if mode == "7":
                if any(c not in BASIC_SET for c in text):
                    raise EseyeError(580)
                if len(text) > 160:
                    raise EseyeError(525, 160)
            elif len(text.encode("latin-1", errors="replace")) > 140:
                raise EseyeError(525, 140)
        else:
            coding = form.get("data_coding", "0").upper() or "0"
            if coding not in DATA_CODING_LIMITS:
                raise EseyeError(555)
            if not short_message or len(short_message) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", short_message):
                raise EseyeError(536)
            octets = len(short_message) // 2
            if octets > DATA_CODING_LIMITS[coding]:
                raise EseyeError(525, 70 if coding == "8" else DATA_CODING_LIMITS[coding])
        if destination.endswith("0570"):
            raise EseyeError(570, destination)
        key = message_id or uuid.uuid4().hex
        with self.lock:
            existing = self.messages.get(key)
            if existing:
                existing.sends += 1
                return "OK!"
            message = SimMessage(key, destination, {k: v for k, v in form.items() if k != "password"}, uuid.uuid4().hex)
            self.messages[key] = message
        if receipt_url and not destination.endswith("0001"):
            timer = threading.Timer(self.receipt_delay, self._deliver, args=(message, receipt_url))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        elif not destination.endswith("0001"):
            timer = threading.Timer(self.receipt_delay, self._settle, args=(message,))
            timer.daemon = True
            timer.start()
        return "OK!"

    def _settle(self, message: SimMessage) -> str | None:
        with self.lock:
            if message.status != "queued":
                return None
            message.status = "failed" if message.destination.endswith("0000") else "delivered"
            return message.status

    def _deliver(self, message: SimMessage, receipt_url: str) -> None:
        status = self._settle(message)
        if status is None:
            return
        fields = {"messageid": message.message_id, "referenceid": message.reference_id, "statuscode": status, "status": status}
        separator = "&" if urlsplit(receipt_url).query else "?"
        url = f"{receipt_url}{separator}{urlencode(fields)}"
        try:
            with urlopen(Request(url, method="GET"), timeout=10) as response:
                outcome = response.status
        except Exception as exc:  # the receiver is down: Eseye's retry policy is undocumented, so we do not retry
            outcome = f"error: {exc}"
        self.receipts_sent.append({**fields, "outcome": outcome})
        self.log(f"eseye-sim  receipt {status} for {message.message_id[:8]} -> {outcome}")

    def status_or_cancel(self, form: dict[str, str], client_ip: str, cancel: bool) -> str:
        self._authenticate(form, client_ip)
        for name in form:
            if name not in STATUS_PARAMETERS:
                raise EseyeError(519, name)
        message_id = form.get("message_id")
        if not message_id:
            raise EseyeError(511, "message_id")
        with self.lock:
            message = self.messages.get(message_id)
            if message is None:
                raise EseyeError(535)
            if cancel and message.status == "queued":
                message.status = "cancelling"
                return status_xml("cancelling", "Message cancelled")
            status = message.status
        if status == "failed":
            return status_xml("error", "Message delivery failed")
        descriptions = {"queued": "Message queued awaiting routing", "delivered": "Message delivered", "cancelling": "Message cancelled"}
        return status_xml(status, descriptions[status])

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


def status_xml(status: str, description: str) -> str:
    return f"<statusResponse>\n<status>{status}</status>\n<description>{description}</description>\n</statusResponse>"


ERROR_FORMS = ("text", "xml", "xml_bare")


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

    def _reply(self, status: int, body: str, content_type: str = "text/html") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, body: Any) -> None:
        self._reply(status, json.dumps(body, default=str), "application/json")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _api_request(self) -> str | None:
        match = re.fullmatch(r"/(mtsmsapi|mtcancelapi|mtstatusapi)/index/post/?", urlsplit(self.path).path)
        return match.group(1) if match else None

    def _unsupported(self) -> None:
        if self._api_request():
            self._body()
            self._reply(200, self.sim.render_error(EseyeError(502 if self.command == "INDEX" else 503)))
        else:
            self._reply(404, "Not Found", "text/plain")

    do_GET = do_PUT = do_INDEX = do_DELETE = do_PATCH = _unsupported

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/_sim/"):
            return self._control(path)
        request = self._api_request()
        raw = self._body()
        if not request:
            return self._reply(404, "Not Found", "text/plain")
        form = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1"))
        self.sim.requests.append({"request": request, "form": {k: v for k, v in form.items() if k != "password"}})
        fault = self.sim.next_fault()
        if fault and self._misbehave(fault, request, form):
            return
        client_ip = self.client_address[0]
        try:
            if request == "mtsmsapi":
                body = self.sim.send(form, client_ip)
            else:
                body = self.sim.status_or_cancel(form, client_ip, cancel=request == "mtcancelapi")
        except EseyeError as error:
            body = self.sim.render_error(error)
        outcome = body.splitlines()[0] if "<" not in body else body.split("<status>")[1].split("<")[0]
        self.sim.log(f"eseye-sim  {request} {form.get('message_id', '-')[:8]} -> {outcome}")
        if fault and fault["mode"] == "slow":  # processed already; only the answer is late
            time.sleep(fault.get("delay", 0.0))
        self._reply(200, body, "application/xml" if body.startswith("<") else "text/html")

    def _misbehave(self, fault: dict[str, Any], request: str, form: dict[str, str]) -> bool:
        mode, delay = fault["mode"], fault.get("delay", 0.0)
        self.sim.log(f"eseye-sim  fault {mode} on {request}")
        if mode == "timeout":
            time.sleep(delay or 30)
            self.close_connection = True
            return True
        if mode == "slow":  # handled by the caller: process now, answer late
            return False
        if mode.startswith("status_"):  # a status answer as given, e.g. status_queued to a cancel
            self._reply(200, status_xml(mode.removeprefix("status_"), "as injected"), "application/xml")
            return True
        if mode == "drop":  # the connection closes before the request is read into Eseye
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if mode == "drop_after_accept":  # Eseye takes the message, then the answer is lost
            if request == "mtsmsapi":
                with contextlib.suppress(EseyeError):
                    self.sim.send(form, self.client_address[0])
            time.sleep(delay or 30)
            self.close_connection = True
            return True
        if mode in ("http500", "http503"):
            self._reply(int(mode[4:]), "<html><body><h1>Service Unavailable</h1></body></html>", "text/html")
        elif mode == "empty":
            self._reply(200, "")
        elif mode == "html":
            self._reply(200, "<html><body><h1>Service temporarily unavailable</h1></body></html>")
        elif mode == "unknown_code":
            self._reply(200, "Error599: Something new went wrong")
        else:
            return False
        return True

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
        if path == "/_sim/faults":
            self.sim.inject(str(payload.get("mode", "")), int(payload.get("count", 1)), float(payload.get("delay", 0)))
            return self._json(200, {"queued_faults": len(self.sim.faults)})
        if path == "/_sim/config":
            try:
                self.sim.configure(payload.get("error_form"), payload.get("seed"))
            except ValueError as exc:
                return self._json(400, {"error": str(exc)})
            return self._json(200, {"error_form": self.sim.error_form})
        if path == "/_sim/reset":
            self.sim.reset()
            return self._json(200, {"reset": True})
        return self._json(404, {"error": "unknown control path"})


def _get_control(handler: _Handler) -> None:
    path = urlsplit(handler.path).path
    if path == "/_sim/messages":
        return handler._json(200, [vars(m) for m in handler.sim.messages.values()])
    if path.startswith("/_sim/messages/"):
        message = handler.sim.messages.get(path.rsplit("/", 1)[1])
        return handler._json(200, vars(message)) if message else handler._json(404, {"error": "unknown message"})
    if path == "/_sim/receipts":
        return handler._json(200, handler.sim.receipts_sent)
    return handler._unsupported()


_Handler.do_GET = _get_control  # type: ignore[method-assign]
