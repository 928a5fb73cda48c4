"""schemathesis against the running local stack, generated from openapi/openapi.yaml.

Bounded in make test (SCHEMATHESIS_EXAMPLES, default 10 per operation); `make fuzz` runs many more.
Every answer must be no 5xx, a documented status code, the documented content type and body shape.
"""

import os

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from tests.e2e.conftest import ROOT

schema = schemathesis.openapi.from_path(ROOT / "openapi" / "openapi.yaml")
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case, isolated_stack):
    case.call_and_validate(
        base_url=isolated_stack.api,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        timeout=30,
    )
