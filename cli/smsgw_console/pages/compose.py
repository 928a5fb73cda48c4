"""Compose: one form sends to a SIM, a group or a pasted list, now or at a time, text, data or a saved command;
beside it, the encoding analysis of what would be sent, as the API's own dry run answers it.

The console computes nothing about encodings itself: every analysis is POST /messages?dry_run=true (which
validates and measures, and stores nothing: the gateway answers a dry run before any idempotency record or
message is written), or, while a saved command's variables are incomplete, the worst case the API worked
out when the command was saved.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import requests
from flask import Blueprint, flash, g, jsonify, redirect, request, url_for

from smsgw_client import ApiError
from smsgw_console.server import api_error_text, api_failure_text, api_time, client, render

blueprint = Blueprint("compose", __name__)

# The analysis does not depend on the recipient, but a dry run needs a valid one: a number from Ofcom's
# range for drama, which no SIM has.
ANALYSIS_TO = "447700900000"
LABELS = {"gsm7": "GSM-7", "ucs2": "UCS-2", "8bit": "8-bit"}
UNITS = {"gsm7": "characters", "ucs2": "UTF-16 code units", "8bit": "octets"}
TARGETS = ("sim", "group", "list")
ENCODINGS = ("auto", "gsm7", "ucs2", "8bit")
DATA_CODINGS = ("0", "4", "8", "F6")
LIST_SEPARATORS = re.compile(r"[\n,;]+")
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([a-z_][a-z0-9_]*)\}")
CHOICES_MAX = 500  # commands and groups offered in the selects; more would be a page of their own
IDEMPOTENCY_KEY = re.compile(r"^[0-9a-f]{32}$")
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")


# --- what the form asks for ------------------------------------------------------------------------------


def text_of(form: Mapping[str, str]) -> str:
    # A browser submits a textarea's line breaks as CRLF but shows (and scripts read) LF: the operator
    # means LF, and CR would count as a character of its own.
    return form.get("text", "").replace("\r\n", "\n")


def variables_of(form: Mapping[str, str]) -> dict[str, str]:
    return {name[4:]: value for name, value in form.items() if name.startswith("var.") and len(name) > 4}


def content_of(form: Mapping[str, str]) -> dict[str, Any]:
    """The content fields of the API's request: a saved command with its variables, data, or text."""
    command = form.get("command", "").strip()
    if command:
        variables = variables_of(form)
        return {"command": command, **({"variables": variables} if variables else {})}
    if form.get("content") == "data":
        coding = form.get("data_coding", "").strip()
        return {"data": form.get("data", "").strip(), **({"data_coding": coding} if coding else {})}
    return {"text": text_of(form)}


def options_of(form: Mapping[str, str], content: Mapping[str, Any]) -> dict[str, Any]:
    """The optional fields the form offers, as the API names them; left out when empty."""
    options: dict[str, Any] = {}
    for name in ("send_at", "expires_at"):
        if form.get(name, "").strip():
            options[name] = api_time(form[name].strip())
    for name in ("client_ref", "collapse_key"):
        if form.get(name, "").strip():
            options[name] = form[name].strip()
    reply = form.get("expect_reply_within", "").strip()
    if reply:
        # a whole number goes as one, so the API's refusal of it (-5) names the field and its range
        options["expect_reply_within"] = int(reply) if WHOLE_NUMBER.fullmatch(reply) else reply
    chosen = form.get("encoding", "auto")
    if chosen != "auto" and "data" not in content:
        options["encoding"] = chosen
    return options


def recipients_of(pasted: str) -> list[str]:
    """A pasted list: one MSISDN a line, or separated by commas or semicolons. Anything else is left for the
    API to judge, so it names each bad entry."""
    return [entry.strip() for entry in LIST_SEPARATORS.split(pasted) if entry.strip()]


def render_command(text: str, variables: Mapping[str, str]) -> str:
    """A saved command's text with its values, for the preview only (the API renders what is sent)."""
    return PLACEHOLDER.sub(lambda m: m.group(0)[0] if m.group(1) is None else variables.get(m.group(1), m.group(0)), text)


# --- the analysis ----------------------------------------------------------------------------------------


def runs(preview: str, forcing: list[str]) -> list[tuple[str, bool]]:
    """The preview split into plain runs and single characters that force UCS-2 (each marked on its own)."""
    marked = set(forcing)
    parts: list[tuple[str, bool]] = []
    plain = ""
    for character in preview:
        if character in marked:
            if plain:
                parts.append((plain, False))
                plain = ""
            parts.append((character, True))
        else:
            plain += character
    if plain:
        parts.append((plain, False))
    return parts


def described(found: Mapping[str, Any], **more: Any) -> dict[str, Any]:
    encoding = found.get("encoding")
    result = {
        "encoding": encoding,
        "label": LABELS.get(str(encoding), encoding),
        "unit": UNITS.get(str(encoding), ""),
        "length": found.get("length"),
        "limit": found.get("limit"),
        "fits": found.get("fits"),
        "unicode_characters": list(found.get("unicode_characters") or []),
        "preview": None,
        "note": None,
        "error": None,
        **more,
    }
    if result["preview"] is not None:
        result["runs"] = runs(result["preview"], result["unicode_characters"])
    return result


def analyse(form: Mapping[str, str]) -> dict[str, Any]:
    """What the API's dry run says of the content the form holds. Refusals come back in the API's words
    (`error`, or `note` for a command whose variables are not all filled in); an API that cannot be
    reached raises as any page's call would."""
    content = content_of(form)
    if "variables" in content:
        # a variable not filled in yet is missing, not a value that fails its pattern
        filled = {name: value for name, value in content.pop("variables").items() if value}
        content.update({"variables": filled} if filled else {})
    options = {k: v for k, v in options_of(form, content).items() if k == "encoding"}
    api = client()
    if content.get("text") == "":
        # Nothing typed yet: the limit is the one the API gives a GSM-7 text; the length is 0.
        try:
            empty = api.send_message(ANALYSIS_TO, " ", dry_run=True, **options)
        except ApiError as error:
            if error.status >= 500:
                raise
            return described({}, preview="", error=api_error_text(error))  # an encoding it does not know
        return described(empty, length=0, fits=True, preview="")
    command = None
    if "command" in content:
        try:
            command = api.get_command(content["command"])
        except ApiError as error:
            return described({}, error=api_error_text(error))
    preview = content.get("text")
    if command is not None and command.get("text") is not None:
        preview = render_command(command["text"], content.get("variables") or {})
    try:
        answer = api.send_message(ANALYSIS_TO, dry_run=True, **content, **options)
        return described(answer, preview=preview)
    except ApiError as error:
        if error.status >= 500:
            raise
        details = error.details if isinstance(error.details, dict) else {}
        if command is not None and (details.get("fields") or {}).keys() and all(name.startswith("variables") for name in details["fields"]):
            # Not all variables are filled in (or one is not valid): the command's worst case, which the
            # API checked fits one SMS whatever values its patterns allow.
            worst = {**(command.get("worst_case") or {}), "fits": True}
            return described(
                worst,
                preview=command.get("text"),
                note=f"Worst case of command {command['name']}, until its variables are valid. The API says: {error.message}",
                worst_case=True,
            )
        if "length" in details and "limit" in details:
            return described(details, preview=preview, error=api_error_text(error))  # too long for one SMS
        if "unsupported_characters" in details:
            # The chosen encoding cannot carry these: they are the characters that need UCS-2.
            found = {"encoding": details.get("encoding"), "unicode_characters": details["unsupported_characters"], "fits": False}
            return described(found, preview=preview, error=api_error_text(error))
        return described({}, preview=preview, error=api_error_text(error))


@blueprint.get("/compose/analysis")
def analysis() -> Any:
    try:
        result = analyse(request.args)
    except ApiError as error:
        return jsonify({"error": api_error_text(error)}), 502
    except requests.RequestException as error:
        return jsonify({"error": api_failure_text(client().api_url, error)}), 502
    result.pop("runs", None)  # the script builds the marks itself, from text nodes
    response = jsonify(result)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the form --------------------------------------------------------------------------------------------


def first_items(pages: Any) -> list[dict[str, Any]]:
    found = []
    for item in pages:
        found.append(item)
        if len(found) >= CHOICES_MAX:
            break
    return found


def groups() -> list[dict[str, Any]]:
    return first_items(client().iter_groups(limit=100))


def selected_command(name: str, commands: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not name:
        return None
    for command in commands:
        if command.get("name") == name:
            return command
    try:
        return dict(client().get_command(name))
    except ApiError:
        return None  # the send will say, in the API's words, that there is no such command


def page(form: Mapping[str, str], error: ApiError | None = None, status: int = 200) -> Any:
    commands = first_items(client().iter_commands(limit=100))
    command = selected_command(form.get("command", "").strip(), commands)
    values = {name: form.get(name, "") for name in form}
    values["text"] = text_of(form)
    values.setdefault("target", "sim")
    if values["target"] not in TARGETS:
        values["target"] = "sim"
    context = {
        "title": "Compose",
        "values": values,
        "variables": variables_of(form),
        "commands": commands,
        "command": command,
        "groups": groups(),
        "analysis": analyse(form),
        "error": error,
        "idempotency_key": uuid.uuid4().hex,  # a double submit is the same send; a refused one gets a new key
        "encodings": ENCODINGS,
        "data_codings": DATA_CODINGS,
        "labels": LABELS,
    }
    return render("compose.html", "_command_variables.html", **context), status


@blueprint.get("/compose")
def form() -> Any:
    if g.get("fragment"):
        # the page's script asks only for a saved command's variables when the command changes
        name = request.args.get("command", "").strip()
        command = selected_command(name, [])
        return render("compose.html", "_command_variables.html", command=command, variables=variables_of(request.args))
    return page(request.args)


@blueprint.post("/compose")
def send() -> Any:
    form = request.form
    key = form.get("idempotency_key", "")
    key = key if IDEMPOTENCY_KEY.match(key) else uuid.uuid4().hex
    content = content_of(form)
    body = {**content, **options_of(form, content)}
    target = form.get("target", "sim")
    api = client()
    try:
        if target == "group":
            batch = api.create_batch({"group": form.get("group", ""), **body}, idempotency_key=key)
        elif target == "list":
            skip = {"skip_invalid": True} if form.get("skip_invalid") else {}
            batch = api.create_batch({"to": recipients_of(form.get("recipients", "")), **body, **skip}, idempotency_key=key)
        else:
            message = api.send_message(form.get("to", "").strip(), idempotency_key=key, **body)
            flash(f"Message accepted: {message.get('status')}", "success")
            return redirect(url_for("timeline.detail", message_id=message["id"]), code=303)
    except ApiError as error:
        details = error.details if isinstance(error.details, dict) else {}
        if error.code == "eseye_rejected" and details.get("id"):
            # Eseye refused it, but the message exists (rejected): its timeline has Eseye's answer.
            flash(api_error_text(error), "error")
            return redirect(url_for("timeline.detail", message_id=str(details["id"])), code=303)
        return page(form, error, error.status if 400 <= error.status < 600 else 502)
    skipped = f", {batch['skipped']} skipped" if batch.get("skipped") else ""
    flash(f"Batch accepted: {batch.get('total')} recipients{skipped}", "success")
    return redirect(url_for("batches.detail", batch_id=batch["id"]), code=303)
