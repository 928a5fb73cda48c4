"""Fixtures shared by the integration tests (the stack itself is in tests/conftest.py)."""

import threading

import pytest


@pytest.fixture
def atomic_items(monkeypatch):
    """DynamoDB applies each conditional write atomically; moto's in-process backend needs a lock for that."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.Lock()
    for method in ("update_item", "put_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, method)

        def locked(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, method, locked)
