"""The groups' rules as openapi/openapi.yaml documents them are the rules logic/groups.py applies."""

import json

import jsonschema
import pytest
import yaml

from local_stack.template import ROOT
from smsgw import validation
from smsgw.logic import groups

OPENAPI = yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text())
SCHEMAS = OPENAPI["components"]["schemas"]


def test_the_documented_name_and_member_patterns_and_limits_are_the_ones_applied():
    assert OPENAPI["components"]["parameters"]["GroupName"]["schema"]["pattern"] == groups.NAME_PATTERN.pattern
    members = SCHEMAS["GroupMembersRequest"]["properties"]["members"]
    assert members["items"]["pattern"] == validation.MSISDN_PATTERN.pattern
    assert members["maxItems"] == groups.MAX_MEMBERS == SCHEMAS["Group"]["properties"]["size"]["maximum"]
    limits = {
        (path, p["name"]): p["schema"]["maximum"]
        for path in ("/groups", "/groups/{name}")
        for p in OPENAPI["paths"][path]["get"]["parameters"]
        if p["name"] == "limit"
    }
    assert limits == {("/groups", "limit"): groups.LIST_MAX, ("/groups/{name}", "limit"): groups.PAGE_MAX}


@pytest.mark.parametrize("sample", ["groups_put", "groups_add_members"])
def test_the_sample_bodies_are_valid_requests(sample):
    body = json.loads(json.loads((ROOT / "events" / f"{sample}.json").read_text())["body"])
    jsonschema.validate(body, SCHEMAS["GroupMembersRequest"])
    assert groups.parse_members(body)
