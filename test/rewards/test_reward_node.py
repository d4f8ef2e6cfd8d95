"""The reward node over real topics: privileged sim source, classifier source, shaping, step convention."""

import collections

import numpy as np
import pytest
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from rclpy.time import Time
from std_msgs.msg import Header

from rlvla_ros.msg import Observation, Reward, TaskSuccess
from rlvla_ros.nodes import reward as reward_node
from rlvla_ros.nodes.reward import RewardNode
from rlvla_ros.rewards import SuccessClassifier, SuccessClassifierConfig
from rlvla_ros.ros.images import rgb_to_image
from rlvla_ros.srv import LoadCheckpoint

INSTRUCTION = "lift the red block"
DARK = np.full((32, 32, 3), 20, np.uint8)
BRIGHT = np.full((32, 32, 3), 235, np.uint8)


def observation(episode_id: str, step: int, image=DARK, stamp_s: int = 0) -> Observation:
    return Observation(header=header(stamp_s), images=[rgb_to_image(image)], camera_names=["front"],
                       proprioception=[0.0] * 6, instruction=INSTRUCTION, episode_id=episode_id, step=step)


def header(stamp_s: int) -> Header:
    """A sensor set's stamp."""
    return Header(stamp=Time(seconds=stamp_s).to_msg())


class Rig:
    """A reward node plus a test node publishing observations and sim/success, collecting rewards."""

    def __init__(self, ros_graph, wait_for, **parameters):
        self.wait_for = wait_for
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = ros_graph.add(RewardNode(context=ros_graph.context, parameter_overrides=overrides))
        self.test = ros_graph.node("reward_test")
        self.rewards: list[Reward] = []
        self.expected = 0
        """Rewards the test expected so far."""
        self.reward_sub = self.test.create_subscription(Reward, "reward", self.rewards.append, 10)
        self.observations = self.test.create_publisher(Observation, "observation", 10)
        self.success = self.test.create_publisher(TaskSuccess, "sim/success", 10)
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in self.node.subscriptions), 10.0)
        assert wait_for(lambda: self.reward_sub.get_publisher_count() > 0, 10.0)
        # Messages the node has handled, per topic: each input is handled before the next goes out, so the order
        # of inputs on two topics is the order the test wrote.
        self.handled: collections.Counter[str] = collections.Counter()
        for subscription in self.node.subscriptions:
            subscription.callback = self._counted(subscription.topic_name.rsplit("/", 1)[-1], subscription.callback)

    def _counted(self, topic: str, callback):
        def counted(msg, info) -> None:  # the node's callbacks are timed (~/stats), which takes the message info
            callback(msg, info)
            self.handled[topic] += 1

        return counted

    def _publish(self, publisher, topic: str, msg) -> None:
        handled = self.handled[topic]
        publisher.publish(msg)
        assert self.wait_for(lambda: self.handled[topic] > handled, 10.0)

    def score(self, msg: Observation, expect_reward: bool = True) -> Reward | None:
        self._publish(self.observations, "observation", msg)
        return self._expect(expect_reward)

    def signal(self, stamp_s: int, success: bool, expect_reward: bool | None = None) -> Reward | None:
        """Publish the sim/success of the sensor set stamped ``stamp_s``; with ``expect_reward`` check whether it
        completes an observation's reward."""
        self._publish(self.success, "success", TaskSuccess(header=header(stamp_s), success=success))
        if expect_reward is None:
            return None
        return self._expect(expect_reward)

    def _expect(self, expect_reward: bool) -> Reward | None:
        """The reward the last input completed, if one is expected. Proof that an input completed none: rewards go
        out in order on one publisher, so when the next expected reward comes, nothing else came before it."""
        if not expect_reward:
            return None
        assert self.wait_for(lambda: len(self.rewards) > self.expected, 10.0)
        self.expected += 1
        assert len(self.rewards) == self.expected, [(r.episode_id, r.step) for r in self.rewards]
        return self.rewards[-1]


SUCCESS_TIMEOUT_S = 60.0
"""Long enough never to pass by itself in a test: the staleness test skips the clock past it."""


def test_sim_privileged_scores_each_observation_with_its_own_sets_signal_in_either_arrival_order(ros_graph, wait_for):
    rig = Rig(ros_graph, wait_for, source="sim_privileged", success_timeout_s=SUCCESS_TIMEOUT_S)
    rig.signal(1, False)
    assert rig.score(observation("ep1", 0, stamp_s=1), expect_reward=False) is None  # nothing has been done yet
    # the observation first: it waits for its set's signal (the previous set's is not used)
    rig.score(observation("ep1", 1, stamp_s=2), expect_reward=False)
    reward = rig.signal(2, True, expect_reward=True)
    assert (reward.episode_id, reward.step, reward.success, reward.sparse_reward, reward.shaping_reward,
            reward.reward, reward.success_probability, reward.source) == (
        "ep1", 0, True, 1.0, 0.0, 1.0, 1.0, "sim_privileged")
    # the signal first
    rig.signal(3, False)
    reward = rig.score(observation("ep1", 2, stamp_s=3))
    assert (reward.step, reward.success, reward.reward, reward.success_probability) == (1, False, 0.0, 0.0)
    # a new episode again starts without a reward for its first observation
    rig.signal(4, False)
    rig.score(observation("ep2", 0, stamp_s=4), expect_reward=False)
    rig.signal(5, True)
    assert rig.score(observation("ep2", 1, stamp_s=5)).step == 0


def test_sim_privileged_drops_an_observation_whose_signal_is_lost_or_late(ros_graph, wait_for, skippable_clock):
    clock = skippable_clock(reward_node)
    rig = Rig(ros_graph, wait_for, source="sim_privileged", success_timeout_s=SUCCESS_TIMEOUT_S)
    rig.signal(1, False)
    rig.score(observation("ep1", 0, stamp_s=1), expect_reward=False)
    rig.score(observation("ep1", 1, stamp_s=2), expect_reward=False)
    # set 3's signal comes before set 2's: signals come in stamp order, so set 2's was lost
    rig.signal(3, True, expect_reward=False)
    rig.signal(2, True, expect_reward=False)  # too late: dropped already
    assert rig.score(observation("ep1", 2, stamp_s=3)).step == 1  # the episode goes on
    rig.score(observation("ep1", 3, stamp_s=4), expect_reward=False)
    clock.skip(SUCCESS_TIMEOUT_S + 1.0)  # the node's timer drops it: no signal came within the timeout
    assert wait_for(lambda: not rig.node._pairing._waiting, 5.0)
    rig.signal(4, True, expect_reward=False)
    rig.signal(5, False)
    assert rig.score(observation("ep1", 4, stamp_s=5)).step == 3


def test_sim_privileged_refuses_unstamped_messages_with_a_log_line(ros_graph, wait_for):
    rig = Rig(ros_graph, wait_for, source="sim_privileged", success_timeout_s=SUCCESS_TIMEOUT_S)
    logs = []
    rig.test.create_subscription(Log, "/rosout", logs.append, 100)
    rig.signal(1, False)
    rig.score(observation("ep1", 0, stamp_s=1), expect_reward=False)
    rig.signal(0, True)  # unstamped: it could pair with nothing
    rig.score(observation("ep1", 1, stamp_s=0), expect_reward=False)
    assert wait_for(lambda: {"sim/success ignored", "observation ep1/1 dropped"} <= {
        log.msg.split(":")[0] for log in logs}, 5.0)
    rig.signal(2, True)
    assert rig.score(observation("ep1", 2, stamp_s=2)).success  # the node goes on


@pytest.fixture
def classifier_checkpoint(tmp_path):
    """An untrained classifier whose threshold is set between its scores of a dark and a bright image."""
    model = SuccessClassifier(SuccessClassifierConfig(image_size=32, channels=[8, 8]))
    dark, bright = model.predict_proba(np.stack([DARK, BRIGHT]), [INSTRUCTION] * 2)
    assert abs(dark - bright) > 1e-4
    model.config.threshold = float(dark + bright) / 2
    model.save_pretrained(tmp_path / "classifier")
    success_image = BRIGHT if bright > dark else DARK
    failure_image = DARK if bright > dark else BRIGHT
    return tmp_path / "classifier", {"success": (success_image, max(dark, bright)),
                                     "failure": (failure_image, min(dark, bright))}


def test_classifier_source_uses_the_checkpoint_threshold_and_adds_shaping(ros_graph, wait_for, classifier_checkpoint):
    path, images = classifier_checkpoint
    rig = Rig(ros_graph, wait_for, source="classifier", checkpoint=str(path), shaping=True, shaping_weight=2.0,
              discount=0.9)
    (fail_image, p_fail), (success_image, p_success) = images["failure"], images["success"]
    rig.score(observation("ep1", 0, fail_image), expect_reward=False)
    reward = rig.score(observation("ep1", 1, success_image))
    expected_shaping = 2.0 * (0.9 * p_success - p_fail)
    assert reward.source == "classifier" and reward.step == 0 and reward.success
    assert reward.success_probability == pytest.approx(p_success, abs=1e-5)
    assert reward.shaping_reward == pytest.approx(expected_shaping, abs=1e-5)
    assert reward.reward == pytest.approx(1.0 + expected_shaping, abs=1e-5)
    reward = rig.score(observation("ep1", 2, fail_image))
    assert not reward.success and reward.sparse_reward == 0.0
    assert reward.shaping_reward == pytest.approx(2.0 * (0.9 * p_fail - p_success), abs=1e-5)


def test_a_classifier_source_without_a_checkpoint_waits_for_one_says_how_and_scores_nothing_until_loaded(
        ros_graph, wait_for, classifier_checkpoint, tmp_path):
    path, images = classifier_checkpoint
    (fail_image, _), (success_image, _) = images["failure"], images["success"]
    rig = Rig(ros_graph, wait_for, source="classifier", reminder_period_s=0.2)  # no checkpoint: the node comes up
    logs = []
    rig.test.create_subscription(Log, "/rosout", logs.append, 100)
    assert wait_for(lambda: any("no success classifier checkpoint is set" in log.msg and "reward/load_classifier"
                                in log.msg and "reward_checkpoint:=" in log.msg for log in logs), 10.0)
    rig.observations.publish(observation("ep0", 0, fail_image))
    rig.observations.publish(observation("ep0", 1, success_image))
    assert wait_for(lambda: rig.node.unscored_observations == 2, 10.0)
    client = rig.test.create_client(LoadCheckpoint, "reward/load_classifier")
    assert client.wait_for_service(timeout_sec=10.0)

    def load(checkpoint) -> LoadCheckpoint.Response:
        future = client.call_async(LoadCheckpoint.Request(path=str(checkpoint)))
        assert wait_for(future.done, 30.0)
        return future.result()

    refused = load(tmp_path / "nope")
    assert not refused.success and "does not load" in refused.message and "nope" in refused.message
    loaded = load(path)
    assert loaded.success and "threshold" in loaded.message, loaded.message
    rig.observations.publish(observation("ep1", 0, fail_image))
    assert rig.score(observation("ep1", 1, success_image)).success
    # Nothing of the waiting time was scored: the first reward ever published is ep1's.
    assert [(r.episode_id, r.step) for r in rig.rewards] == [("ep1", 0)]
    assert rig.node.unscored_observations == 2
