"""moto's server mode, with DynamoDB requests applied one at a time, as `python -m moto.server` would run it otherwise.

DynamoDB applies each request atomically; moto's threaded server does not. A TransactWriteItems whose
condition fails restores a copy of the whole table taken when it began, erasing what other requests wrote
meanwhile: with racing sends to one SIM (each a transaction under the SIM's revision, and losers are
expected), accepted messages vanished from the local stack. Serialising DynamoDB (and its stream) gives
back DynamoDB's atomicity; moto holds the GIL for that work anyway. SQS, SNS and Secrets Manager stay
concurrent, so a long poll never holds up the table.

moto also rolls a failed transaction back by putting that whole-table copy in place of the table, stream
included: the stream readers' iterators stay on the old stream, which never gets another record (the
queue's hand-overs stopped), and every transaction paid for a copy of the table and all its stream
records. Here a failed transaction puts back only the items it touched and drops its stream records.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

Environ = dict[str, Any]
WsgiApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]


class SerialDynamoDb:
    """WSGI middleware: one DynamoDB or DynamoDB Streams request at a time, answer included."""

    def __init__(self, app: WsgiApp):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB"):
            return self.app(environ, start_response)
        with self.lock:
            answer = self.app(environ, start_response)
            try:
                return [b"".join(answer)]  # the whole answer inside the lock: WSGI bodies may be lazy
            finally:
                close = getattr(answer, "close", None)
                if close:
                    close()


def atomic_transactions() -> None:
    """Make moto's TransactWriteItems undo a failure in place (requests are serialised: SerialDynamoDb)."""
    import copy

    from moto.dynamodb import models as dynamodb
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class TablesNotCopied:
        """moto's `copy` module as transact_write_items sees it: its whole-table snapshot is not taken."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    original = dynamodb.DynamoDBBackend.transact_write_items
    if getattr(original, "atomic", False):
        return  # patched already (each test's stack asks again)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []  # (table, hash key, range key, the item before, or None)
        streams: dict[str, tuple[Any, int]] = {}  # table name -> (its stream, records it had)
        for entry in transact_items:
            op: Any = next(iter(entry.values()), {}) if isinstance(entry, dict) else {}
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            if table.hash_key_attr not in key or (table.range_key_attr and table.range_key_attr not in key):
                continue  # moto refuses it before writing anything
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
            if table.stream_shard is not None:
                streams.setdefault(table.name, (table.stream_shard, len(table.stream_shard.items)))
        live = dict(self.tables)
        setattr(dynamodb, "copy", TablesNotCopied())  # noqa: B010 - the module global moto's code reads
        try:
            original(self, transact_items)
        except Exception:
            self.tables.update(live)
            for table, hash_key, range_key, before in reversed(saved):
                if range_key is None:
                    if before is None:
                        table.items.pop(hash_key, None)
                    else:
                        table.items[hash_key] = before
                elif before is None:
                    table.items[hash_key].pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = before
            for stream, records in streams.values():
                del stream.items[records:]
            raise
        finally:
            setattr(dynamodb, "copy", copy)  # noqa: B010

    transact_write_items.atomic = True  # type: ignore[attr-defined]
    dynamodb.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto.server sets it: some answers name the server's own URL
    atomic_transactions()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, SerialDynamoDb(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
