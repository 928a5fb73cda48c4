"""The MSISDN allowlist and blocklist, mirroring what Eseye is configured with (eseye-sms-api.md §1.1)."""

from __future__ import annotations

from typing import Any

from smsgw import models, validation
from smsgw.deps import Deps, default_deps
from smsgw.errors import NotFound, ValidationFailed

LIST_NAMES = ("allow", "block")


def _check(list_name: str, msisdn: str) -> str:
    if list_name not in LIST_NAMES:
        raise NotFound(f"no list named {list_name!r}; lists are allow and block")
    return models.msisdn_digits(validation.require_msisdn("msisdn", msisdn))


def refusal_reason(msisdn: str, deps: Deps) -> str | None:
    """Why traffic with `msisdn` is not allowed, or None. One read for both lists."""
    reason: str | None = standing(msisdn, deps)["refusal_reason"]
    return reason


def standing(msisdn: str, deps: Deps) -> dict[str, Any]:
    """Where `msisdn` stands with the lists, and whether traffic with it is allowed (as a send decides it):
    the blocklist wins; a non-empty allowlist admits only its members. One read for both lists."""
    blocked, allowed, allow_size = deps.store.lists.lookup(msisdn)
    reason = None
    if blocked:
        reason = f"{msisdn} is on the blocklist"
    elif allow_size > 0 and not allowed:
        reason = f"{msisdn} is not on the allowlist"
    return {
        "on_blocklist": blocked,
        "on_allowlist": allowed,
        "allowlist_in_force": allow_size > 0,
        "traffic_allowed": reason is None,
        "refusal_reason": reason,
    }


def get_entry(list_name: str, msisdn: str, deps: Deps | None = None) -> dict[str, Any]:
    deps = deps or default_deps()
    digits = _check(list_name, msisdn)
    item = deps.store.lists.get(list_name, digits)
    if not item:
        raise NotFound(f"{digits} is not on the {list_name} list")
    return item.to_item()


def put_entry(list_name: str, msisdn: str, actor: str, note: str | None = None, deps: Deps | None = None) -> tuple[bool, dict[str, Any]]:
    """Add an MSISDN. Returns (created, entry); adding an existing entry changes nothing."""
    deps = deps or default_deps()
    digits = _check(list_name, msisdn)
    if note is not None and (not isinstance(note, str) or len(note) > validation.NOTE_MAX):
        raise ValidationFailed(f"note must be a string of at most {validation.NOTE_MAX} characters", {"note": note})
    entry = models.ListEntry(list_name, digits, deps.now_iso(), actor, note)
    if not deps.store.lists.add(entry):
        return False, get_entry(list_name, digits, deps)
    return True, entry.to_item()


def delete_entry(list_name: str, msisdn: str, actor: str, deps: Deps | None = None) -> None:
    deps = deps or default_deps()
    digits = _check(list_name, msisdn)
    if not deps.store.lists.remove(list_name, digits, actor, deps.now_iso()):
        raise NotFound(f"{digits} is not on the {list_name} list")
