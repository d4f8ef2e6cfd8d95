"""Watchdog staleness and its once-per-lapse stop signal, on a fake clock."""

import pytest

from rlvla_ros.safety import Watchdog


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_stale_until_fed_and_again_after_the_timeout():
    clock = FakeClock()
    watchdog = Watchdog(0.5, clock)
    assert watchdog.stale()
    watchdog.feed()
    clock.now_s += 0.5
    assert not watchdog.stale()
    clock.now_s += 0.01
    assert watchdog.stale()


def test_stop_is_signalled_once_per_lapse_and_rearmed_by_a_feed():
    clock = FakeClock()
    watchdog = Watchdog(0.5, clock)
    assert not watchdog.poll_stop()  # never fed: nothing moving to stop
    watchdog.feed()
    clock.now_s += 0.3
    assert not watchdog.poll_stop()
    clock.now_s += 0.3
    assert watchdog.poll_stop()
    clock.now_s += 5.0
    assert not watchdog.poll_stop()
    watchdog.feed()
    clock.now_s += 0.6
    assert watchdog.poll_stop()


def test_clear_forgets_the_feed_and_the_pending_stop():
    clock = FakeClock()
    watchdog = Watchdog(0.5, clock)
    watchdog.feed()
    watchdog.clear()
    assert watchdog.stale()
    clock.now_s += 1.0
    assert not watchdog.poll_stop()


@pytest.mark.parametrize("timeout_s", [0.0, -1.0])
def test_timeout_must_be_positive(timeout_s):
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        Watchdog(timeout_s)
