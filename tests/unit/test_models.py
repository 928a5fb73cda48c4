"""The status machine is forward-only."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw import models


@pytest.mark.parametrize("final", sorted(models.FINAL_STATUSES))
@pytest.mark.parametrize("target", models.MT_STATUSES)
@pytest.mark.parametrize("source", [models.FROM_ESEYE, models.FROM_GATEWAY])
def test_nothing_moves_a_final_message_but_delivery_or_eseye_overruling_a_guess(final, target, source):
    # Given a final message whose status Eseye reported
    # Then only `delivered` may overrule a `failed` or `cancelled` (the device has the command, issue 9)
    expected = target == models.DELIVERED and final in (models.FAILED, models.CANCELLED)
    assert models.can_move(final, target, source, models.FROM_ESEYE) is expected


@pytest.mark.parametrize("inferred", [models.FAILED, models.CANCELLED])
def test_eseye_overrules_a_status_the_gateway_inferred_and_the_gateway_does_not(inferred):
    # Given a message the gateway marked failed or cancelled on its own guess
    # When Eseye reports it sent, failed or blocked
    for target in (models.SENT, models.FAILED, models.BLOCKED):
        # Then Eseye's word applies, and the gateway's own second guess does not
        assert models.can_move(inferred, target, models.FROM_ESEYE, models.FROM_GATEWAY)
        assert not models.can_move(inferred, target, models.FROM_GATEWAY, models.FROM_GATEWAY)
    assert not models.can_move(inferred, models.PENDING, models.FROM_ESEYE, models.FROM_GATEWAY)


@given(st.lists(st.tuples(st.sampled_from(models.MT_STATUSES), st.sampled_from([models.FROM_ESEYE, models.FROM_GATEWAY])), max_size=12))
def test_any_sequence_of_reports_never_leaves_delivered_or_returns_to_pending(reports):
    status, source = models.PENDING, models.FROM_GATEWAY
    for target, reporter in reports:
        if models.can_move(status, target, reporter, source):
            assert status != models.DELIVERED
            assert target != models.PENDING
            if status in models.FINAL_STATUSES and target != models.DELIVERED:
                assert (source, reporter) == (models.FROM_GATEWAY, models.FROM_ESEYE)  # only Eseye undoes a guess
            status, source = target, reporter


def test_a_receipt_may_overtake_our_sent_write():
    assert models.can_move(models.PENDING, models.DELIVERED)
    assert models.can_move(models.SENT, models.FAILED)
    assert not models.can_move(models.SENT, models.PENDING)
    assert not models.can_move(models.SENT, models.REJECTED)


def test_msisdns_are_masked_to_their_last_four_digits():
    assert models.mask_msisdn("+447700900123") == "********0123"


def test_times_sort_as_strings():
    from datetime import UTC, datetime

    assert models.iso(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"


def test_times_before_the_year_1000_keep_four_digit_years():
    from datetime import UTC, datetime

    assert models.iso(datetime(4, 1, 1, tzinfo=UTC)) == "0004-01-01T00:00:00.000Z"
