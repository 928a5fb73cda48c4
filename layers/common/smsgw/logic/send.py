"""POST /messages: validate, store (pending), hand to Eseye, and say what happened."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from smsgw import encoding, models, simqueue, validation
from smsgw.adapters.store import ConditionFailed
from smsgw.deps import Deps, default_deps
from smsgw.errors import Conflict, Forbidden, NotFound, SimQueueFull, ValidationFailed
from smsgw.logic import commands, delivery, lists, replies, sims
from smsgw.observability import follow, logger
from smsgw.outcomes import Accepted, DryRun, Rejected, SendOutcome, from_record, to_record

ALLOWED_FIELDS = frozenset(
    {
        "to",
        "text",
        "data",
        "data_coding",
        "encoding",
        "source",
        "expires_at",
        "client_ref",
        "status_callback",
        "expect_reply_within",
        "send_at",
        "collapse_key",
        "command",
        "variables",
    }
)
MAX_REPLY_WINDOW_SECONDS = validation.REPLY_WINDOW_MAX_SECONDS
# How long an Idempotency-Key names one message; also the Powertools record's lifetime.
IDEMPOTENCY_WINDOW_SECONDS = 86400
# How far ahead send_at may be: a minute (the schedule sweeps every minute) to 35 days.
SEND_AT_MIN = timedelta(minutes=1)
SEND_AT_MAX = timedelta(days=35)


# What POST /messages decided; http.send_response alone turns it into HTTP.
ApiResult = SendOutcome


@dataclass(frozen=True)
class SendRequest:
    to: str
    text: str | None
    data: str | None
    data_coding: str | None
    encoding: str
    source: str | None
    expires_at: datetime | None
    client_ref: str | None
    status_callback: str | None
    expect_reply_within: int | None
    send_at: datetime | None = None
    collapse_key: str | None = None
    command: str | None = None  # a saved command's name, in place of text or data (with_command renders it)
    variables: dict[str, str] | None = None  # the command's values


def parse_send_request(body: Any, now: datetime, allow_insecure_callbacks: bool = False) -> SendRequest:
    """Turn the JSON body into a SendRequest. Raises ValidationFailed naming every bad field."""
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    problems: dict[str, str] = {}
    for name in sorted(set(body) - ALLOWED_FIELDS):
        problems[name] = "unknown field"

    to = body.get("to")
    if not validation.is_msisdn(to):
        problems["to"] = validation.MSISDN_RULE

    text, data, command = body.get("text"), body.get("data"), body.get("command")
    if [text, data, command].count(None) != 2:
        problems["text"] = "exactly one of text, data or command is required"
    if text is not None and (not isinstance(text, str) or not text):
        problems["text"] = "must be a non-empty string"
    if data is not None and (not isinstance(data, str) or not data):
        problems["data"] = "must be a non-empty hex string"
    if command is not None and not (isinstance(command, str) and commands.NAME_PATTERN.match(command)):
        problems["command"] = f"must be the name of a saved command: {commands.NAME_RULE}"
    variables = body.get("variables")
    if variables is not None and command is None:
        problems["variables"] = "variables need a saved command (field command)"
    elif variables is not None and not isinstance(variables, dict):
        problems["variables"] = "must be an object of variable names to string values"

    data_coding = body.get("data_coding")
    if data_coding is not None:
        data_coding = str(data_coding).upper()
        if data is None:
            problems["data_coding"] = "only applies to data" + ("; a saved command carries its own" if command is not None else "")
        elif data_coding not in encoding.DATA_CODINGS:
            problems["data_coding"] = f"must be one of {', '.join(encoding.DATA_CODINGS)}"

    chosen_encoding = body.get("encoding", "auto")
    if chosen_encoding not in encoding.ENCODINGS:
        problems["encoding"] = f"must be one of {', '.join(encoding.ENCODINGS)}"
    elif data is not None and "encoding" in body:
        problems["encoding"] = "only applies to text; use data_coding with data"

    source = body.get("source")
    if source is not None and not validation.is_msisdn(source):
        problems["source"] = validation.MSISDN_RULE

    expires_at = _time(body, "expires_at", problems)
    if expires_at is not None and expires_at <= now:
        problems["expires_at"] = "must be in the future"

    client_ref = body.get("client_ref")
    if client_ref is not None and not validation.printable(client_ref, 1, validation.CLIENT_REF_MAX):
        problems["client_ref"] = f"must be a string of 1 to {validation.CLIENT_REF_MAX} printable characters"

    status_callback = body.get("status_callback")
    callback_problem = validation.callback_problem(status_callback, allow_insecure_callbacks) if status_callback is not None else None
    if callback_problem:
        problems["status_callback"] = callback_problem

    reply_window = body.get("expect_reply_within")
    if reply_window is not None and not validation.whole_number(reply_window, 1, MAX_REPLY_WINDOW_SECONDS):
        problems["expect_reply_within"] = f"must be a whole number of seconds from 1 to {MAX_REPLY_WINDOW_SECONDS}"

    send_at = _time(body, "send_at", problems)
    if send_at is not None and not now + SEND_AT_MIN <= send_at <= now + SEND_AT_MAX:
        problems["send_at"] = "must be from 1 minute to 35 days ahead"
    elif send_at is not None and expires_at is not None and expires_at <= send_at:
        problems["expires_at"] = "must be after send_at"

    collapse_key = body.get("collapse_key")
    if collapse_key is not None and not validation.printable(collapse_key, 1, validation.COLLAPSE_KEY_MAX):
        problems["collapse_key"] = f"must be a string of 1 to {validation.COLLAPSE_KEY_MAX} printable characters"

    if problems:
        raise validation.invalid(problems)
    return SendRequest(
        to=models.msisdn_digits(str(to)),
        text=text,
        data=data,
        data_coding=data_coding or ("0" if data is not None else None),
        encoding=chosen_encoding,
        source=models.msisdn_digits(source) if source else None,
        expires_at=expires_at,
        client_ref=client_ref,
        status_callback=status_callback,
        expect_reply_within=reply_window,
        send_at=send_at,
        collapse_key=collapse_key,
        command=command,
        variables=variables,
    )


def with_command(request: SendRequest, deps: Deps) -> SendRequest:
    """The request with its saved command's content: the text rendered with its variables, or the command's
    data. Raises ValidationFailed naming the command (unknown) or each bad variable (`variables.<name>`)."""
    if request.command is None:
        return request
    try:
        command = commands.load(deps, request.command)
    except NotFound as exc:
        raise validation.invalid({"command": f"no saved command named {request.command!r}"}) from exc
    problems = command.problems(request.variables)
    if command.data is not None and request.encoding != "auto":
        problems["encoding"] = f"only applies to text; command {command.name} sends data"
    if problems:
        raise validation.invalid(problems)
    if command.data is not None:
        return dataclasses.replace(request, data=command.data, data_coding=command.data_coding or "0", variables=None)
    return dataclasses.replace(request, text=command.render(request.variables), variables=dict(request.variables or {}) or None)


def _time(body: dict[str, Any], name: str, problems: dict[str, str]) -> datetime | None:
    """The time in field `name`, if given; a malformed one is noted in `problems`."""
    if body.get(name) is None:
        return None
    try:
        return models.parse_time(body[name])
    except ValueError:
        problems[name] = validation.TIME_RULE
        return None


def analyse(request: SendRequest) -> tuple[encoding.TextAnalysis, dict[str, str]]:
    """Decide how the content travels. Returns the analysis and the Eseye content fields.
    Raises ValidationFailed (422) when the content cannot go as one SMS."""
    try:
        if request.data is not None:
            hex_octets, analysis = encoding.analyse_data(request.data, request.data_coding or "0")
            payload = {"short_message": hex_octets, "data_coding": request.data_coding or "0"}
        else:
            assert request.text is not None
            analysis = encoding.analyse_text(request.text, request.encoding)
            payload = {
                "gsm7": {"text": request.text, "mode": "7"},
                "8bit": {"text": request.text, "mode": "8"},
                "ucs2": {"short_message": encoding.ucs2_hex(request.text), "data_coding": "8"},
            }[analysis.encoding]
    except encoding.EncodingError as exc:
        raise ValidationFailed(str(exc), exc.details) from exc
    if not analysis.fits:
        unit = {"gsm7": "characters", "8bit": "octets", "ucs2": "UTF-16 code units"}[analysis.encoding]
        message = (
            f"message too long for one SMS: {analysis.length} {unit} in {analysis.encoding}, limit {analysis.limit} (Eseye does not concatenate)"
        )
        if analysis.unicode_characters:
            message += "; UCS-2 was forced by " + " ".join(analysis.unicode_characters)
        raise ValidationFailed(message, analysis.as_dict())
    return analysis, payload


def _eseye_expiry(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else None


def keyed_message_id(scoped_key: str) -> str:
    """The message id an Idempotency-Key names for its caller, so a retried request finds its message."""
    return hashlib.sha256(f"idempotency#{scoped_key}".encode()).hexdigest()[:32]


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def new_message(
    request: SendRequest,
    analysis: encoding.TextAnalysis,
    payload: dict[str, str],
    receipt_base: str,
    deps: Deps,
    message_id: str,
    lease_owner: str,
    body_hash: str,
) -> models.Message:
    moment = deps.clock()
    at = models.iso(moment)
    return models.Message.from_item(
        {
            "id": message_id,
            "direction": "mt",
            "to": request.to,
            "source": request.source,
            "text": request.text,
            "data": payload.get("short_message") if request.data is not None else None,
            "data_coding": request.data_coding,
            "encoding": analysis.encoding,
            "length": analysis.length,
            "status": models.PENDING,
            "status_source": models.FROM_GATEWAY,
            "client_ref": request.client_ref,
            "status_callback": request.status_callback,
            "send_at": models.iso(request.send_at) if request.send_at else None,
            "collapse_key": request.collapse_key,
            "command": request.command,
            "variables": request.variables,
            "expect_reply_within": request.expect_reply_within,
            "created_at": at,
            "updated_at": at,
            "expires_at": models.iso(request.expires_at) if request.expires_at else None,
            "eseye_expiry": _eseye_expiry(request.expires_at),
            "eseye_payload": payload,
            "receipt_base": receipt_base,
            "request_hash": body_hash,
            # The first attempt's lease is taken in the create itself: no extra write on the common path.
            "attempts": 1,
            "lease_owner": lease_owner,
            "lease_until": delivery.lease_until(deps),
            "may_be_at_eseye": True,
            "history": [models.history_entry(at, "accepted", models.PENDING, "accepted by the API")],
            **replies.waiting_fields(moment, request.expect_reply_within),
        }
    )


def send_message(body: Any, receipt_base: str, dry_run: bool = False, deps: Deps | None = None, scoped_key: str | None = None) -> ApiResult:
    """Validate and send one SMS. Returns DryRun, Accepted (sent or queued for retry) or Rejected (by
    Eseye). With `scoped_key` (caller and Idempotency-Key), a retried request resumes the message
    the key named rather than creating another. Raises ValidationFailed, Forbidden, Conflict (the key
    named another request) or ServiceUnavailable when neither the outcome nor a retry could be recorded."""
    deps = deps or default_deps()
    request = with_command(parse_send_request(body, deps.clock(), deps.settings.allow_insecure_callbacks), deps)
    analysis, payload = analyse(request)
    if dry_run:
        return DryRun({"to": request.to, **analysis.as_dict(), "eseye_fields": sorted(payload)})
    refusal = lists.refusal_reason(request.to, deps)
    if refusal:
        raise Forbidden(refusal, {"to": request.to})

    body_hash = request_hash(body)
    message_id = keyed_message_id(scoped_key) if scoped_key else uuid.uuid4().hex
    owner = delivery.new_lease_owner()
    item = new_message(request, analysis, payload, receipt_base, deps, message_id, owner, body_hash)
    try:
        if request.send_at:
            waiting = sims.waiting(item, models.SCHEDULED, str(item.created_at), f"to join its SIM's queue at {item.send_at}")
            message = deps.store.messages.create(waiting)
        else:
            message, _ = sims.admit(deps, item)
    except simqueue.QueueFull as full:
        raise SimQueueFull(
            f"SIM {full.msisdn} already has {full.depth} messages waiting, its maximum; retry once some have gone",
            {"msisdn": full.msisdn, "depth": full.depth, "max_queued": full.max_queued},
        ) from full
    except ConditionFailed as exc:
        existing: Mapping[str, Any] = exc.item or {}
        ours = existing.get("lease_owner") in (owner, None) and existing.get("request_hash") == body_hash
        if existing.get("created_at") == item["created_at"] and ours:
            # Our own write, whose answer was lost and which the SDK retried (throttling, a dropped connection).
            message = existing if isinstance(existing, models.Message) else models.Message.from_item(existing)
        elif scoped_key and existing.get("status"):
            return _resume(existing, body_hash, body, receipt_base, deps)
        else:
            raise
    follow(message["id"])
    logger.info("message accepted", extra={"to": models.mask_msisdn(request.to), "encoding": analysis.encoding})
    if message.get("orphan_receipts"):
        from smsgw.logic import receipt

        message = receipt.apply_orphans(message, deps)
    if message["status"] == models.PENDING:
        message = delivery.attempt(deps, message)
    return _result(message)


def _resume(existing: Mapping[str, Any], body_hash: str, body: Any, receipt_base: str, deps: Deps) -> ApiResult:
    """A retried request whose key already names a message: carry that message on, never send a second one."""
    created = models.parse_time(existing["created_at"])
    if created < deps.clock() - timedelta(seconds=IDEMPOTENCY_WINDOW_SECONDS):
        # The key is reused after its window: a new request, with an id of its own.
        return send_message(body, receipt_base, deps=deps)
    if existing.get("request_hash") != body_hash:
        raise Conflict("Idempotency-Key was already used with a different request body", {"header": "Idempotency-Key"})
    follow(existing["id"])
    logger.info("retried request resumes its message", extra={"status": existing["status"]})
    if existing["status"] != models.PENDING:
        return _result(existing)
    claimed = delivery.claim(deps, existing["id"], delivery.new_lease_owner(), for_attempt=True)
    if claimed.after is None or claimed.before is None:  # another job is at work on it, or it just moved on
        return _result(deps.store.messages.get(existing["id"]) or existing)
    return _result(delivery.attempt(deps, claimed.after, ask_first=bool(claimed.before.get("may_be_at_eseye"))))


def _result(message: Mapping[str, Any]) -> ApiResult:
    view = models.public_view(message)
    if message["status"] == models.REJECTED:
        return Rejected(view, message.get("eseye_code"), message.get("eseye_description"))
    return Accepted(view)


# --- idempotency ---------------------------------------------------------------------------------


def _idempotent_send(deps: Deps) -> tuple[Callable[..., dict[str, Any]], Any]:
    """The Powertools idempotent runner and its config, built once per Deps (once per container)."""
    return deps.once("idempotent_send", lambda: _build_idempotent_send(deps))


def _build_idempotent_send(deps: Deps) -> tuple[Callable[..., dict[str, Any]], Any]:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    persistence = deps.store.idempotency_persistence()
    config = IdempotencyConfig(event_key_jmespath="key", payload_validation_jmespath="request", expires_after_seconds=IDEMPOTENCY_WINDOW_SECONDS)

    @idempotent_function(data_keyword_argument="command", persistence_store=persistence, config=config)  # type: ignore[untyped-decorator]  # untyped
    def run(command: dict[str, Any]) -> dict[str, Any]:
        # The outcome is what is kept, so a retry gets the same answer whatever HTTP makes of it.
        return to_record(send_message(command["request"]["body"], command["receipt_base"], deps=deps, scoped_key=command["key"]))

    return run, config


def send_idempotently(body: Any, receipt_base: str, key: str, caller: str, lambda_context: Any = None, deps: Deps | None = None) -> ApiResult:
    """send_message, once per (caller, Idempotency-Key) for 24 hours. Raises Conflict when the key was
    used with another body, or while the first request is still running."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    if not validation.printable(key, 1, validation.IDEMPOTENCY_KEY_MAX):
        raise ValidationFailed(f"Idempotency-Key must be 1 to {validation.IDEMPOTENCY_KEY_MAX} printable characters", {"header": "Idempotency-Key"})
    run, config = _idempotent_send(deps or default_deps())
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)  # an in-progress record expires with the invocation
    try:
        outcome = run(command={"key": f"{caller}#{key}", "request": {"body": body}, "receipt_base": receipt_base})
    except IdempotencyValidationError as exc:
        raise Conflict("Idempotency-Key was already used with a different request body", {"header": "Idempotency-Key"}) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise Conflict("a request with this Idempotency-Key is still in progress; retry shortly", {"header": "Idempotency-Key"}) from exc
    return from_record(outcome)


def submit(
    body: Any,
    receipt_base: str,
    *,
    dry_run: bool,
    idempotency_key: str | None,
    caller: str,
    lambda_context: Any = None,
    deps: Deps | None = None,
) -> ApiResult:
    """The POST /messages use case: a dry run, an idempotent send, or a plain send."""
    if dry_run:
        return send_message(body, receipt_base, dry_run=True, deps=deps)
    if idempotency_key is not None:
        return send_idempotently(body, receipt_base, idempotency_key, caller, lambda_context, deps)
    return send_message(body, receipt_base, deps=deps)
