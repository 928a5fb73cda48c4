"""Groups of SIMs (issue 14) through GroupsFunction as deployed, with its sample events, against moto."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from tests.conftest import load_event
from tests.helpers import CallCounter, body_of, hook_every_client

ACTOR = "arn:aws:iam::123456789012:user/local-developer"  # the caller of the sample events
SAMPLE = "depot-7"  # the group of the sample events
LIMIT = 100_000


def group_request(stack, sample, name=SAMPLE, body=None, query=None, msisdn=None):
    """One request to GroupsFunction: a sample event for another group, body, query or member."""
    event = load_event(sample)
    event["path"] = event["path"].replace(f"/groups/{SAMPLE}", f"/groups/{name}")
    if event["pathParameters"]:
        event["pathParameters"]["name"] = name
    if msisdn is not None:
        event["pathParameters"]["msisdn"] = msisdn
        event["path"] = f"/groups/{name}/members/{msisdn}"
    if body is not None:
        event["body"] = json.dumps(body)
    if query is not None:
        event["queryStringParameters"] = query
    return stack.invoke("GroupsFunction", event)


def put(stack, name, members):
    return group_request(stack, "groups_put", name, {"members": members})


def add(stack, name, members):
    return group_request(stack, "groups_add_members", name, {"members": members})


def every_member(stack, name, limit=10_000):
    """GET /groups/{name} page after page until next_cursor is null: (members in order read, pages)."""
    seen, pages, query = [], 0, {"limit": str(limit)}
    while True:
        response = group_request(stack, "groups_get", name, query=query)
        assert response["statusCode"] == 200, response["body"]
        page = body_of(response)
        seen += page["members"]
        pages += 1
        if not page["next_cursor"]:
            return seen, pages
        query = {"limit": str(limit), "cursor": page["next_cursor"]}


def msisdns(count, start=447_000_000_000):
    return [str(start + n) for n in range(count)]


def stored_generations(stack, name):
    """The member generations stored for a group (what a replace or a delete leaves behind)."""
    items, _ = stack.deps().store.table.query(key_condition="#pk = :pk", names={"#pk": "PK"}, values={":pk": f"GRP#{name}"})
    return {str(i["SK"]).split("#")[1] for i in items}


def test_the_sample_requests_create_read_change_list_and_delete_a_group(stack):
    # Given the sample PUT: three members, one of them with a '+'
    created = group_request(stack, "groups_put")
    assert created["statusCode"] == 201
    assert body_of(created).items() >= {"name": SAMPLE, "size": 3, "created_by": ACTOR, "updated_by": ACTOR, "previous_size": 0}.items()
    # When the other samples run in turn
    page = body_of(group_request(stack, "groups_get"))
    added = body_of(group_request(stack, "groups_add_members"))
    removed = body_of(group_request(stack, "groups_remove_member"))
    listed = body_of(group_request(stack, "groups_list"))
    deleted = group_request(stack, "groups_delete")
    # Then each did what it says
    assert (len(page["members"]), page["size"]) == (2, 3) and page["next_cursor"]  # limit=2 of 3
    assert (added["added"], added["size"]) == (2, 5)
    assert (removed["removed"], removed["size"]) == ("447700900124", 4)
    assert [(g["name"], g["size"]) for g in listed["items"]] == [(SAMPLE, 4)] and listed["next_cursor"] is None
    assert (deleted["statusCode"], body_of(deleted)) == (200, {"deleted": True, "name": SAMPLE, "size": 4})
    # and the group is gone, members and all
    assert group_request(stack, "groups_get")["statusCode"] == 404
    assert stored_generations(stack, SAMPLE) == set()


def test_a_replace_sets_exactly_the_members_named_and_duplicates_collapse(stack):
    # Given a group of five
    assert put(stack, "fleet-a", msisdns(5))["statusCode"] == 201
    # When it is replaced by three old members, two new ones, and the same SIMs again with a '+'
    members = [*msisdns(3), "447999000001", "447999000002"]
    response = put(stack, "fleet-a", members + ["+" + m for m in members])
    # Then the answer is 200 with the exact size, and the members are exactly those
    assert response["statusCode"] == 200
    assert (body_of(response)["size"], body_of(response)["previous_size"]) == (5, 5)
    seen, _ = every_member(stack, "fleet-a")
    assert sorted(seen) == sorted(members)
    # and the batches' view agrees
    from smsgw.logic import groups

    assert groups.size(stack.deps(), "fleet-a") == 5
    assert sorted(groups.members(stack.deps(), "fleet-a")) == sorted(members)
    # and only the new generation of members is stored
    assert len(stored_generations(stack, "fleet-a")) == 1


def test_adds_and_removes_keep_the_size_exact(stack):
    # Given a group of 300
    put(stack, "fleet-b", msisdns(300))
    # When 200 members are added, half of them already in it (and one twice)
    response = add(stack, "fleet-b", [*msisdns(200, start=447000000200), "+447000000350"])
    # Then 100 were new, and the size says so
    assert response["statusCode"] == 200
    assert (body_of(response)["added"], body_of(response)["size"]) == (100, 400)
    # When the same add is made again
    again = body_of(add(stack, "fleet-b", msisdns(200, start=447_000_000_200)))
    # Then nothing changes
    assert (again["added"], again["size"]) == (0, 400)
    # When one member is removed, given with a '+'
    removed = group_request(stack, "groups_remove_member", "fleet-b", msisdn="+447000000007")
    assert (removed["statusCode"], body_of(removed)["size"], body_of(removed)["removed"]) == (200, 399, "447000000007")
    # Then removing it again, or a SIM never in the group, is 404, and the size stays
    for msisdn in ("447000000007", "447711111111"):
        response = group_request(stack, "groups_remove_member", "fleet-b", msisdn=msisdn)
        assert response["statusCode"] == 404 and "not a member" in body_of(response)["error"]["message"]
    # and the size always equals the members stored
    seen, _ = every_member(stack, "fleet-b")
    assert len(seen) == len(set(seen)) == 399 == body_of(group_request(stack, "groups_get", "fleet-b"))["size"]
    assert set(seen) == (set(msisdns(400)) - {"447000000007"})


def test_a_large_add_commits_in_transactions_each_exact_and_audited(stack):
    # Given a group of 100
    put(stack, "fleet-m", msisdns(100))
    # When 5,000 new members are added at once (every one of the 128 buckets gets some)
    response = add(stack, "fleet-m", msisdns(5000, start=447_700_000_000))
    # Then all were added and the size is exact
    assert (body_of(response)["added"], body_of(response)["size"]) == (5000, 5100)
    seen, _ = every_member(stack, "fleet-m")
    assert len(seen) == len(set(seen)) == 5100
    # and each transaction (25 buckets at most, to spare the partition's write rate) left its own audit record
    added = [a for a in stack.deps().store.groups.audit("fleet-m") if a["action"] == "added"]
    assert len(added) == 6  # ceil(128 / 25)
    assert sum(a["count"] for a in added) == 5000
    sizes = sorted(a["size"] for a in added)  # one request: the same time on each
    assert sizes[-1] == 5100 and [b - a for a, b in itertools.pairwise([100, *sizes])] == [a["count"] for a in sorted(added, key=lambda a: a["size"])]


def test_a_group_may_be_emptied_and_filled_again(stack):
    # Given a group of three, replaced by no members at all
    put(stack, "fleet-empty", msisdns(3))
    emptied = put(stack, "fleet-empty", [])
    assert (emptied["statusCode"], body_of(emptied)["size"]) == (200, 0)
    # Then it exists with no members, and no buckets are left stored
    page = body_of(group_request(stack, "groups_get", "fleet-empty"))
    assert (page["size"], page["members"], page["next_cursor"]) == (0, [], None)
    assert stored_generations(stack, "fleet-empty") == set()
    # and adding none changes nothing, adding two gives two
    assert body_of(add(stack, "fleet-empty", []))["added"] == 0
    assert body_of(add(stack, "fleet-empty", msisdns(2)))["size"] == 2


def test_changes_to_a_group_that_does_not_exist_are_404(stack):
    # Given no group named ghost
    for response in (
        group_request(stack, "groups_get", "ghost"),
        add(stack, "ghost", ["447700900123"]),
        group_request(stack, "groups_remove_member", "ghost", msisdn="447700900123"),
        group_request(stack, "groups_delete", "ghost"),
    ):
        # Then each request says there is no such group
        assert response["statusCode"] == 404
        assert "no group named ghost" in body_of(response)["error"]["message"]
    # and the adds created nothing
    assert body_of(group_request(stack, "groups_list"))["items"] == []


@pytest.mark.parametrize("name", ["-starts-with-dash", "has space", "x" * 65, "semi;colon", "ünïcode", ".dot"])
def test_invalid_group_names_are_422_naming_the_name(stack, name):
    # When a group with an invalid name is written, read or deleted
    for response in (put(stack, name, ["447700900123"]), group_request(stack, "groups_get", name), group_request(stack, "groups_delete", name)):
        # Then the answer is 422 naming the field and its rule
        assert response["statusCode"] == 422, response["body"]
        error = body_of(response)["error"]
        assert error["code"] == "validation_error"
        assert error["details"]["fields"] == {"name": "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or a digit"}


def test_valid_names_use_every_allowed_character(stack):
    name = "A.b_c-9" + "x" * 57  # 64 characters
    assert put(stack, name, ["447700900123"])["statusCode"] == 201
    assert body_of(group_request(stack, "groups_get", name))["members"] == ["447700900123"]


def test_invalid_msisdns_are_422_listing_each_and_nothing_changes(stack):
    # Given a group of two
    put(stack, "fleet-c", ["447700900001", "447700900002"])
    # When a replace names members that are not MSISDNs among good ones
    bad_body = ["447700900003", "12345", "4477009000x1", 447700900004, None, "+44 7700 900005", "447700900006"]
    for response in (put(stack, "fleet-c", bad_body), add(stack, "fleet-c", bad_body)):
        # Then the answer is 422 naming each bad value by its position, and how many there are
        assert response["statusCode"] == 422
        error = body_of(response)["error"]
        assert set(error["details"]["fields"]) == {"members[1]", "members[2]", "members[3]", "members[4]", "members[5]"}
        assert "'12345' must be an MSISDN" in error["details"]["fields"]["members[1]"]
        assert error["details"]["invalid"] == ["12345", "4477009000x1", 447700900004, None, "+44 7700 900005"]
        assert error["details"]["invalid_count"] == 5
        assert "5 of the members are not MSISDNs" in error["message"]
    # and the group is unchanged
    seen, _ = every_member(stack, "fleet-c")
    assert sorted(seen) == ["447700900001", "447700900002"]


def test_a_request_with_thousands_of_bad_members_names_the_first_hundred_and_counts_all(stack):
    response = put(stack, "fleet-d", [f"bad{n}" for n in range(5000)])
    error = body_of(response)["error"]
    assert response["statusCode"] == 422
    assert (len(error["details"]["fields"]), error["details"]["invalid_count"]) == (100, 5000)


def test_a_huge_bad_value_is_named_by_its_start_not_echoed_whole(stack):
    response = put(stack, "fleet-d", ["447700900001", "4" * 100_000, {"msisdn": "447700900002"}])
    error = body_of(response)["error"]
    assert response["statusCode"] == 422
    assert error["details"]["invalid"] == ["4" * 32 + "…", '{"msisdn": "447700900002"}']
    assert len(response["body"]) < 2000


@pytest.mark.parametrize(
    "body, field",
    [({"members": "447700900123"}, "members"), ({}, "members"), ({"members": [], "note": "x"}, "note"), (["447700900123"], "body")],
)
def test_a_body_of_the_wrong_shape_is_422_naming_the_field(stack, body, field):
    response = group_request(stack, "groups_put", "fleet-e", body)
    assert response["statusCode"] == 422
    assert field in body_of(response)["error"]["details"]["fields"]


def test_paging_reads_every_member_exactly_once(stack):
    # Given a group of 2,500
    members = msisdns(2500, start=447_100_000_000)
    put(stack, "fleet-f", members)
    # When it is read 333 members a page
    seen, pages = every_member(stack, "fleet-f", limit=333)
    # Then every member came exactly once, in pages of at most 333
    assert len(seen) == len(set(seen)) == 2500
    assert set(seen) == set(members)
    assert pages in (8, 9)  # ceil(2500 / 333), and perhaps one empty page to say it is the end
    # and a page of one works too
    one = body_of(group_request(stack, "groups_get", "fleet-f", query={"limit": "1"}))
    assert len(one["members"]) == 1 and one["next_cursor"]


def test_a_cursor_works_only_for_its_group_and_until_the_group_is_replaced(stack):
    # Given two groups and a cursor into the first
    put(stack, "fleet-g", msisdns(50))
    put(stack, "fleet-h", msisdns(50))
    cursor = body_of(group_request(stack, "groups_get", "fleet-g", query={"limit": "10"}))["next_cursor"]
    # When it is used for the other group, or edited
    for name, token in (("fleet-h", cursor), ("fleet-g", cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB"))):
        response = group_request(stack, "groups_get", name, query={"cursor": token})
        # Then it is refused as a cursor this API did not issue for the query
        assert (response["statusCode"], body_of(response)["error"]["code"]) == (400, "invalid_cursor")
    # When the group is replaced and the cursor used again
    put(stack, "fleet-g", msisdns(50, start=447_200_000_000))
    response = group_request(stack, "groups_get", "fleet-g", query={"cursor": cursor})
    # Then it is 409: its pages would mix two sets of members
    assert response["statusCode"] == 409
    assert "replaced since this cursor" in body_of(response)["error"]["message"]


@pytest.mark.parametrize("limit", ["0", "10001", "ten", "-1"])
def test_a_page_limit_out_of_range_is_422(stack, limit):
    put(stack, "fleet-i", msisdns(3))
    response = group_request(stack, "groups_get", "fleet-i", query={"limit": limit})
    assert response["statusCode"] == 422 and "limit" in body_of(response)["error"]["details"]["fields"]


def test_groups_are_listed_in_name_order_page_by_page(stack):
    # Given seven groups
    names = [f"site-{n}" for n in (5, 1, 7, 3, 2, 6, 4)]
    for name in names:
        put(stack, name, ["447700900123"])
    # When they are listed three at a time
    listed, query = [], {"limit": "3"}
    while True:
        page = body_of(group_request(stack, "groups_list", query=query))
        listed += [g["name"] for g in page["items"]]
        if not page["next_cursor"]:
            break
        query = {"limit": "3", "cursor": page["next_cursor"]}
    # Then each appears once, in name order
    assert listed == sorted(names)


def test_every_change_is_audited_with_who_when_and_what(stack):
    # Given a group created, added to, a member removed, replaced and deleted
    put(stack, "fleet-j", ["447700900001", "447700900002"])
    add(stack, "fleet-j", ["447700900003"])
    group_request(stack, "groups_remove_member", "fleet-j", msisdn="447700900001")
    put(stack, "fleet-j", msisdns(1500))
    group_request(stack, "groups_delete", "fleet-j")
    # Then the audit trail holds each change, in order, with who made it, when and what it did
    trail = stack.deps().store.groups.audit("fleet-j")
    assert [(a["action"], a["actor"], a["size"], a["count"]) for a in trail] == [
        ("replaced", ACTOR, 2, 2),
        ("added", ACTOR, 3, 1),
        ("removed", ACTOR, 2, 1),
        ("replaced", ACTOR, 1500, 1500),
        ("deleted", ACTOR, 0, 0),
    ]
    assert [a.get("members") for a in trail[:3]] == [["447700900001", "447700900002"], ["447700900003"], ["447700900001"]]
    assert (trail[3]["previous_size"], trail[4]["previous_size"]) == (2, 1500)
    assert "members" not in trail[3] and len(trail[3]["members_digest"]) == 64  # too many to list: their fingerprint
    assert all(a["at"] <= b["at"] for a, b in itertools.pairwise(trail)) and trail[0]["at"].endswith("Z")
    # and the trail outlives the group
    assert group_request(stack, "groups_get", "fleet-j")["statusCode"] == 404


def test_a_reader_during_a_replace_sees_the_old_members_whole(stack, monkeypatch):
    # Given a group of 1,000
    from smsgw.adapters.table import Table
    from smsgw.logic import groups

    old = msisdns(1000)
    put(stack, "fleet-k", old)
    seen_during = []
    original = Table.write_batches

    def read_while_writing(self, *args, **kwargs):
        calls = original(self, *args, **kwargs)
        if kwargs.get("puts"):  # the new generation is written, the switch not yet made
            seen_during.append((groups.size(stack.deps(), "fleet-k"), sorted(groups.members(stack.deps(), "fleet-k"))))
        return calls

    monkeypatch.setattr(Table, "write_batches", read_while_writing)
    # When it is replaced by 1,000 others
    new = msisdns(1000, start=447_300_000_000)
    assert put(stack, "fleet-k", new)["statusCode"] == 200
    # Then a reader in the middle saw exactly the old members, and one after sees exactly the new
    assert seen_during == [(1000, sorted(old))]
    assert sorted(groups.members(stack.deps(), "fleet-k")) == sorted(new)


def test_a_batch_reading_members_while_a_replace_switches_and_sweeps_gets_one_version_whole(stack, monkeypatch):
    # Given a group of 1,000, read by the batches' interface a few buckets per Query (as a group past 1 MB is)
    from smsgw.adapters.store import GroupRepository
    from smsgw.logic import groups

    old, new = msisdns(1000), msisdns(1000, start=447_310_000_000)
    put(stack, "fleet-r", old)
    original = GroupRepository._query
    replaced = []

    def paged(self, name, low, high, *, keys_only=False, limit=None, start=None):
        items, last = original(self, name, low, high, keys_only=keys_only, limit=limit or (None if keys_only else 8), start=start)
        if not keys_only and not replaced:
            # When, after the reader's first page, the group is replaced: switched, and the old buckets swept away
            replaced.append(True)
            self.replace(name, set(new), "someone-else", "2026-11-26T03:00:00.000Z")
        return items, last

    monkeypatch.setattr(GroupRepository, "_query", paged)
    read = list(groups.members(stack.deps(), "fleet-r"))
    # Then the reader got one version of the group whole (here the new one), not the old one's first page alone
    assert replaced and sorted(read) == sorted(new)


def test_a_replace_overtaken_by_another_is_409_and_leaves_nothing_behind(stack, monkeypatch):
    # Given a group, and a second replace that runs while the first writes its members
    from smsgw.adapters.table import Table

    put(stack, "fleet-l", msisdns(10))
    original = Table.write_batches
    overtaken = []

    def overtake(self, *args, **kwargs):
        calls = original(self, *args, **kwargs)
        if kwargs.get("puts") and not overtaken:
            overtaken.append(True)
            stack.deps().store.groups.replace("fleet-l", {"447400000001", "447400000002"}, "someone-else", "2026-11-26T03:00:00.000Z")
        return calls

    monkeypatch.setattr(Table, "write_batches", overtake)
    # When the first replace finishes
    response = put(stack, "fleet-l", msisdns(500, start=447_500_000_000))
    # Then it is told it lost (409), the second one's members stand, and only their generation is stored
    assert response["statusCode"] == 409
    seen, _ = every_member(stack, "fleet-l")
    assert sorted(seen) == ["447400000001", "447400000002"]
    assert body_of(group_request(stack, "groups_get", "fleet-l"))["size"] == 2
    assert len(stored_generations(stack, "fleet-l")) == 1


def hot_partition(monkeypatch, applied: int) -> list[int]:
    """DynamoDB throttling one partition: each BatchWriteItem applies only its first `applied` writes and hands
    the rest back as UnprocessedItems, as DynamoDB does. Returns the number of writes each call was given."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.batch_write_item
    given: list[int] = []

    def partly(self):
        [(table, requests)] = self.body["RequestItems"].items()
        given.append(len(requests))
        self.body["RequestItems"] = {table: requests[:applied]}
        result = original(self)
        result.result["UnprocessedItems"] = {table: requests[applied:]} if requests[applied:] else {}
        return result

    monkeypatch.setattr(DynamoHandler, "batch_write_item", partly)
    return given


def test_a_replace_rides_out_a_throttled_partition(stack, monkeypatch):
    # Given a group, and a partition that takes only 10 of each 25 writes
    put(stack, "fleet-t", msisdns(100))
    given = hot_partition(monkeypatch, 10)
    # When it is replaced by 2,000 members (128 buckets)
    response = put(stack, "fleet-t", msisdns(2000, start=447_330_000_000))
    # Then the writes DynamoDB left were retried until all were in, and the members are exactly the new ones
    assert response["statusCode"] == 200 and body_of(response)["size"] == 2000
    assert any(n < 25 for n in given[1:])  # it came back for what was left
    seen, _ = every_member(stack, "fleet-t")
    assert sorted(seen) == msisdns(2000, start=447_330_000_000)
    assert len(stored_generations(stack, "fleet-t")) == 1


def test_a_replace_against_a_partition_that_takes_nothing_answers_503_in_time_and_changes_nothing(stack, monkeypatch):
    # Given a group, and a partition that applies no batch write at all (and a replace given 2 s for its writes)
    from smsgw.adapters import store

    put(stack, "fleet-u", msisdns(10))
    monkeypatch.setattr(store, "GROUP_WRITE_SECONDS", 2.0)
    monkeypatch.setattr(store, "GROUP_SWEEP_SECONDS", 3.0)
    hot_partition(monkeypatch, 0)
    # When it is replaced
    started = time.monotonic()
    response = put(stack, "fleet-u", msisdns(500, start=447_340_000_000))
    # Then the answer comes by the deadline, as a 503 the client may retry, and the group is as it was
    assert time.monotonic() - started < 3.0 + 2.0  # the deadline, and one last try's pause
    assert (response["statusCode"], body_of(response)["error"]["code"]) == (503, "service_unavailable")
    seen, _ = every_member(stack, "fleet-u")
    assert sorted(seen) == msisdns(10)
    assert body_of(group_request(stack, "groups_get", "fleet-u"))["size"] == 10


def test_a_group_holds_100000_members_and_refuses_the_100001st(stack, monkeypatch):
    counter = CallCounter()
    hook_every_client(monkeypatch, "before-call", counter)
    members = msisdns(LIMIT)
    # When a group of 100,000 is created (in one request, as a client would)
    started = time.monotonic()
    created = put(stack, "fleet-big", members)
    created_in = time.monotonic() - started
    # Then it is, in a handful of DynamoDB calls: the mark, 128 buckets in BatchWriteItems of 25, the switch, the sweep
    assert created["statusCode"] == 201, created["body"][:500]
    assert body_of(created)["size"] == LIMIT
    create_calls = [op for op in counter.operations if op.startswith("dynamodb.")]
    assert create_calls.count("dynamodb.BatchWriteItem") == 6, create_calls
    assert len(create_calls) <= 11, create_calls
    # When one more member is added
    counter.reset()
    refused = add(stack, "fleet-big", ["447999999999"])
    # Then it is refused with 422, saying the limit, and the group is unchanged
    assert refused["statusCode"] == 422
    assert body_of(refused)["error"]["details"].items() >= {"limit": LIMIT, "size": LIMIT, "added": 0}.items()
    # and a member it already holds can still be named (nothing is added)
    assert body_of(add(stack, "fleet-big", ["447000000005"]))["added"] == 0
    # When a replace names 100,001
    too_many = put(stack, "fleet-big", [*members, "447999999999"])
    # Then it is refused too, before anything is written
    assert too_many["statusCode"] == 422
    assert body_of(too_many)["error"]["details"].items() >= {"limit": LIMIT, "count": LIMIT + 1}.items()
    # and the batches read all 100,000 in a handful of queries
    from smsgw.logic import groups

    counter.reset()
    deps = stack.deps()
    deps.store.client.meta.events.register("before-call", counter)
    assert groups.size(deps, "fleet-big") == LIMIT
    assert counter.operations == ["dynamodb.GetItem"]
    counter.reset()
    read = list(groups.members(deps, "fleet-big"))
    assert len(read) == len(set(read)) == LIMIT and set(read) == set(members)
    # the group, one Query per MB read (100,000 members of 12 digits are about 1.3 MB), the group again
    assert counter.operations == ["dynamodb.GetItem", "dynamodb.Query", "dynamodb.Query", "dynamodb.GetItem"], counter.operations
    # and a replace of the whole group (another 100,000) stays well inside API Gateway's 29 s here too
    counter.reset()
    started = time.monotonic()
    replaced = put(stack, "fleet-big", msisdns(LIMIT, start=447_600_000_000))
    replaced_in = time.monotonic() - started
    assert replaced["statusCode"] == 200 and body_of(replaced)["size"] == LIMIT
    replace_calls = [op for op in counter.operations if op.startswith("dynamodb.")]
    assert replace_calls.count("dynamodb.BatchWriteItem") == 12 and len(replace_calls) <= 20, replace_calls  # 6 to write, 6 to delete the old
    assert len(stored_generations(stack, "fleet-big")) == 1
    print(
        f"\n100,000 members (moto, in-process): created in {created_in:.1f} s with {len(create_calls)} DynamoDB calls {create_calls},"
        f" replaced in {replaced_in:.1f} s with {len(replace_calls)} {replace_calls}"
    )
