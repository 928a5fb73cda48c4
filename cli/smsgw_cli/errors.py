"""How every smsgw command shows the API's refusals: in the API's own words."""

from __future__ import annotations

import json
import sys

from smsgw_client import ApiError

INVALID_SHOWN = 20  # recipients of a refused batch listed one a line; the API's message counts them all


def show_error(error: ApiError) -> str:
    """`error 422: <the API's message>`, then its details: a refused batch's invalid recipients one a line
    (`#index to: field: problem`), anything else as the API's JSON."""
    text = f"error {error.status}: {error.message}"
    details = error.details
    invalid = details.get("invalid") if isinstance(details, dict) else None
    # a batch's recipients are objects ({index, to, problems}); a group's invalid members are bare strings
    if isinstance(invalid, list) and invalid and all(isinstance(entry, dict) for entry in invalid):
        for entry in invalid[:INVALID_SHOWN]:
            problems = "; ".join(f"{k}: {v}" for k, v in (entry.get("problems") or {}).items())
            text += f"\n  #{entry.get('index')} {entry.get('to', '')}: {problems}"
    elif details:
        text += f"\n  {json.dumps(details)}"
    return text


def refused(error: ApiError, as_json: bool, *notes: str) -> int:
    """Print a refusal and return the exit status, 1. With --json the API's body goes to stdout as it came,
    for scripts; otherwise show_error and any `notes` of the command's own go to stderr."""
    if as_json:
        print(error.body)
        return 1
    print(show_error(error), file=sys.stderr)
    for note in notes:
        print(note, file=sys.stderr)
    return 1
