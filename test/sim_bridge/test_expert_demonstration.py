"""The bridge's scripted expert demonstrates through the graph: remapped onto the safety filter's teleop input."""

from rclpy.parameter import Parameter
from std_msgs.msg import Bool

from rlvla_ros.msg import ActionChunk
from rlvla_ros.nodes.safety_filter import SafetyFilter
from rlvla_ros.nodes.sim_bridge import SimBridge
from rlvla_ros.srv import ResetEpisode


def test_expert_actions_through_the_safety_filter_solve_lift(ros_graph, wait_for):
    ros_graph.add(SimBridge(context=ros_graph.context, parameter_overrides=[
        Parameter("clock_mode", value="lockstep"), Parameter("publish_expert_action", value=True),
        Parameter("task", value="lift"), Parameter("seed", value=3)]))
    ros_graph.add(SafetyFilter(context=ros_graph.context,
                               cli_args=["--ros-args", "-r", "teleop/action_chunk:=sim/expert_action"],
                               # generous: executor stalls on a loaded machine must not make joint states look stale
                               parameter_overrides=[Parameter("watchdog_timeout_s", value=30.0),
                                                    Parameter("joint_state_timeout_s", value=5.0)]))
    probe = ros_graph.node("probe")
    successes, executed = [], []
    probe.create_subscription(Bool, "sim/success", lambda msg: successes.append(msg.data), 10)
    probe.create_subscription(ActionChunk, "executed_action", executed.append, 10)
    # In lockstep nothing moves until a command: the reset's sensor set carries the first expert action, as when the
    # episode manager starts an episode.
    reset = probe.create_client(ResetEpisode, "reset_episode")
    assert reset.wait_for_service(timeout_sec=10.0)
    assert wait_for(lambda: probe.count_subscribers("sim/expert_action") >= 1)
    assert wait_for(reset.call_async(ResetEpisode.Request(task="lift", seed=3)).done)

    assert wait_for(lambda: any(successes), timeout_s=60.0), f"no success after {len(executed)} executed actions"
    assert 5 <= len(executed) <= 50  # lift's time limit is 50 steps
    assert {chunk.source for chunk in executed} == {ActionChunk.SOURCE_EXPERT}
    assert [chunk.step for chunk in executed[:3]] == [0, 1, 2]
