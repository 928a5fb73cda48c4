"""Every SQS-triggered function finishes its worst batch inside its timeout, and no holder outlives the lease.

A batch that runs out of time is retried whole, so messages that were handled are handled again. The
worst case per record is every outside call waiting out its connect and read timeouts.
"""

import pytest

from local_stack.template import load_template
from smsgw.logic.batches import CHUNK_SIZE
from smsgw.logic.pacing import MAX_WAIT_SECONDS
from tests.helpers import ESEYE_CALLERS, translated

ESEYE_CONNECT_TIMEOUT = 3.05  # config.Settings.eseye_connect_timeout
AWS_MARGIN = 5.0  # DynamoDB and SQS calls of one record, generously


def parameter_default(name: str) -> float:
    return float(load_template()["Parameters"][name]["Default"])


def eseye_call() -> float:
    return ESEYE_CONNECT_TIMEOUT + parameter_default("EseyeReadTimeoutSeconds")


# Worst case per record, in seconds, for each function an SQS queue triggers.
WORST_CASE_PER_RECORD = {
    # a status probe, then the send, after waiting for its slot in Eseye's send rate (logic/pacing.py)
    "DispatcherFunction": lambda: 2 * eseye_call() + MAX_WAIT_SECONDS + AWS_MARGIN,
    "CallbacksFunction": lambda: ESEYE_CONNECT_TIMEOUT + 10 + AWS_MARGIN,  # one POST to the receiver, then its record (and delay)
    # one chunk of a batch: each recipient's message created, then sent at its slot (logic/batches.py)
    "BatchFanoutFunction": lambda: CHUNK_SIZE * (MAX_WAIT_SECONDS + eseye_call() + AWS_MARGIN),
}


def sqs_triggered() -> dict[str, int]:
    """Logical function id -> BatchSize, from the translated template's event source mappings."""
    template = translated()
    batches = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::EventSourceMapping":
            continue
        properties = resource["Properties"]
        source = properties["EventSourceArn"]
        if "Fn::GetAtt" in source and template["Resources"][source["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue":
            batches[properties["FunctionName"]["Ref"]] = int(properties.get("BatchSize", 10))
    return batches


def test_every_sqs_triggered_function_has_a_worst_case_budget():
    assert set(sqs_triggered()) == set(WORST_CASE_PER_RECORD)


@pytest.mark.parametrize("function", sorted(WORST_CASE_PER_RECORD))
def test_the_worst_batch_fits_inside_the_function_timeout(function):
    # Given the function's batch size and timeout as deployed
    template = translated()
    batch_size = sqs_triggered()[function]
    timeout = template["Resources"][function]["Properties"]["Timeout"]
    # Then every record of a batch can wait out every timeout and the batch still finishes in time
    worst = batch_size * WORST_CASE_PER_RECORD[function]()
    assert worst < timeout, f"{function}: {batch_size} records x {WORST_CASE_PER_RECORD[function]():.1f} s = {worst:.0f} s >= {timeout} s"


def test_the_queue_hides_a_message_longer_than_its_consumer_runs():
    template = translated()
    timeout = template["Resources"]["DispatcherFunction"]["Properties"]["Timeout"]
    assert template["Resources"]["SendRetryQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout  # AWS's advice


def test_the_attempt_lease_outlives_every_function_that_talks_to_eseye():
    # Given the lease a sender takes before it contacts Eseye
    template = translated()
    # (in the source template: SAM CLI's language-extensions pass resolves parameters in a function's own variables)
    variables = load_template()["Resources"]["DispatcherFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["SEND_LEASE_SECONDS"] == {"Ref": "SendLeaseSeconds"}
    lease = min(parameter_default("SendLeaseSeconds"), float(load_template()["Parameters"]["SendLeaseSeconds"]["MinValue"]))
    # Then no holder can still be running when its lease runs out, so an expired lease has no live holder
    # (the batch fan-out runs longer, and claims a message again unless its lease outlasts one attempt: below)
    for function in ESEYE_CALLERS - {"BatchFanoutFunction"}:
        assert template["Resources"][function]["Properties"]["Timeout"] < lease, function


def test_a_batch_message_is_sent_only_with_the_lease_its_attempt_needs_left():
    # Given the fan-out, which creates a chunk's messages (each with its lease) before sending them one by one
    from smsgw.config import Settings
    from smsgw.deps import build_deps
    from smsgw.logic.batches import lease_margin

    deps = build_deps(Settings(table_name="t", secret_id="s"))
    # Then a message is claimed again unless its lease outlasts the longest attempt: its slot wait, a
    # probe and the send each waiting out Eseye's timeouts, and DynamoDB
    assert lease_margin(deps) >= MAX_WAIT_SECONDS + 2 * eseye_call() + AWS_MARGIN
    # and the lease is longer than that margin, so a fresh message is sent without a claim
    assert parameter_default("SendLeaseSeconds") > lease_margin(deps)
