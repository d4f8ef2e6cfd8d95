"""The bridge's scripted expert demonstrates through the graph: answering the perception node's observations,
remapped onto the safety filter's teleop input."""

from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Header

from rlvla_ros.msg import ActionChunk, EpisodeEvent, Observation, TaskSuccess
from rlvla_ros.nodes.perception import Perception
from rlvla_ros.ros.qos import EPISODE_EVENT_QOS
from rlvla_ros.nodes.safety_filter import SafetyFilter
from rlvla_ros.nodes.sim_bridge import SimBridge
from rlvla_ros.srv import ResetEpisode

AFTER_END_STEP = 10_000
"""Step of the observation sent after the episode's END."""


def test_expert_actions_through_the_safety_filter_solve_lift(ros_graph, wait_for):
    bridge = ros_graph.add(SimBridge(context=ros_graph.context, parameter_overrides=[
        Parameter("clock_mode", value="lockstep"), Parameter("publish_expert_action", value=True),
        Parameter("task", value="lift"), Parameter("seed", value=3), Parameter("image_size", value=32)]))
    ros_graph.add(Perception(context=ros_graph.context, parameter_overrides=[Parameter("image_size", value=32)]))
    ros_graph.add(SafetyFilter(context=ros_graph.context,
                               cli_args=["--ros-args", "-r", "teleop/action_chunk:=sim/expert_action"],
                               # generous: executor stalls on a loaded machine must not make joint states look stale
                               parameter_overrides=[Parameter("clock_mode", value="lockstep"),
                                                    Parameter("watchdog_timeout_s", value=30.0),
                                                    Parameter("joint_state_timeout_s", value=5.0)]))
    probe = ros_graph.node("probe")
    successes, executed = [], []
    probe.create_subscription(TaskSuccess, "sim/success", successes.append, 10)
    probe.create_subscription(ActionChunk, "executed_action", executed.append, 10)
    experts, observations = [], []
    probe.create_subscription(Observation, "observation", observations.append, 10)
    probe.create_subscription(ActionChunk, "sim/expert_action", experts.append, 10)
    events = probe.create_publisher(EpisodeEvent, "episode_event", EPISODE_EVENT_QOS)
    # In lockstep nothing moves until a command. Like a policy, the expert answers observations, which the perception
    # node publishes only once the episode manager has started the episode (it holds the reset's sensor set).
    reset = probe.create_client(ResetEpisode, "reset_episode")
    assert reset.wait_for_service(timeout_sec=10.0)
    assert wait_for(lambda: probe.count_subscribers("sim/expert_action") >= 2)
    assert wait_for(lambda: all(s.get_publisher_count() for s in probe.subscriptions))
    future = reset.call_async(ResetEpisode.Request(task="lift", seed=3))
    assert wait_for(future.done)
    episode_id = future.result().episode_id
    assert wait_for(lambda: probe.count_subscribers("episode_event") >= 3)
    events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id=episode_id, task="lift"))

    assert wait_for(lambda: any(m.success for m in successes), timeout_s=60.0), \
        f"no success after {len(executed)} executed actions"
    assert 5 <= len(executed) <= 50  # lift's time limit is 50 steps
    assert {chunk.source for chunk in executed} == {ActionChunk.SOURCE_EXPERT}
    assert [chunk.step for chunk in executed[:3]] == [0, 1, 2]
    # every executed action answers an observation of its own stamp: the loop runs at the perception node's pace
    def answered_observations() -> bool:
        by_stamp = {(o.header.stamp.sec, o.header.stamp.nanosec): o.step for o in observations}
        return all(by_stamp.get((c.header.stamp.sec, c.header.stamp.nanosec)) == c.step for c in executed)

    assert wait_for(answered_observations)
    # Nothing moved before the START: the first observation is the reset's set as step 0, and the expert answered
    # the episode's observations only, one per step from 0 on.
    assert (observations[0].episode_id, observations[0].step) == (episode_id, 0)
    assert [(e.episode_id, e.step) for e in experts[:len(executed)]] == [(episode_id, k) for k in range(len(executed))]
    # The END stops the expert: an observation of the newest set sent after it is not answered. Sentinel: on the same
    # publisher after it, the next episode's first observation is answered.
    events.publish(EpisodeEvent(event=EpisodeEvent.END, episode_id=episode_id, task="lift"))
    assert wait_for(lambda: bridge._ended_episode == episode_id)
    sentinel = probe.create_publisher(Observation, "observation", 10)
    assert wait_for(lambda: sentinel.get_subscription_count() >= 2)
    sentinel.publish(Observation(header=observations[-1].header, episode_id=episode_id, step=AFTER_END_STEP))
    sets = len(successes)
    next_episode = reset.call_async(ResetEpisode.Request(task="lift", seed=4))
    assert wait_for(next_episode.done) and wait_for(lambda: len(successes) > sets)
    sentinel.publish(Observation(header=successes[-1].header, episode_id=next_episode.result().episode_id, step=0))
    assert wait_for(lambda: experts[-1].episode_id == next_episode.result().episode_id)
    assert AFTER_END_STEP not in [e.step for e in experts]
    assert bridge._stats.snapshot()["expert_unanswered.ended_episode"] >= 1


def test_the_expert_answers_only_the_observation_of_the_newest_sensor_set(ros_graph, wait_for):
    ros_graph.add(SimBridge(context=ros_graph.context, parameter_overrides=[
        Parameter("clock_mode", value="lockstep"), Parameter("publish_expert_action", value=True),
        Parameter("lockstep_heartbeat_hz", value=0.0), Parameter("image_size", value=16)]))
    probe = ros_graph.node("probe")
    states, experts = [], []
    probe.create_subscription(JointState, "joint_states", states.append, 10)
    probe.create_subscription(ActionChunk, "sim/expert_action", experts.append, 10)
    observations = probe.create_publisher(Observation, "observation", 10)
    events = probe.create_publisher(EpisodeEvent, "episode_event", EPISODE_EVENT_QOS)
    reset = probe.create_client(ResetEpisode, "reset_episode")
    assert reset.wait_for_service(timeout_sec=10.0)
    assert wait_for(lambda: observations.get_subscription_count() and probe.count_subscribers("episode_event")
                    and all(s.get_publisher_count() for s in probe.subscriptions))

    def reset_to(seed: int) -> str:
        count = len(states)
        future = reset.call_async(ResetEpisode.Request(seed=seed))
        assert wait_for(future.done) and wait_for(lambda: len(states) > count)
        return future.result().episode_id

    reset_to(2)
    older = states[-1].header.stamp
    episode_id = reset_to(3)
    newest = states[-1].header.stamp
    events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id=episode_id))
    # on one publisher, in this order: another episode's, an older set's, then the newest set's observation
    observations.publish(Observation(header=states[-1].header, episode_id="another", step=5))
    observations.publish(Observation(header=Header(stamp=older), episode_id=episode_id, step=6))
    observations.publish(Observation(header=states[-1].header, episode_id=episode_id, step=7))
    assert wait_for(lambda: experts)
    first = experts[0]
    assert (first.step, first.episode_id, first.header.stamp) == (7, episode_id, newest)
    # the next episode's first observation is answered, and nothing came in between (the sentinel)
    next_episode = reset_to(4)
    observations.publish(Observation(header=states[-1].header, episode_id=next_episode, step=0))
    assert wait_for(lambda: len(experts) == 2)
    assert [(e.step, e.episode_id) for e in experts] == [(7, episode_id), (0, next_episode)]
