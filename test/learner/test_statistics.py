"""Intervals of success rates and differences, against the worked examples of Newcombe (1998)."""

import pytest

from rlvla_ros.rollouts.statistics import difference_interval, successes_of, wilson_interval


@pytest.mark.parametrize(("successes", "episodes", "expected"), [
    (81, 263, (0.2553, 0.3662)),  # Newcombe, Statist. Med. 17:857 (1998), example (a)
    (15, 148, (0.0624, 0.1605)),  # example (b)
    (0, 20, (0.0, 0.1611)),       # example (c): no successes, the interval still has width
    (1, 29, (0.0061, 0.1718)),    # example (d)
])


def test_wilson_interval_matches_published_values(successes, episodes, expected):
    low, high = wilson_interval(successes, episodes)
    assert low == pytest.approx(expected[0], abs=1e-4) and high == pytest.approx(expected[1], abs=1e-4)


@pytest.mark.parametrize(("a", "b", "expected"), [
    ((56, 70), (48, 80), (0.0524, 0.3339)),   # Newcombe, Statist. Med. 17:873 (1998), table II, method 10
    ((9, 10), (3, 10), (0.1705, 0.8090)),
    ((6, 7), (2, 7), (0.0582, 0.8062)),
    ((5, 56), (0, 29), (-0.0381, 0.1926)),
    ((0, 10), (0, 20), (-0.1611, 0.2775)),
])


def test_difference_interval_matches_newcombes_hybrid_score_method(a, b, expected):
    low, high = difference_interval(*a, *b)
    assert low == pytest.approx(expected[0], abs=1e-4) and high == pytest.approx(expected[1], abs=1e-4)


def test_difference_of_equal_rates_is_centred_on_zero():
    low, high = difference_interval(40, 100, 40, 100)
    assert low == pytest.approx(-high) and low < 0 < high


@pytest.mark.parametrize(("successes", "episodes"), [(-1, 10), (11, 10), (0, 0)])
def test_impossible_counts_are_refused(successes, episodes):
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(successes, episodes)


def test_successes_of_a_rate():
    assert successes_of(0.43333, 30) == 13 and successes_of(1.0, 100) == 100
