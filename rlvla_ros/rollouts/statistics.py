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
from collections.abc import Mapping, Sequence

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


def success_table(by_split: Mapping[str, Mapping[str, float]], episodes: int, groups: Mapping[str, Sequence[str]],
                  differences: Mapping[str, tuple[str, str]]) -> dict:
    """Rates with their 95 % intervals, and differences with theirs.

    ``by_split`` is each policy's success rate per split, measured on ``episodes`` episodes per split; ``groups``
    names the columns, each pooling some splits (``{"id": ["id"], "ood": [every ood split]}``); ``differences``
    maps a row name to the policies it subtracts (``{"rl_minus_bc": ("rl", "bc")}``). A policy's row has, per
    column, the rate and ``<column>_ci95`` (Wilson), and ``episodes`` (per split); a difference's row the difference
    and ``<column>_ci95`` (Newcombe)."""
    counts = {name: {column: (sum(successes_of(rates[split], episodes) for split in splits), episodes * len(splits))
                     for column, splits in groups.items()}
              for name, rates in by_split.items()}
    table: dict[str, dict] = {}
    for name, columns in counts.items():
        row: dict = {column: round(successes / n, 3) for column, (successes, n) in columns.items()}
        row["episodes"] = episodes
        row.update({f"{column}_ci95": _rounded(wilson_interval(*columns[column])) for column in groups})
        table[name] = row
    for key, (a, b) in differences.items():
        row = {}
        for column in groups:
            (successes_a, n_a), (successes_b, n_b) = counts[a][column], counts[b][column]
            row[column] = round(successes_a / n_a - successes_b / n_b, 3)
            row[f"{column}_ci95"] = _rounded(difference_interval(successes_a, n_a, successes_b, n_b))
        table[key] = row
    return table


def _rounded(interval: tuple[float, float]) -> list[float]:
    return [round(bound, 3) for bound in interval]
