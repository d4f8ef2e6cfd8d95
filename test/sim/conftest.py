"""Shared fixtures of the simulation tests."""

import pytest


@pytest.fixture(scope="module")
def panda_driver():
    """One gym-hil Panda driver (48 px cameras) per test module."""
    from rlvla_ros.sim.panda.driver import PandaDriver

    panda = PandaDriver(image_size=48)
    yield panda
    panda.close()
