"""The bridge's scripted expert demonstrates through the graph: remapped onto the safety filter's teleop input, it
solves an episode in as many steps as in-process (the filter acts on the joint state of each chunk's own time)."""

import pytest
from rclpy.parameter import Parameter
from std_msgs.msg import Bool

from rlvla_ros.msg import ActionChunk
from rlvla_ros.nodes.safety_filter import SafetyFilter
from rlvla_ros.nodes.sim_bridge import SimBridge
from rlvla_ros.sim.env import TabletopEnv
from rlvla_ros.srv import ResetEpisode

SEEDS = (3,)


def in_process_expert_steps(seed: int) -> int:
    env = TabletopEnv(task="lift", image_size=32)
    env.reset(seed=seed, options={"task": "lift", "split": "id"})
    for step in range(1, 51):
        _, _, success, _, _ = env.step(env.expert_action())
        if success:
            env.close()
            return step
    raise AssertionError(f"the in-process expert failed lift seed {seed}")


# Timing-sensitive under CPU load (a chunk can overtake its joint state); known issue, see the change's note.
@pytest.mark.flaky(reruns=2)
def test_expert_through_the_safety_filter_solves_lift_as_fast_as_in_process(ros_graph, wait_for):
    ros_graph.add(SimBridge(context=ros_graph.context, parameter_overrides=[
        Parameter("clock_mode", value="lockstep"), Parameter("publish_expert_action", value=True),
        Parameter("task", value="lift"), Parameter("image_size", value=32)]))
    ros_graph.add(SafetyFilter(context=ros_graph.context,
                               cli_args=["--ros-args", "-r", "teleop/action_chunk:=sim/expert_action"],
                               parameter_overrides=[Parameter("watchdog_timeout_s", value=30.0)]))
    probe = ros_graph.node("probe")
    successes, executed = set(), []
    # A success belongs to the episode of the latest executed chunk (the expert keeps acting after a success).
    probe.create_subscription(Bool, "sim/success", lambda msg: msg.data and executed and successes.add(
        executed[-1].episode_id), 10)
    probe.create_subscription(ActionChunk, "executed_action", executed.append, 10)
    reset = probe.create_client(ResetEpisode, "reset_episode")
    assert reset.wait_for_service(timeout_sec=10.0)
    assert wait_for(lambda: probe.count_subscribers("sim/expert_action") >= 1)

    for seed in SEEDS:
        # In lockstep nothing moves until a command: the reset's sensor set carries the first expert action, as
        # when the episode manager starts an episode.
        response = reset.call_async(ResetEpisode.Request(task="lift", seed=seed))
        assert wait_for(response.done)
        episode_id = response.result().episode_id
        assert wait_for(lambda: episode_id in successes, timeout_s=60.0), f"seed {seed}: no success"
        steps = [chunk for chunk in executed if chunk.episode_id == episode_id]
        # Under CPU load a chunk can still overtake its joint state by a step (see the closing note of this change).
        assert abs(len(steps) - in_process_expert_steps(seed)) <= 2
        assert {chunk.source for chunk in steps} == {ActionChunk.SOURCE_EXPERT}
        assert [chunk.step for chunk in steps[:3]] == [0, 1, 2]
