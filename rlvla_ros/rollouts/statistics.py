"""95 % intervals for success rates and their differences (Newcombe 1998). ROS-free, no dependencies.

A success rate over ``n`` episodes gets Wilson's score interval, which stays inside [0, 1] and keeps its coverage
near 0 and 1 and at small ``n``, where the normal approximation fails. The difference of two rates gets Newcombe's
hybrid score interval (his method 10), built from the two Wilson intervals. It treats the two evaluations as
independent. The demo evaluates both policies on the same seeds, and outcomes on the same seed are positively
correlated (a scene hard for BC tends to be hard for RL too), so the independent interval is conservative: wider
than a paired one. The paired interval needs per-seed outcomes, which evaluation does not return.
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054
"""The standard normal quantile of 0.975."""


def wilson_interval(successes: int, episodes: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval of ``successes`` out of ``episodes``; ValueError for impossible counts."""
    if episodes <= 0 or not 0 <= successes <= episodes:
        raise ValueError(f"need 0 <= successes <= episodes and episodes > 0, got {successes} of {episodes}")
    rate = successes / episodes
    z2 = z * z
    centre = (rate + z2 / (2 * episodes)) / (1 + z2 / episodes)
    half = z / (1 + z2 / episodes) * math.sqrt(rate * (1 - rate) / episodes + z2 / (4 * episodes * episodes))
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(successes_a: int, episodes_a: int, successes_b: int, episodes_b: int,
                        z: float = Z_95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of rate a minus rate b (independent samples)."""
    low_a, high_a = wilson_interval(successes_a, episodes_a, z)
    low_b, high_b = wilson_interval(successes_b, episodes_b, z)
    rate_a, rate_b = successes_a / episodes_a, successes_b / episodes_b
    difference = rate_a - rate_b
    return (difference - math.sqrt((rate_a - low_a) ** 2 + (high_b - rate_b) ** 2),
            difference + math.sqrt((high_a - rate_a) ** 2 + (rate_b - low_b) ** 2))


def successes_of(rate: float, episodes: int) -> int:
    """The success count behind a rate measured on ``episodes`` episodes."""
    return round(rate * episodes)
