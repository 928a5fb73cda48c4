"""The operator console: server-rendered pages over the gateway's API, served on 127.0.0.1 only.

Every page is built from `smsgw_client` calls (the same client, signing or API key, as the CLI), so the
console can do nothing the caller's credentials cannot. Live parts of a page are fragments the page's
ES module re-fetches (`X-Console-Fragment`); actions are plain HTML forms (POST, then redirect), so every
page works from the keyboard and without JavaScript except for what is live.

A console on loopback is still reachable by any web page the operator opens: every POST carries a
per-process token, and every request must name this console's own host (no DNS rebinding).
"""

from __future__ import annotations

import copy
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask, abort, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from smsgw_client import ApiError, Client

DEFAULT_PORT = 8300
FRAGMENT_HEADER = "X-Console-Fragment"
# A fragment may name the URL its next refresh should fetch (a live window that moves with what it shows).
LIVE_URL_HEADER = "X-Console-Live-Url"
# The Host a browser sends for this console: loopback by a name of its own, and a port (DNS rebinding sends another name).
LOOPBACK_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?", re.IGNORECASE)
# What a datetime-local field holds (no zone; the console shows UTC), to the minute, second or millisecond.
DATETIME_LOCAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,3})?)?")
TIME_FILTERS = ("since", "until")
MAX_FORM_BYTES = 1_000_000
PAGE_TIMEOUT_SECONDS = 10.0
PAGE_RETRIES = 1


def client() -> Client:
    """The API client this console was started with."""
    found: Client = current_app.extensions["smsgw_client"]
    return found


def render(template: str, fragment_template: str | None = None, /, **context: Any) -> str:
    """The whole page, or only its live fragment when the page's script asks for it."""
    if fragment_template and request.headers.get(FRAGMENT_HEADER):
        return render_template(fragment_template, **context)
    return render_template(template, **context)


def act(action: Callable[[], Any], success: str | Callable[[Any], str], back: str) -> Any:
    """Run an action from a form; say what happened (`success`, or what it makes of the API's answer), in the
    API's own words when it refused; go back."""
    try:
        answer = action()
        flash(success(answer) if callable(success) else success, "success")
    except ApiError as error:
        flash(api_error_text(error), "error")
    return redirect(back, code=303)


def api_error_text(error: ApiError) -> str:
    return f"{error.status} {error.code}: {error.message}" if error.code else f"{error.status}: {error.message}"


def api_failure_text(api_url: str, error: requests.RequestException) -> str:
    """Why the API gave no answer the console can use: unreachable, or an answer that is not the API's JSON."""
    if isinstance(error, requests.JSONDecodeError):
        return f"The API at {api_url} answered with something that is not JSON: is that the gateway's API URL?"
    return f"The API at {api_url} could not be reached: {type(error).__name__}"


def api_time(value: str) -> str:
    """A datetime-local field as the API's ISO 8601 in UTC. Anything else goes as typed: the API's refusal then
    quotes what the operator wrote."""
    if not DATETIME_LOCAL.fullmatch(value):
        return value
    return f"{value}:00Z" if len(value) == 16 else f"{value}Z"


def filters_from(args: Any, names: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """The filters of a list page the operator set: as typed (for the form again) and as the API takes them."""
    filters = {name: args[name].strip() for name in names if args.get(name, "").strip()}
    return filters, {name: api_time(value) if name in TIME_FILTERS else value for name, value in filters.items()}


def create_app(api: Client, *, secret: str | None = None) -> Flask:
    app = Flask(__name__)
    app.secret_key = secret or secrets.token_urlsafe(32)
    # The largest form an operator sends is a pasted list: a batch's 10,000 numbers are under 200 kB; a body
    # past this is refused here, in words, rather than relayed to the API.
    app.config["MAX_CONTENT_LENGTH"] = MAX_FORM_BYTES
    # Cookies are per host, not per port: a name of its own keeps other loopback apps' sessions apart, and
    # Strict keeps it off requests other sites start (the CSRF token is the guard; this is the second).
    app.config.update(SESSION_COOKIE_NAME="smsgw_console", SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True)
    # An operator waits on a page: at most about 20 s for the API (10 s a try, one retry), not the CLI's
    # four tries of 30 s; a send from a form keeps its Idempotency-Key across the retry. A copy: the caller's
    # client keeps its own settings.
    api = copy.copy(api)
    api.timeout, api.max_retries = min(api.timeout, PAGE_TIMEOUT_SECONDS), min(api.max_retries, PAGE_RETRIES)
    app.extensions["smsgw_client"] = api
    app.config["CSRF_TOKEN"] = secrets.token_urlsafe(32)
    app.jinja_env.globals["csrf_token"] = lambda: app.config["CSRF_TOKEN"]
    app.jinja_env.globals["api_url"] = api.api_url
    app.jinja_env.filters["message_text"] = message_text
    app.jinja_env.filters["when"] = when

    @app.before_request
    def guard() -> None:
        if not LOOPBACK_HOST.fullmatch(request.host or ""):
            abort(421)  # another name pointing at loopback: a rebinding attempt, not the operator
        if request.method == "POST":
            sent = request.form.get("csrf_token", "") or request.headers.get("X-Console-Token", "")
            if not hmac.compare_digest(sent, app.config["CSRF_TOKEN"]):
                abort(403)
        g.fragment = bool(request.headers.get(FRAGMENT_HEADER))

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.endpoint != "static":
            # every page holds message texts and numbers: no browser or proxy cache keeps them
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Any:
        if 400 <= error.status < 500:
            return render_template("error.html", title="The API refused", error=error, text=api_error_text(error)), error.status
        # the API failed, not the console: a bad gateway, with the API's words
        return render_template("error.html", title="The API failed", error=error, text=api_error_text(error)), 502

    @app.errorhandler(requests.RequestException)
    def unreachable(error: requests.RequestException) -> Any:
        title = "The API gave no answer the console can read" if isinstance(error, requests.JSONDecodeError) else "The API is unreachable"
        return render_template("error.html", title=title, error=None, text=api_failure_text(api.api_url, error)), 502

    @app.errorhandler(403)
    def forbidden(_: Any) -> Any:
        text = "This form is out of date or came from another site: reload the page and try again."
        return render_template("error.html", title="Refused", error=None, text=text), 403

    @app.errorhandler(421)
    def misdirected(_: Any) -> Any:
        return render_template("error.html", title="Wrong host", error=None, text="Open the console at 127.0.0.1."), 421

    @app.errorhandler(404)
    def not_found(_: Any) -> Any:
        return render_template("error.html", title="Not found", error=None, text=f"No page at {request.path}."), 404

    @app.errorhandler(413)
    def too_large(_: Any) -> Any:
        text = "The form is too large for the console: a pasted list this long is more than one batch takes. Split it, or send to a group."
        return render_template("error.html", title="Too large", error=None, text=text), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        return render_template("error.html", title=error.name, error=None, text=error.description), error.code or 500

    @app.errorhandler(Exception)
    def failed(error: Exception) -> Any:
        # a fault of the console's, or an answer of a shape the API's documents do not give: said, and logged whole
        app.logger.exception("%s %s failed", request.method, request.path)
        text = f"The console could not show this page ({type(error).__name__}). Its log has the details."
        return render_template("error.html", title="Something went wrong", error=None, text=text), 500

    @app.get("/")
    def home() -> Any:
        return redirect(url_for("messages.fleet"))

    from smsgw_console import pages

    pages.register(app)
    return app


def serve(api: Client, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1", announce: Callable[[str], None] = print) -> None:
    """Serve the console until interrupted. Only on loopback: nothing new is exposed to the network."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the console listens on loopback only")
    from waitress import serve as waitress_serve

    announce(f"console on http://127.0.0.1:{port}/ (API {api.api_url})")
    waitress_serve(create_app(api), host=host, port=port, threads=8, ident="smsgw-console", _quiet=True)


def message_text(message: dict[str, Any]) -> str:
    """What a row shows of a message: its text, else what kind of payload it carries."""
    if message.get("text") is not None:
        return str(message["text"])
    if message.get("data") is not None:
        return f"[{message.get('data_coding', 'data')} data, {len(str(message['data'])) // 2} bytes]"
    if message.get("command"):
        return f"[command {message['command']}]"
    return ""


def when(value: str | None) -> str:
    """An API timestamp as the console shows it: UTC, to the second, no zone suffix."""
    if not value:
        return ""
    return value.replace("T", " ")[:19]
