"""The API client: one method per customer route, answers as the API gives them (plain dicts)."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
BASE_DELAY = 0.5
MAX_DELAY = 20.0


class ApiError(Exception):
    """The API's error body, `{"error": {"code", "message", "details"}}`, with the HTTP status; `body` is the
    answer's text as the API sent it."""

    def __init__(self, status: int, code: str, message: str, details: Any = None, body: str = ""):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details, self.body = status, code, message, details, body

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            return cls(response.status_code, "http_error", response.text[:200], body=response.text)
        error = document.get("error")
        if not isinstance(error, dict):
            # API Gateway's own refusals (no route, no credentials, throttled): {"message": ...}, the kind in a header
            code = response.headers.get("x-amzn-ErrorType", "http_error").split(":")[0]
            return cls(response.status_code, code, str(document.get("message", response.text[:200])), body=response.text)
        message = error.get("message", response.text[:200])
        return cls(response.status_code, error.get("code", "http_error"), message, error.get("details"), response.text)


class Answer(dict[str, Any]):
    """A JSON object as the API answered it, with the HTTP status it came with: `answer.http_status` is 201
    when a PUT created what it names and 200 when it replaced it. Not `.status`: a message's own `status`
    field must stay what templates and attribute lookups find."""

    def __init__(self, document: dict[str, Any], http_status: int):
        super().__init__(document)
        self.http_status = http_status


def _decoded(response: requests.Response) -> Any:
    if not response.content:
        return None
    document = response.json()
    return Answer(document, response.status_code) if isinstance(document, dict) else document


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _retry_after(response: requests.Response | None) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Client:
    """`Client("https://.../v1", api_key="...")` or `Client(url, sign=True, region="eu-west-1")` (IAM, SigV4).

    Retries: GET, PUT and DELETE are idempotent and retried on a connection error, a timeout, 429 or 5xx;
    POST /messages and POST /batches too, with one Idempotency-Key for all attempts of a call, so the
    gateway answers a retry with the first send's answer rather than sending twice. Other POSTs are retried
    only when the request surely did not arrive (connection refused) or the answer says it was not acted on (429).
    """

    def __init__(
        self,
        api_url: str,
        *,
        sign: bool = False,
        region: str | None = None,
        api_key: str | None = None,
        session: requests.Session | None = None,
        max_retries: int = 3,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.api_url = api_url.rstrip("/")
        self.sign, self.region, self.api_key = sign, region, api_key
        self.session = session or requests.Session()
        self.max_retries, self.timeout, self.sleep = max_retries, timeout, sleep

    # -- transport

    def _prepare(self, method: str, path: str, body: Any, params: dict[str, Any] | None, headers: dict[str, str]) -> requests.PreparedRequest:
        data = json.dumps(body) if body is not None else None
        params = {k: ("true" if v is True else "false" if v is False else v) for k, v in (params or {}).items() if v is not None}
        all_headers = {"Content-Type": "application/json", **headers}
        if self.api_key:
            all_headers["x-api-key"] = self.api_key
        prepared = self.session.prepare_request(requests.Request(method, f"{self.api_url}{path}", data=data, params=params, headers=all_headers))
        if self.sign:
            # as the CLI signs (cli/smsgw_cli/main.py): boto3 is needed only by those who sign
            import boto3
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest

            session = boto3.Session()
            aws_request = AWSRequest(method=method, url=prepared.url, data=data, headers=dict(all_headers))
            SigV4Auth(session.get_credentials(), "execute-api", self.region or session.region_name).add_auth(aws_request)
            prepared.headers.update(dict(aws_request.headers))
        return prepared

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        # full jitter, capped; a Retry-After from the server wins when it asks for longer
        delay = random.uniform(0, min(MAX_DELAY, BASE_DELAY * 2**attempt))
        after = _retry_after(response)
        return max(delay, min(after, MAX_DELAY * 3)) if after is not None else delay

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        *,
        retry_ambiguous: bool | None = None,
    ) -> Any:
        """One call with its retries; the decoded answer, or ApiError."""
        if retry_ambiguous is None:
            retry_ambiguous = method in ("GET", "PUT", "DELETE", "HEAD")
        attempt = 0
        while True:
            # prepared afresh each attempt: a SigV4 signature carries its time
            prepared = self._prepare(method, path, body, params, dict(headers or {}))
            response: requests.Response | None = None
            try:
                response = self.session.send(prepared, timeout=self.timeout)
            except requests.ConnectionError as error:
                # a refused connection never reached the server; anything else (reset, read timeout) may have
                unsent = not isinstance(error, requests.ReadTimeout) and "refused" in str(error).lower()
                if attempt >= self.max_retries or not (retry_ambiguous or unsent):
                    raise
            except requests.Timeout:
                if attempt >= self.max_retries or not retry_ambiguous:
                    raise
            else:
                retryable = response.status_code == 429 or (retry_ambiguous and response.status_code in RETRYABLE_STATUSES)
                if not retryable or attempt >= self.max_retries:
                    if response.status_code >= 400:
                        raise ApiError.from_response(response)
                    return _decoded(response)
            self.sleep(self._delay(attempt, response))
            attempt += 1

    def _idempotent_post(self, path: str, body: dict[str, Any], params: dict[str, Any] | None, idempotency_key: str | None) -> Any:
        key = idempotency_key or str(uuid.uuid4())  # once per call: every retry carries the same key
        return self.request("POST", path, body, params, {"Idempotency-Key": key}, retry_ambiguous=True)

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor = params.pop("cursor", None)
        while True:
            page = self.request("GET", path, params={**params, "cursor": cursor})
            yield from page.get(key) or []
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- messages

    def send_message(
        self, to: str, text: str | None = None, *, idempotency_key: str | None = None, dry_run: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """POST /messages: `text`, or `data`+`data_coding`, or `command`+`variables`; other fields as the API names them."""
        body = {"to": to, **({"text": text} if text is not None else {}), **fields}
        return self._idempotent_post("/messages", body, {"dry_run": True} if dry_run else None, idempotency_key)

    send = send_message

    def get_message(self, message_id: str, *, refresh: bool = False) -> dict[str, Any]:
        return self.request("GET", f"/messages/{_segment(message_id)}", params={"refresh": True} if refresh else None)

    def list_messages(self, msisdn: str | None = None, **filters: Any) -> dict[str, Any]:
        """One page, newest first: one SIM's messages, or the whole fleet's without `msisdn`. Filters `limit`,
        `cursor`, `direction`, `status`, `since`, `until`; the fleet listing also `batch_id` and `client_ref`."""
        return self.request("GET", "/messages", params={"msisdn": msisdn, **filters})

    def iter_messages(self, msisdn: str | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        return self._pages("/messages", "items", {"msisdn": msisdn, **filters})

    def cancel_message(self, message_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/messages/{_segment(message_id)}")

    # -- sims

    def get_sim(self, msisdn: str) -> dict[str, Any]:
        return self.request("GET", f"/sims/{_segment(msisdn)}")

    def put_sim_settings(self, msisdn: str, **settings: int) -> dict[str, Any]:
        return self.request("PUT", f"/sims/{_segment(msisdn)}/settings", settings)

    def delete_sim_settings(self, msisdn: str) -> dict[str, Any]:
        return self.request("DELETE", f"/sims/{_segment(msisdn)}/settings")

    # -- allowlist and blocklist (`which` is "allow" or "block")

    def get_list_entry(self, which: str, msisdn: str) -> dict[str, Any]:
        return self.request("GET", f"/lists/{_segment(which)}/{_segment(msisdn)}")

    def put_list_entry(self, which: str, msisdn: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.request("PUT", f"/lists/{_segment(which)}/{_segment(msisdn)}", body or {})

    def delete_list_entry(self, which: str, msisdn: str) -> dict[str, Any]:
        return self.request("DELETE", f"/lists/{_segment(which)}/{_segment(msisdn)}")

    # -- saved commands

    def put_command(self, name: str, definition: dict[str, Any]) -> Answer:
        return self.request("PUT", f"/commands/{_segment(name)}", definition)

    def get_command(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/commands/{_segment(name)}")

    def list_commands(self, **params: Any) -> dict[str, Any]:
        return self.request("GET", "/commands", params=params)

    def iter_commands(self, **params: Any) -> Iterator[dict[str, Any]]:
        return self._pages("/commands", "items", params)

    def delete_command(self, name: str) -> dict[str, Any]:
        return self.request("DELETE", f"/commands/{_segment(name)}")

    # -- groups

    def put_group(self, name: str, members: list[str]) -> Answer:
        return self.request("PUT", f"/groups/{_segment(name)}", {"members": members})

    def add_group_members(self, name: str, members: list[str]) -> dict[str, Any]:
        # adding a member twice changes nothing, so a retry is safe
        return self.request("POST", f"/groups/{_segment(name)}/members", {"members": members}, retry_ambiguous=True)

    def remove_group_member(self, name: str, msisdn: str) -> dict[str, Any]:
        return self.request("DELETE", f"/groups/{_segment(name)}/members/{_segment(msisdn)}")

    def get_group(self, name: str, **params: Any) -> dict[str, Any]:
        return self.request("GET", f"/groups/{_segment(name)}", params=params)

    def iter_group_members(self, name: str, **params: Any) -> Iterator[str]:
        return self._pages(f"/groups/{_segment(name)}", "members", params)

    def list_groups(self, **params: Any) -> dict[str, Any]:
        return self.request("GET", "/groups", params=params)

    def iter_groups(self, **params: Any) -> Iterator[dict[str, Any]]:
        return self._pages("/groups", "items", params)

    def delete_group(self, name: str) -> dict[str, Any]:
        return self.request("DELETE", f"/groups/{_segment(name)}")

    # -- batches

    def create_batch(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        return self._idempotent_post("/batches", body, None, idempotency_key)

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return self.request("GET", f"/batches/{_segment(batch_id)}")

    def list_batches(self, **filters: Any) -> dict[str, Any]:
        """One page of recent batches, newest first, each with its counts. Filters `state`, `since`, `until`,
        `limit`, `cursor`."""
        return self.request("GET", "/batches", params=filters)

    def iter_batches(self, **filters: Any) -> Iterator[dict[str, Any]]:
        return self._pages("/batches", "items", filters)

    def batch_messages(self, batch_id: str, **params: Any) -> dict[str, Any]:
        return self.request("GET", f"/batches/{_segment(batch_id)}/messages", params=params)

    def iter_batch_messages(self, batch_id: str, status: str | None = None, **params: Any) -> Iterator[dict[str, Any]]:
        return self._pages(f"/batches/{_segment(batch_id)}/messages", "items", {"status": status, **params})

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/batches/{_segment(batch_id)}")

    # -- events

    def replay_events(self, since: str, until: str, **filters: Any) -> dict[str, Any]:
        # not retried on an ambiguous failure: a second replay would publish every event again
        return self.request("POST", "/events/replay", {"since": since, "until": until, **filters})

    # -- operations

    def health(self) -> dict[str, Any]:
        """The health page: `dead_letter_queues` (name, depth, in_flight, redrive, advice), `quarantine`
        (count, days, latest_at, complete) and `eseye` (sent, rejected, retried, error_rate over 15 minutes)."""
        return self.request("GET", "/health")

    def redrive(self, queue: str, limit: int = 100) -> dict[str, Any]:
        """Move up to `limit` (1-1000) dead-lettered messages of `queue` (send-retries, callbacks, batch-jobs) back
        to their queue: {"queue", "moved", "remaining"}. Not retried after an ambiguous failure (the first may have
        moved some; ask again to move the rest)."""
        return self.request("POST", "/health/redrive", {"queue": queue, "limit": limit})
