"""The operator console: server-rendered pages over the gateway's API, served on 127.0.0.1 only.

Every page is built from `smsgw_client` calls (the same client, signing or API key, as the CLI), so the
console can do nothing the caller's credentials cannot. Live parts of a page are fragments the page's
ES module re-fetches (`X-Console-Fragment`); actions are plain HTML forms (POST, then redirect), so every
page works from the keyboard and without JavaScript except for what is live.

A console on loopback is still reachable by any web page the operator opens: every POST carries a
per-process token, and every request must name this console's own host (no DNS rebinding).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask, abort, current_app, flash, g, redirect, render_template, request, url_for

from smsgw_client import ApiError, Client

DEFAULT_PORT = 8300
FRAGMENT_HEADER = "X-Console-Fragment"
# A fragment may name the URL its next refresh should fetch (a live window that moves with what it shows).
LIVE_URL_HEADER = "X-Console-Live-Url"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def client() -> Client:
    """The API client this console was started with."""
    found: Client = current_app.extensions["smsgw_client"]
    return found


def render(template: str, fragment_template: str | None = None, /, **context: Any) -> str:
    """The whole page, or only its live fragment when the page's script asks for it."""
    if fragment_template and request.headers.get(FRAGMENT_HEADER):
        return render_template(fragment_template, **context)
    return render_template(template, **context)


def act(action: Callable[[], Any], success: str, back: str) -> Any:
    """Run an action from a form; say what happened, in the API's own words when it refused; go back."""
    try:
        action()
        flash(success, "success")
    except ApiError as error:
        flash(api_error_text(error), "error")
    return redirect(back, code=303)


def api_error_text(error: ApiError) -> str:
    return f"{error.status} {error.code}: {error.message}" if error.code else f"{error.status}: {error.message}"


def create_app(api: Client, *, secret: str | None = None) -> Flask:
    app = Flask(__name__)
    app.secret_key = secret or secrets.token_urlsafe(32)
    app.extensions["smsgw_client"] = api
    app.config["CSRF_TOKEN"] = secrets.token_urlsafe(32)
    app.jinja_env.globals["csrf_token"] = lambda: app.config["CSRF_TOKEN"]
    app.jinja_env.globals["api_url"] = api.api_url
    app.jinja_env.globals["has_page"] = lambda endpoint: endpoint in app.view_functions
    app.jinja_env.filters["message_text"] = message_text
    app.jinja_env.filters["when"] = when

    @app.before_request
    def guard() -> None:
        host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").startswith("[") else (request.host or "").split("]")[0] + "]"
        if host not in LOOPBACK_HOSTS:
            abort(421)  # another name pointing at loopback: a rebinding attempt, not the operator
        if request.method == "POST":
            sent = request.form.get("csrf_token", "") or request.headers.get("X-Console-Token", "")
            if not hmac.compare_digest(sent, app.config["CSRF_TOKEN"]):
                abort(403)
        g.fragment = bool(request.headers.get(FRAGMENT_HEADER))

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.headers.get(FRAGMENT_HEADER) or request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Any:
        status = error.status if 400 <= error.status < 600 else 502
        return render_template("error.html", title="The API refused", error=error, text=api_error_text(error)), status

    @app.errorhandler(requests.RequestException)
    def unreachable(error: requests.RequestException) -> Any:
        text = f"The API at {api.api_url} could not be reached: {type(error).__name__}"
        return render_template("error.html", title="The API is unreachable", error=None, text=text), 502

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
