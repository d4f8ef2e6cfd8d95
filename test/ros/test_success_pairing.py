"""Observations paired with the success signal of their own stamp, in arrival order."""

import pytest

from rlvla_ros.ros.success_pairing import SuccessPairing


def test_pairs_by_stamp_whichever_comes_first_and_keeps_observation_order():
    pairing = SuccessPairing(timeout_s=1.0)
    assert pairing.add_signal(10, False, now_s=0.0).paired == []
    assert pairing.add_observation(10, "o10", now_s=0.0).paired == [("o10", False)]
    assert pairing.add_observation(20, "o20", now_s=0.1).paired == []  # waits: set 10's signal is not its own
    assert pairing.add_observation(30, "o30", now_s=0.2).paired == []  # queued behind o20
    assert pairing.add_signal(20, True, now_s=0.3).paired == [("o20", True)]
    result = pairing.add_signal(30, False, now_s=0.4)
    assert (result.paired, result.dropped) == ([("o30", False)], [])


def test_drops_an_observation_whose_signal_was_lost_or_did_not_come_in_time():
    pairing = SuccessPairing(timeout_s=1.0)
    pairing.add_observation(10, "o10", now_s=0.0)
    result = pairing.add_signal(20, True, now_s=0.1)  # a later set's signal: set 10's was lost
    assert result.paired == [] and [item for item, _ in result.dropped] == ["o10"]
    assert "lost" in result.dropped[0][1]
    pairing.add_observation(30, "o30", now_s=1.0)
    assert pairing.settle(now_s=1.9).dropped == []
    result = pairing.settle(now_s=2.1)
    assert [item for item, _ in result.dropped] == ["o30"] and "within 1.0 s" in result.dropped[0][1]
    assert pairing.add_signal(30, True, now_s=2.2).paired == []  # too late: it was dropped


def test_keeps_the_last_signals_only():
    pairing = SuccessPairing(timeout_s=1.0, history=2)
    for stamp in (1, 2, 3):
        pairing.add_signal(stamp, True, now_s=0.0)
    assert pairing.add_observation(1, "old", now_s=0.0).paired == []  # forgotten, and older than the newest: dropped
    assert pairing.add_observation(2, "kept", now_s=0.0).paired == [("kept", True)]


def test_refuses_unstamped_input_and_keeps_what_it_has():
    pairing = SuccessPairing(timeout_s=1.0)
    pairing.add_observation(10, "o10", now_s=0.0)
    with pytest.raises(ValueError, match="success signal has no header stamp"):
        pairing.add_signal(0, True, now_s=0.0)
    with pytest.raises(ValueError, match="observation has no header stamp"):
        pairing.add_observation(0, "unstamped", now_s=0.0)
    assert pairing.add_signal(10, True, now_s=0.1).paired == [("o10", True)]


def test_refuses_a_non_positive_timeout():
    with pytest.raises(ValueError, match="timeout_s"):
        SuccessPairing(timeout_s=0.0)
