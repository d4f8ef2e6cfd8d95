"""The graph rollout source: streamed messages become the same EpisodeRecords as bags, on-policy after each sync."""

import threading

import numpy as np
from sensor_msgs.msg import Image

from rlvla_ros.data.typestore import ACTION_CHUNK, EPISODE_EVENT, OBSERVATION, REWARD
from rlvla_ros.msg import ActionChunk, EpisodeEvent, Observation, Reward
from rlvla_ros.policies import new_policy
from rlvla_ros.rollouts.sim_rollouts import EpisodeSpec
from rlvla_ros.ros.graph_rollouts import EpisodeAssembler, GraphRolloutSource
from rlvla_ros.srv import LoadCheckpoint

LENGTH = 5


def episode_messages(episode_id: str, success: bool, seed: int = 7):
    """(msgtype, msg) of one streamed episode, in the order a live graph publishes them."""
    yield EPISODE_EVENT, EpisodeEvent(event=EpisodeEvent.START, episode_id=episode_id, task="lift", split="id",
                                      seed=seed, instruction="lift the red block")
    for step in range(LENGTH):
        image = Image(height=8, width=8, encoding="rgb8", step=24, data=[step] * 192)
        yield OBSERVATION, Observation(images=[image], camera_names=["front"], proprioception=[0.1 * step] * 6,
                                       proprioception_names=[f"j{i}" for i in range(6)],
                                       instruction="lift the red block", episode_id=episode_id, step=step)
        yield ACTION_CHUNK, ActionChunk(episode_id=episode_id, step=step, horizon=1, action_dim=5,
                                        actions=[0.1 * step] * 5, log_probs=[-float(step)], source="policy")
        last = step == LENGTH - 1
        yield REWARD, Reward(episode_id=episode_id, step=step, reward=float(success and last),
                             success=success and last)
    yield EPISODE_EVENT, EpisodeEvent(event=EpisodeEvent.END, episode_id=episode_id, task="lift", split="id",
                                      seed=seed, success=success, length=LENGTH, termination_reason="success")


def test_assembler_joins_an_episode_like_a_bag():
    assembler = EpisodeAssembler()
    messages = list(episode_messages("e1", True))
    for msgtype, msg in messages[:-1]:
        assembler.add(msgtype, msg)
    assert assembler.take(5) == []  # no END yet
    assembler.add(*messages[-1])
    (episode,) = assembler.take(5)
    assert len(episode) == LENGTH and episode.success and episode.seed == 7 and episode.task == "lift"
    np.testing.assert_allclose(episode.log_probs, -np.arange(LENGTH))
    np.testing.assert_allclose(episode.actions[:, 0], 0.1 * np.arange(LENGTH), rtol=1e-6)
    assert episode.images.shape == (LENGTH, 8, 8, 3) and episode.images[3].max() == 3


def test_assembler_waits_for_late_messages_then_drops_after_the_timeout():
    assembler = EpisodeAssembler(episode_timeout_s=5.0)
    messages = [m for m in episode_messages("late", False) if not (m[0] == REWARD and m[1].step == 2)]
    for msgtype, msg in messages:
        assembler.add(msgtype, msg, now_s=100.0)
    assert assembler.take(1, now_s=101.0) == []
    assembler.add(REWARD, Reward(episode_id="late", step=2), now_s=102.0)
    assert len(assembler.take(1, now_s=102.0)) == 1
    for msgtype, msg in episode_messages("lost", False):
        if not (msgtype == REWARD and msg.step == 2):
            assembler.add(msgtype, msg, now_s=200.0)
    assert assembler.take(1, now_s=204.0) == [] and assembler.dropped == 0
    assert assembler.take(1, now_s=206.0) == [] and assembler.dropped == 1


def test_assembler_drops_a_stalled_episode():
    assembler = EpisodeAssembler()
    *messages, (msgtype, end) = episode_messages("stuck", False)
    end.termination_reason = EpisodeEvent.TERMINATION_STALLED
    for msgtype, msg in [*messages, (msgtype, end)]:
        assembler.add(msgtype, msg)
    assert assembler.take(1) == [] and assembler.dropped == 1 and assembler.num_ready == 0


def test_graph_source_syncs_weights_then_collects_only_new_episodes(ros_graph, wait_for, tmp_path):
    learner_node = ros_graph.node("learner")
    graph = ros_graph.node("fake_graph")
    loaded: list[str] = []

    def load(request, response):
        loaded.append(request.path)
        response.success = True
        return response

    graph.create_service(LoadCheckpoint, "policy/load_checkpoint", load)
    publishers = {t: graph.create_publisher(c, name, 100) for t, c, name in (
        (OBSERVATION, Observation, "observation"), (ACTION_CHUNK, ActionChunk, "executed_action"),
        (REWARD, Reward, "reward"), (EPISODE_EVENT, EpisodeEvent, "episode_event"))}
    source = GraphRolloutSource(learner_node, sync_dir=tmp_path, wait_timeout_s=30.0)
    assert wait_for(lambda: all(p.get_subscription_count() == 1 for p in publishers.values()), 10.0)

    def stream(episode_id: str, success: bool) -> None:
        for msgtype, msg in episode_messages(episode_id, success):
            publishers[msgtype].publish(msg)

    stream("before_sync", True)  # an episode of older weights: must not be collected
    assert wait_for(lambda: source.assembler.num_ready == 1, 10.0)
    policy = new_policy("frozen_encoder", image_size=32)
    result: list = []
    collector = threading.Thread(target=lambda: result.extend(
        source.collect(policy, [EpisodeSpec("lift", "id", 7)] * 2, temperature=1.0)))
    collector.start()
    assert wait_for(lambda: len(loaded) == 1, 20.0)
    # the sentinel: the collector has synced and dropped the older episode, so what streams now is collected
    assert wait_for(lambda: source.assembler.num_ready == 0, 20.0)
    stream("after_1", True)
    stream("after_2", False)
    collector.join(timeout=30.0)
    assert [e.episode_id for e in result] == ["after_1", "after_2"]
    assert [e.success for e in result] == [True, False]
    assert (tmp_path / "weights_1" / "model.safetensors").is_file() and loaded[0].endswith("weights_1")
    source.close()
