"""Pure pieces of issue 9: how Idempotency-Keys are scoped to a caller."""

import pytest

from smsgw.http import idempotency_scope


def test_two_sessions_of_one_role_share_their_idempotency_keys():
    # Given two workers of one service, each with its own session of the same role
    first = idempotency_scope("arn:aws:sts::123456789012:assumed-role/fleet-sender/worker-a", None, "AROAEXAMPLE:worker-a")
    second = idempotency_scope("arn:aws:sts::123456789012:assumed-role/fleet-sender/i-0abc123", None, "AROAEXAMPLE:i-0abc123")
    # Then a retry from either is recognised as the same caller's
    assert first == second == "arn:aws:iam::123456789012:role/fleet-sender"


@pytest.mark.parametrize(
    ("other", "why"),
    [
        ("arn:aws:sts::123456789012:assumed-role/billing/worker-a", "another role"),
        ("arn:aws:sts::210987654321:assumed-role/fleet-sender/worker-a", "another account"),
        ("arn:aws:iam::123456789012:user/fleet-sender", "a user of the same name"),
    ],
)
def test_other_principals_keep_keys_of_their_own(other, why):
    mine = idempotency_scope("arn:aws:sts::123456789012:assumed-role/fleet-sender/worker-a", None, None)
    assert idempotency_scope(other, None, None) != mine, why


def test_api_keys_and_bare_callers_are_scoped_too():
    assert idempotency_scope(None, "key-123", None) == "key-123"
    assert idempotency_scope(None, None, "AROAEXAMPLE:session-1") == idempotency_scope(None, None, "AROAEXAMPLE:session-2")
    assert idempotency_scope(None, None, None) == "anonymous"
