"""Fixtures shared by the integration tests (the stack itself is in tests/conftest.py)."""

import threading

import pytest


@pytest.fixture
def atomic_items(monkeypatch):
    """DynamoDB applies each request, and each transaction, atomically; moto's in-process backend needs a
    lock for that. Reentrant: moto's transact_write_items calls its own put_item and delete_item. Reads
    take it too, so that none sees half a transaction or an item another thread is changing."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for method in ("update_item", "put_item", "delete_item", "transact_write_items", "get_item", "query", "batch_get_item"):
        original = getattr(DynamoDBBackend, method)

        def locked(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, method, locked)
