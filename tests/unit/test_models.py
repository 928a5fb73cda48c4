"""The status machine is forward-only."""

import pytest

from smsgw import models


@pytest.mark.parametrize("final", sorted(models.FINAL_STATUSES))
@pytest.mark.parametrize("target", models.MT_STATUSES)
def test_nothing_moves_a_final_message(final, target):
    assert not models.can_move(final, target)


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
