"""Groups of SIMs (issue 14): named sets of up to 100,000 MSISDNs that a batch sends to.

PUT /groups/{name} replaces the members, POST /groups/{name}/members adds, DELETE
/groups/{name}/members/{msisdn} removes one, GET /groups/{name} pages the members, GET /groups lists the
groups and DELETE /groups/{name} deletes one. Every change is audited (who, when, what) by the repository,
in the same write as the change. The batches read a group through `size` and `members`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from smsgw import models, validation
from smsgw.adapters.store import GROUP_BUCKETS, GroupReplaced
from smsgw.deps import Deps, default_deps
from smsgw.errors import Conflict, InvalidCursor, NotFound, ValidationFailed

MAX_MEMBERS = 100_000
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RULE = "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or a digit"
MEMBERS_RULE = f"must be a list of at most {MAX_MEMBERS:,} MSISDNs"
# 100,000 MSISDNs of 15 digits with a '+', quoted and comma-separated, are 2 MB; Lambda takes 6 MB.
BODY_LIMIT = 4 * 1024 * 1024
INVALID_LISTED = 100  # bad members a 422 names one by one; it counts the rest
PAGE_DEFAULT, PAGE_MAX = 1000, 10_000  # members per GET /groups/{name}
LIST_DEFAULT, LIST_MAX = 50, 100  # groups per GET /groups
MEMBERS_CURSOR, GROUPS_CURSOR = "group_members", "groups"


# --- what the batches use ---------------------------------------------------------------------------


def size(deps: Deps, name: str) -> int:
    """The number of members of the group. Raises ValidationFailed (a bad name), NotFound."""
    return _group(deps, name).size


def members(deps: Deps, name: str) -> Iterator[str]:
    """Every member's digits, each once (in no particular order), all from one version of the group: a replace
    while they are read is seen whole or not at all. Read when called (100,000 members: a GetItem, two Queries
    and a GetItem). Raises ValidationFailed (a bad name), NotFound (also: deleted while read), StoreUnavailable."""
    held = deps.store.groups.members(_group(deps, name))
    if held is None:
        raise NotFound(f"there is no group named {name}")
    return iter(held)


# --- the API ------------------------------------------------------------------------------------------


def check_name(name: Any) -> str:
    """`name` if it is a valid group name. Raises ValidationFailed naming it."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValidationFailed(f"the group name {NAME_RULE}", {"fields": {"name": NAME_RULE}, "name": name})
    return name


def _group(deps: Deps, name: str) -> models.Group:
    group = deps.store.groups.get(check_name(name))
    if group is None:
        raise NotFound(f"there is no group named {name}")
    return group


def parse_members(body: Any) -> set[str]:
    """The distinct digits of a {"members": [...]} body (a '+' or not, the same SIM). Raises ValidationFailed
    listing the values that are not MSISDNs (the first INVALID_LISTED, by position, and how many in all),
    naming any other field, and when there are more than MAX_MEMBERS distinct members."""
    if not isinstance(body, Mapping):
        raise validation.invalid({"body": 'must be a JSON object: {"members": ["447700900123", ...]}'})
    problems = {str(key): "unknown field" for key in body if key != "members"}
    listed = body.get("members")
    if not isinstance(listed, list):
        problems["members"] = MEMBERS_RULE
    if problems or not isinstance(listed, list):
        raise validation.invalid(problems)
    digits = {models.msisdn_digits(value) for value in listed if validation.is_msisdn(value)}
    bad = [index for index, value in enumerate(listed) if not validation.is_msisdn(value)]
    if bad:
        shown = [_echo(listed[index]) for index in bad[:INVALID_LISTED]]
        raise ValidationFailed(
            f"{len(bad)} of the members are not MSISDNs ({', '.join(map(repr, shown[:5]))}{', ...' if len(bad) > 5 else ''}); nothing was changed",
            {
                "fields": {f"members[{index}]": f"{value!r} {validation.MSISDN_RULE}" for index, value in zip(bad, shown, strict=False)},
                "invalid_count": len(bad),
                "invalid": shown,
            },
        )
    if len(digits) > MAX_MEMBERS:
        raise ValidationFailed(
            f"a group holds at most {MAX_MEMBERS:,} members; this request names {len(digits):,} distinct MSISDNs",
            {"fields": {"members": MEMBERS_RULE}, "limit": MAX_MEMBERS, "count": len(digits)},
        )
    return digits


def _echo(value: Any, most: int = 32) -> Any:
    """A bad value as an error repeats it: itself when short, else the start of its JSON (a client may send megabytes)."""
    if value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= most):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:most] + "…" if len(text) > most else text


def put_group(name: str, body: Any, actor: str, deps: Deps | None = None) -> tuple[bool, dict[str, Any]]:
    """Replace the group's members (creating it). Returns (created, the group). Raises ValidationFailed,
    Conflict (a later replace or a delete of the group won), StoreUnavailable."""
    deps = deps or default_deps()
    check_name(name)
    digits = parse_members(body)
    try:
        group, previous = deps.store.groups.replace(name, digits, actor, deps.now_iso())
    except GroupReplaced as exc:
        raise Conflict(f"another change replaced or deleted the group {name} while this one was written; it holds what that one wrote") from exc
    return previous is None, {**group.to_view(), "previous_size": previous.size if previous else 0}


def add_members(name: str, body: Any, actor: str, deps: Deps | None = None) -> dict[str, Any]:
    """Add members (those already in the group change nothing). Returns the group with `added` (how many were
    new). Raises ValidationFailed (also when the group would pass MAX_MEMBERS: nothing is added), NotFound."""
    deps = deps or default_deps()
    check_name(name)
    digits = parse_members(body)
    change = deps.store.groups.add(name, digits, actor, deps.now_iso(), MAX_MEMBERS)
    if change.group is None:
        raise NotFound(f"there is no group named {name}; PUT /groups/{name} creates it")
    if change.over_limit:
        raise ValidationFailed(
            f"the group {name} holds {change.group.size:,} members; adding these would pass the limit of {MAX_MEMBERS:,}",
            {"fields": {"members": MEMBERS_RULE}, "limit": MAX_MEMBERS, "size": change.group.size, "added": len(change.changed)},
        )
    return {**change.group.to_view(), "added": len(change.changed)}


def remove_member(name: str, msisdn: str, actor: str, deps: Deps | None = None) -> dict[str, Any]:
    """Remove one member. Returns the group. Raises ValidationFailed, NotFound (no such group, or not a member)."""
    deps = deps or default_deps()
    check_name(name)
    digits = models.msisdn_digits(validation.require_msisdn("msisdn", msisdn))
    change = deps.store.groups.remove(name, digits, actor, deps.now_iso())
    if change.group is None:
        raise NotFound(f"there is no group named {name}")
    if not change.changed:
        raise NotFound(f"{digits} is not a member of the group {name}")
    return {**change.group.to_view(), "removed": digits}


def delete_group(name: str, actor: str, deps: Deps | None = None) -> dict[str, Any]:
    """Delete the group and its members. Raises ValidationFailed, NotFound."""
    deps = deps or default_deps()
    group = deps.store.groups.delete(check_name(name), actor, deps.now_iso())
    if group is None:
        raise NotFound(f"there is no group named {name}")
    return {"deleted": True, "name": name, "size": group.size}


def _limit(query: Mapping[str, str], default: int, most: int) -> int:
    try:
        limit = int(query.get("limit", str(default)))
        if not 1 <= limit <= most:
            raise ValueError
    except ValueError as exc:
        raise ValidationFailed(f"limit must be a whole number from 1 to {most}", {"fields": {"limit": validation.range_rule(1, most)}}) from exc
    return limit


def get_group(name: str, query: Mapping[str, str], deps: Deps | None = None) -> dict[str, Any]:
    """The group and a page of its members (`limit`, `cursor`): follow next_cursor until it is null to read
    every member exactly once. Raises ValidationFailed, NotFound, InvalidCursor, Conflict (the group was
    replaced since the cursor was issued)."""
    deps = deps or default_deps()
    limit = _limit(query, PAGE_DEFAULT, PAGE_MAX)
    group = _group(deps, name)
    binding = {"group": name}
    bucket, after = 0, ""
    if query.get("cursor"):
        bucket, after = _members_position(deps.cursors.position(MEMBERS_CURSOR, binding, query["cursor"]), group)
    page, resume = deps.store.groups.members_page(group, bucket, after, limit)
    cursor = deps.cursors.issue(
        MEMBERS_CURSOR, binding, {"generation": group.generation, "bucket": resume[0], "after": resume[1]} if resume else None
    )
    return {**group.to_view(), "members": page, "next_cursor": cursor}


def _members_position(position: Mapping[str, Any], group: models.Group) -> tuple[int, str]:
    """(bucket, member) to resume after, from a cursor's position. Raises InvalidCursor, or Conflict if the
    group was replaced since: its members are another set, and a page of the new one would mix the two."""
    bucket, after, generation = position.get("bucket"), position.get("after"), position.get("generation")
    if not (isinstance(bucket, int) and 0 <= bucket < GROUP_BUCKETS and isinstance(after, str) and isinstance(generation, str)):
        raise InvalidCursor()
    if generation != group.generation:
        raise Conflict(f"the group {group.name} was replaced since this cursor was issued; start again without it")
    return bucket, after


def list_groups(query: Mapping[str, str], deps: Deps | None = None) -> dict[str, Any]:
    """A page of groups in name order (`limit`, `cursor`). Raises ValidationFailed, InvalidCursor."""
    deps = deps or default_deps()
    limit = _limit(query, LIST_DEFAULT, LIST_MAX)
    after = None
    if query.get("cursor"):
        after = deps.cursors.position(GROUPS_CURSOR, {}, query["cursor"]).get("after")
        if not isinstance(after, str) or not NAME_PATTERN.match(after):
            raise InvalidCursor()
    groups, last = deps.store.groups.groups(limit, after)
    return {"items": [g.to_view() for g in groups], "next_cursor": deps.cursors.issue(GROUPS_CURSOR, {}, {"after": last} if last else None)}
