"""Potential-based shaping terms, apart from the sparse reward."""

import numpy as np
import pytest

from rlvla_ros.contract import potential_shaping
from rlvla_ros.rewards.shaping import PotentialShaper


def test_shaping_terms_telescope_over_an_episode():
    potentials = [-0.30, -0.22, -0.10, -0.02]
    terms = [potential_shaping(a, b, discount=1.0) for a, b in zip(potentials, potentials[1:])]
    assert sum(terms) == pytest.approx(potentials[-1] - potentials[0])
    assert potential_shaping(0.5, 1.0, discount=0.9) == pytest.approx(0.4)


def test_shaper_starts_each_episode_without_a_term_and_scales_by_the_weight():
    shaper = PotentialShaper(weight=2.0, discount=0.5)
    assert shaper.step("a", 0.2) is None
    assert shaper.step("a", 0.6) == pytest.approx(2.0 * (0.5 * 0.6 - 0.2))
    assert shaper.step("b", 0.9) is None  # a new episode has no transition into its first observation
    assert shaper.step("b", 0.9) == pytest.approx(2.0 * (0.5 * 0.9 - 0.9))
    with pytest.raises(ValueError):
        PotentialShaper(discount=0.0)
    assert np.isfinite(shaper.step("b", 1.0))
