"""smsgw_client's health() and redrive(): the console's Health page asks through them."""

from __future__ import annotations

import json

import pytest
import requests

from smsgw_client import ApiError, Client
from tests.helpers import ScriptedApi

API = "https://api.example.test/v1"


def client_for(api: ScriptedApi) -> Client:
    session = requests.Session()
    session.mount("https://", api)
    return Client(API, session=session, sleep=lambda _: None)


def test_health_reads_the_health_page():
    page = {"dead_letter_queues": [], "quarantine": {"count": 0}, "eseye": {"error_rate": None}, "checked_at": "t"}
    api = ScriptedApi((200, page))
    assert client_for(api).health() == page
    assert (api.requests[0].method, api.requests[0].url) == ("GET", f"{API}/health")


def test_redrive_posts_the_queue_and_limit():
    api = ScriptedApi((200, {"queue": "callbacks", "moved": 3, "remaining": 0}), (200, {"queue": "send-retries", "moved": 0, "remaining": 0}))
    client = client_for(api)
    assert client.redrive("callbacks", limit=3) == {"queue": "callbacks", "moved": 3, "remaining": 0}
    client.redrive("send-retries")
    assert [(r.method, r.url, json.loads(r.body)) for r in api.requests] == [
        ("POST", f"{API}/health/redrive", {"queue": "callbacks", "limit": 3}),
        ("POST", f"{API}/health/redrive", {"queue": "send-retries", "limit": 100}),
    ]


def test_a_refused_redrive_raises_the_apis_error_and_an_ambiguous_failure_is_not_retried():
    refusal = {"error": {"code": "not_redrivable", "message": "publisher cannot be redriven", "details": {"redrivable": ["send-retries"]}}}
    api = ScriptedApi((422, refusal), (503, {"error": {"code": "service_unavailable", "message": "SQS"}}))
    client = client_for(api)
    with pytest.raises(ApiError) as refused:
        client.redrive("publisher")
    assert (refused.value.status, refused.value.code, refused.value.details) == (422, "not_redrivable", {"redrivable": ["send-retries"]})
    # a 503 may have come after some messages moved: the caller decides whether to ask again
    with pytest.raises(ApiError) as failed:
        client.redrive("callbacks")
    assert failed.value.status == 503 and len(api.requests) == 2
