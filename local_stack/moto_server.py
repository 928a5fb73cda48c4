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

For speed (the local stack runs two of these, one for DynamoDB, which is its bottleneck): connections
stay open, and DynamoDB's item answers and stream records are written with json.dumps, not moto's
generic serializer (docs/performance.md, "Both cores").
"""

from __future__ import annotations

import argparse
import io
import os
import threading
import traceback
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


def fast_dispatch() -> None:
    """Make moto's server find a request's service without a directory listing per request.

    Its dispatcher asks `list_of_moto_modules()` whether the host names a service, and that lists
    moto's package folder and stats each of its ~170 entries, under the dispatcher's lock, every time.
    """
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())  # the folders do not change while the server runs
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]


def fast_queries() -> None:
    """Make moto's Query read only what it must: it sorts every item of the table for every Query, even
    one on a single partition, which made the minute's sweeps (a Query per index shard) and every read
    of a batch's progress cost O(table log table) CPU, and the local stack slowed as a 10,000-recipient
    batch filled the table. Here a Query on the table reads its partition, and one on an index walks the
    items unsorted (moto sorts its results afterwards either way). Scans keep moto's sorted order, which
    their paging depends on. Requests are serialised (SerialDynamoDb), so the swap is not raced."""
    from moto.dynamodb.models.table import Table

    original = Table.query

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("index_name") or (len(args) > 6 and args[6]):
            source = [item for partition in self.items.values() for item in (partition.values() if self.range_key_attr else [partition])]
        else:
            partition = self.items.get(hash_key, {}) if hash_key is not None else {}
            source = list(partition.values()) if self.range_key_attr else [partition]
        self.all_items = lambda: source  # an instance attribute shadows the method for this call only
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query  # type: ignore[method-assign]


def _plain(value: Any) -> Any:
    """json.dumps' fallback for what moto's results hold besides JSON: as moto's serializer writes them."""
    import base64
    import calendar
    from datetime import datetime

    if isinstance(value, datetime):  # seconds since the epoch (moto's clock is UTC), to the millisecond
        return calendar.timegm(value.timetuple()) + (value.microsecond // 1000) / 1000.0
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


# Answers already in DynamoDB's JSON once moto has made them plain (DynamoResult): items, keys, capacity.
DATA_ACTIONS = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
}


def fast_answers() -> None:
    """Write DynamoDB's item answers and GetRecords' records with json.dumps, not moto's generic serializer.

    That serializer walks every answer, item by item and attribute by attribute, against the API model:
    under `make load` it took a third of the DynamoDB server's time (the stream's records, both images of
    each), and then a sixth (items), on the server that applies one request at a time.
    """
    import json

    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoHandler, DynamoResult
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    if getattr(DynamoDBStreamsHandler.get_records, "fast", False):
        return

    def get_records(self: Any) -> str:
        limit = self._get_param("Limit")
        records = self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit)
        return json.dumps(records, default=_plain)

    serialized = DynamoHandler.serialized

    def serialized_fast(self: Any, action_result: Any) -> Any:
        result = action_result.result
        if type(action_result) in (ActionResult, DynamoResult) and isinstance(result, dict) and self._get_action() in DATA_ACTIONS:
            try:
                body = json.dumps(result, default=_plain)
            except TypeError:
                return serialized(self, action_result)  # something only the serializer knows how to write
            return 200, {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}, body
        return serialized(self, action_result)

    DynamoHandler.serialized = serialized_fast  # type: ignore[method-assign]

    get_records.fast = True  # type: ignore[attr-defined]
    DynamoDBStreamsHandler.get_records = get_records  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto.server sets it: some answers name the server's own URL
    atomic_transactions()
    fast_dispatch()
    fast_answers()
    fast_queries()

    class RequestHandler(MotoRequestHandler):
        """werkzeug's handler, keeping connections open. werkzeug closes each after one answer (it cannot
        tell whether the application read the whole body), so every AWS call paid a new connection and a
        new thread. Here a request whose body has a length is read whole first, and answered whole."""

        # Headers and body leave in separate writes: on a kept connection, Nagle would hold the body
        # back until the client's delayed ACK (~40 ms a call).
        disable_nagle_algorithm = True

        def run_wsgi(self) -> None:
            length = self.headers.get("Content-Length", "0").strip()
            if self.headers.get("Transfer-Encoding") or self.headers.get("Expect") or not length.isdigit():
                return super().run_wsgi()  # werkzeug's way, and the connection closes
            self.environ = environ = self.make_environ()
            environ["wsgi.input"] = io.BytesIO(self.rfile.read(int(length)))
            started: list[Any] = []
            written: list[bytes] = []

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
                started[:] = [status, headers]
                return written.append

            try:
                answer = app(environ, start_response)
                try:
                    body = b"".join([*written, *answer])
                finally:
                    close = getattr(answer, "close", None)
                    if close:
                        close()
                status, headers = started[-2], started[-1]
            except Exception:
                self.close_connection = True
                self.log_error("%s", traceback.format_exc())
                status, headers, body = "500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")], b"Internal Server Error"
            code, _, reason = status.partition(" ")
            self.send_response(int(code), reason)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass  # a line per request, formatted under the GIL, that nobody reads

    app = SerialDynamoDb(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=RequestHandler)


if __name__ == "__main__":
    main()
