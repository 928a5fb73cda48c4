"""DynamoDB: the single table that is the gateway's source of truth.

Key design (also in template.yaml):
  message         PK MSG#<id>          SK META      GSI1PK MSISDN#<digits>  GSI1SK <created_at>#<id>
  concat buffer   PK CONCAT#<from>#<ref>#<total>  SK META  one long MO's parts (part_<n>) until it is whole or
                  too old; then closed (state, the closed message's Eseye ids) and reopened when the ref is reused
  open buffer    GSI3PK CONCAT#<hex digit>  GSI3SK <opened_at>#<buffer PK>  sparse, while open, for the sweep
  receipt orphan  PK MSG#<id>          SK META      (no status) receipts for an id not yet stored
  attempt lease   on the message item: lease_owner, lease_until, attempts, may_be_at_eseye
  pending        GSI3PK PENDING#<last hex digit of id>  GSI3SK <created_at>#<id>  sparse, for the reconciler
  list entry      PK LIST#allow|block  SK <msisdn>  LIST#... / #COUNT holds the list's size
  idempotency     PK IDEM              SK <key hash>  (Powertools Idempotency)
  quarantine      PK Q#<date>          SK <time>#<uuid>  raw webhook requests we could not parse
A message's status history lives inside its item (a list), so a status change is one conditional
UpdateItem and the table stream carries the whole message to the event publisher.
"""

from __future__ import annotations

from typing import Any

from smsgw.adapters import aws
from smsgw.errors import StoreUnavailable
from smsgw.limits import bounded, json_size

META = "META"
MAX_ORPHAN_RECEIPTS = 8  # a real message gets a few receipts; a placeholder holds no more than this

# A message's history keeps its first entry, its latest ones and a count of those dropped between.
# A normal life is under 15 entries (attempts are bounded by SendMaxAttempts), so only a history
# something keeps adding to (receipts for a multi-IMSI SIM's copies, a refresh loop) reaches the
# bound. At ENTRY_LIMIT bytes each, 50 entries stay under 200 KB: half of DynamoDB's 400 KB item
# limit, the rest left for the message's other fields.
HISTORY_LIMIT = 50
HISTORY_TRIM_TO = 40  # trimmed ten below the bound, so a long history costs one extra write per ten
ENTRY_LIMIT = 4096  # bytes of one history entry (JSON, UTF-8)
FIELD_LIMIT = 2048  # bytes of one free-form string: Eseye's raw answers and descriptions, causes


def message_key(message_id: str) -> dict[str, dict[str, str]]:
    return {"PK": {"S": f"MSG#{message_id}"}, "SK": {"S": META}}


class ConditionFailed(Exception):
    """A conditional write did not apply. `item` is the stored item at that moment, if any."""

    def __init__(self, item: dict[str, Any] | None):
        super().__init__("condition failed")
        self.item = item


class Store:
    def __init__(self, table_name: str, client: Any = None, ttl_seconds: int = 400 * 86400):
        self.table_name = table_name
        self._client = client
        self.ttl_seconds = ttl_seconds
        self._serializer: Any = None
        self._deserializer: Any = None

    @property
    def client(self) -> Any:
        return self._client or aws.client("dynamodb")

    # --- (de)serialisation -------------------------------------------------------------------
    def _to_dynamo(self, value: Any) -> dict:
        if self._serializer is None:
            from boto3.dynamodb.types import TypeSerializer

            self._serializer = TypeSerializer()
        return self._serializer.serialize(_no_floats(value))

    def _from_dynamo(self, item: dict[str, Any] | None) -> dict[str, Any] | None:
        if item is None:
            return None
        if self._deserializer is None:
            from boto3.dynamodb.types import TypeDeserializer

            self._deserializer = TypeDeserializer()
        return {k: _plain(self._deserializer.deserialize(v)) for k, v in item.items()}

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(TableName=self.table_name, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise ConditionFailed(self._from_dynamo(exc.response.get("Item"))) from exc
            raise StoreUnavailable(f"DynamoDB {operation} failed: {exc.response.get('Error', {}).get('Code')}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB {operation} failed: {type(exc).__name__}") from exc

    def expiry(self, epoch_now: float) -> int:
        return int(epoch_now) + self.ttl_seconds

    # --- messages ------------------------------------------------------------------------------
    def get_message(self, message_id: str) -> dict[str, Any] | None:
        item = self._from_dynamo(self._call("get_item", Key=message_key(message_id), ConsistentRead=True).get("Item"))
        return item

    def create_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """Store a new message. An orphan placeholder (receipts that came first) is merged, not overwritten.

        Returns the stored item, including any `orphan_receipts` the caller must now apply.
        Raises ConditionFailed if a message with this id already exists.
        """
        names, values, sets = {"#status": "status"}, {}, []
        for index, (name, value) in enumerate(message.items()):
            if name in ("PK", "SK") or value is None:
                continue
            names[f"#a{index}"] = name
            values[f":v{index}"] = self._to_dynamo(value)
            sets.append(f"#a{index} = :v{index}")
        result = self._call(
            "update_item",
            Key=message_key(message["id"]),
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_not_exists(#status)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return self._from_dynamo(result["Attributes"]) or {}

    def update_message(
        self,
        message_id: str,
        entry: dict[str, Any],
        *,
        status: str | None = None,
        allowed_from: tuple[str, ...] | None = None,
        allowed_from_inferred: tuple[str, ...] = (),
        sets: dict[str, Any] | None = None,
        add: dict[str, Any] | None = None,
        receipt_key: str | None = None,
        remove: tuple[str, ...] = (),
        require: tuple[str, ...] = (),
        untouched_by_attempts_at: str | None = None,
    ) -> dict[str, Any]:
        """Append `entry` to the message's history and apply the change, atomically and conditionally.

        untouched_by_attempts_at: apply only if no attempt holds the lease at this time and no attempt
        may have reached Eseye (what a cancel that never calls Eseye needs).

        status/allowed_from: move the status, only from one of `allowed_from`, or from one of
        `allowed_from_inferred` when the gateway inferred that status (status_source = gateway).
        receipt_key: a receipt's identity; the write applies only if it was never recorded before.
        Returns the new item. Raises ConditionFailed (with the current item) when a condition does not hold.
        """
        entry = bounded_entry(entry)
        sets = {name: bounded(value, FIELD_LIMIT) for name, value in sets.items()} if sets else sets
        names = {"#history": "history", "#updated": "updated_at", "#status": "status"}
        values: dict[str, Any] = {":entry": self._to_dynamo([entry]), ":now": self._to_dynamo(entry["at"])}
        expression = ["#history = list_append(if_not_exists(#history, :empty), :entry)", "#updated = :now"]
        values[":empty"] = {"L": []}
        conditions = ["attribute_exists(#status)"]
        if untouched_by_attempts_at is not None:
            names.update({"#until": "lease_until", "#unsure": "may_be_at_eseye"})
            values.update({":lease_now": self._to_dynamo(untouched_by_attempts_at), ":true": {"BOOL": True}})
            conditions.append("(attribute_not_exists(#until) OR #until < :lease_now) AND NOT (#unsure = :true)")
        for index, name in enumerate(require):
            names[f"#q{index}"] = name
            conditions.append(f"attribute_exists(#q{index})")
        if status is not None:
            expression.append("#status = :status")
            values[":status"] = self._to_dynamo(status)
            if status != "pending":  # off the stale-pending index once it has moved on
                remove = (*remove, "GSI3PK", "GSI3SK")
        if allowed_from:
            placeholders = []
            for index, value in enumerate(allowed_from):
                values[f":from{index}"] = self._to_dynamo(value)
                placeholders.append(f":from{index}")
            allowed = f"#status IN ({', '.join(placeholders)})"
            if allowed_from_inferred:
                names["#source"] = "status_source"
                values[":gateway"] = self._to_dynamo("gateway")
                inferred = []
                for index, value in enumerate(allowed_from_inferred):
                    values[f":inf{index}"] = self._to_dynamo(value)
                    inferred.append(f":inf{index}")
                allowed = f"({allowed} OR (#status IN ({', '.join(inferred)}) AND #source = :gateway))"
            conditions.append(allowed)
        for index, (name, value) in enumerate((sets or {}).items()):
            names[f"#s{index}"] = name
            values[f":s{index}"] = self._to_dynamo(value)
            expression.append(f"#s{index} = :s{index}")
        update = "SET " + ", ".join(expression)
        add_parts = []
        for index, (name, value) in enumerate((add or {}).items()):
            names[f"#n{index}"] = name
            values[f":n{index}"] = self._to_dynamo(value)
            add_parts.append(f"#n{index} :n{index}")
        if receipt_key is not None:
            names["#receipts"] = "receipt_keys"
            values[":rk"] = {"SS": [receipt_key]}
            values[":rks"] = self._to_dynamo(receipt_key)
            add_parts.append("#receipts :rk")
            conditions.append("(attribute_not_exists(#receipts) OR NOT contains(#receipts, :rks))")
        if add_parts:
            update += " ADD " + ", ".join(add_parts)
        if remove:
            remove = tuple(dict.fromkeys(remove))
            for index, name in enumerate(remove):
                names[f"#r{index}"] = name
            update += " REMOVE " + ", ".join(f"#r{index}" for index in range(len(remove)))
        result = self._call(
            "update_item",
            Key=message_key(message_id),
            UpdateExpression=update,
            ConditionExpression=" AND ".join(conditions),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return self._trim_history(message_id, self._from_dynamo(result["Attributes"]) or {})

    def _trim_history(self, message_id: str, item: dict[str, Any]) -> dict[str, Any]:
        """Once a history passes HISTORY_LIMIT, keep its first entry and its latest HISTORY_TRIM_TO - 1,
        and count the others in `history_dropped`. Only then: the common path pays nothing.

        Conditional on the history it saw (its length, and the dropped count every trim moves), so a
        write that came in between is never lost: the trim then does not apply, and the next write over
        the bound trims. A trim that fails leaves the change stored. Returns the item as it now stands.
        """
        history = item.get("history") or []
        if len(history) <= HISTORY_LIMIT:
            return item
        cut = len(history) - HISTORY_TRIM_TO + 1
        kept = [history[0], *history[cut:]]
        dropped = int(item.get("history_dropped") or 0)
        names = {"#h": "history", "#dropped": "history_dropped"}
        values = {":kept": self._to_dynamo(kept), ":n": {"N": str(len(history))}, ":k": {"N": str(len(history) - len(kept))}}
        if dropped:
            values[":d"] = {"N": str(dropped)}
        update = "SET #h = :kept ADD #dropped :k"
        # The dedup keys of receipts whose entries go (logic/receipt.py's "<referenceid>|<status>") go too,
        # or the set would grow without bound. A redelivery of one of those is then noted again, and moves
        # nothing: statuses only move forward.
        receipts = [e.get("detail", {}).get("receipt") for e in history[1:cut]]
        gone = {f"{r.get('referenceid', '')}|{r.get('status', '')}" for r in receipts if isinstance(r, dict)} & set(item.get("receipt_keys") or [])
        if gone:
            names["#rk"] = "receipt_keys"
            values[":gone"] = {"SS": sorted(gone)}
            update += " DELETE #rk :gone"
        try:
            result = self._call(
                "update_item",
                Key=message_key(message_id),
                UpdateExpression=update,
                ConditionExpression="size(#h) = :n AND " + ("#dropped = :d" if dropped else "attribute_not_exists(#dropped)"),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except (ConditionFailed, StoreUnavailable):
            return item
        return self._from_dynamo(result["Attributes"]) or item

    def claim_lease(
        self, message_id: str, owner: str, now: str, until: str, *, for_attempt: bool, max_attempts: int = 0
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Take a pending message's attempt lease, so that only one job at a time talks to Eseye about it.

        for_attempt: the lease is for an attempt that may send. It counts the attempt on the message (at
        most `max_attempts`) and marks that Eseye may have the message from now on, until an answer says
        otherwise: a job that dies mid-send leaves that mark for the next one, which then asks Eseye first.
        The lease lasts until `until`, longer than any holder can run, so an expired lease has no live holder.
        The claim is also the read: returns the item before and after it. Raises ConditionFailed (with the
        current item, None if there is none) when the message is not pending, another job holds the
        lease, or the attempts ran out.
        """
        names = {"#status": "status", "#owner": "lease_owner", "#until": "lease_until"}
        values: dict[str, Any] = {
            ":pending": {"S": "pending"},
            ":owner": {"S": owner},
            ":until": {"S": until},
            ":now": {"S": now},
        }
        update = "SET #owner = :owner, #until = :until"
        condition = "#status = :pending AND (attribute_not_exists(#until) OR #until < :now)"
        if for_attempt:
            names.update({"#attempts": "attempts", "#unsure": "may_be_at_eseye"})
            values.update({":zero": {"N": "0"}, ":one": {"N": "1"}, ":max": {"N": str(max_attempts)}, ":true": {"BOOL": True}})
            update += ", #attempts = if_not_exists(#attempts, :zero) + :one, #unsure = :true"
            condition += " AND (attribute_not_exists(#attempts) OR #attempts < :max)"
        result = self._call(
            "update_item",
            Key=message_key(message_id),
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        before = self._from_dynamo(result["Attributes"]) or {}
        after = {**before, "lease_owner": owner, "lease_until": until}
        if for_attempt:
            after.update(attempts=int(before.get("attempts", 0)) + 1, may_be_at_eseye=True)
        return before, after

    def store_orphan_receipt(self, message_id: str, receipt: dict[str, Any], receipt_key: str, ttl: int) -> bool:
        """Keep a receipt for a message we do not have (yet). Returns False if it was already kept, or the
        placeholder holds MAX_ORPHAN_RECEIPTS already. The first receipt sets the expiry; later ones do not
        extend it, so a placeholder nobody claims goes away on time."""
        try:
            self._call(
                "update_item",
                Key=message_key(message_id),
                UpdateExpression="SET #orphans = list_append(if_not_exists(#orphans, :empty), :r), #ttl = if_not_exists(#ttl, :ttl)"
                " ADD #receipts :rk",
                ConditionExpression="attribute_not_exists(#status) AND (attribute_not_exists(#receipts) OR NOT contains(#receipts, :rks))"
                " AND (attribute_not_exists(#orphans) OR size(#orphans) < :max)",
                ExpressionAttributeNames={"#orphans": "orphan_receipts", "#status": "status", "#receipts": "receipt_keys", "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":r": self._to_dynamo([receipt]),
                    ":rk": {"SS": [receipt_key]},
                    ":rks": self._to_dynamo(receipt_key),
                    ":ttl": self._to_dynamo(ttl),
                    ":max": {"N": str(MAX_ORPHAN_RECEIPTS)},
                },
            )
        except ConditionFailed:
            return False
        return True

    # --- concatenated MO buffers: open -> (closing) -> closed -> open again when the reference is reused ---
    def add_part(
        self, buffer_key: str, sequence: int, part: dict[str, Any], ttl: int, *, part_id: str, opened_after: str, new_buffer: dict[str, Any]
    ) -> dict[str, Any]:
        """Add a part the buffer does not hold yet, to its open buffer or to a new one that starts with `new_buffer`.

        Returns the buffer with every part so far. Raises ConditionFailed (with the buffer) when that part is
        already held, when the buffer is not open or was opened before `opened_after`, or when `part_id` was
        a part of the message the buffer last closed.
        """
        fields = {**new_buffer, "state": "open"}
        names = {f"#f{index}": name for index, name in enumerate(fields)}
        values = {f":f{index}": self._to_dynamo(value) for index, value in enumerate(fields.values())}
        sets = [f"#f{index} = if_not_exists(#f{index}, :f{index})" for index in range(len(fields))]
        state, opened = _placeholder(names, "state"), _placeholder(names, "opened_at")
        names.update({"#part": f"part_{int(sequence)}", "#ttl": "ttl", "#count": "part_count", "#closed": "closed_ids"})
        values.update(
            {
                ":part": self._to_dynamo(part),
                ":ttl": self._to_dynamo(ttl),
                ":one": self._to_dynamo(1),
                ":open": self._to_dynamo("open"),
                ":after": self._to_dynamo(opened_after),
                ":pid": self._to_dynamo(part_id),
            }
        )
        result = self._call(
            "update_item",
            Key={"PK": {"S": buffer_key}, "SK": {"S": META}},
            UpdateExpression="SET #part = :part, #ttl = :ttl, " + ", ".join(sets) + " ADD #count :one",
            ConditionExpression=(
                f"attribute_not_exists(#part) AND (attribute_not_exists({state}) OR ({state} = :open AND {opened} >= :after))"
                " AND (attribute_not_exists(#closed) OR NOT contains(#closed, :pid))"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return self._from_dynamo(result["Attributes"]) or {}

    def reopen_buffer(
        self, buffer_key: str, closed_buffer_id: str, sequence: int, part: dict[str, Any], ttl: int, new_buffer: dict[str, Any]
    ) -> dict[str, Any]:
        """Start a new message in a closed buffer (its reference reused), holding this one part.
        Raises ConditionFailed (with the buffer) unless the buffer is still the closed `closed_buffer_id`."""
        fields = {**new_buffer, "state": "open", "part_count": 1, f"part_{int(sequence)}": part, "ttl": ttl}
        names = {f"#f{index}": name for index, name in enumerate(fields)}
        values = {f":f{index}": self._to_dynamo(value) for index, value in enumerate(fields.values())}
        state, buffer_id = _placeholder(names, "state"), _placeholder(names, "buffer_id")
        values.update({":closed": self._to_dynamo("closed"), ":previous": self._to_dynamo(closed_buffer_id)})
        result = self._call(
            "update_item",
            Key={"PK": {"S": buffer_key}, "SK": {"S": META}},
            UpdateExpression="SET " + ", ".join(f"#f{index} = :f{index}" for index in range(len(fields))),
            ConditionExpression=f"{state} = :closed AND {buffer_id} = :previous",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return self._from_dynamo(result["Attributes"]) or {}

    def adopt_buffer(self, buffer_key: str, fields: dict[str, Any]) -> None:
        """Give a buffer written before buffers had a state (it holds parts only) the fields of an open one.
        Raises ConditionFailed if it has a state already."""
        fields = {**fields, "state": "open"}
        names = {f"#f{index}": name for index, name in enumerate(fields)}
        self._call(
            "update_item",
            Key={"PK": {"S": buffer_key}, "SK": {"S": META}},
            UpdateExpression="SET " + ", ".join(f"#f{index} = :f{index}" for index in range(len(fields))),
            ConditionExpression=f"attribute_exists(PK) AND attribute_not_exists({_placeholder(names, 'state')})",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":f{index}": self._to_dynamo(value) for index, value in enumerate(fields.values())},
        )

    def freeze_buffer(self, buffer_key: str, buffer_id: str, part_count: int) -> dict[str, Any]:
        """Stop an open buffer taking parts, if it still holds exactly `part_count` of them, so that what it
        holds can be stored as it is. Returns the buffer. Raises ConditionFailed (with the buffer) otherwise."""
        result = self._call(
            "update_item",
            Key={"PK": {"S": buffer_key}, "SK": {"S": META}},
            UpdateExpression="SET #state = :closing",
            ConditionExpression="#state = :open AND #id = :id AND #count = :count",
            ExpressionAttributeNames={"#state": "state", "#id": "buffer_id", "#count": "part_count"},
            ExpressionAttributeValues={
                ":closing": {"S": "closing"},
                ":open": {"S": "open"},
                ":id": {"S": buffer_id},
                ":count": self._to_dynamo(int(part_count)),
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return self._from_dynamo(result["Attributes"]) or {}

    def close_buffer(self, buffer_key: str, buffer_id: str, sequences: list[int], part_ids: list[str], message_id: str) -> bool:
        """Close the buffer once its message is stored: drop its parts and keep the Eseye ids of those parts,
        so that a late copy of one is known as a duplicate. Returns False if it was closed or reused already."""
        remove = ["#count", "#opened", "#gpk", "#gsk", *(f"#p{index}" for index in range(len(sequences)))]
        names = {"#state": "state", "#id": "buffer_id", "#last": "last_message_id", "#count": "part_count", "#opened": "opened_at"}
        names.update({"#gpk": "GSI3PK", "#gsk": "GSI3SK", "#closed": "closed_ids"})
        names.update({f"#p{index}": f"part_{int(sequence)}" for index, sequence in enumerate(sequences)})
        values = {
            ":closed": {"S": "closed"},
            ":open": {"S": "open"},
            ":closing": {"S": "closing"},
            ":id": {"S": buffer_id},
            ":last": {"S": message_id},
        }
        sets = ["#state = :closed", "#last = :last"]
        if part_ids:
            values[":ids"] = {"SS": sorted(set(part_ids))}
            sets.append("#closed = :ids")
        else:
            remove.append("#closed")
        try:
            self._call(
                "update_item",
                Key={"PK": {"S": buffer_key}, "SK": {"S": META}},
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE " + ", ".join(remove),
                ConditionExpression="#id = :id AND #state IN (:open, :closing)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ConditionFailed:
            return False
        return True

    def put_items(self, items: list[dict[str, Any]]) -> None:
        """Write items in batches of 25, retrying what DynamoDB leaves unprocessed. Raises StoreUnavailable."""
        import time

        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": {k: self._to_dynamo(v) for k, v in i.items() if v is not None}}} for i in items[start : start + 25]]
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

    def put_item(self, item: dict[str, Any], *, if_absent: bool = False) -> bool:
        """Put a raw item. With if_absent, returns False instead of overwriting."""
        kwargs: dict[str, Any] = {"Item": {k: self._to_dynamo(v) for k, v in item.items() if v is not None}}
        if if_absent:
            kwargs["ConditionExpression"] = "attribute_not_exists(PK)"
        try:
            self._call("put_item", **kwargs)
        except ConditionFailed:
            return False
        return True

    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        result = self._call("get_item", Key={"PK": {"S": pk}, "SK": {"S": sk}}, ConsistentRead=True)
        return self._from_dynamo(result.get("Item"))

    def delete_item(self, pk: str, sk: str) -> bool:
        result = self._call("delete_item", Key={"PK": {"S": pk}, "SK": {"S": sk}}, ReturnValues="ALL_OLD")
        return bool(result.get("Attributes"))

    def batch_get(self, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
        request = {self.table_name: {"Keys": [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in keys], "ConsistentRead": True}}
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            result = self.client.batch_get_item(RequestItems=request)
        except (BotoCoreError, ClientError) as exc:
            raise StoreUnavailable("DynamoDB batch_get_item failed") from exc
        items = result.get("Responses", {}).get(self.table_name, [])
        if result.get("UnprocessedKeys"):
            # Rare (throttling): fall back to single reads rather than guess.
            return [i for i in (self.get_item(pk, sk) for pk, sk in keys) if i]
        return [self._from_dynamo(i) or {} for i in items]

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
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {k: self._to_dynamo(v) for k, v in values.items()},
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
        result = self._call("query", **kwargs)
        items = [self._from_dynamo(i) or {} for i in result.get("Items", [])]
        return items, result.get("LastEvaluatedKey")

    def transact(self, writes: list[dict[str, Any]]) -> None:
        """All-or-nothing writes. Each write is {"put": item, "if_absent": bool} or {"delete": (pk, sk), "if_present": bool}
        or {"add": (pk, sk, attribute, number)}. Raises ConditionFailed if a condition does not hold."""
        from botocore.exceptions import BotoCoreError, ClientError

        items = []
        for write in writes:
            if "put" in write:
                put: dict[str, Any] = {
                    "TableName": self.table_name,
                    "Item": {k: self._to_dynamo(v) for k, v in write["put"].items() if v is not None},
                }
                if write.get("if_absent"):
                    put["ConditionExpression"] = "attribute_not_exists(PK)"
                items.append({"Put": put})
            elif "delete" in write:
                pk, sk = write["delete"]
                delete: dict[str, Any] = {"TableName": self.table_name, "Key": {"PK": {"S": pk}, "SK": {"S": sk}}}
                if write.get("if_present"):
                    delete["ConditionExpression"] = "attribute_exists(PK)"
                items.append({"Delete": delete})
            else:
                pk, sk, attribute, number = write["add"]
                items.append(
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": {"PK": {"S": pk}, "SK": {"S": sk}},
                            "UpdateExpression": "ADD #a :n",
                            "ExpressionAttributeNames": {"#a": attribute},
                            "ExpressionAttributeValues": {":n": {"N": str(number)}},
                        }
                    }
                )
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    raise ConditionFailed(None) from exc
            raise StoreUnavailable(f"DynamoDB transaction failed: {exc.response.get('Error', {}).get('Code')}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable("DynamoDB transaction failed") from exc

    def deserialize_image(self, image: dict[str, Any]) -> dict[str, Any]:
        return self._from_dynamo(image) or {}


def bounded_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A history entry within ENTRY_LIMIT bytes: long strings cut, then its detail's, then the detail dropped."""
    entry = bounded(entry, FIELD_LIMIT)
    if json_size(entry) <= ENTRY_LIMIT:
        return entry
    if "detail" in entry:
        entry = {**entry, "detail": bounded(entry["detail"], FIELD_LIMIT // 8)}
        if json_size(entry) <= ENTRY_LIMIT:
            return entry
        entry = {**entry, "detail": {"truncated": True}}
    return bounded(entry, FIELD_LIMIT // 8)


def _no_floats(value: Any) -> Any:
    """DynamoDB wants Decimal, not float."""
    from decimal import Decimal

    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _no_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_floats(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Decimals back to int/float and sets to sorted lists, so items serialise as JSON."""
    from decimal import Decimal

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


def _placeholder(names: dict[str, str], attribute: str) -> str:
    """The expression name already standing for `attribute`."""
    return next(key for key, value in names.items() if value == attribute)
