"""What `rlvla bench lockstep` reports when two recordings of one seed differ."""

from dataclasses import replace

import numpy as np

from rlvla_ros.cli.lockstep_bench import _differences
from rlvla_ros.data import EpisodeRecord


def _episode(steps: int = 4) -> EpisodeRecord:
    return EpisodeRecord(episode_id="e", instruction="lift the cube", images=np.zeros((steps, 8, 8, 3), np.uint8),
                         proprio=np.zeros((steps, 9), np.float32), actions=np.zeros((steps, 5), np.float32),
                         rewards=np.zeros(steps, np.float32), successes=np.zeros(steps, bool))


def test_identical_recordings_have_no_differences():
    assert _differences(_episode(), _episode()) == []


def test_each_differing_field_is_named_with_its_first_differing_step():
    other = _episode()
    other.images[2, 0, 0, 0] = 1
    other.actions[3, 1] = 0.5
    assert _differences(_episode(), other) == ["images: from step 2 (lengths 4 and 4)",
                                               "actions: from step 3 (lengths 4 and 4)"]


def test_a_longer_or_missing_recording_is_a_difference():
    longer = _differences(_episode(4), replace(_episode(5), instruction="push"))
    assert longer[0] == "instruction" and "rewards: from step 4 (lengths 4 and 5)" in longer
    assert _differences(_episode(), None) == ["missing in the second run"]
    assert _differences(None, _episode()) == ["missing in the first run"]
