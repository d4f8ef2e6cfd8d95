"""The perception node's array-level parts: proprio as the sim computes it, nearest-stamp matching, rate gate, crop."""

import numpy as np
import pytest

from rlvla_ros.contract import FINGER_JOINT_NAMES, PROPRIOCEPTION_NAMES
from rlvla_ros.ros.observation_assembly import (
    JointStateHistory,
    ProprioceptionReader,
    RateGate,
    crop_and_resize,
)
from rlvla_ros.sim.tabletop_sim import TabletopSim

MS = 1_000_000
"""Nanoseconds per millisecond."""


def test_proprio_from_joint_states_equals_the_sims_proprioception():
    sim = TabletopSim()
    sim.set_arm_targets(np.array([0.3, 0.5, 1.2, 0.9, -0.4]))
    sim.set_gripper(0.03)
    for _ in range(200):
        sim.step()
    state = sim.joint_state()
    reader = ProprioceptionReader(PROPRIOCEPTION_NAMES, FINGER_JOINT_NAMES)
    # joint_states order is the driver's business: look joints up by name.
    order = np.random.default_rng(0).permutation(len(state.names))
    proprio = reader([state.names[i] for i in order], state.positions[order].tolist())
    np.testing.assert_allclose(proprio, sim.proprioception(), rtol=0, atol=1e-6)
    assert proprio[-1] == pytest.approx(sim.gripper_opening_m())
    assert 0.02 < proprio[-1] < 0.04


def test_proprio_reader_refuses_missing_joints_and_length_mismatch():
    reader = ProprioceptionReader(["shoulder", "gripper_opening_m"], ["finger_left", "finger_right"])
    with pytest.raises(ValueError, match="finger_right"):
        reader(["shoulder", "finger_left"], [0.1, 0.02])
    with pytest.raises(ValueError, match="2 names but 1 positions"):
        reader(["shoulder", "finger_left"], [0.1])
    np.testing.assert_allclose(reader(["finger_right", "shoulder", "finger_left"], [0.01, 0.5, 0.02]), [0.5, 0.03])
    with pytest.raises(ValueError, match="repeat"):
        ProprioceptionReader(["shoulder", "shoulder"], [])


def test_history_matches_the_nearest_sample_per_image_and_knows_when_it_is_settled():
    history = JointStateHistory(history_s=1.0)
    assert history.match([0]) is None
    for t_ms, value in [(0, 0.0), (100, 1.0), (200, 2.0)]:
        history.add(t_ms * MS, np.array([value]))
    match = history.match([140 * MS, 260 * MS])
    assert match.stamp_ns == 100 * MS and match.proprio[0] == 1.0
    assert match.offsets_ns == (40 * MS, 60 * MS)
    assert match.in_sync(0.06) and not match.in_sync(0.05)
    assert not match.settled, "a sample after 260 ms may still come closer"
    history.add(150 * MS, np.array([1.5]))  # out of order: inserted where it belongs
    assert history.match([140 * MS]).proprio[0] == 1.5
    assert history.match([200 * MS]).settled
    for _ in range(100):  # a heartbeat re-sending the last sample does not grow the history
        history.add(200 * MS, np.array([2.0]))
    assert len(history) == 4


def test_history_forgets_old_samples_and_a_clock_that_jumped_back():
    history = JointStateHistory(history_s=0.5)
    for t_ms in range(10_000, 11_000, 100):
        history.add(t_ms * MS, np.array([t_ms]))
    assert len(history) == 6  # 10.4 .. 10.9 s
    history.add(0, np.array([-1.0]))  # a restarted simulation: its clock starts again at 0
    assert len(history) == 1 and history.match([0]).proprio[0] == -1.0


def _admitted(gate: RateGate, stamps_s) -> list[float]:
    admitted = []
    for stamp in stamps_s:
        if gate.ready(stamp):
            gate.mark(stamp)
            admitted.append(stamp)
    return admitted


@pytest.mark.parametrize("camera_hz", [30.0, 25.0, 15.0])
def test_rate_gate_turns_faster_cameras_into_the_control_rate(camera_hz):
    stamps = 100.0 + np.arange(int(10 * camera_hz)) / camera_hz  # 10 s of frames
    admitted = _admitted(RateGate(10.0), stamps)
    assert len(admitted) == pytest.approx(100, abs=1)
    assert max(np.diff(admitted)) < 0.1 + 1.0 / camera_hz


def test_rate_gate_passes_a_lock_step_sim_exactly_at_the_rate_and_restarts_when_time_goes_back():
    gate = RateGate(10.0)
    stamps = [k * 0.1 for k in range(50)]  # floating-point stamps, some a hair under the period apart
    assert _admitted(gate, stamps) == stamps
    assert not gate.ready(stamps[-1] + 0.05)
    assert gate.ready(0.0), "a clock that went back (simulation restart) is admitted"
    gate.mark(4.95)
    gate.reset()
    assert gate.ready(4.96)
    assert _admitted(RateGate(0.0), [1.0, 1.0, 1.001]) == [1.0, 1.0, 1.001]


def test_center_crop_keeps_the_middle_square_and_resizes():
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :20] = image[:, 140:] = (0, 255, 0)  # outside the centred square
    image[:60, 20:140] = (255, 0, 0)
    image[60:, 20:140] = (0, 0, 255)
    out = crop_and_resize(image, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (out[:, :, 1] == 0).all(), "the green borders are cropped away"
    assert (out[:30] == (255, 0, 0)).all() and (out[34:] == (0, 0, 255)).all()
    np.testing.assert_array_equal(crop_and_resize(image[:, 20:140], 120), image[:, 20:140])


def test_box_crop_and_no_crop():
    image = np.zeros((100, 200, 3), np.uint8)
    image[10:30, 50:70] = 200
    np.testing.assert_array_equal(crop_and_resize(image, 20, "box", [50, 10, 20, 20]), image[10:30, 50:70])
    assert crop_and_resize(image, 50, "none").shape == (50, 50, 3)
    with pytest.raises(ValueError, match="does not fit a 200x100 image"):
        crop_and_resize(image, 20, "box", [190, 0, 20, 20])
    with pytest.raises(ValueError, match="crop must be one of"):
        crop_and_resize(image, 20, "zoom")
