"""The status machine with `scheduled` and `queued` (issue 13): every move goes forward in the order
scheduled < queued < pending < sent < final, and only the documented overrulings leave a final status."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw import models

# The order a message goes through. Finals share the last rank: moves among them are the overrulings below.
RANK = {models.SCHEDULED: 0, models.QUEUED: 1, models.PENDING: 2, models.SENT: 3, **dict.fromkeys(models.FINAL_STATUSES, 4)}
EARLY = (models.SCHEDULED, models.QUEUED, models.PENDING)  # where a message enters, never where it returns
SOURCES = (models.FROM_ESEYE, models.FROM_GATEWAY)
ENTRY = (models.SCHEDULED, models.QUEUED, models.PENDING)  # send_at / a busy SIM / a free slot


def overruling(current, target, source, current_source):
    """The moves out of a final status that models.py documents: `delivered` overrules a `failed` or
    `cancelled` (the device has the command), and Eseye's word overrules what the gateway only inferred."""
    if current == target == models.DELIVERED:
        return False
    if target == models.DELIVERED and current in (models.FAILED, models.CANCELLED):
        return True
    guessed = current_source == models.FROM_GATEWAY and current in (models.FAILED, models.CANCELLED)
    return source == models.FROM_ESEYE and guessed and target in (models.SENT, models.FAILED, models.BLOCKED)


def test_every_status_has_a_place_in_the_order():
    assert set(RANK) == set(models.MT_STATUSES)
    assert {models.SCHEDULED, models.QUEUED} == models.WAITING_STATUSES


@pytest.mark.parametrize("target", sorted(models.ALLOWED_FROM))
def test_every_allowed_move_goes_forward_or_is_a_documented_overruling(target):
    # Given the moves models.ALLOWED_FROM allows into `target`
    for current in models.ALLOWED_FROM[target]:
        # Then each goes forward, or is `delivered` overruling a final failed/cancelled
        assert RANK[current] < RANK[target] or overruling(current, target, models.FROM_GATEWAY, models.FROM_ESEYE), (current, target)


@pytest.mark.parametrize("target", sorted(models.ALLOWED_FROM_INFERRED))
def test_eseye_overrules_only_what_the_gateway_inferred(target):
    for current in models.ALLOWED_FROM_INFERRED[target]:
        # Given a status the gateway inferred, Eseye may overrule it, and nobody else may
        assert overruling(current, target, models.FROM_ESEYE, models.FROM_GATEWAY), (current, target)
        assert not models.can_move(current, target, models.FROM_GATEWAY, models.FROM_GATEWAY)


@pytest.mark.parametrize("target", EARLY)
@pytest.mark.parametrize("current", models.MT_STATUSES)
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("current_source", SOURCES)
def test_nothing_returns_to_scheduled_queued_or_pending(target, current, source, current_source):
    # Given a message in any status, decided by anyone
    # When anyone reports `scheduled`, `queued` or `pending`
    moved = models.can_move(current, target, source, current_source)
    # Then it may only move there from an earlier status
    assert not moved or RANK[current] < RANK[target]


def test_the_new_statuses_enter_the_machine_only_from_earlier_ones():
    assert models.ALLOWED_FROM[models.QUEUED] == (models.SCHEDULED,)
    assert set(models.ALLOWED_FROM[models.PENDING]) == {models.SCHEDULED, models.QUEUED}
    assert models.SCHEDULED not in models.ALLOWED_FROM  # only a new message is scheduled
    # A waiting message may end without ever reaching Eseye: cancelled, expired (failed) or blocklisted
    for final in (models.CANCELLED, models.FAILED, models.BLOCKED):
        assert {models.SCHEDULED, models.QUEUED} <= set(models.ALLOWED_FROM[final])
    # ...but Eseye cannot have rejected or delivered what it never saw
    for final in (models.REJECTED, models.DELIVERED):
        assert not {models.SCHEDULED, models.QUEUED} & set(models.ALLOWED_FROM[final])


reports = st.lists(st.tuples(st.sampled_from(models.MT_STATUSES), st.sampled_from(SOURCES)), max_size=20)


@given(st.sampled_from(ENTRY), reports)
def test_any_sequence_of_reports_only_moves_forward(entry, reports):
    # Given a message that entered the machine `scheduled`, `queued` or `pending`
    status, source = entry, models.FROM_GATEWAY
    walked = [status]
    for target, reporter in reports:
        # When anyone reports any status, in any order
        if not models.can_move(status, target, reporter, source):
            continue
        # Then each accepted move is forward, or one of the documented overrulings of a final status
        assert RANK[status] < RANK[target] or overruling(status, target, reporter, source), (status, target, reporter, source)
        status, source = target, reporter
        walked.append(status)
    # ...so once a message has left a waiting status, or reached Eseye, it never goes back
    for earlier, later in itertools.pairwise(walked):
        assert RANK[later] >= min(RANK[earlier], RANK[models.SENT])
    assert models.DELIVERED not in walked or walked[-1] == models.DELIVERED  # nothing undoes a delivery
    first_final = next((i for i, s in enumerate(walked) if s in models.FINAL_STATUSES), len(walked))
    assert all(s not in EARLY for s in walked[first_final:])
