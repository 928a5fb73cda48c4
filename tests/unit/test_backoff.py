"""The one exponential backoff, as send retries and status callbacks use it."""

from smsgw.backoff import exponential


def test_the_wait_doubles_from_the_base_up_to_the_cap():
    # Given the callbacks' schedule (10 s base, 2 h cap) / Then each failure doubles the wait until the cap
    assert [exponential(n, 10, 7200) for n in range(1, 12)] == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 7200]


def test_no_attempt_count_waits_less_than_the_base_or_more_than_the_cap():
    assert exponential(0, 10, 900) == 10
    assert exponential(10**9, 10, 900) == 900
