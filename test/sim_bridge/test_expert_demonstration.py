"""The bridge's scripted expert demonstrates through the graph: remapped onto the safety filter's teleop input."""

from rclpy.parameter import Parameter

from rlvla_ros.msg import ActionChunk, EpisodeEvent, TaskSuccess
from rlvla_ros.ros.qos import EPISODE_EVENT_QOS
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
                               parameter_overrides=[Parameter("clock_mode", value="lockstep"),
                                                    Parameter("watchdog_timeout_s", value=30.0),
                                                    Parameter("joint_state_timeout_s", value=5.0)]))
    probe = ros_graph.node("probe")
    successes, executed = [], []
    probe.create_subscription(TaskSuccess, "sim/success", lambda msg: successes.append(msg.success), 10)
    probe.create_subscription(ActionChunk, "executed_action", executed.append, 10)
    experts = []
    probe.create_subscription(ActionChunk, "sim/expert_action", experts.append, 10)
    events = probe.create_publisher(EpisodeEvent, "episode_event", EPISODE_EVENT_QOS)
    # In lockstep nothing moves until a command. Like a teleoperator, the expert acts only once the episode manager
    # has started the episode: not on the reset's sensor set, which the perception node holds until the START.
    reset = probe.create_client(ResetEpisode, "reset_episode")
    assert reset.wait_for_service(timeout_sec=10.0)
    assert wait_for(lambda: probe.count_subscribers("sim/expert_action") >= 2)
    future = reset.call_async(ResetEpisode.Request(task="lift", seed=3))
    assert wait_for(future.done)
    assert not wait_for(lambda: experts or executed, timeout_s=1.0)
    assert wait_for(lambda: probe.count_subscribers("episode_event") >= 1)
    events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id=future.result().episode_id, task="lift"))

    assert wait_for(lambda: any(successes), timeout_s=60.0), f"no success after {len(executed)} executed actions"
    assert 5 <= len(executed) <= 50  # lift's time limit is 50 steps
    assert {chunk.source for chunk in executed} == {ActionChunk.SOURCE_EXPERT}
    assert [chunk.step for chunk in executed[:3]] == [0, 1, 2]
    steps = len(experts)
    events.publish(EpisodeEvent(event=EpisodeEvent.END, episode_id=future.result().episode_id, task="lift"))
    assert not wait_for(lambda: len(experts) > steps + 1, timeout_s=1.0)  # the END stops the expert
