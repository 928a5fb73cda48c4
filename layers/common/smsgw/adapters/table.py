"""The DynamoDB table, low level: the client, (de)serialisation, error mapping and batch writes.

It knows the table's primary key (PK, SK) and nothing of what the items mean: every key prefix, index
and expression belongs to the repositories in adapters/store.py, where the key design is written down.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from smsgw.adapters import aws
from smsgw.errors import StoreUnavailable

Item = dict[str, Any]  # an item as Python values (str, int, float, bool, list, dict, None)
AttributeValue = dict[str, Any]  # DynamoDB's wire form, e.g. {"S": "x"}
Key = tuple[str, str]  # (PK, SK)

BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100  # keys in one BatchGetItem


class ConditionFailed(Exception):
    """A conditional write did not apply. `item` is the stored record at that moment, if any: as the
    repository that made the write hands its records out (a models.Message from MessageRepository).
    For a transaction, `failed` maps the position of each write whose condition failed to its item."""

    item: Any

    def __init__(self, item: Any, failed: dict[int, Any] | None = None):
        super().__init__("condition failed")
        self.item = item
        self.failed = failed or {}


class Contention(StoreUnavailable):
    """A transaction met another one on the same item, or was throttled: read again and retry."""


# Cancellation reasons that say "not now" rather than "no": the SDK does not retry a cancelled transaction.
RETRYABLE_CANCELLATIONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"})


class Table:
    def __init__(self, table_name: str, client: Any = None, ttl_seconds: int = 400 * 86400):
        self.table_name = table_name
        self._client = client
        self.ttl_seconds = ttl_seconds
        self._serializer: Any = None
        self._deserializer: Any = None

    @property
    def client(self) -> Any:
        """The boto3 DynamoDB client (Powertools' idempotency persistence layer writes through it too)."""
        return self._client or aws.client("dynamodb")

    def expiry(self, epoch_now: float) -> int:
        """The `ttl` of an item written now that lives as long as the messages do."""
        return int(epoch_now) + self.ttl_seconds

    # --- (de)serialisation -------------------------------------------------------------------
    def serialize(self, value: Any) -> AttributeValue:
        if self._serializer is None:
            from boto3.dynamodb.types import TypeSerializer

            self._serializer = TypeSerializer()
        result: AttributeValue = self._serializer.serialize(_no_floats(value))
        return result

    def serialize_item(self, item: Mapping[str, Any]) -> dict[str, AttributeValue]:
        """An item in DynamoDB's form; None values are left out (DynamoDB has no use for them)."""
        return {k: self.serialize(v) for k, v in item.items() if v is not None}

    def deserialize(self, item: Mapping[str, AttributeValue] | None) -> Item | None:
        if item is None:
            return None
        if self._deserializer is None:
            from boto3.dynamodb.types import TypeDeserializer

            self._deserializer = TypeDeserializer()
        return {k: _plain(self._deserializer.deserialize(v)) for k, v in item.items()}

    @staticmethod
    def key(pk: str, sk: str) -> dict[str, AttributeValue]:
        return {"PK": {"S": pk}, "SK": {"S": sk}}

    # --- calls -------------------------------------------------------------------------------
    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One call on this table. Raises ConditionFailed (with the item DynamoDB returned) or StoreUnavailable."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            result: dict[str, Any] = getattr(self.client, operation)(TableName=self.table_name, **kwargs)
            return result
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise ConditionFailed(self.deserialize(exc.response.get("Item"))) from exc  # type: ignore[arg-type]  # the stubs type Item loosely
            raise StoreUnavailable(f"DynamoDB {operation} failed: {exc.response.get('Error', {}).get('Code')}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB {operation} failed: {type(exc).__name__}") from exc

    def update(self, pk: str, sk: str, **kwargs: Any) -> Item:
        """UpdateItem on one item. Returns the item DynamoDB returned (per ReturnValues), or {}."""
        result = self.call("update_item", Key=self.key(pk, sk), **kwargs)
        return self.deserialize(result.get("Attributes")) or {}

    def get(self, pk: str, sk: str) -> Item | None:
        result = self.call("get_item", Key=self.key(pk, sk), ConsistentRead=True)
        return self.deserialize(result.get("Item"))

    def put(self, item: Item, *, if_absent: bool = False) -> bool:
        """Put an item (which carries its PK and SK). With if_absent, returns False instead of overwriting."""
        kwargs: dict[str, Any] = {"Item": self.serialize_item(item)}
        if if_absent:
            kwargs["ConditionExpression"] = "attribute_not_exists(PK)"
        try:
            self.call("put_item", **kwargs)
        except ConditionFailed:
            return False
        return True

    def put_items(self, items: Sequence[Item]) -> None:
        """Write items in batches of 25, retrying what DynamoDB leaves unprocessed. Raises StoreUnavailable."""
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(items), BATCH_WRITE_MAX):
            requests = [{"PutRequest": {"Item": self.serialize_item(i)}} for i in items[start : start + BATCH_WRITE_MAX]]
            pending: dict[str, Any] = {self.table_name: requests}
            for attempt in range(6):
                try:
                    result = self.client.batch_write_item(RequestItems=pending)
                except (BotoCoreError, ClientError) as exc:
                    raise StoreUnavailable("DynamoDB batch_write_item failed") from exc
                pending = result.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(0.05 * 2**attempt)
            if pending:
                raise StoreUnavailable("DynamoDB left writes unprocessed")

    def write_batches(self, puts: Sequence[Item] = (), deletes: Sequence[Key] = (), attempts: int = 10, deadline: float | None = None) -> int:
        """Put `puts` and delete the items at `deletes` in BatchWriteItem calls of 25, retrying what DynamoDB
        leaves unprocessed (throttling of one hot partition) with a growing pause, up to 1 s, but never past
        `deadline` (time.monotonic()). Returns the number of calls made. Raises StoreUnavailable when DynamoDB
        fails, or still leaves writes unprocessed after `attempts` tries or at the deadline."""
        from botocore.exceptions import BotoCoreError, ClientError

        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": self.serialize_item(i)}} for i in puts]
        requests += [{"DeleteRequest": {"Key": self.key(pk, sk)}} for pk, sk in deletes]
        calls = 0
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending: dict[str, Any] = {self.table_name: requests[start : start + BATCH_WRITE_MAX]}
            for attempt in range(attempts):
                try:
                    result = self.client.batch_write_item(RequestItems=pending)
                except (BotoCoreError, ClientError) as exc:
                    raise StoreUnavailable("DynamoDB batch_write_item failed") from exc
                calls += 1
                pending = result.get("UnprocessedItems") or {}
                pause = min(0.05 * 2**attempt, 1.0)
                if not pending or (deadline is not None and time.monotonic() + pause > deadline):
                    break
                time.sleep(pause)
            if pending:
                raise StoreUnavailable("DynamoDB left writes unprocessed")
        return calls

    def batch_get(self, keys: Sequence[Key], projection: Sequence[str] = ()) -> list[Item]:
        """The items that exist of `keys` (strongly consistent, any number: 100 a call), in no particular order;
        with `projection`, only those attributes of them (the rare fallback to single reads returns them whole)."""
        from botocore.exceptions import BotoCoreError, ClientError

        found: list[Item] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            some = keys[start : start + BATCH_GET_MAX]
            request: dict[str, Any] = {self.table_name: {"Keys": [self.key(pk, sk) for pk, sk in some], "ConsistentRead": True}}
            if projection:
                names = {f"#p{n}": name for n, name in enumerate(projection)}
                request[self.table_name].update(ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
            try:
                result = self.client.batch_get_item(RequestItems=request)
            except (BotoCoreError, ClientError) as exc:
                raise StoreUnavailable("DynamoDB batch_get_item failed") from exc
            if result.get("UnprocessedKeys"):
                # Rare (throttling): fall back to single reads rather than guess.
                found += [i for i in (self.get(pk, sk) for pk, sk in some) if i]
            else:
                found += [self.deserialize(i) or {} for i in result.get("Responses", {}).get(self.table_name, [])]
        return found

    def query(
        self,
        *,
        index: str | None = None,
        key_condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        filter_expression: str | None = None,
        forward: bool = True,
        limit: int | None = None,
        start_key: dict[str, Any] | None = None,
    ) -> tuple[list[Item], dict[str, Any] | None]:
        """One Query. `values` are Python values. Returns the items and DynamoDB's LastEvaluatedKey."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {k: self.serialize(v) for k, v in values.items()},
            "ScanIndexForward": forward,
        }
        if index:
            kwargs["IndexName"] = index
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression
        if limit:
            kwargs["Limit"] = limit
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        result = self.call("query", **kwargs)
        items = [self.deserialize(i) or {} for i in result.get("Items", [])]
        last: dict[str, Any] | None = result.get("LastEvaluatedKey")
        return items, last

    def transact(self, writes: list[dict[str, Any]]) -> None:
        """All-or-nothing writes (TransactWriteItems entries without TableName, which is added here).
        botocore fills in ClientRequestToken, so its own retry after a lost answer is a no-op for DynamoDB.
        Raises ConditionFailed (with the failing writes' items, when they asked for ALL_OLD),
        Contention when another transaction held an item, StoreUnavailable otherwise."""
        from botocore.exceptions import BotoCoreError, ClientError

        items = [{kind: {"TableName": self.table_name, **body} for kind, body in write.items()} for write in writes]
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons", [])
                failed = {
                    i: self.deserialize(r.get("Item"))  # type: ignore[arg-type]  # the stubs type Item loosely
                    for i, r in enumerate(reasons)
                    if r.get("Code") == "ConditionalCheckFailed"
                }
                if failed:
                    raise ConditionFailed(next(iter(failed.values())), failed) from exc
                if any(r.get("Code") in RETRYABLE_CANCELLATIONS for r in reasons):
                    raise Contention(f"DynamoDB transaction cancelled: {[r.get('Code') for r in reasons]}") from exc
            if exc.response.get("Error", {}).get("Code") == "TransactionConflictException":
                raise Contention("DynamoDB transaction conflict") from exc
            raise StoreUnavailable(f"DynamoDB transaction failed: {exc.response.get('Error', {}).get('Code')}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("DynamoDB transaction failed") from exc


def _no_floats(value: Any) -> Any:
    """DynamoDB wants Decimal, not float."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _no_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_floats(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Decimals back to int/float and sets to sorted lists, so items serialise as JSON."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value
