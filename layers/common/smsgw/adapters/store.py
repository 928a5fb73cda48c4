"""The repositories: the only code that knows how the gateway's records sit in its single DynamoDB table.

Logic asks them for domain operations (create a message, move it, note an event, claim an attempt...);
every key prefix, index name and expression is here. adapters/table.py does the calls.

Key design (the one place it is written; template.yaml points here). Keys are strings; times are ISO
8601 UTC with milliseconds, so they sort as strings.

  record          PK                             SK                         notes
  message         MSG#<id>                       META                       MT and MO, whole: history is a list inside
  receipt orphan  MSG#<id>                       META                       no `status`: receipts for an id not stored
                                                                            yet, merged into the message by its create
  concat buffer   CONCAT#<from>#<ref>#<total>    META                       one long MO's parts (part_<n>)
  SIM state       SIM#<digits>                   META                       delivery queue (simqueue.py): holders,
                                                                            queue, window, overrides, rev
  send rate       RATE#eseye                     META                       `tat`: Eseye's next free send slot, in
                                                                            microseconds (logic/pacing.py, GCRA)
  list entry      LIST#allow | LIST#block        <msisdn digits>
  list size       LIST#allow | LIST#block        #COUNT                     attribute `size`
  list audit      LISTLOG#allow | LISTLOG#block  <time>#<msisdn>#<action>
  saved command   CMD                            <name>                     text or data, variables, worst case
  command audit   CMDLOG                         <time>#<name>#<action>     who created, replaced or deleted it
  group           GROUP                          <name>                     size, gen (its members' generation), created
                                                                            and updated at/by; `pending` while replaced
  group members   GRP#<name>                     M#<gen>#<bucket 000-127>   string set `members`, revision `v`; bucket:
                                                                            sha256(digits) % 128 (GroupRepository)
  group audit     GRPLOG#<name>                  <time>#<action>#<random>   who, when, size; members or their digest
  batch           BATCH#<id>                     META                       state, total, skipped, content, options,
                                                                            counts once complete; the guard that every
                                                                            create and send of its messages checks
  batch chunk     BATCH#<id>                     CHUNK#<nnnnn>              25 recipients, and `statuses`: message id
                                                                            -> latest status (the stream writes it)
  event archive   EVT#<yyyy-mm-ddThh>#<shard>    <time>#<event id>          shard: sha256(event id) % 128, 2 hex digits
  archive marker  EVTHOURS                       <yyyy-mm-ddThh>#<shard>    which shards of an hour hold events (`-`:
                                                                            EVT#<hour> itself, archived before shards)
  quarantine      Q#<yyyy-mm-dd>                 <time>#<uuid>              raw webhook requests we could not use
  idempotency     IDEM#<2 hex of sha256(key)>    <key hash>                 Powertools Idempotency, 256 shards

  index  partition key                       sort key                  holds (GSI2 and GSI3 are sparse)
  GSI1   MSISDN#<digits> (MO: of `from`)     <created_at>#<id>         every message, by SIM
  GSI2   REPLYWAIT#<sha256(id) % 64, 2 hex>  <reply_deadline>#<id>     commands waiting for a device's reply
  GSI3   PENDING#<shard of id>               <created_at>#<id>         messages while `pending`
  GSI3   CONCAT#<shard of PK>                <opened_at>#<buffer PK>   concat buffers while open
  GSI3   SCHED#<shard of id>                 <send_at>#<id>            messages while `scheduled`
  GSI3   SIMQ#<shard of digits>              <updated_at>#<digits>     SIM states while messages wait
         GSI3's shard of a key: sha256(key) % 64, 2 hex digits; entries from before the shards sit under
         one hex digit (16 shards: the last of the id, the last of sha256(PK or digits)) and are read too
  GSI4   FLEET#<created hour>#<shard of id>  <created_at>#<id>         every message by time (GET /messages without
         msisdn); shard: sha256(id) % 16, 2 hex digits; created hour: yyyy-mm-ddThh
  GSI4   BATCHES#<created month>             <created_at>#<id>         every batch's META item by time (GET /batches);
         created month: yyyy-mm (batches are few: one partition a month, written once at create)

Access: a message by id (GetItem, strongly consistent); one MSISDN's messages newest first (GSI1,
ScanIndexForward=false); the fleet's messages newest first, an hour at a time across its 16 shards (GSI4);
recent batches newest first, a month at a time (GSI4, BATCHES#);
commands waiting for a reply by deadline (GSI2, 64 shards); stale pending messages and
open concat buffers by age (GSI3, 64 shards each); archived events by time, an hour at a time across the
shards its markers name (replay). A message's status history lives inside its item
(a list), so a status change is one conditional UpdateItem and the table stream carries the whole
message to the event publisher. Everything but list items and groups expires through `ttl`.

Messages: attempt lease (lease_owner, lease_until), attempts and may_be_at_eseye sit on the item
(logic/delivery.py says why); a receipt's dedup key goes into the `receipt_keys` string set.
Concat buffers go open -> (closing) -> closed -> open again when the reference is reused; an open
buffer holds part_<n> attributes, a closed one the Eseye ids of the parts it last held (`closed_ids`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import secrets
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from smsgw import models
from smsgw.adapters.table import AttributeValue, ConditionFailed, Contention, Item, Table
from smsgw.errors import InvalidCursor, StoreUnavailable
from smsgw.limits import bounded, json_size
from smsgw.simqueue import SETTING_NAMES, SimState

__all__ = [
    "CommandRepository",
    "ConditionFailed",
    "EventArchive",
    "GroupRepository",
    "InboundRepository",
    "ListRepository",
    "MessageRepository",
    "RateRepository",
    "SimRepository",
    "Store",
    "bounded_entry",
]

META = "META"
SCHEDULED = "SCHED"  # GSI3 prefix of scheduled messages
SIM_QUEUE = "SIMQ"  # GSI3 prefix of SIMs with messages waiting
SHARDS = "0123456789abcdef"  # GSI3's shards before there were 64: still read, no longer written
GSI3_SHARDS = 64  # a pending message costs GSI3 two writes (in, out): 16 shards would cap sends at 8,000/s
# Hot keys spread over shards so that none takes more than a share of 1,000 writes/s at 10,000 messages/s
# (docs/performance.md, "Scale on paper", works the numbers out).
EVENT_SHARDS = 128  # an hour's archive partitions: about 4-8 write units of events per message
EVENT_HOURS = "EVTHOURS"  # the archive's markers: which (hour, shard) partitions hold events
LEGACY_SHARD = "-"  # a marker's shard for EVT#<hour> itself, where events were archived before the shards
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

LEASE_FIELDS = ("lease_owner", "lease_until")
KEY_FIELDS = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "GSI3PK", "GSI3SK", "GSI4PK", "GSI4SK")
BY_MSISDN_KEY = frozenset({"PK", "SK", "GSI1PK", "GSI1SK"})  # a GSI1 page's LastEvaluatedKey
REPLY_WAIT = "REPLYWAIT"  # GSI2's partitions: REPLYWAIT#<shard>; REPLYWAIT alone holds waits from before the shards
REPLY_WAIT_SHARDS = 64  # a waiting command costs GSI2 about four writes (in, two status changes, out)
# GSI4 projects only attributes a message never changes, so a message costs it one write (its create):
# 10,000 messages/s over 16 shards is 625 writes/s a partition.
FLEET = "FLEET"
FLEET_SHARDS = 16
# GSI4's batch partitions: BATCHES#<yyyy-mm>. A batch's index entry is its keys only (it has none of the
# attributes GSI4 projects), written once at create; its updates never touch the index.
BATCHES = "BATCHES"
# What a listing reads of a batch: its summary (GET /batches/{id}'s fields), not its skipped recipients.
BATCH_SUMMARY_FIELDS = ("id", "state", "total", "skipped", "source", "group", "content", "options", "counts", "chunks_total", "created_at")
BATCH_SUMMARY_TIMES = ("completed_at", "cancelled_at")


def _hash_shard(key: str, shards: int, hex_digits: int = 2) -> str:
    """Which of `shards` partitions `key` belongs to: its SHA-256 (the first `hex_digits` of it) modulo
    the count, as 2 hex digits. The same key always lands in the same shard, so a reader finds it again."""
    return f"{int(hashlib.sha256(key.encode()).hexdigest()[:hex_digits], 16) % shards:02x}"


def fleet_shard(message_id: str) -> str:
    return _hash_shard(message_id, FLEET_SHARDS)


def _reply_wait_pk(message_id: str) -> str:
    return f"{REPLY_WAIT}#{_hash_shard(message_id, REPLY_WAIT_SHARDS)}"


def _gsi3_shard(key: str) -> str:
    """The GSI3 shard of a message id, SIM digits or buffer name."""
    return _hash_shard(key, GSI3_SHARDS)


def _message_pk(message_id: str) -> str:
    return f"MSG#{message_id}"


def _msisdn_pk(digits: str | None) -> str:
    return f"MSISDN#{digits}" if digits else "MSISDN#unknown"


def _domain(item: Item | None) -> Item | None:
    """An item without its table keys: what logic sees."""
    if item is None:
        return None
    return {k: v for k, v in item.items() if k not in KEY_FIELDS}


def _message(item: Item | None) -> models.Message | None:
    """A message item as the typed record. A receipt-only placeholder has no `id` attribute: its key gives it."""
    if not item:
        return None
    fields = _domain(item) or {}
    if "id" not in fields and str(item.get("PK", "")).startswith("MSG#"):
        fields["id"] = str(item["PK"]).removeprefix("MSG#")
    return models.Message.from_item(fields)


class MessageRepository:
    """MT and MO messages, their statuses, history, attempt lease, receipts and reply waits."""

    def __init__(self, table: Table):
        self.table = table

    def _update(self, message_id: str, **kwargs: Any) -> Item:
        return self.table.update(_message_pk(message_id), META, **kwargs)

    def _failed(self, exc: ConditionFailed) -> ConditionFailed:
        return ConditionFailed(_message(exc.item))

    def _one(self, item: Item) -> models.Message:
        message = _message(item)
        if message is None:  # DynamoDB returns the item for ALL_NEW / ALL_OLD on a condition that needs it
            raise StoreUnavailable("DynamoDB returned no item")
        return message

    # --- reads -----------------------------------------------------------------------------------
    def get(self, message_id: str) -> models.Message | None:
        """The message (or a receipt-only placeholder, which has no `status`), or None."""
        return _message(self.table.get(_message_pk(message_id), META))

    def for_msisdn(
        self,
        digits: str,
        *,
        since: str | None,
        until: str | None,
        direction: str | None,
        status: str | None,
        limit: int,
        after: dict[str, Any] | None,
    ) -> tuple[list[models.Message], dict[str, Any] | None]:
        """One page of a SIM's messages (both directions), newest first, created within since..until and
        matching direction/status. DynamoDB's Limit counts items read before the filters, so `limit` bounds
        the read too. Returns the messages and the position to resume after (None at the end)."""
        names = {"#pk": "GSI1PK"}
        values: dict[str, Any] = {":pk": _msisdn_pk(digits)}
        condition = "#pk = :pk"
        if since or until:
            names["#sk"] = "GSI1SK"
            values[":from"], values[":to"] = _created_range(since, until)
            condition += " AND #sk BETWEEN :from AND :to"
        filters = []
        if direction:
            names["#direction"], values[":direction"] = "direction", direction
            filters.append("#direction = :direction")
        if status:
            names["#status"], values[":status"] = "status", status
            filters.append("#status = :status")
        items, last = self.table.query(
            index="GSI1",
            key_condition=condition,
            names=names,
            values=values,
            filter_expression=" AND ".join(filters) or None,
            forward=False,
            limit=limit,
            start_key=after,
        )
        return [self._one(i) for i in items], last

    @staticmethod
    def msisdn_scope(digits: str) -> str:
        """What a listing position of this SIM is bound to (its partition): cursors sign it."""
        return _msisdn_pk(digits)

    @staticmethod
    def check_msisdn_position(position: Mapping[str, Any], digits: str, since: str | None, until: str | None) -> dict[str, Any]:
        """A position from a cursor, if it is one `for_msisdn` could have returned for this query.
        Raises InvalidCursor otherwise, so that even a leaked cursor key cannot reach another SIM's partition."""
        if set(position) != BY_MSISDN_KEY or not all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in position.values()):
            raise InvalidCursor()
        if position["GSI1PK"]["S"] != _msisdn_pk(digits):
            raise InvalidCursor()
        if since or until:
            low, high = _created_range(since, until)
            if not low <= position["GSI1SK"]["S"] <= high:
                raise InvalidCursor()
        return dict(position)

    def fleet_hour(
        self, hour: str, low: str, before: str, filters: Mapping[str, str], budget: ReadBudget, batch: int
    ) -> Iterator[tuple[str, str | None]]:
        """The fleet's messages created in `hour` (yyyy-mm-ddThh) from `low` (included) to `before` (a
        position, excluded), newest first across the hour's shards: (position, id), each exactly once.
        When the budget runs out after the first reads, a last (position, None) says where to resume: every
        entry after it was yielded or did not match the filters, so each request moves on.
        `filters` (direction, batch_id, client_ref: attributes GSI4 projects) become a FilterExpression.
        Reads about `batch` items at first, each shard's share, then again from a shard that runs out while
        it holds more. Stops early, setting `budget.exhausted`, when the budget cannot pay for the next read:
        what it yielded until then is complete and in order (the merge of replay's EventArchive.events)."""
        if budget.queries < FLEET_SHARDS or budget.items < FLEET_SHARDS:
            budget.exhausted = True
            return
        size = max(1, min(budget.items // FLEET_SHARDS, -(-batch // FLEET_SHARDS) + 1))
        shards = [f"{n:02x}" for n in range(FLEET_SHARDS)]
        heads = {shard: self._fleet_read(hour, shard, low, before, filters, size, budget) for shard in shards}
        while True:
            # A read the filters emptied says nothing of what its shard holds next: read on until every shard
            # has an entry to compare or is done.
            while unknown := [shard for shard, (items, more_before) in heads.items() if not items and more_before is not None]:
                for shard in unknown:
                    more_before = str(heads[shard][1])
                    if budget.queries < 1 or budget.items < 1:
                        budget.exhausted = True
                        # The highest point not known to be read: just above a head ('~' sorts after its id),
                        # or where a shard's read stopped.
                        yield max(found[0][0] + "~" if found else str(more) for found, more in heads.values() if found or more), None
                        return
                    heads[shard] = self._fleet_read(hour, shard, low, more_before, filters, min(size, budget.items), budget)
            ready = [(items[0][0], shard) for shard, (items, _) in heads.items() if items]
            if not ready:
                return
            yield heads[max(ready)[1]][0].pop(0)

    def _fleet_read(
        self, hour: str, shard: str, low: str, before: str, filters: Mapping[str, str], limit: int, budget: ReadBudget
    ) -> tuple[list[tuple[str, str]], str | None]:
        """Up to `limit` index entries (read, before the filters) of one shard before `before`, newest first;
        and the position to read on from, if it holds more."""
        names = {"#pk": "GSI4PK", "#sk": "GSI4SK"}
        # BETWEEN includes `before`; a position read again is dropped below (a bare hour prefix never matches).
        values: dict[str, Any] = {":pk": f"{FLEET}#{hour}#{shard}", ":low": low, ":high": before}
        clauses = []
        for index, (name, value) in enumerate(sorted(filters.items())):
            names[f"#f{index}"], values[f":f{index}"] = name, value
            clauses.append(f"#f{index} = :f{index}")
        items, last = self.table.query(
            index="GSI4",
            key_condition="#pk = :pk AND #sk BETWEEN :low AND :high",
            names=names,
            values=values,
            filter_expression=" AND ".join(clauses) or None,
            forward=False,
            limit=limit + 1,
        )
        # What DynamoDB evaluated, the filtered-out entries included: all it may when it stopped at the limit.
        budget.spend(limit + 1 if last else len(items))
        found = [(str(i["GSI4SK"]), str(i["PK"]).removeprefix("MSG#")) for i in items if str(i["GSI4SK"]) != before]
        more = str(last["GSI4SK"]["S"]) if last and "GSI4SK" in last else None
        return found, more

    def waiting_replies(self, digits: str, limit: int) -> list[models.Message]:
        """The newest `limit` messages of a SIM that are MT commands still waiting for a reply."""
        items, _ = self.table.query(
            index="GSI1",
            key_condition="#pk = :pk",
            names={"#pk": "GSI1PK", "#dir": "direction", "#wait": "GSI2PK"},
            values={":pk": _msisdn_pk(digits), ":mt": "mt"},
            filter_expression="#dir = :mt AND attribute_exists(#wait)",
            forward=False,
            limit=limit,
        )
        return [self._one(i) for i in items]

    def replies_due(self, now: str, limit: int) -> list[models.Message]:
        """Commands whose reply window ended before `now`, oldest deadline first: the first `limit` of all the
        shards (and of the unsharded partition, which holds waits from before the shards)."""
        due: list[Item] = []
        for partition in (REPLY_WAIT, *(f"{REPLY_WAIT}#{shard:02x}" for shard in range(REPLY_WAIT_SHARDS))):
            items, _ = self.table.query(
                index="GSI2",
                key_condition="#pk = :pk AND #sk < :now",
                names={"#pk": "GSI2PK", "#sk": "GSI2SK"},
                values={":pk": partition, ":now": now},
                limit=limit,
            )
            due.extend(items)
        return [self._one(i) for i in sorted(due, key=lambda i: str(i["GSI2SK"]))[:limit]]

    def get_many(self, message_ids: Sequence[str]) -> dict[str, models.Message]:
        """The stored messages of `message_ids`, by id; ids not stored are left out."""
        if not message_ids:
            return {}
        items = self.table.batch_get([(_message_pk(i), META) for i in dict.fromkeys(message_ids)])
        messages = (_message(item) for item in items)
        return {m.id: m for m in messages if m is not None and m.status}

    def stale_pending(self, created_before: str, limit_per_shard: int) -> Iterator[str]:
        """Ids of messages still on the pending index that were created before `created_before`."""
        for item in _sharded_before(self.table, "PENDING", created_before, limit_per_shard):
            yield str(item["PK"]).removeprefix("MSG#")

    # --- writes ----------------------------------------------------------------------------------
    def create(self, message: Mapping[str, Any]) -> models.Message:
        """Store a new message, with its index entries and expiry. An orphan placeholder (receipts that came
        first) is merged, not overwritten.

        Returns the stored message, including any `orphan_receipts` the caller must now apply.
        Raises ConditionFailed (with the stored message) if a message with this id already exists.
        """
        try:
            stored = self._update(str(message["id"]), **self._create_request(message), ReturnValues="ALL_NEW")
        except ConditionFailed as exc:
            raise self._failed(exc) from exc
        return self._one(stored)

    def create_guarded(self, message: models.Message, guard: dict[str, Any]) -> models.Message:
        """`create`, in one transaction with `guard` (a batch's: no message of a cancelled batch is created).
        Raises ConditionFailed: `failed` maps 0 to the message already stored under this id, 1 to the guard."""
        try:
            self.table.transact([self.create_write(message), guard])
        except ConditionFailed as exc:
            failed = {position: (_message(item) if position == 0 else item) for position, item in exc.failed.items()}
            raise ConditionFailed(failed.get(0), failed) from exc
        return message

    def create_write(self, message: models.Message, *, over_orphans: bool = False) -> dict[str, Any]:
        """`create` as one write of a transaction (adapters/table.py's transact). Unless `over_orphans`, it
        also fails on a receipt placeholder, so that the caller learns of receipts it must apply."""
        request = self._create_request(message)
        if not over_orphans:
            request["ExpressionAttributeNames"]["#orphans"] = "orphan_receipts"
            request["ConditionExpression"] += " AND attribute_not_exists(#orphans)"
        return {"Update": {"Key": self.table.key(_message_pk(message.id), META), **request}}

    def _create_request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        stored_fields = message.to_item() if isinstance(message, models.Message) else dict(message)
        fields = {**stored_fields, **self._index_fields(stored_fields)}
        names, values, sets = {"#status": "status"}, {}, []
        for index, (name, value) in enumerate(fields.items()):
            if value is None:
                continue
            names[f"#a{index}"] = name
            values[f":v{index}"] = self.table.serialize(value)
            sets.append(f"#a{index} = :v{index}")
        return {
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": "attribute_not_exists(#status)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _index_fields(self, message: Mapping[str, Any]) -> dict[str, Any]:
        message_id, created = str(message["id"]), str(message["created_at"])
        party = message.get("to") if message.get("direction") == "mt" else message.get("from")
        fields: dict[str, Any] = {"GSI1PK": _msisdn_pk(str(party) if party else None), "GSI1SK": f"{created}#{message_id}"}
        fields.update(GSI4PK=f"{FLEET}#{created[:13]}#{fleet_shard(message_id)}", GSI4SK=f"{created}#{message_id}")
        if message.get("status") == models.PENDING:
            fields.update(GSI3PK=f"PENDING#{_gsi3_shard(message_id)}", GSI3SK=f"{created}#{message_id}")
        if message.get("status") == models.SCHEDULED and message.get("send_at"):
            fields.update(GSI3PK=f"{SCHEDULED}#{_gsi3_shard(message_id)}", GSI3SK=f"{message['send_at']}#{message_id}")
        if message.get("reply_state") == "waiting" and message.get("reply_deadline"):
            fields.update(GSI2PK=_reply_wait_pk(message_id), GSI2SK=f"{message['reply_deadline']}#{message_id}")
        fields["ttl"] = self.table.expiry(models.parse_time(created).timestamp())
        return fields

    def transition(
        self,
        message_id: str,
        to: str,
        entry: Mapping[str, Any],
        *,
        source: str,
        release: bool = False,
        sets: Mapping[str, Any] | None = None,
        receipt_key: str | None = None,
        drop_orphan_receipts: bool = False,
        allowed_from: tuple[str, ...] | None = None,
    ) -> models.Message:
        """Move the message to `to` as `source` (eseye | gateway) reports it, forward only: from one of
        models.ALLOWED_FROM[to] (or of `allowed_from`, a subset of them), or, when Eseye reports it, from
        models.ALLOWED_FROM_INFERRED[to] if the gateway only inferred that status. Appends `entry` to
        the history in the same conditional write.

        release: give up the attempt lease. receipt_key: a receipt's identity; applies only if never
        recorded before. drop_orphan_receipts: the early receipts are applied now.
        Returns the message. Raises ConditionFailed (with the current message) when the move is not allowed.
        """
        inferred = models.ALLOWED_FROM_INFERRED.get(to, ()) if source == models.FROM_ESEYE else ()
        return self._change(
            message_id,
            entry,
            status=to,
            allowed_from=tuple(s for s in (allowed_from or models.ALLOWED_FROM[to]) if s in models.ALLOWED_FROM[to]),
            allowed_from_inferred=inferred,
            sets={**(sets or {}), "status_source": source},
            remove=(*(LEASE_FIELDS if release else ()), *(("orphan_receipts",) if drop_orphan_receipts else ())),
            receipt_key=receipt_key,
        )

    def cancel_untouched(self, message_id: str, entry: Mapping[str, Any], now: str) -> models.Message:
        """Cancel a pending message that no attempt holds (at `now`) and that no attempt may have brought
        to Eseye: what a cancel that never calls Eseye needs. Raises ConditionFailed (with the message) otherwise."""
        return self._change(
            message_id,
            entry,
            status=models.CANCELLED,
            allowed_from=(models.PENDING,),
            sets={"status_source": models.FROM_GATEWAY},
            untouched_by_attempts_at=now,
        )

    def append_note(
        self,
        message_id: str,
        entry: Mapping[str, Any],
        *,
        release: bool = False,
        sets: Mapping[str, Any] | None = None,
        receipt_key: str | None = None,
        drop_orphan_receipts: bool = False,
    ) -> models.Message:
        """Add `entry` to the history without moving the status (with release/sets/receipt_key/
        drop_orphan_receipts as in `transition`). Raises ConditionFailed if there is no such message, or
        the receipt was recorded before."""
        remove = (*(LEASE_FIELDS if release else ()), *(("orphan_receipts",) if drop_orphan_receipts else ()))
        return self._change(message_id, entry, sets=sets, remove=remove, receipt_key=receipt_key)

    def note_callback(self, message_id: str, entry: Mapping[str, Any]) -> models.Message:
        """Add a status-callback attempt to the history: one append, with neither the status nor `updated_at`
        moving (a callback is no progress of the message, and the reconciler reads a pending message's
        `updated_at` as its last progress). Raises ConditionFailed if there is no such message."""
        return self._change(message_id, entry, touch=False)

    def start_reply_wait(self, command_id: str, entry: Mapping[str, Any], deadline: str) -> models.Message:
        """Put a command on the reply-wait index until `deadline`. Raises ConditionFailed if it has a reply
        state already (waiting, replied or timed out)."""
        sets = {"reply_deadline": deadline, "reply_state": "waiting", "GSI2PK": _reply_wait_pk(command_id), "GSI2SK": f"{deadline}#{command_id}"}
        return self._change(command_id, entry, sets=sets, absent=("reply_state",))

    def link_reply(self, command_id: str, entry: Mapping[str, Any], reply_id: str) -> models.Message:
        """Mark a waiting command as answered by the MO `reply_id` and take it off the reply-wait index.
        Raises ConditionFailed (with the command) if it no longer waits (another MO, or its timeout, came first)."""
        return self._stop_waiting(command_id, entry, {"reply_id": reply_id, "reply_state": "replied"})

    def time_out_reply(self, command_id: str, entry: Mapping[str, Any]) -> models.Message:
        """Mark a waiting command as timed out. Raises ConditionFailed if a reply came first."""
        return self._stop_waiting(command_id, entry, {"reply_state": "timed_out"})

    def _stop_waiting(self, command_id: str, entry: Mapping[str, Any], sets: dict[str, Any]) -> models.Message:
        return self._change(command_id, entry, sets=sets, remove=("GSI2PK", "GSI2SK"), require=("GSI2PK",))

    def _change(self, message_id: str, entry: Mapping[str, Any], **change: Any) -> models.Message:
        """Append `entry` to the message's history and apply the change (see `_change_request`),
        atomically and conditionally."""
        try:
            item = self._update(message_id, **self._change_request(message_id, entry, **change), ReturnValues="ALL_NEW")
        except ConditionFailed as exc:
            raise self._failed(exc) from exc
        return self._one(self._trim_history(message_id, item))

    def move_write(
        self,
        message_id: str,
        to: str,
        entry: Mapping[str, Any],
        *,
        sets: Mapping[str, Any] | None = None,
        allowed_from: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        """A gateway-decided move of a message, as one write of a transaction: from `allowed_from`, a
        subset of models.ALLOWED_FROM[to]. None values in `sets` are not stored."""
        allowed = tuple(s for s in (allowed_from or models.ALLOWED_FROM[to]) if s in models.ALLOWED_FROM[to])
        sets = {k: v for k, v in (sets or {}).items() if v is not None}
        request = self._change_request(message_id, entry, status=to, allowed_from=allowed, sets={**sets, "status_source": models.FROM_GATEWAY})
        return {"Update": {"Key": self.table.key(_message_pk(message_id), META), **request}}

    def _change_request(
        self,
        message_id: str,
        entry: Mapping[str, Any],
        *,
        status: str | None = None,
        allowed_from: tuple[str, ...] | None = None,
        allowed_from_inferred: tuple[str, ...] = (),
        sets: Mapping[str, Any] | None = None,
        receipt_key: str | None = None,
        remove: tuple[str, ...] = (),
        require: tuple[str, ...] = (),
        absent: tuple[str, ...] = (),
        untouched_by_attempts_at: str | None = None,
        touch: bool = True,
    ) -> dict[str, Any]:
        """The UpdateItem that appends `entry` to the history and applies the change. A message that
        leaves `pending` (or `scheduled`) leaves its sweep index in the same write; one that becomes
        `pending` joins the stale-pending index; one that becomes `sent` records when. touch=False leaves
        `updated_at` as it was."""
        entry = bounded_entry(dict(entry))
        sets = dict(sets or {})
        if status == models.SENT:
            sets.setdefault("sent_at", entry["at"])
        if status == models.PENDING:
            sets.update(GSI3PK=f"PENDING#{_gsi3_shard(message_id)}", GSI3SK=f"{entry['at']}#{message_id}")
        bounded_sets = {name: bounded(value, FIELD_LIMIT) for name, value in sets.items()} if sets else {}
        names = {"#history": "history", "#updated": "updated_at", "#status": "status"}
        values: dict[str, AttributeValue] = {":entry": self.table.serialize([entry]), ":empty": {"L": []}}
        expression = ["#history = list_append(if_not_exists(#history, :empty), :entry)"]
        if touch:
            values[":now"] = self.table.serialize(entry["at"])
            expression.append("#updated = :now")
        else:
            del names["#updated"]  # DynamoDB refuses a name the expression does not use
        conditions = ["attribute_exists(#status)"]
        if untouched_by_attempts_at is not None:
            names.update({"#until": "lease_until", "#unsure": "may_be_at_eseye"})
            values.update({":lease_now": self.table.serialize(untouched_by_attempts_at), ":true": {"BOOL": True}})
            conditions.append("(attribute_not_exists(#until) OR #until < :lease_now) AND NOT (#unsure = :true)")
        for index, name in enumerate(require):
            names[f"#q{index}"] = name
            conditions.append(f"attribute_exists(#q{index})")
        for index, name in enumerate(absent):
            names[f"#n{index}"] = name
            conditions.append(f"attribute_not_exists(#n{index})")
        if status is not None:
            expression.append("#status = :status")
            values[":status"] = self.table.serialize(status)
            if status != models.PENDING:  # off the stale-pending (or scheduled) index once it has moved on
                remove = (*remove, "GSI3PK", "GSI3SK")
        if allowed_from:
            placeholders = []
            for index, value in enumerate(allowed_from):
                values[f":from{index}"] = self.table.serialize(value)
                placeholders.append(f":from{index}")
            allowed = f"#status IN ({', '.join(placeholders)})"
            if allowed_from_inferred:
                names["#source"] = "status_source"
                values[":gateway"] = self.table.serialize(models.FROM_GATEWAY)
                inferred = []
                for index, value in enumerate(allowed_from_inferred):
                    values[f":inf{index}"] = self.table.serialize(value)
                    inferred.append(f":inf{index}")
                allowed = f"({allowed} OR (#status IN ({', '.join(inferred)}) AND #source = :gateway))"
            conditions.append(allowed)
        for index, (name, value) in enumerate(bounded_sets.items()):
            names[f"#s{index}"] = name
            values[f":s{index}"] = self.table.serialize(value)
            expression.append(f"#s{index} = :s{index}")
        update = "SET " + ", ".join(expression)
        if receipt_key is not None:
            names["#receipts"] = "receipt_keys"
            values[":rk"] = {"SS": [receipt_key]}
            values[":rks"] = self.table.serialize(receipt_key)
            update += " ADD #receipts :rk"
            conditions.append("(attribute_not_exists(#receipts) OR NOT contains(#receipts, :rks))")
        if remove:
            remove = tuple(dict.fromkeys(remove))
            for index, name in enumerate(remove):
                names[f"#r{index}"] = name
            update += " REMOVE " + ", ".join(f"#r{index}" for index in range(len(remove)))
        return {
            "UpdateExpression": update,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _trim_history(self, message_id: str, item: Item) -> Item:
        """Once a history passes HISTORY_LIMIT, keep its first entry and its latest HISTORY_TRIM_TO - 1,
        and count the others in `history_dropped`. Only then: the common path pays nothing. Status-callback
        attempts go before any other entry (oldest first): a receiver down for a day makes 22 attempts an
        event, which must not push Eseye's answers and the receipts out of the message's own story.

        Conditional on the history it saw (its length, and the dropped count every trim moves), so a
        write that came in between is never lost: the trim then does not apply, and the next write over
        the bound trims. A trim that fails leaves the change stored. Returns the item as it now stands.
        """
        history = item.get("history") or []
        if len(history) <= HISTORY_LIMIT:
            return item
        is_callback = [isinstance(e, dict) and e.get("event") == models.CALLBACK_EVENT for e in history]
        order = sorted(range(1, len(history)), key=lambda i: (not is_callback[i], i))  # callbacks first, each oldest first
        going = set(order[: len(history) - HISTORY_TRIM_TO])
        kept = [entry for index, entry in enumerate(history) if index not in going]
        dropped = int(item.get("history_dropped") or 0)
        names = {"#h": "history", "#dropped": "history_dropped"}
        values = {":kept": self.table.serialize(kept), ":n": {"N": str(len(history))}, ":k": {"N": str(len(history) - len(kept))}}
        if dropped:
            values[":d"] = {"N": str(dropped)}
        update = "SET #h = :kept ADD #dropped :k"
        # The dedup keys of receipts whose entries go (logic/receipt.py's "<referenceid>|<status>") go too,
        # or the set would grow without bound. A redelivery of one of those is then noted again, and moves
        # nothing: statuses only move forward.
        receipts = [history[i].get("detail", {}).get("receipt") for i in sorted(going) if isinstance(history[i], dict)]
        gone = {f"{r.get('referenceid', '')}|{r.get('status', '')}" for r in receipts if isinstance(r, dict)} & set(item.get("receipt_keys") or [])
        if gone:
            names["#rk"] = "receipt_keys"
            values[":gone"] = {"SS": sorted(gone)}
            update += " DELETE #rk :gone"
        try:
            return (
                self._update(
                    message_id,
                    UpdateExpression=update,
                    ConditionExpression="size(#h) = :n AND " + ("#dropped = :d" if dropped else "attribute_not_exists(#dropped)"),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                )
                or item
            )
        except (ConditionFailed, StoreUnavailable):
            return item

    def claim_attempt(
        self, message_id: str, owner: str, now: str, until: str, *, for_attempt: bool, max_attempts: int = 0
    ) -> tuple[models.Message, models.Message]:
        """Take a pending message's attempt lease, so that only one job at a time talks to Eseye about it.

        for_attempt: the lease is for an attempt that may send. It counts the attempt on the message (at
        most `max_attempts`) and marks that Eseye may have the message from now on, until an answer says
        otherwise: a job that dies mid-send leaves that mark for the next one, which then asks Eseye first.
        The lease lasts until `until`, longer than any holder can run, so an expired lease has no live holder.
        The claim is also the read: returns the message before and after it. Raises ConditionFailed (with the
        current message, None if there is none) when the message is not pending, another job holds the
        lease, or the attempts ran out.
        """
        names = {"#status": "status", "#owner": "lease_owner", "#until": "lease_until"}
        values: dict[str, AttributeValue] = {
            ":pending": {"S": models.PENDING},
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
        try:
            stored = self._update(
                message_id,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as exc:
            raise self._failed(exc) from exc
        before = self._one(stored)
        after = dataclasses.replace(before, lease_owner=owner, lease_until=until)
        if for_attempt:
            after = dataclasses.replace(after, attempts=int(before.attempts or 0) + 1, may_be_at_eseye=True)
        return before, after

    def keep_orphan_receipt(self, message_id: str, receipt: Mapping[str, Any], receipt_key: str, ttl: int) -> bool:
        """Keep a receipt for a message we do not have (yet), on a placeholder its create merges. Returns
        False if it was already kept, or the placeholder holds MAX_ORPHAN_RECEIPTS already. The first
        receipt sets the expiry; later ones do not extend it, so a placeholder nobody claims goes on time."""
        try:
            self._update(
                message_id,
                UpdateExpression="SET #orphans = list_append(if_not_exists(#orphans, :empty), :r), #ttl = if_not_exists(#ttl, :ttl)"
                " ADD #receipts :rk",
                ConditionExpression="attribute_not_exists(#status) AND (attribute_not_exists(#receipts) OR NOT contains(#receipts, :rks))"
                " AND (attribute_not_exists(#orphans) OR size(#orphans) < :max)",
                ExpressionAttributeNames={"#orphans": "orphan_receipts", "#status": "status", "#receipts": "receipt_keys", "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":r": self.table.serialize([dict(receipt)]),
                    ":rk": {"SS": [receipt_key]},
                    ":rks": self.table.serialize(receipt_key),
                    ":ttl": self.table.serialize(ttl),
                    ":max": {"N": str(MAX_ORPHAN_RECEIPTS)},
                },
            )
        except ConditionFailed:
            return False
        return True

    # --- the table's stream ----------------------------------------------------------------------
    def from_stream_image(self, image: Mapping[str, AttributeValue]) -> Item:
        """An item as a stream record's image carries it (DynamoDB's form), keys included."""
        return self.table.deserialize(image) or {}


def _sharded_before(table: Table, prefix: str, before: str, limit_per_shard: int) -> Iterator[Item]:
    """GSI3's entries under `prefix` (PENDING, SCHED, SIMQ or CONCAT) that sort before `before`, oldest first
    in each of the 64 shards and of the 16 from before them, at most `limit_per_shard` from each."""
    for shard in (*(f"{n:02x}" for n in range(GSI3_SHARDS)), *SHARDS):
        items, _ = table.query(
            index="GSI3",
            key_condition="#pk = :pk AND #sk < :before",
            names={"#pk": "GSI3PK", "#sk": "GSI3SK"},
            values={":pk": f"{prefix}#{shard}", ":before": before},
            limit=limit_per_shard,
        )
        yield from items


def is_sim_state(item: Mapping[str, Any]) -> bool:
    """Whether a stream image (keys included) is a SIM's queue state."""
    return str(item.get("PK", "")).startswith("SIM#")


def is_batch(item: Mapping[str, Any]) -> bool:
    """Whether a stream image (keys included) is a batch's record."""
    return str(item.get("PK", "")).startswith("BATCH#") and item.get("SK") == META


def item_keys(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's primary key (plain values), for an operator's note about a record we could not publish."""
    return {"PK": item.get("PK"), "SK": item.get("SK")}


def _created_range(since: str | None, until: str | None) -> tuple[str, str]:
    # '~' sorts after the '#<id>' suffix of the sort key.
    return since or "0000", (until or "9999") + "~"


class SimRepository:
    """Each SIM's delivery queue (simqueue.SimState): one item per SIM, changed only under its revision,
    in the same transaction as the messages a change moves."""

    def __init__(self, table: Table):
        self.table = table

    @staticmethod
    def _key(digits: str) -> tuple[str, str]:
        return f"SIM#{digits}", META

    def get(self, digits: str) -> SimState:
        """The SIM's state, strongly consistent (a SIM never seen has revision 0)."""
        return SimState.from_item(digits, self.table.get(*self._key(digits)))

    def get_many(self, digits: Sequence[str]) -> dict[str, SimState]:
        """The states of many SIMs at once (a batch's chunk reads its SIMs together)."""
        unique = list(dict.fromkeys(digits))
        found = {str(item["PK"]).removeprefix("SIM#"): item for item in self.table.batch_get([self._key(d) for d in unique])}
        return {d: SimState.from_item(d, found.get(d)) for d in unique}

    def _state_request(self, old: SimState, new: SimState, at: str) -> dict[str, Any]:
        # None removes: a setting the SIM no longer overrides, the sweep index once nothing waits.
        item: dict[str, Any] = {**dict.fromkeys(SETTING_NAMES), **new.to_item(), "updated_at": at, "GSI3PK": None, "GSI3SK": None}
        if new.queue:  # on the sweep index while messages wait, by the time of the last change
            item.update(GSI3PK=f"{SIM_QUEUE}#{_gsi3_shard(new.msisdn)}", GSI3SK=f"{at}#{new.msisdn}")
        names: dict[str, str] = {"#rev": "rev"}
        values: dict[str, AttributeValue] = {":rev": {"N": str(old.rev + 1)}}
        sets, removes = ["#rev = :rev"], []
        for index, (name, value) in enumerate(item.items()):
            names[f"#a{index}"] = name
            if value is None:
                removes.append(f"#a{index}")
            else:
                values[f":v{index}"] = self.table.serialize(value)
                sets.append(f"#a{index} = :v{index}")
        if old.rev:
            values[":seen"] = {"N": str(old.rev)}
            condition = "#rev = :seen"
        else:
            condition = "attribute_not_exists(#rev)"
        return {
            "Key": self.table.key(*self._key(new.msisdn)),
            "UpdateExpression": "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else ""),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def commit(self, old: SimState, new: SimState, at: str, message_writes: Sequence[dict[str, Any]] = ()) -> None:
        """Store `new` if the SIM is still at `old`'s revision, with the message writes, all or nothing.
        Raises ConditionFailed (`failed` maps 0 to the SIM and n to the n-th message write whose condition
        failed) or Contention (another transaction on the same items: read again and retry)."""
        if not message_writes:
            try:
                self.table.call("update_item", **self._state_request(old, new, at))
            except ConditionFailed as exc:
                raise ConditionFailed(None, {0: exc.item}) from exc
            return
        state = {"Update": {**self._state_request(old, new, at), "ReturnValuesOnConditionCheckFailure": "NONE"}}
        try:
            self.table.transact([state, *message_writes])
        except ConditionFailed as exc:
            failed = {position: (_message(item) if position else item) for position, item in exc.failed.items()}
            raise ConditionFailed(exc.item, failed) from exc

    def waiting_since(self, before: str, limit_per_shard: int) -> Iterator[str]:
        """The MSISDNs of SIMs with messages waiting whose state has not changed since `before`."""
        for item in _sharded_before(self.table, SIM_QUEUE, before, limit_per_shard):
            yield str(item["PK"]).removeprefix("SIM#")

    def due_scheduled(self, now: str, limit_per_shard: int) -> Iterator[str]:
        """Ids of scheduled messages whose send_at has come."""
        for item in _sharded_before(self.table, SCHEDULED, now, limit_per_shard):
            yield str(item["PK"]).removeprefix("MSG#")


class RateRepository:
    """Send rates toward outside services (logic/pacing.py): one item per limit, PK RATE#<name>, whose `tat`
    is the theoretical arrival time of the next send (GCRA), in integer microseconds since the epoch.

    Every reservation is one conditional write whose condition is the state the caller planned from, so a
    writer that planned on a stale state fails and learns the current one (ReturnValuesOnConditionCheckFailure)
    rather than overrunning the rate. Raises ConditionFailed whose `item` is the current tat (None if there
    is none) and whose `failed` holds 1 when the guard's condition failed; Contention when a transaction
    held the item."""

    def __init__(self, table: Table):
        self.table = table

    @staticmethod
    def _key(name: str) -> tuple[str, str]:
        return f"RATE#{name}", META

    def _request(self, name: str, update: str, condition: str, values: dict[str, int]) -> dict[str, Any]:
        return {
            "Key": self.table.key(*self._key(name)),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#tat": "tat"},
            "ExpressionAttributeValues": {k: {"N": str(v)} for k, v in values.items()},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def reserve(
        self, name: str, *, now: int, interval: int, seen: int | None, ceiling: int | None, guard: dict[str, Any] | None = None, reset: bool = False
    ) -> int:
        """Reserve the next slot of the limit and return it (microseconds).

        seen None or <= now (the limit is idle): the slot is `now`, if the stored tat is still no later.
        Otherwise the slot is the stored tat, if it is later than `now` and earlier than `ceiling`: one
        atomic `tat + interval`, so senders that planned on the same state all get slots of their own.
        With `guard` (a transaction item) the write is a transaction, which returns no values: the slot is
        then exactly `seen`, if the stored tat still is. `reset` starts a stale tat (`seen`) again at `now`."""
        if reset and seen is not None:
            request = self._request(name, "SET #tat = :new", "#tat = :seen", {":new": now + interval, ":seen": seen})
            slot = now
        elif seen is None or seen <= now:
            request = self._request(name, "SET #tat = :new", "attribute_not_exists(#tat) OR #tat <= :now", {":new": now + interval, ":now": now})
            slot = now
        elif guard is not None:
            request = self._request(name, "SET #tat = :new", "#tat = :seen", {":new": seen + interval, ":seen": seen})
            slot = seen
        else:
            values = {":interval": interval, ":now": now, ":ceiling": ceiling or seen + 1}
            request = self._request(name, "SET #tat = #tat + :interval", "#tat > :now AND #tat < :ceiling", values)
            slot = -1
        if guard is not None:
            try:
                self.table.transact([{"Update": request}, guard])
            except ConditionFailed as exc:
                current = exc.failed.get(0)
                raise ConditionFailed(_tat(current), {i: _tat(item) if i == 0 else item for i, item in exc.failed.items()}) from exc
            return slot
        try:
            stored = self.table.call("update_item", **request, ReturnValues="UPDATED_NEW" if slot < 0 else "NONE")
        except ConditionFailed as exc:
            raise ConditionFailed(_tat(exc.item), {0: _tat(exc.item)}) from exc
        except StoreUnavailable as exc:
            if _error_code(exc.__cause__) == "TransactionConflictException":  # a guarded reservation holds the item
                raise Contention("the rate is being reserved in a transaction") from exc
            raise
        if slot < 0:
            slot = int(stored["Attributes"]["tat"]["N"]) - interval
        return slot

    def current(self, name: str) -> int | None:
        """The stored tat, or None (strongly consistent; for tests and operators)."""
        return _tat(self.table.get(*self._key(name)))


def _tat(item: Item | None) -> int | None:
    return int(item["tat"]) if item and item.get("tat") is not None else None


def _error_code(exc: BaseException | None) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class ListRepository:
    """The allowlist and blocklist: one item per MSISDN, a size counter per list, and an audit trail."""

    COUNT = "#COUNT"

    def __init__(self, table: Table):
        self.table = table

    def lookup(self, digits: str) -> tuple[bool, bool, int]:
        """(on the blocklist, on the allowlist, the allowlist's size), in one read."""
        found = self.table.batch_get([("LIST#block", digits), ("LIST#allow", digits), ("LIST#allow", self.COUNT)])
        keys = {(item["PK"], item["SK"]): item for item in found}
        size = int(keys.get(("LIST#allow", self.COUNT), {}).get("size", 0))
        return ("LIST#block", digits) in keys, ("LIST#allow", digits) in keys, size

    def lookup_many(self, digits: Sequence[str]) -> tuple[set[str], set[str], int]:
        """(those on the blocklist, those on the allowlist, the allowlist's size) of many MSISDNs, read
        together: a batch's chunk checks its recipients at once."""
        keys = [("LIST#allow", self.COUNT), *((f"LIST#{name}", d) for d in dict.fromkeys(digits) for name in ("block", "allow"))]
        found: set[tuple[str, str]] = set()
        size = 0
        for item in self.table.batch_get(keys):
            if item["SK"] == self.COUNT:
                size = int(item.get("size", 0))
            found.add((str(item["PK"]), str(item["SK"])))
        blocked = {sk for pk, sk in found if pk == "LIST#block"}
        allowed = {sk for pk, sk in found if pk == "LIST#allow" and sk != self.COUNT}
        return blocked, allowed, size

    def get(self, list_name: str, digits: str) -> models.ListEntry | None:
        item = self.table.get(f"LIST#{list_name}", digits)
        return models.ListEntry.from_item(item) if item else None

    def add(self, entry: models.ListEntry) -> bool:
        """Add an entry with its audit record and the list's size. Returns False, changing nothing, if the
        MSISDN is on the list already."""
        list_name, digits = entry.list, entry.msisdn
        try:
            self.table.transact(
                [
                    {
                        "Put": {
                            "Item": self.table.serialize_item({"PK": f"LIST#{list_name}", "SK": digits, **entry.to_item()}),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    self._count(list_name, 1),
                    self._audit(list_name, digits, "added", entry.added_by, entry.added_at),
                ]
            )
        except ConditionFailed:
            return False
        return True

    def remove(self, list_name: str, digits: str, actor: str, at: str) -> bool:
        """Remove an entry with its audit record. Returns False if the MSISDN was not on the list."""
        try:
            self.table.transact(
                [
                    {"Delete": {"Key": self.table.key(f"LIST#{list_name}", digits), "ConditionExpression": "attribute_exists(PK)"}},
                    self._count(list_name, -1),
                    self._audit(list_name, digits, "removed", actor, at),
                ]
            )
        except ConditionFailed:
            return False
        return True

    def _count(self, list_name: str, change: int) -> dict[str, Any]:
        return {
            "Update": {
                "Key": self.table.key(f"LIST#{list_name}", self.COUNT),
                "UpdateExpression": "ADD #a :n",
                "ExpressionAttributeNames": {"#a": "size"},
                "ExpressionAttributeValues": {":n": {"N": str(change)}},
            }
        }

    def _audit(self, list_name: str, digits: str, action: str, actor: str, at: str) -> dict[str, Any]:
        item = {"PK": f"LISTLOG#{list_name}", "SK": f"{at}#{digits}#{action}", "msisdn": digits, "action": action, "actor": actor, "at": at}
        return {"Put": {"Item": self.table.serialize_item(item)}}


class CommandRepository:
    """Saved commands (logic/commands.py): one partition, PK CMD, SK the name (they are few and change
    rarely), and an audit trail, PK CMDLOG, of who created, replaced or deleted which, and when."""

    PK = "CMD"
    LOG = "CMDLOG"
    PAGE_KEY = frozenset({"PK", "SK"})

    def __init__(self, table: Table):
        self.table = table

    def get(self, name: str) -> Item | None:
        """The command's stored attributes (`name` among them), or None."""
        return _domain(self.table.get(self.PK, name))

    def save(self, command: Mapping[str, Any], actor: str, at: str) -> tuple[bool, Item]:
        """Store a command (`command` holds its attributes, `name` among them) with its audit record: a new
        one, or in place of the one of that name, keeping when and by whom it was first created.
        Returns (created, the command as stored). Raises StoreUnavailable."""
        name = str(command["name"])
        for _ in range(5):
            existing = self.get(name)
            created = existing is None
            first = {"created_at": at, "created_by": actor} if existing is None else {k: existing.get(k) for k in ("created_at", "created_by")}
            item = {**command, **first, "updated_at": at, "updated_by": actor}
            condition = "attribute_not_exists(PK)" if created else "attribute_exists(PK) AND #created = :created"
            put: dict[str, Any] = {"Item": self.table.serialize_item({"PK": self.PK, "SK": name, **item}), "ConditionExpression": condition}
            if not created:
                put["ExpressionAttributeNames"] = {"#created": "created_at"}
                put["ExpressionAttributeValues"] = {":created": self.table.serialize(first["created_at"])}
            try:
                self.table.transact([{"Put": put}, self._audit(name, "created" if created else "replaced", actor, at, command)])
            except ConditionFailed:
                continue  # created, replaced or deleted meanwhile: read again
            return created, {k: v for k, v in item.items() if v is not None}
        raise StoreUnavailable("the command kept changing while it was being saved; retry")

    def remove(self, name: str, actor: str, at: str) -> bool:
        """Delete a command with its audit record. Returns False if there was none of that name."""
        try:
            self.table.transact(
                [
                    {"Delete": {"Key": self.table.key(self.PK, name), "ConditionExpression": "attribute_exists(PK)"}},
                    self._audit(name, "deleted", actor, at),
                ]
            )
        except ConditionFailed:
            return False
        return True

    def page(self, limit: int, after: dict[str, Any] | None) -> tuple[list[Item], dict[str, Any] | None]:
        """Commands by name, `limit` of them after the position `after`. Returns them and the position to
        resume after (None at the end)."""
        items, last = self.table.query(key_condition="#pk = :pk", names={"#pk": "PK"}, values={":pk": self.PK}, limit=limit, start_key=after)
        return [_domain(i) or {} for i in items], last

    @classmethod
    def check_position(cls, position: Mapping[str, Any]) -> dict[str, Any]:
        """A position from a cursor, if `page` could have returned it. Raises InvalidCursor otherwise."""
        if set(position) != cls.PAGE_KEY or not all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in position.values()):
            raise InvalidCursor()
        if position["PK"]["S"] != cls.PK:
            raise InvalidCursor()
        return dict(position)

    def _audit(self, name: str, action: str, actor: str, at: str, command: Mapping[str, Any] | None = None) -> dict[str, Any]:
        item = {"PK": self.LOG, "SK": f"{at}#{name}#{action}", "name": name, "action": action, "actor": actor, "at": at, "command": command}
        return {"Put": {"Item": self.table.serialize_item(item)}}


@dataclasses.dataclass
class ReadBudget:
    """What one request may still spend on reads: items DynamoDB evaluates and queries. A reader that stops
    because the budget ran out says so in `exhausted`."""

    items: int
    queries: int
    exhausted: bool = False

    def spend(self, items: int) -> None:
        self.items, self.queries = self.items - items, self.queries - 1


def event_shard(event_id: str) -> str:
    """The archive shard of an event: its id's hash, so an event archived twice lands in the same partition."""
    return _hash_shard(event_id, EVENT_SHARDS, hex_digits=4)


class EventArchive:
    """Every published event, by hour, for POST /events/replay.

    An hour's events are spread over EVENT_SHARDS partitions (EVT#<hour>#<shard>), so that none takes
    more than its share of the hour's writes. A marker per (hour, shard) under EVTHOURS says which
    partitions hold events, so a reader queries only those, and skips empty hours without a query each.
    Markers cost no call of their own: a container writes each (hour, shard)'s marker once, in the batch
    with the first event it archives there, so the EVTHOURS partition takes at most containers x shards
    writes an hour."""

    MARKER_MARGIN = 2 * 86400  # a marker outlives the events of its hour archived later (stream retries)

    def __init__(self, table: Table):
        self.table = table
        self._marked: set[str] = set()  # (hour, shard) markers this container wrote
        self._ahead_minute = random.randint(40, 57)  # containers spread their marking ahead over the hour's end
        self._ahead_done: set[str] = set()  # hours whose following hour this container marked ahead

    @staticmethod
    def _partition(hour: str, shard: str) -> str:
        return f"EVT#{hour}" if shard == LEGACY_SHARD else f"EVT#{hour}#{shard}"

    def append(self, events: Sequence[models.ArchivedEvent]) -> None:
        """Archive events (batch writes), with the markers of partitions this container has not marked
        yet. Raises StoreUnavailable (nothing is then taken as marked: the retry writes the markers again)."""
        markers: dict[str, int] = {}
        items: list[Item] = []
        for event in events:
            shard = event_shard(event.position.split("#", 1)[1])
            items.append({"PK": self._partition(event.hour, shard), "SK": event.position, **event.to_item()})
            marker = f"{event.hour}#{shard}"
            if marker not in self._marked:
                markers[marker] = max(markers.get(marker, 0), event.ttl)
        if events:
            markers.update(self._ahead(max(events, key=lambda e: e.position), markers))
        rows = [{"PK": EVENT_HOURS, "SK": m, **({"ttl": ttl + self.MARKER_MARGIN} if ttl else {})} for m, ttl in markers.items()]
        self.table.put_items(rows + items)  # markers first: an event is never stored without its marker
        if len(self._marked) > 20_000:  # a long-lived container: forget old hours (a marker written again is harmless)
            self._marked.clear()
        self._marked.update(markers)

    def _ahead(self, latest: models.ArchivedEvent, new: Mapping[str, int]) -> dict[str, int]:
        """A busy container marks the next hour's shards ahead, at a minute of its own late in the hour:
        otherwise every container would mark all of them in the first seconds of each hour, a burst of
        containers x 128 writes on the markers' one partition. A quiet one marks as it goes (few markers)."""
        hour, minute = latest.hour, int(latest.position[14:16])
        if minute < self._ahead_minute or hour in self._ahead_done:
            return {}
        used = {m for m in (*self._marked, *new) if m.startswith(hour)}
        if len(used) < EVENT_SHARDS // 4:
            return {}
        self._ahead_done.add(hour)
        following = (datetime.fromisoformat(hour + ":00:00+00:00") + timedelta(hours=1)).strftime("%Y-%m-%dT%H")
        ahead = {f"{following}#{shard:02x}" for shard in range(EVENT_SHARDS)} - self._marked
        return dict.fromkeys(ahead, latest.ttl + 3600 if latest.ttl else 0)

    def mark_legacy_hour(self, hour: str) -> bool:
        """Mark `hour` as holding events archived before the shards (EVT#<hour>) if it does. A one-off for a
        table archived to before the shards came: without its marker such an hour is not replayed."""
        items, _ = self.table.query(key_condition="#pk = :pk", names={"#pk": "PK"}, values={":pk": f"EVT#{hour}"}, limit=1)
        if items:
            self.table.put_items([{"PK": EVENT_HOURS, "SK": f"{hour}#{LEGACY_SHARD}"}])
        return bool(items)

    def hours(self, first: str, last: str, budget: ReadBudget) -> tuple[list[tuple[str, list[str]]], str | None]:
        """The hours from `first` to `last` (`yyyy-mm-ddThh`) that hold events, oldest first, each with its
        shards, from one query of the markers. Returns them and, when more hours follow than one query
        reads, the first hour left out (its list may be cut short, so it is left out whole)."""
        # A marker is a query to come, so a request never uses more than its queries' worth; and more than one
        # hour's markers (128 shards and the old partition), so that the first hour listed is whole.
        limit = max(EVENT_SHARDS + 2, budget.queries)
        items, more = self.table.query(
            key_condition="#pk = :pk AND #sk BETWEEN :low AND :high",
            names={"#pk": "PK", "#sk": "SK"},
            values={":pk": EVENT_HOURS, ":low": first, ":high": last + "~"},
            limit=limit,
        )
        budget.spend(len(items))
        found: dict[str, list[str]] = {}
        for item in items:
            hour, shard = str(item["SK"]).split("#", 1)
            found.setdefault(hour, []).append(shard)
        if not more:
            return list(found.items()), None
        rest = max(found)
        return [(hour, shards) for hour, shards in found.items() if hour != rest], rest

    def events(self, hour: str, shards: Sequence[str], after: str, until: str, budget: ReadBudget, batch: int) -> Iterator[models.ArchivedEvent]:
        """The archived events of one hour across its shards, from `after` to `until`, oldest first: each
        exactly once, as positions are unique. `after` is a position (an event's, excluded) or a bare time
        prefix (included). Reads about `batch` items at first, each shard's share, then again from each
        shard that runs out while it holds more. Stops early, setting `budget.exhausted`, when the budget
        cannot pay for the next read: what it yielded until then is complete and in order."""
        # Nothing can be known to come first until every shard has been read once.
        if budget.queries < len(shards) or budget.items < len(shards):
            budget.exhausted = True
            return
        size = max(1, min(budget.items // len(shards), -(-batch // len(shards)) + 1))
        heads = {shard: self._read(hour, shard, after, until, size, budget) for shard in shards}
        while True:
            for shard, (items, more_after) in heads.items():
                if not items and more_after is not None:
                    if budget.queries < 1 or budget.items < 1:
                        budget.exhausted = True
                        return
                    heads[shard] = self._read(hour, shard, more_after, until, min(size, budget.items), budget)
            ready = [(items[0].position, shard) for shard, (items, _) in heads.items() if items]
            if not ready:
                return
            yield heads[min(ready)[1]][0].pop(0)

    def _read(self, hour: str, shard: str, after: str, until: str, limit: int, budget: ReadBudget) -> tuple[list[models.ArchivedEvent], str | None]:
        """Up to `limit` events of one partition after `after`; and the position to read on from, if it holds more."""
        partition = self._partition(hour, shard)
        items, last = self.table.query(
            key_condition="#pk = :pk AND #sk BETWEEN :low AND :high",
            names={"#pk": "PK", "#sk": "SK"},
            values={":pk": partition, ":low": after, ":high": until},
            limit=limit,
            start_key=self.table.key(partition, after) if after[13:] else None,
        )
        budget.spend(len(items))
        events = [models.ArchivedEvent.from_item(i, str(i["SK"])) for i in items]
        return events, (events[-1].position if last and events else None)


@dataclasses.dataclass(frozen=True)
class QuarantineTally:
    count: int
    latest_at: str | None  # when the newest counted request was quarantined
    complete: bool  # False when the count stopped at its bound of Queries


class InboundRepository:
    """What arrives on the webhooks besides messages: quarantined requests and concat buffers."""

    def __init__(self, table: Table):
        self.table = table

    def quarantine(self, at: str, entry_id: str, fields: Mapping[str, Any]) -> None:
        """Keep an unusable webhook request (its `fields` include the ttl)."""
        self.table.put({"PK": f"Q#{at[:10]}", "SK": f"{at}#{entry_id}", **fields})

    def count_quarantined(self, since: str, until: str, max_queries: int) -> QuarantineTally:
        """Requests quarantined from `since` to `until` (ISO times): a Select=COUNT Query per day's partition,
        newest day first, and one more for the latest one's time. At most `max_queries` Queries (a flood can
        fill many 1 MB pages); when they run out the count is what was counted so far, `complete` False."""
        tally = QuarantineTally(0, None, True)
        day, first = datetime.fromisoformat(until[:10]), datetime.fromisoformat(since[:10])
        queries = 0
        while day >= first:
            partition, start_key, counted = f"Q#{day.date().isoformat()}", None, 0
            while True:
                if queries >= max_queries:
                    return dataclasses.replace(tally, count=tally.count + counted, complete=False)
                kwargs: dict[str, Any] = {"ExclusiveStartKey": start_key} if start_key else {}
                result = self.table.call(
                    "query",
                    KeyConditionExpression="#pk = :pk AND #sk BETWEEN :since AND :until",
                    ExpressionAttributeNames={"#pk": "PK", "#sk": "SK"},
                    ExpressionAttributeValues={":pk": {"S": partition}, ":since": {"S": since}, ":until": {"S": until + "~"}},
                    Select="COUNT",
                    **kwargs,
                )
                queries += 1
                counted += int(result.get("Count", 0))
                start_key = result.get("LastEvaluatedKey")
                if not start_key:
                    break
            tally = dataclasses.replace(tally, count=tally.count + counted)
            if counted and tally.latest_at is None and queries < max_queries:
                items, _ = self.table.query(
                    key_condition="#pk = :pk AND #sk <= :until",
                    names={"#pk": "PK", "#sk": "SK"},
                    values={":pk": partition, ":until": until + "~"},
                    forward=False,
                    limit=1,
                )
                queries += 1
                tally = dataclasses.replace(tally, latest_at=str(items[0]["SK"]).split("#", 1)[0] if items else None)
            day -= timedelta(days=1)
        return tally

    # --- concatenated MO buffers: open -> (closing) -> closed -> open again when the reference is reused ---
    @staticmethod
    def buffer_name(sender: str | None, reference: int, total: int) -> str:
        """The buffer a part of a long MO goes to: one per sender, reference and number of parts."""
        return f"CONCAT#{sender or 'unknown'}#{reference}#{total}"

    def _index(self, name: str, opened_at: str) -> dict[str, str]:
        return {"GSI3PK": f"CONCAT#{_gsi3_shard(name)}", "GSI3SK": f"{opened_at}#{name}"}

    def _buffer(self, item: Item | None) -> Item | None:
        if item is None:
            return None
        return {**{k: v for k, v in item.items() if k not in KEY_FIELDS}, "name": item.get("PK")} if "PK" in item else item

    def _failed(self, exc: ConditionFailed) -> ConditionFailed:
        return ConditionFailed(self._buffer(exc.item))

    def get_buffer(self, name: str) -> Item | None:
        """The buffer, with its `name`, or None."""
        return self._buffer(self.table.get(name, META))

    def _placeholders(self, fields: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
        """Expression names #f<n> and values :f<n> standing for `fields`, in their order."""
        names = {f"#f{index}": field for index, field in enumerate(fields)}
        values = {f":f{index}": self.table.serialize(value) for index, value in enumerate(fields.values())}
        return names, values

    def add_part(
        self, name: str, sequence: int, part: Mapping[str, Any], ttl: int, *, part_id: str, opened_after: str, new_buffer: Mapping[str, Any]
    ) -> Item:
        """Add a part the buffer does not hold yet, to its open buffer or to a new one that starts with `new_buffer`
        (buffer_id, total, opened_at).

        Returns the buffer with every part so far. Raises ConditionFailed (with the buffer) when that part is
        already held, when the buffer is not open or was opened before `opened_after`, or when `part_id` was
        a part of the message the buffer last closed.
        """
        fields = {**new_buffer, **self._index(name, str(new_buffer["opened_at"])), "state": "open"}
        names, values = self._placeholders(fields)
        sets = [f"#f{index} = if_not_exists(#f{index}, :f{index})" for index in range(len(fields))]
        state, opened = _placeholder(names, "state"), _placeholder(names, "opened_at")
        names.update({"#part": f"part_{int(sequence)}", "#ttl": "ttl", "#count": "part_count", "#closed": "closed_ids"})
        values.update(
            {
                ":part": self.table.serialize(dict(part)),
                ":ttl": self.table.serialize(ttl),
                ":one": self.table.serialize(1),
                ":open": self.table.serialize("open"),
                ":after": self.table.serialize(opened_after),
                ":pid": self.table.serialize(part_id),
            }
        )
        try:
            item = self.table.update(
                name,
                META,
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
        except ConditionFailed as exc:
            raise self._failed(exc) from exc
        return self._buffer(item) or {}

    def reopen_buffer(
        self, name: str, closed_buffer_id: str, sequence: int, part: Mapping[str, Any], ttl: int, new_buffer: Mapping[str, Any]
    ) -> Item:
        """Start a new message in a closed buffer (its reference reused), holding this one part.
        Raises ConditionFailed (with the buffer) unless the buffer is still the closed `closed_buffer_id`."""
        fields = {
            **new_buffer,
            **self._index(name, str(new_buffer["opened_at"])),
            "state": "open",
            "part_count": 1,
            f"part_{int(sequence)}": dict(part),
            "ttl": ttl,
        }
        names, values = self._placeholders(fields)
        state, buffer_id = _placeholder(names, "state"), _placeholder(names, "buffer_id")
        values.update({":closed": self.table.serialize("closed"), ":previous": self.table.serialize(closed_buffer_id)})
        try:
            item = self.table.update(
                name,
                META,
                UpdateExpression="SET " + ", ".join(f"#f{index} = :f{index}" for index in range(len(fields))),
                ConditionExpression=f"{state} = :closed AND {buffer_id} = :previous",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as exc:
            raise self._failed(exc) from exc
        return self._buffer(item) or {}

    def adopt_buffer(self, name: str, fields: Mapping[str, Any]) -> None:
        """Give a buffer written before buffers had a state (it holds parts only) the fields of an open one
        (buffer_id, opened_at, part_count). Raises ConditionFailed if it has a state already."""
        total = int(name.rsplit("#", 1)[1])
        fields = {**fields, "total": total, **self._index(name, str(fields["opened_at"])), "state": "open"}
        names, values = self._placeholders(fields)
        self.table.update(
            name,
            META,
            UpdateExpression="SET " + ", ".join(f"#f{index} = :f{index}" for index in range(len(fields))),
            ConditionExpression=f"attribute_exists(PK) AND attribute_not_exists({_placeholder(names, 'state')})",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def freeze_buffer(self, name: str, buffer_id: str, part_count: int) -> Item:
        """Stop an open buffer taking parts, if it still holds exactly `part_count` of them, so that what it
        holds can be stored as it is. Returns the buffer. Raises ConditionFailed (with the buffer) otherwise."""
        try:
            item = self.table.update(
                name,
                META,
                UpdateExpression="SET #state = :closing",
                ConditionExpression="#state = :open AND #id = :id AND #count = :count",
                ExpressionAttributeNames={"#state": "state", "#id": "buffer_id", "#count": "part_count"},
                ExpressionAttributeValues={
                    ":closing": {"S": "closing"},
                    ":open": {"S": "open"},
                    ":id": {"S": buffer_id},
                    ":count": self.table.serialize(int(part_count)),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as exc:
            raise self._failed(exc) from exc
        return self._buffer(item) or {}

    def close_buffer(self, name: str, buffer_id: str, sequences: list[int], part_ids: list[str], message_id: str) -> bool:
        """Close the buffer once its message is stored: drop its parts and keep the Eseye ids of those parts,
        so that a late copy of one is known as a duplicate. Returns False if it was closed or reused already."""
        remove = ["#count", "#opened", "#gpk", "#gsk", *(f"#p{index}" for index in range(len(sequences)))]
        names = {"#state": "state", "#id": "buffer_id", "#last": "last_message_id", "#count": "part_count", "#opened": "opened_at"}
        names.update({"#gpk": "GSI3PK", "#gsk": "GSI3SK", "#closed": "closed_ids"})
        names.update({f"#p{index}": f"part_{int(sequence)}" for index, sequence in enumerate(sequences)})
        values: dict[str, AttributeValue] = {
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
            self.table.update(
                name,
                META,
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE " + ", ".join(remove),
                ConditionExpression="#id = :id AND #state IN (:open, :closing)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ConditionFailed:
            return False
        return True

    def buffers_opened_before(self, cutoff: str, limit_per_shard: int) -> Iterator[Item]:
        """Buffers on the open-buffer index opened before `cutoff` (each read again, consistently)."""
        for key in _sharded_before(self.table, "CONCAT", cutoff, limit_per_shard):
            buffer = self._buffer(self.table.get(key["PK"], key["SK"]))
            if buffer:
                yield buffer


class BatchRepository:
    """Batches (POST /batches): the batch record, and its chunks, each with the recipients it fans out to
    and the latest status of each of their messages (kept from the table stream), so that progress is one
    read of the batch's partition however many messages it has."""

    def __init__(self, table: Table):
        self.table = table

    @staticmethod
    def _pk(batch_id: str) -> str:
        return f"BATCH#{batch_id}"

    @staticmethod
    def chunk_key(number: int) -> str:
        return f"CHUNK#{number:05d}"

    def guard(self, batch_id: str) -> dict[str, Any]:
        """A transaction item that holds only while the batch is not cancelled: what a message of the batch
        is created and sent under, so that nothing of a cancelled batch starts."""
        return {
            "ConditionCheck": {
                "Key": self.table.key(self._pk(batch_id), META),
                "ConditionExpression": "attribute_exists(PK) AND #state <> :cancelled",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {":cancelled": {"S": models.BATCH_CANCELLED}},
            }
        }

    def create(self, batch: Mapping[str, Any], chunks: Sequence[Sequence[Mapping[str, Any]]]) -> Item | None:
        """Store a new batch and its chunks. Returns None, or the batch already stored under its id.
        The chunks go first: a batch record exists only with all of its chunks (a crash in between leaves
        chunks that expire, and a retry writes them again)."""
        self.put_chunks(str(batch["id"]), chunks, start=0, ttl=batch.get("ttl"))
        created = str(batch["created_at"])
        listed = {"GSI4PK": f"{BATCHES}#{created[:7]}", "GSI4SK": f"{created}#{batch['id']}"}  # GET /batches
        if not self.table.put({"PK": self._pk(str(batch["id"])), "SK": META, **batch, **listed}, if_absent=True):
            return self.get(str(batch["id"]))
        return None

    def created_in(self, month: str, low: str, before: str, limit: int) -> tuple[list[tuple[str, str]], str | None]:
        """Batches created in `month` (yyyy-mm) from `low` (a time, included) to `before` (a position, excluded),
        newest first: up to `limit` (position, batch id), and the position to read on from if the month may
        hold more. One Query of GSI4 reading at most `limit` + 2 entries."""
        # BETWEEN includes `before`; a position read again is dropped (a bare month prefix never matches). One
        # entry more than that tells whether the month holds more, so a last page ends without a cursor.
        items, last = self.table.query(
            index="GSI4",
            key_condition="#pk = :pk AND #sk BETWEEN :low AND :high",
            names={"#pk": "GSI4PK", "#sk": "GSI4SK"},
            values={":pk": f"{BATCHES}#{month}", ":low": low, ":high": before},
            forward=False,
            limit=limit + 2,
        )
        found = [(str(i["GSI4SK"]), str(i["PK"]).removeprefix("BATCH#")) for i in items if str(i["GSI4SK"]) != before]
        if len(found) > limit:
            return found[:limit], found[limit - 1][0]
        return found, str(last["GSI4SK"]["S"]) if last and "GSI4SK" in last else None

    def summaries(self, batch_ids: Sequence[str]) -> dict[str, Item]:
        """The batches of `batch_ids` that exist, by id, with the summary fields only (a batch can hold a
        thousand skipped recipients; a listing needs none of them)."""
        items = self.table.batch_get([(self._pk(i), META) for i in dict.fromkeys(batch_ids)], projection=BATCH_SUMMARY_FIELDS + BATCH_SUMMARY_TIMES)
        return {str(item["id"]): _domain(item) or {} for item in items if item.get("id")}

    def put_chunks(self, batch_id: str, chunks: Sequence[Sequence[Mapping[str, Any]]], start: int, ttl: int | None) -> None:
        """The chunks, expiring with their batch."""
        items: list[Item] = [
            {"PK": self._pk(batch_id), "SK": self.chunk_key(start + n), "recipients": list(c), "chunk_size": len(c), "statuses": {}, "ttl": ttl}
            for n, c in enumerate(chunks)
        ]
        self.table.put_items(items)

    def get(self, batch_id: str) -> Item | None:
        return _domain(self.table.get(self._pk(batch_id), META))

    def get_with_chunk(self, batch_id: str, number: int) -> tuple[Item | None, Item | None]:
        found = {item["SK"]: item for item in self.table.batch_get([(self._pk(batch_id), META), (self._pk(batch_id), self.chunk_key(number))])}
        return _domain(found.get(META)), _domain(found.get(self.chunk_key(number)))

    def update(
        self,
        batch_id: str,
        sets: Mapping[str, Any],
        *,
        states: Sequence[str] = (),
        add: Mapping[str, set[str]] | None = None,
        once: str | None = None,
    ) -> Item:
        """Set fields of the batch (and ADD to its string sets), if it is in one of `states` (any when
        empty) and, with `once`, has no `once` attribute yet. Returns the batch as it is now.
        Raises ConditionFailed (with the stored batch) otherwise."""
        names: dict[str, str] = {"#pk": "PK"}
        values: dict[str, Any] = {}
        clauses: list[str] = []
        for index, (name, value) in enumerate(sets.items()):
            names[f"#s{index}"], values[f":s{index}"] = name, self.table.serialize(value)
            clauses.append(f"#s{index} = :s{index}")
        expression = ("SET " + ", ".join(clauses)) if clauses else ""
        adds = []
        for index, (name, members) in enumerate((add or {}).items()):
            names[f"#a{index}"], values[f":a{index}"] = name, {"SS": sorted(members)}
            adds.append(f"#a{index} :a{index}")
        if adds:
            expression += " ADD " + ", ".join(adds)
        condition = "attribute_exists(#pk)"
        if states:
            names["#state"] = "state"
            condition += " AND #state IN (" + ", ".join(f":st{i}" for i in range(len(states))) + ")"
            values.update({f":st{i}": {"S": state} for i, state in enumerate(states)})
        if once:
            names["#once"] = once
            condition += " AND attribute_not_exists(#once)"
        stored = self.table.update(
            self._pk(batch_id),
            META,
            UpdateExpression=expression.strip(),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return _domain(stored) or {}

    def set_statuses(self, batch_id: str, number: int, statuses: Mapping[str, str], *, if_absent: bool = False) -> Item:
        """Record messages' latest statuses on their chunk (from the stream); with `if_absent`, only those it
        has no status for yet (the fan-out's first word never overwrites the stream's). Returns the chunk."""
        names: dict[str, str] = {"#st": "statuses"}
        values: dict[str, Any] = {}
        clauses = []
        for index, (message_id, status) in enumerate(statuses.items()):
            names[f"#m{index}"], values[f":v{index}"] = message_id, {"S": status}
            value = f"if_not_exists(#st.#m{index}, :v{index})" if if_absent else f":v{index}"
            clauses.append(f"#st.#m{index} = {value}")
        condition = "attribute_exists(#st)"
        expression = "SET " + ", ".join(clauses)
        stored = self.table.update(
            self._pk(batch_id),
            self.chunk_key(number),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return _domain(stored) or {}

    def chunks(self, batch_id: str, *, after: int = -1, with_recipients: bool = False) -> Iterator[tuple[int, Item]]:
        """The batch's chunks in order, from the one after `after`, each as (number, item)."""
        start: dict[str, Any] | None = None
        projection = {} if with_recipients else {"ProjectionExpression": "SK, statuses, chunk_size"}
        while True:
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": "PK = :pk AND SK BETWEEN :low AND :high",
                "ExpressionAttributeValues": {
                    ":pk": {"S": self._pk(batch_id)},
                    ":low": {"S": self.chunk_key(after + 1)},
                    ":high": {"S": "CHUNK#~"},
                },
                "ConsistentRead": True,
                **projection,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            result = self.table.call("query", **kwargs)
            for raw in result.get("Items", []):
                item = self.table.deserialize(raw) or {}
                yield int(str(item["SK"]).removeprefix("CHUNK#")), _domain(item) or {}
            start = result.get("LastEvaluatedKey")
            if not start:
                return


class Store:
    """The table and its repositories, built once per container (on Deps)."""

    def __init__(self, table_name: str, client: Any = None, ttl_seconds: int = 400 * 86400):
        self.table = Table(table_name, client, ttl_seconds)
        self.messages = MessageRepository(self.table)
        self.sims = SimRepository(self.table)
        self.lists = ListRepository(self.table)
        self.commands = CommandRepository(self.table)
        self.events = EventArchive(self.table)
        self.inbound = InboundRepository(self.table)
        self.groups = GroupRepository(self.table)
        self.rates = RateRepository(self.table)
        self.batches = BatchRepository(self.table)

    @property
    def client(self) -> Any:
        return self.table.client

    def idempotency_persistence(self) -> Any:
        """Powertools' idempotency persistence layer on this table, sharing its client. Its records go to
        IDEM#<shard> (idempotency_partition): one key for all of them would cap idempotent sends at 333-500/s."""
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        class ShardedPersistenceLayer(DynamoDBPersistenceLayer):
            def _get_key(self, idempotency_key: str) -> dict[str, Any]:
                # Every read and write of a record builds its key here, so a retry finds the record it wrote.
                return {self.key_attr: {"S": idempotency_partition(idempotency_key)}, str(self.sort_key_attr): {"S": idempotency_key}}

        return ShardedPersistenceLayer(
            table_name=self.table.table_name,
            key_attr="PK",
            sort_key_attr="SK",
            static_pk_value="IDEM",
            expiry_attr="ttl",
            boto3_client=self.table.client,
        )

    def expiry(self, epoch_now: float) -> int:
        return self.table.expiry(epoch_now)


def idempotency_partition(idempotency_key: str) -> str:
    """The partition of an idempotency record: IDEM#<two hex digits of its key's hash> (256 shards). The key
    is Powertools' `<function>#<hash of the request's key>`, the same for every retry of a request."""
    return f"IDEM#{hashlib.sha256(idempotency_key.encode()).hexdigest()[:2]}"


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
    result: dict[str, Any] = bounded(entry, FIELD_LIMIT // 8)
    return result


def _placeholder(names: dict[str, str], attribute: str) -> str:
    """The expression name already standing for `attribute`."""
    return next(key for key, value in names.items() if value == attribute)


# --- groups (issue 14) ----------------------------------------------------------------------------------
GROUP = "GROUP"  # partition of the group records
GROUP_BUCKETS = 128  # member buckets per generation: 100,000 members of 15 digits are ~12 KB a bucket
# Buckets one add commits in a transaction. A transaction costs twice the size of what it writes: 25 buckets
# of ~10 KB are ~550 write units, half of what one partition takes in a second (so a 100,000-member add is
# six transactions, none of which the partition has to refuse).
GROUP_TRANSACTION_BUCKETS = 25
GROUP_PAGE_BUCKETS = 16  # buckets read per Query while a page of members fills
GROUP_CHANGE_ATTEMPTS = 8  # reads and writes again when another change came between them
GROUP_AUDIT_LISTED = 1000  # members an audit record names; beyond that it keeps their count and digest
# A replace answers inside API Gateway's 29 s (the function has 25) however hard DynamoDB throttles: its bucket
# writes, retries included, stop after this long (503, nothing changed), and the deletes of the old generation
# after the switch stop here too (what is left, the next replace or delete sweeps).
GROUP_WRITE_SECONDS = 15.0
GROUP_SWEEP_SECONDS = 20.0


def _pause(attempt: int) -> None:
    """A short, growing, jittered wait before another try, when another change or throttling got in the way."""
    time.sleep(min(0.02 * 2**attempt, 0.5) * (0.5 + random.random()))  # jitter, so that two retriers part


def group_bucket(digits: str) -> int:
    """The bucket a member's digits live in: spread evenly by hash, the same for every generation."""
    return hashlib.sha256(digits.encode()).digest()[-1] % GROUP_BUCKETS


def members_digest(members: Collection[str]) -> str:
    """A fingerprint of a member set, so that an audit record says what a large change was without listing it."""
    return hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class GroupChange:
    """What a change to a group did: the group after it (None: there is no such group), the members it
    added or removed, and whether it was refused because the group would have grown past its limit."""

    group: models.Group | None
    changed: list[str]
    over_limit: bool = False


class GroupReplaced(ConditionFailed):
    """A replace was overtaken by a later replace or a delete of the same group; its writes are undone."""

    def __init__(self) -> None:
        super().__init__(None)


class GroupRepository:
    """Groups of SIMs: a record per group, its members in GROUP_BUCKETS buckets per generation, and an audit trail.

    A replace writes a whole new generation of buckets (BatchWriteItem) beside the current one, then switches
    the group record to it with one conditional write: readers see the old members or the new ones, never a
    mix, and `size` is exact. The generation it replaced is deleted afterwards. An add or a remove changes the
    current generation's buckets in one transaction with the group record: each bucket under its revision `v`,
    the record under its generation and size, so that concurrent changes never count a member twice."""

    def __init__(self, table: Table):
        self.table = table

    @staticmethod
    def _pk(name: str) -> str:
        return f"GRP#{name}"

    @staticmethod
    def _sk(generation: str, bucket: int) -> str:
        return f"M#{generation}#{bucket:03d}"

    @staticmethod
    def _group(item: Item | None) -> models.Group | None:
        """A group record as the typed group; None for none, and for a group whose first replace has not finished."""
        if not item or "gen" not in item:
            return None
        return models.Group(
            name=str(item["SK"]),
            size=int(item["size"]),
            generation=str(item["gen"]),
            created_at=str(item["created_at"]),
            created_by=str(item["created_by"]),
            updated_at=str(item["updated_at"]),
            updated_by=str(item["updated_by"]),
        )

    @staticmethod
    def _bucketed(members: Collection[str]) -> dict[int, set[str]]:
        buckets: dict[int, set[str]] = {}
        for digits in members:
            buckets.setdefault(group_bucket(digits), set()).add(digits)
        return buckets

    # --- reads -----------------------------------------------------------------------------------
    def get(self, name: str) -> models.Group | None:
        """The group (strongly consistent), or None."""
        return self._group(self.table.get(GROUP, name))

    def groups(self, limit: int, after: str | None) -> tuple[list[models.Group], str | None]:
        """A page of groups in name order, after the group named `after`. Returns them and the name to resume after."""
        values: dict[str, Any] = {":pk": GROUP}
        condition = "#pk = :pk"
        if after:
            values[":after"] = after
            condition += " AND #sk > :after"
        items, last = self.table.query(
            key_condition=condition,
            names={"#pk": "PK", "#sk": "SK", "#gen": "gen"} if after else {"#pk": "PK", "#gen": "gen"},
            values=values,
            filter_expression="attribute_exists(#gen)",
            limit=limit,
        )
        groups = [g for g in (self._group(i) for i in items) if g is not None]
        return groups, (str(last["SK"]["S"]) if last else None)

    def _query(
        self, name: str, low: str, high: str, *, keys_only: bool = False, limit: int | None = None, start: Any = None
    ) -> tuple[list[Item], Any]:
        """One strongly consistent Query of a group's bucket items with sort keys from `low` to `high`."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"},
            "ExpressionAttributeValues": {":pk": {"S": self._pk(name)}, ":low": {"S": low}, ":high": {"S": high}},
            "ConsistentRead": True,  # a replace's buckets are read back at once after its switch
        }
        if keys_only:
            kwargs["ProjectionExpression"] = "#sk"
        if limit:
            kwargs["Limit"] = limit
        if start:
            kwargs["ExclusiveStartKey"] = start
        result = self.table.call("query", **kwargs)
        return [self.table.deserialize(i) or {} for i in result.get("Items", [])], result.get("LastEvaluatedKey")

    def members(self, group: models.Group) -> list[str] | None:
        """Every member of the group, all of one generation: one Query per MB read (100,000 members: two), and a
        read of the group after them. A replace that switched generations meanwhile (and may have deleted some
        of the old buckets before they were read) makes it read the new generation instead. Returns None if the
        group was deleted meanwhile. Raises Contention if it kept being replaced, StoreUnavailable."""
        current: models.Group | None = group
        for _ in range(GROUP_CHANGE_ATTEMPTS):
            assert current is not None
            held: list[str] = []
            start = None
            while True:
                items, start = self._query(current.name, f"M#{current.generation}#", f"M#{current.generation}#~", start=start)
                for item in items:
                    held += item.get("members", [])
                if not start:
                    break
            read = current
            current = self.get(group.name)
            if current is None:
                return None
            if current.generation == read.generation:
                return held
        raise Contention("the group kept being replaced while its members were read; try again")

    def members_page(self, group: models.Group, bucket: int, after: str, limit: int) -> tuple[list[str], tuple[int, str] | None]:
        """Up to `limit` members from bucket `bucket` on (in it, those after `after`), buckets in order and
        members sorted within each. Returns them and the (bucket, member) to resume after, None at the end."""
        found: list[str] = []
        start = None
        while True:
            items, start = self._query(
                group.name, self._sk(group.generation, bucket), f"M#{group.generation}#~", limit=GROUP_PAGE_BUCKETS, start=start
            )
            for item in items:
                number = int(str(item["SK"]).rsplit("#", 1)[1])
                held = [m for m in item.get("members", []) if number != bucket or m > after]
                room = limit - len(found)
                found += held[:room]
                if len(found) == limit:
                    return found, (number, found[-1])
            if not start:
                return found, None

    def _held(self, group: models.Group, buckets: Collection[int]) -> dict[int, tuple[set[str], int]]:
        """The members and revision of each of these buckets of the group's generation (absent: none, 0)."""
        keys = [(self._pk(group.name), self._sk(group.generation, b)) for b in sorted(buckets)]
        held: dict[int, tuple[set[str], int]] = {b: (set(), 0) for b in buckets}
        for start in range(0, len(keys), 100):  # BatchGetItem takes 100 keys
            for item in self.table.batch_get(keys[start : start + 100]):
                held[int(str(item["SK"]).rsplit("#", 1)[1])] = (set(item.get("members", [])), int(item.get("v", 0)))
        return held

    def audit(self, name: str, limit: int = 100) -> list[Item]:
        """The group's audit records, oldest first: who changed it, when, and what."""
        items, _ = self.table.query(key_condition="#pk = :pk", names={"#pk": "PK"}, values={":pk": f"GRPLOG#{name}"}, limit=limit)
        return [{k: v for k, v in i.items() if k not in KEY_FIELDS} for i in items]

    # --- writes ----------------------------------------------------------------------------------
    def _audit(self, name: str, action: str, actor: str, at: str, members: Collection[str], **what: Any) -> dict[str, Any]:
        listed = sorted(members)
        item = {
            "PK": f"GRPLOG#{name}",
            "SK": f"{at}#{action}#{secrets.token_hex(4)}",
            "group": name,
            "action": action,
            "actor": actor,
            "at": at,
            "count": len(listed),
            **what,
        }
        if len(listed) <= GROUP_AUDIT_LISTED:
            item["members"] = listed
        else:
            item["members_digest"] = members_digest(listed)
        return {"Put": {"Item": self.table.serialize_item(item)}}

    def _record_change(self, group: models.Group, change: int, actor: str, at: str) -> dict[str, Any]:
        """The group record's part of an add or a remove: its size moves by `change`, if it is still `group`."""
        return {
            "Update": {
                "Key": self.table.key(GROUP, group.name),
                "UpdateExpression": "SET #ua = :at, #ub = :actor ADD #size :change",
                "ConditionExpression": "#gen = :gen AND #size = :seen",
                "ExpressionAttributeNames": {"#ua": "updated_at", "#ub": "updated_by", "#size": "size", "#gen": "gen"},
                "ExpressionAttributeValues": {
                    ":at": {"S": at},
                    ":actor": {"S": actor},
                    ":change": {"N": str(change)},
                    ":gen": {"S": group.generation},
                    ":seen": {"N": str(group.size)},
                },
            }
        }

    def replace(self, name: str, members: Collection[str], actor: str, at: str) -> tuple[models.Group, models.Group | None]:
        """Make `members` (distinct digits) the group's members, creating the group if need be, with its audit
        record. Returns the group and what it was before (None: new). Raises GroupReplaced if a later replace
        or a delete overtook this one, StoreUnavailable."""
        generation = secrets.token_hex(4)
        started = time.monotonic()
        before = self.table.update(
            GROUP,
            name,
            UpdateExpression="SET #pending = :gen, #since = :at",
            ExpressionAttributeNames={"#pending": "pending", "#since": "pending_since"},
            ExpressionAttributeValues={":gen": {"S": generation}, ":at": {"S": at}},
            ReturnValues="ALL_OLD",
        )
        previous = self._group(before)
        pk = self._pk(name)
        buckets = self._bucketed(members)
        puts = [{"PK": pk, "SK": self._sk(generation, b), "members": held, "v": 1} for b, held in buckets.items()]
        try:
            self.table.write_batches(puts=puts, deadline=started + GROUP_WRITE_SECONDS)
        except StoreUnavailable:
            self._discard_quietly(name, generation, started + GROUP_SWEEP_SECONDS)
            raise
        switch = {
            "Update": {
                "Key": self.table.key(GROUP, name),
                "UpdateExpression": "SET #gen = :gen, #size = :size, #ua = :at, #ub = :actor,"
                " #ca = if_not_exists(#ca, :at), #cb = if_not_exists(#cb, :actor) REMOVE #pending, #since",
                "ConditionExpression": "#pending = :gen",
                "ExpressionAttributeNames": {
                    "#gen": "gen",
                    "#size": "size",
                    "#ua": "updated_at",
                    "#ub": "updated_by",
                    "#ca": "created_at",
                    "#cb": "created_by",
                    "#pending": "pending",
                    "#since": "pending_since",
                },
                "ExpressionAttributeValues": {
                    ":gen": {"S": generation},
                    ":size": {"N": str(len(members))},
                    ":at": {"S": at},
                    ":actor": {"S": actor},
                },
            }
        }
        audit = self._audit(name, "replaced", actor, at, members, size=len(members), previous_size=previous.size if previous else 0)
        for attempt in range(GROUP_CHANGE_ATTEMPTS):
            try:
                self.table.transact([switch, audit])
                break
            except Contention:
                if attempt == GROUP_CHANGE_ATTEMPTS - 1:
                    self._discard_quietly(name, generation, started + GROUP_SWEEP_SECONDS)
                    raise
                _pause(attempt)
            except ConditionFailed as exc:
                self._discard_quietly(name, generation, started + GROUP_SWEEP_SECONDS)
                raise GroupReplaced() from exc
        self._sweep(name, generation, started + GROUP_SWEEP_SECONDS)
        created_at = previous.created_at if previous else at
        created_by = previous.created_by if previous else actor
        return models.Group(name, len(members), generation, created_at, created_by, at, actor), previous

    def add(self, name: str, members: Collection[str], actor: str, at: str, max_size: int) -> GroupChange:
        """Add those of `members` (digits) the group does not hold, with an audit record per transaction, unless
        the group would then hold more than `max_size`. Raises Contention if it kept changing, StoreUnavailable."""
        wanted = self._bucketed(members)
        added: list[str] = []
        for attempt in range(GROUP_CHANGE_ATTEMPTS):
            group = self.get(name)
            if group is None:
                return GroupChange(None, added)
            held = self._held(group, wanted)
            new = {b: sorted(wanted[b] - held[b][0]) for b in wanted}
            new = {b: fresh for b, fresh in new.items() if fresh}
            count = sum(len(fresh) for fresh in new.values())
            if not count:
                return GroupChange(group, added)
            if group.size + count > max_size:
                return GroupChange(group, added, over_limit=True)
            try:
                order = sorted(new)
                for start in range(0, len(order), GROUP_TRANSACTION_BUCKETS):
                    chunk = order[start : start + GROUP_TRANSACTION_BUCKETS]
                    fresh = [m for b in chunk for m in new[b]]
                    writes = [self._bucket_add(group, b, new[b], held[b][1]) for b in chunk]
                    writes += [
                        self._record_change(group, len(fresh), actor, at),
                        self._audit(name, "added", actor, at, fresh, size=group.size + len(fresh)),
                    ]
                    self.table.transact(writes)
                    group = dataclasses.replace(group, size=group.size + len(fresh), updated_at=at, updated_by=actor)
                    added += fresh
                return GroupChange(group, added)
            except (ConditionFailed, Contention):
                _pause(attempt)  # another change came between the read and the write, or throttling: read again
        raise Contention("the group kept changing while members were added; try again")

    def _bucket_add(self, group: models.Group, bucket: int, fresh: list[str], revision: int) -> dict[str, Any]:
        names = {"#m": "members", "#v": "v"}
        values: dict[str, AttributeValue] = {":new": {"SS": fresh}, ":one": {"N": "1"}}
        if revision:
            values[":seen"] = {"N": str(revision)}
        return {
            "Update": {
                "Key": self.table.key(self._pk(group.name), self._sk(group.generation, bucket)),
                "UpdateExpression": "ADD #m :new, #v :one",
                "ConditionExpression": "#v = :seen" if revision else "attribute_not_exists(#v)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def remove(self, name: str, digits: str, actor: str, at: str) -> GroupChange:
        """Remove one member, with its audit record. `changed` is empty if it was not a member.
        Raises Contention if the group kept changing, StoreUnavailable."""
        for attempt in range(GROUP_CHANGE_ATTEMPTS):
            group = self.get(name)
            if group is None:
                return GroupChange(None, [])
            take = {
                "Update": {
                    "Key": self.table.key(self._pk(name), self._sk(group.generation, group_bucket(digits))),
                    "UpdateExpression": "DELETE #m :gone ADD #v :one",
                    "ConditionExpression": "contains(#m, :digits)",
                    "ExpressionAttributeNames": {"#m": "members", "#v": "v"},
                    "ExpressionAttributeValues": {":gone": {"SS": [digits]}, ":digits": {"S": digits}, ":one": {"N": "1"}},
                }
            }
            try:
                self.table.transact(
                    [take, self._record_change(group, -1, actor, at), self._audit(name, "removed", actor, at, [digits], size=group.size - 1)]
                )
            except ConditionFailed as exc:
                if 1 not in exc.failed and 0 in exc.failed:
                    return GroupChange(group, [])
                _pause(attempt)
                continue
            except Contention:
                _pause(attempt)
                continue
            return GroupChange(dataclasses.replace(group, size=group.size - 1, updated_at=at, updated_by=actor), [digits])
        raise Contention("the group kept changing; try again")

    def delete(self, name: str, actor: str, at: str) -> models.Group | None:
        """Delete the group and its members, with an audit record. Returns what it was, or None if there was none.
        Raises Contention if it kept changing, StoreUnavailable."""
        for attempt in range(GROUP_CHANGE_ATTEMPTS):
            group = self.get(name)
            if group is None:
                return None
            record = {
                "Delete": {
                    "Key": self.table.key(GROUP, name),
                    "ConditionExpression": "#gen = :gen AND #size = :seen",
                    "ExpressionAttributeNames": {"#gen": "gen", "#size": "size"},
                    "ExpressionAttributeValues": {":gen": {"S": group.generation}, ":seen": {"N": str(group.size)}},
                }
            }
            try:
                self.table.transact([record, self._audit(name, "deleted", actor, at, [], size=0, previous_size=group.size)])
            except (ConditionFailed, Contention):
                _pause(attempt)
                continue
            self._sweep(name, None)
            return group
        raise Contention("the group kept changing; try again")

    def _discard_quietly(self, name: str, generation: str, deadline: float) -> None:
        """Delete the buckets of a generation that never became the group's, as far as DynamoDB lets it by
        `deadline`: what is left, the next sweep of the group deletes."""
        try:
            keys, _ = self._bucket_keys(name, f"M#{generation}#", f"M#{generation}#~")
            self.table.write_batches(deletes=keys, deadline=deadline)
        except StoreUnavailable:
            return

    def _bucket_keys(self, name: str, low: str, high: str) -> tuple[list[tuple[str, str]], int]:
        """The keys of a group's bucket items from `low` to `high`, and the number of Queries it took."""
        keys, start, calls = [], None, 0
        while True:
            items, start = self._query(name, low, high, keys_only=True, start=start)
            calls += 1
            keys += [(self._pk(name), str(i["SK"])) for i in items]
            if not start:
                return keys, calls

    def _sweep(self, name: str, current: str | None, deadline: float | None = None) -> None:
        """Delete every bucket item of the group that is not of its current generation (`current`) or of a
        replace under way: the generation a replace switched away from, those of replaces that died, and all
        of them after a delete. Best effort: what a failure leaves, the next replace or delete sweeps."""
        ranges = [("M#", f"M#{current}#"), (f"M#{current}#~", "M#~")] if current else [("M#", "M#~")]
        try:
            keys = [key for low, high in ranges for key in self._bucket_keys(name, low, high)[0]]
            if not keys:
                return
            record = self.table.get(GROUP, name) or {}  # read after the keys: a replace begun since is kept
            live = {current, record.get("gen"), record.get("pending")}
            self.table.write_batches(deletes=[(pk, sk) for pk, sk in keys if sk.split("#")[1] not in live], deadline=deadline)
        except StoreUnavailable:
            return  # the group is already right; only space is wasted until the next sweep
