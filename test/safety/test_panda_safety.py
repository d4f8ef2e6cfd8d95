"""The safety layer on the 7-DoF Panda config (config/robots/panda.yaml): its kinematics, NaN refusals, joint
limits, velocity bound and workspace, and the safety_filter node's commands and watchdog stop in Panda joints."""

import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from rlvla_ros.msg import ActionChunk
from rlvla_ros.nodes.safety_filter import SafetyFilter
from rlvla_ros.ros.stamps import stamp_ns
from rlvla_ros.safety import ActionSafetyFilter, load_robot_config, make_kinematics, robot_config_path
from rlvla_ros.safety.action_filter import CLAMPED_JOINT_LIMITS, CLAMPED_JOINT_VELOCITY, CLAMPED_WORKSPACE
from rlvla_ros.sim.kinematics import EePose

HOME = np.array([0.0, 0.195, 0.0, -2.43, 0.0, 2.62, 0.785])
"""gym-hil's PandaPickCube home pose: the pinch point 8 cm above the table."""
PANDA_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]


@pytest.fixture(scope="module")
def panda():
    return load_robot_config(robot_config_path("panda"))


@pytest.fixture(scope="module")
def kinematics(panda):
    return make_kinematics(panda)


@pytest.fixture(scope="module")
def safety(panda, kinematics):
    return ActionSafetyFilter(panda, kinematics)


def test_the_panda_config_names_seven_franka_joints_and_the_2f85(panda):
    assert panda.arm_joint_names == tuple(PANDA_JOINTS)
    assert panda.joint_limits_rad.shape == (7, 2) and panda.joint_limits_rad[3].tolist() == [-3.0718, -0.0698]
    assert panda.finger_joint_names == ("robotiq_85_left_knuckle_joint",) and panda.gripper_max_opening_m == 0.085
    assert panda.kinematics.backend == "mjcf" and panda.kinematics.tip_site == "pinch"


def test_seven_dof_kinematics_reaches_a_pose_with_the_gripper_down(kinematics):
    home = kinematics.forward(HOME)
    np.testing.assert_allclose(home.position_m, [0.4903, 0.0, 0.0776], atol=1e-3)
    target = EePose(home.position_m + [0.03, -0.02, 0.05], home.yaw_rad + 0.1)
    q = kinematics.inverse(target, HOME)
    assert q.shape == (7,)
    reached = kinematics.forward(q)
    np.testing.assert_allclose(reached.position_m, target.position_m, atol=1e-3)
    assert reached.yaw_rad == pytest.approx(target.yaw_rad, abs=1e-3)


@pytest.mark.parametrize("index", range(5))
def test_non_finite_actions_and_joints_are_refused(safety, index):
    action = np.zeros(5)
    action[index] = np.nan
    assert "action is not finite" in safety.filter(action, HOME).rejection
    q = HOME.copy()
    q[index] = np.inf
    assert "joint positions are not finite" in safety.filter(np.zeros(5), q).rejection
    with pytest.raises(ValueError, match=r"joint vectors must have shape \(7,\)"):
        safety.filter(np.zeros(5), HOME[:5])


def test_targets_stay_a_margin_inside_the_joint_limits(safety, panda):
    q = HOME.copy()
    q[6] = 2.87  # panda_joint7 within 0.05 rad of its 2.8973 limit
    result = safety.filter(np.zeros(5), q)
    assert result.accepted and CLAMPED_JOINT_LIMITS in result.clamped
    assert result.command.joint_positions_rad[6] == pytest.approx(2.8973 - panda.joint_limit_margin_rad)


def test_every_joint_step_stays_within_its_velocity_limit(safety, panda):
    result = safety.filter(np.ones(5), HOME)
    assert result.accepted and CLAMPED_JOINT_VELOCITY in result.clamped
    step = np.abs(result.command.joint_positions_rad - HOME)
    assert np.all(step <= panda.max_joint_velocity_rad_s * panda.control_period_s * (1 + 1e-9))
    assert result.command.gripper_opening_m == 0.0  # gripper > 0 closes


def test_targets_below_the_workspace_floor_are_clipped_to_it(safety, kinematics, panda):
    low = kinematics.inverse(EePose(np.array([0.45, 0.05, 0.015]), kinematics.forward(HOME).yaw_rad), HOME)
    result = safety.filter(np.array([0.0, 0.0, -1.0, 0.0, -1.0]), low)
    assert result.accepted and result.clamped == (CLAMPED_WORKSPACE,)
    assert kinematics.forward(result.command.joint_positions_rad).position_m[2] >= 0.01 - panda.workspace_tolerance_m
    assert result.command.gripper_opening_m == 0.085


def test_the_node_commands_panda_joints_and_stops_once_when_actions_stop(ros_graph, wait_for):
    node = ros_graph.add(SafetyFilter(context=ros_graph.context, parameter_overrides=[
        Parameter("robot_config", value=str(robot_config_path("panda"))), Parameter("watchdog_timeout_s", value=0.3),
        Parameter("joint_state_timeout_s", value=2.0)]))
    assert node.robot.name == "panda"
    polls = [0]
    watchdog, poll = node._watchdog_timer, node._watchdog_timer.callback
    watchdog.callback = lambda: (poll(), polls.__setitem__(0, polls[0] + 1))
    test = ros_graph.node("panda_safety_test")
    trajectories: list[JointTrajectory] = []
    test.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", trajectories.append, 10)
    policy = test.create_publisher(ActionChunk, "action_chunk", 10)
    joint_states = test.create_publisher(JointState, "joint_states", 10)
    estop = test.create_client(SetBool, "safety_filter/estop")
    test.create_timer(0.05, lambda: joint_states.publish(JointState(
        name=[*PANDA_JOINTS, "robotiq_85_left_knuckle_joint"], position=[*HOME, 0.0])))
    inputs = [s for s in node.subscriptions if s.topic_name.endswith(("/action_chunk", "/joint_states"))
              and "teleop" not in s.topic_name]
    assert len(inputs) == 2
    assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in [*inputs, *test.subscriptions]))
    assert wait_for(lambda: node.monitor.plausible_q is not None)  # it holds a joint state: chunks are accepted

    policy.publish(ActionChunk(episode_id="ep", step=0, horizon=1, action_dim=5, actions=[0.3, 0.0, 0.0, 0.0, 0.0],
                               action_space="ee_delta", source="policy"))
    assert wait_for(lambda: len(trajectories) >= 2, 10.0), "no command and stop for the Panda"
    command, stop = trajectories
    for trajectory in (command, stop):
        assert trajectory.joint_names == PANDA_JOINTS
        positions = np.array([p.positions for p in trajectory.points])
        assert positions.shape[1] == 7 and np.isfinite(positions).all()
    assert list(command.points[0].velocities) == []
    np.testing.assert_allclose(stop.points[0].positions, HOME, atol=1e-12)  # holds the measured joints
    assert list(stop.points[0].velocities) == [0.0] * 7
    # A lapse is reported once: two more polls, then the e-stop's hold on the same publisher is the next trajectory.
    seen = polls[0]
    assert wait_for(lambda: polls[0] >= seen + 2)
    assert estop.wait_for_service(timeout_sec=10.0)
    future = estop.call_async(SetBool.Request(data=True))
    assert wait_for(future.done) and future.result().success
    assert wait_for(lambda: len(trajectories) >= 3)
    assert len(trajectories) == 3


def test_with_dry_run_off_the_safety_filter_drives_the_panda_driver(ros_graph, wait_for, kinematics):
    """The real-arm pair on the Panda: safety filter (panda.yaml, dry run off) -> panda_driver (lockstep)."""
    from rlvla_ros.nodes.panda_driver import PandaDriverNode

    ros_graph.add(PandaDriverNode(context=ros_graph.context, parameter_overrides=[
        Parameter("clock_mode", value="lockstep"), Parameter("lockstep_heartbeat_hz", value=5.0),
        Parameter("image_size", value=16)]))
    safety = ros_graph.add(SafetyFilter(context=ros_graph.context, parameter_overrides=[
        Parameter("robot_config", value=str(robot_config_path("panda"))), Parameter("dry_run", value=False),
        Parameter("watchdog_timeout_s", value=30.0), Parameter("joint_state_timeout_s", value=2.0),
        Parameter("clock_mode", value="lockstep")]))
    assert not safety.dry_run  # panda.yaml leaves dry run to the parameter (real.launch.yaml: on by default)
    test = ros_graph.node("panda_pair_test")
    states: list[JointState] = []
    executed: list[ActionChunk] = []
    test.create_subscription(JointState, "joint_states", states.append, 10)
    test.create_subscription(ActionChunk, "executed_action", executed.append, 10)
    policy = test.create_publisher(ActionChunk, "action_chunk", 10)
    assert wait_for(lambda: policy.get_subscription_count() > 0 and states)

    def send(step: int) -> None:  # answering the newest sensor set, as the lock-step driver requires
        policy.publish(ActionChunk(header=states[-1].header, episode_id="ep", step=step, horizon=1, action_dim=5,
                                   source="policy",
                                   actions=[1.0, 0.0, 0.0, 0.0, 0.0], action_space="ee_delta"))

    start = kinematics.forward(np.array(states[-1].position[:7])).position_m
    for step in range(3):
        count, answered = len(executed), states[-1]
        send(step)
        while not wait_for(lambda: len(executed) > count, 1.0):  # refused until a fresh joint state is held
            send(step)
        assert wait_for(lambda: stamp_ns(states[-1]) > stamp_ns(answered))  # the driver stepped on the answer
    # three 3 cm steps, each bounded by the Panda's joint speeds (0.055 rad per step) and followed with some lag
    assert wait_for(lambda: kinematics.forward(np.array(states[-1].position[:7])).position_m[0] > start[0] + 0.015)
    moved = kinematics.forward(np.array(states[-1].position[:7])).position_m - start
    assert abs(moved[1]) < 0.01 and abs(moved[2]) < 0.01  # +x only, as asked
