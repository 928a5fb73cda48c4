"""Where the CLI (and the console, which imports this) finds the API and how it authenticates.

The API URL is --api, else the stack's outputs (.local/outputs.json, or $LOCAL_STATE_DIR/outputs.json, or
--outputs). A URL of API Gateway's (`.execute-api.`) is signed with the caller's AWS credentials (SigV4),
as is any other with --sign; an API key (--api-key or $SMSGW_API_KEY) is sent as x-api-key instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from smsgw_client import Client

API_KEY_VARIABLE = "SMSGW_API_KEY"


class NoApi(Exception):
    """Neither --api nor a stack's outputs name the API."""

    def __init__(self) -> None:
        super().__init__("no API: pass --api, or start the local stack with `make run`")


def outputs(path: str | None = None) -> dict[str, str]:
    """The stack's outputs (ApiUrl, Region, queue URLs...): `path`, else the local stack's; {} when there are none."""
    candidate = Path(path) if path else Path(os.environ.get("LOCAL_STATE_DIR", ".local")) / "outputs.json"
    return json.loads(candidate.read_text()) if candidate.exists() else {}


def client_from_settings(
    api_url: str | None = None,
    *,
    settings: dict[str, str] | None = None,
    sign: bool = False,
    region: str | None = None,
    api_key: str | None = None,
) -> Client:
    """The API client the CLI uses, built from these options and the stack's outputs (`settings`, default: the
    local stack's). Raises NoApi when no API URL is found."""
    settings = outputs() if settings is None else settings
    api = api_url or settings.get("ApiUrl")
    if not api:
        raise NoApi()
    api_key = api_key or os.environ.get(API_KEY_VARIABLE) or None
    # an API_KEY-mode stack has no IAM authorizer: its key is the credential, so no signature unless asked for
    signed = sign or (api_key is None and ".execute-api." in api)
    return Client(api, sign=signed, region=region or settings.get("Region"), api_key=api_key)
