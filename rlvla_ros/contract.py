"""The contract every layer shares: the action space, joint and proprioception names, splits, seed ranges, episode
event codes and the shaping convention. Plain Python, no torch, no MuJoCo, no ROS: the bottom of the dependency
order (``docs/architecture.md``), so perception, safety and the learner read names here, not from the simulator.

The interface files (``msg/``) carry the same codes for the wire; ``test/foundation/test_interfaces_roundtrip.py``
checks that the two agree.
"""

from __future__ import annotations

# --- Action space ---------------------------------------------------------------------------------------------------

ACTION_SPACE = "ee_delta"
"""The one action space: end-effector translation and yaw deltas in the robot base frame, and a gripper command."""
ACTION_NAMES = ("dx", "dy", "dz", "dyaw", "gripper")
"""The components of one ``ee_delta`` action, each in [-1, 1] (scaled per robot config; ``gripper > 0`` closes)."""
ACTION_DIM = len(ACTION_NAMES)
"""Length of one ``ee_delta`` action."""

# --- The tabletop arm's joints and the policy's proprioception ------------------------------------------------------

ARM_JOINT_NAMES = ("base_yaw", "shoulder", "elbow", "wrist_pitch", "wrist_roll")
"""Revolute arm joints of the tabletop arm, base to tip (joint_states and trajectory order)."""
FINGER_JOINT_NAMES = ("finger_left", "finger_right")
"""Gripper slide joints; each is the distance (m) from the gripper centre line to that finger's pad."""
JOINT_NAMES = ARM_JOINT_NAMES + FINGER_JOINT_NAMES
"""Every joint of the tabletop arm's ``joint_states``, in order."""
GRIPPER_OPENING_NAME = "gripper_opening_m"
"""The proprioception entry that is the gap between the finger pads (m): the sum of the finger joints' positions."""
PROPRIOCEPTION_NAMES = ARM_JOINT_NAMES + (GRIPPER_OPENING_NAME,)
"""Order of the policy's ``proprio`` vector: arm joint positions (rad), then the gripper opening (m)."""

# --- Evaluation splits ----------------------------------------------------------------------------------------------

SPLITS = ("id", "ood_color", "ood_position", "ood_distractor", "ood_visual")
"""In-distribution, then the out-of-distribution splits of the tabletop tasks."""

# --- Seed ranges: disjoint, so no result is measured on the episodes it was trained or selected on ------------------

TEST_SEED_START = 0
"""Reported test evaluations use seeds ``0 .. episodes - 1``."""
VALIDATION_SEED_START = 5_000
"""Periodic evaluations that select checkpoints (online trainers) and failure analyses use seeds from here."""
DEMO_SEED_START = 10_000
"""Recorded demonstrations (the experiments' expert bags, the demo's and the lock-step benchmark's graph episodes)."""
OFFLINE_SETUP_SEED_START = 30_000
"""The offline experiment's recorded setups (several attempts per initial state)."""
TRAIN_SEED_RANGE = (1_000_000, 2**31 - 1)
"""Online training episodes draw their seeds from here."""
MAX_SEED = 2**31 - 1
"""Largest environment seed."""

# --- Episode events (rlvla_ros/msg/EpisodeEvent) --------------------------------------------------------------------

EPISODE_START, EPISODE_END = 0, 1
"""``EpisodeEvent.event`` codes."""
TERMINATION_SUCCESS = "success"
TERMINATION_TIMEOUT = "timeout"
TERMINATION_ABORT = "abort"
TERMINATION_INTERVENTION = "intervention"
TERMINATION_STALLED = "stalled"
"""No reward came for too long (a lost message in lock-step, a dead sensor): not an outcome of the policy."""
TERMINATION_ESTOP = "estop"
"""The e-stop was engaged: not an outcome of the policy either."""
UNCOUNTED_TERMINATIONS = (TERMINATION_STALLED, TERMINATION_ESTOP)
"""Episodes ended so are left out of success rates and of the learner's graph rollouts."""


# --- Reward shaping -------------------------------------------------------------------------------------------------

def potential_shaping(potential: float, next_potential: float, discount: float) -> float:
    """Potential-based shaping term (Ng, Harada & Russell 1999) of one transition s -> s': ``discount * phi(s') -
    phi(s)``. The simulator's dense reward and the reward node's shaping both use it, so a dense reward means the
    same in simulation and on the graph."""
    return discount * next_potential - potential
