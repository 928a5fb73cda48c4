"""The MSISDN allowlist and blocklist, mirroring what Eseye is configured with (eseye-sms-api.md §1.1)."""

from __future__ import annotations

from typing import Any

from smsgw import models, validation
from smsgw.adapters.store import ConditionFailed
from smsgw.deps import Deps, default_deps
from smsgw.errors import NotFound, ValidationFailed

LIST_NAMES = ("allow", "block")
COUNT_KEY = "#COUNT"


def _check(list_name: str, msisdn: str) -> str:
    if list_name not in LIST_NAMES:
        raise NotFound(f"no list named {list_name!r}; lists are allow and block")
    return models.msisdn_digits(validation.require_msisdn("msisdn", msisdn))


def refusal_reason(msisdn: str, deps: Deps) -> str | None:
    """Why traffic with `msisdn` is not allowed, or None. One read for both lists."""
    found = deps.store.batch_get([("LIST#block", msisdn), ("LIST#allow", msisdn), ("LIST#allow", COUNT_KEY)])
    keys = {(item["PK"], item["SK"]): item for item in found}
    if ("LIST#block", msisdn) in keys:
        return f"{msisdn} is on the blocklist"
    allow_size = keys.get(("LIST#allow", COUNT_KEY), {}).get("size", 0)
    if allow_size > 0 and ("LIST#allow", msisdn) not in keys:
        return f"{msisdn} is not on the allowlist"
    return None


def get_entry(list_name: str, msisdn: str, deps: Deps | None = None) -> dict[str, Any]:
    deps = deps or default_deps()
    digits = _check(list_name, msisdn)
    item = deps.store.get_item(f"LIST#{list_name}", digits)
    if not item:
        raise NotFound(f"{digits} is not on the {list_name} list")
    return _view(item)


def put_entry(list_name: str, msisdn: str, actor: str, note: str | None = None, deps: Deps | None = None) -> tuple[bool, dict[str, Any]]:
    """Add an MSISDN. Returns (created, entry); adding an existing entry changes nothing."""
    deps = deps or default_deps()
    digits = _check(list_name, msisdn)
    if note is not None and (not isinstance(note, str) or len(note) > validation.NOTE_MAX):
        raise ValidationFailed(f"note must be a string of at most {validation.NOTE_MAX} characters", {"note": note})
    at = deps.now_iso()
    item = {"PK": f"LIST#{list_name}", "SK": digits, "list": list_name, "msisdn": digits, "added_at": at, "added_by": actor, "note": note}
    try:
        deps.store.transact(
            [
                {"put": item, "if_absent": True},
                {"add": (f"LIST#{list_name}", COUNT_KEY, "size", 1)},
                {"put": _audit(list_name, digits, "added", actor, at)},
            ]
        )
    except ConditionFailed:
        return False, get_entry(list_name, digits, deps)
    return True, _view(item)


def delete_entry(list_name: str, msisdn: str, actor: str, deps: Deps | None = None) -> None:
    deps = deps or default_deps()
    digits = _check(list_name, msisdn)
    at = deps.now_iso()
    try:
        deps.store.transact(
            [
                {"delete": (f"LIST#{list_name}", digits), "if_present": True},
                {"add": (f"LIST#{list_name}", COUNT_KEY, "size", -1)},
                {"put": _audit(list_name, digits, "removed", actor, at)},
            ]
        )
    except ConditionFailed as exc:
        raise NotFound(f"{digits} is not on the {list_name} list") from exc


def _audit(list_name: str, digits: str, action: str, actor: str, at: str) -> dict[str, Any]:
    return {"PK": f"LISTLOG#{list_name}", "SK": f"{at}#{digits}#{action}", "msisdn": digits, "action": action, "actor": actor, "at": at}


def _view(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in ("list", "msisdn", "added_at", "added_by", "note") if item.get(k) is not None}
