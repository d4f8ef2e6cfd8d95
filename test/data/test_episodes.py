"""Episodes rebuilt from bags by joining Observation, ActionChunk, Reward and EpisodeEvent on (episode, step)."""

import numpy as np
import pytest

from rlvla_ros.data import BagWriter, EpisodeRecord, episodes_from_bag
from rlvla_ros.data.typestore import ACTION_CHUNK, EPISODE_EVENT, OBSERVATION, REWARD


def test_episodes_round_trip_through_a_bag(record_bags, episodes):
    (bag,) = record_bags(episodes)
    loaded = episodes_from_bag(bag)
    assert [e.episode_id for e in loaded] == [e.episode_id for e in episodes]
    for original, episode in zip(episodes, loaded):
        assert len(episode) == len(original) and episode.complete
        np.testing.assert_array_equal(episode.images, original.images)
        np.testing.assert_allclose(episode.proprio, original.proprio, rtol=1e-6)
        np.testing.assert_array_equal(episode.actions, original.actions)
        np.testing.assert_array_equal(episode.rewards, original.rewards)
        np.testing.assert_array_equal(episode.successes, original.successes)
        np.testing.assert_array_equal(episode.interventions, original.interventions)
        np.testing.assert_array_equal(episode.log_probs, original.log_probs)
        assert (episode.success, episode.termination_reason) == (original.success, original.termination_reason)
        assert (episode.task, episode.split, episode.seed) == (original.task, original.split, original.seed)
        assert episode.instruction == original.instruction and episode.proprio_names == original.proprio_names
    assert [e.intervention_steps for e in loaded] == [1, 2, 2, 2]


class _Recorder:
    """Builds our messages with the typestore, serialises them to CDR and writes them on namespaced topics."""

    def __init__(self, writer: BagWriter, namespace: str) -> None:
        self.writer, self.store, self.ns = writer, writer.typestore, namespace
        self.stamp_ns = 10**18
        topics = {"obs": OBSERVATION, "chunk": ACTION_CHUNK, "reward": REWARD, "event": EPISODE_EVENT}
        for name, msgtype in topics.items():
            writer.add_topic(f"{namespace}/{name}", msgtype)

    def _put(self, name: str, msgtype: str, header_ns: int | None = None, **fields) -> None:
        """Written at the next bag time, with that as header stamp unless `header_ns` is given."""
        types = self.store.types
        self.stamp_ns += 10**7
        header_ns = self.stamp_ns if header_ns is None else header_ns
        fields["header"] = types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=header_ns // 10**9, nanosec=header_ns % 10**9),
            frame_id="",
        )
        msg = types[msgtype](**fields)
        self.writer.write(f"{self.ns}/{name}", self.store.serialize_cdr(msg, msgtype), self.stamp_ns)

    def event(self, episode_id: str, kind: int, length: int = 0, success: bool = False, reason: str = "") -> None:
        self._put(
            "event", EPISODE_EVENT, event=kind, episode_id=episode_id, task="push", split="id", seed=7,
            instruction="push it", success=success, episode_return=0.0, length=length,
            termination_reason=reason or ("success" if success else ""), intervention_steps=0,
            first_set_stamp=self.store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
        )  # fmt: skip

    def observation(self, episode_id: str, step: int, header_ns: int | None = None) -> None:
        image = self.store.types["sensor_msgs/msg/Image"](
            header=self.store.types["std_msgs/msg/Header"](
                stamp=self.store.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""
            ),
            height=2, width=2, encoding="bgr8", is_bigendian=0, step=8,  # 2 padding bytes per row
            data=np.arange(16, dtype=np.uint8) + step,
        )  # fmt: skip
        self._put(
            "obs", OBSERVATION, header_ns, images=[image], camera_names=["wrist"],
            proprioception=np.full(3, float(step)), proprioception_names=["a", "b", "c"], instruction="push it", episode_id=episode_id, step=step,
        )  # fmt: skip

    def chunk(self, episode_id: str, step: int, actions: np.ndarray, source: str, log_probs=(),
              header_ns: int | None = None) -> None:
        self._put(
            "chunk", ACTION_CHUNK, header_ns, episode_id=episode_id, step=step, horizon=len(actions), action_dim=5,
            actions=np.asarray(actions, np.float32).ravel(), action_space="ee_delta",
            log_probs=np.asarray(log_probs, np.float32), value=np.float32(0.0), policy_version=1, source=source,
        )  # fmt: skip

    def reward(self, episode_id: str, step: int, value: float, success: bool = False) -> None:
        self._put(
            "reward", REWARD, episode_id=episode_id, step=step, reward=value, sparse_reward=float(success),
            shaping_reward=0.0, success_probability=float(success), success=success, source="classifier",
        )  # fmt: skip


def _chunk(first: float, horizon: int) -> np.ndarray:
    return np.tile((first + np.arange(horizon))[:, None] / 10, (1, 5))


def test_open_loop_chunks_and_teleop_overrides_give_the_executed_actions(tmp_path):
    with BagWriter(tmp_path) as writer:
        rec = _Recorder(writer, "/robot1/rlvla")
        rec.event("a", 0)
        for step in range(6):
            rec.observation("a", step)
        # Policy chunks of horizon 3 at steps 0 and 3; a teleop action overrides step 4; rewards arrive late.
        rec.chunk("a", 0, _chunk(0, 3), "policy", log_probs=[-1.0, -2.0, -3.0])
        rec.chunk("a", 3, _chunk(3, 3), "policy")
        rec.chunk("a", 4, _chunk(9, 1), "teleop")
        rec.event("a", 1, length=6, success=True)
        for step in range(6):
            rec.reward("a", step, 0.5 * step, success=step == 5)
    (episode,) = episodes_from_bag(writer.bag_paths[0], camera="wrist")
    assert episode.complete and len(episode) == 6 and episode.success and episode.task == "push"
    np.testing.assert_allclose(episode.actions[:, 0], [0.0, 0.1, 0.2, 0.3, 0.9, 0.5])
    np.testing.assert_array_equal(episode.interventions, [False, False, False, False, True, False])
    np.testing.assert_array_equal(episode.log_probs[:3], [-1.0, -2.0, -3.0])
    assert np.isnan(episode.log_probs[3:]).all()
    np.testing.assert_array_equal(episode.rewards, 0.5 * np.arange(6))
    # bgr8 with row padding: step 0 row 0 holds bytes 0..5 as B,G,R pixels.
    np.testing.assert_array_equal(episode.images[0, 0], [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(episode.proprio[:, 0], np.arange(6))
    with pytest.raises(ValueError, match="camera 'front'"):
        episodes_from_bag(writer.bag_paths[0], camera="front")


def test_chunks_join_the_observation_with_their_stamp_whatever_their_step(tmp_path):
    """A lock-step simulator's expert numbers steps from the reset; perception here started two sensor sets later."""
    sensor_ns = [2 * 10**18 + k * 10**8 for k in range(8)]
    with BagWriter(tmp_path) as writer:
        rec = _Recorder(writer, "/ns")
        rec.event("a", 0)
        for sim_step in range(8):  # the expert keeps acting until the next reset, after the episode's END
            rec.chunk("a", sim_step, _chunk(sim_step, 1), "expert", header_ns=sensor_ns[sim_step])
            if 2 <= sim_step < 7:
                rec.observation("a", sim_step - 2, header_ns=sensor_ns[sim_step])
                rec.reward("a", sim_step - 2, 0.0)
        rec.event("a", 1, length=5)
    (episode,) = episodes_from_bag(writer.bag_paths[0])
    assert episode.complete and len(episode) == 5
    np.testing.assert_allclose(episode.actions[:, 0], [0.2, 0.3, 0.4, 0.5, 0.6])
    np.testing.assert_array_equal(episode.proprio[:, 0], np.arange(5))


def test_bag_ending_mid_episode_drops_it_or_keeps_the_complete_prefix(tmp_path):
    with BagWriter(tmp_path) as writer:
        rec = _Recorder(writer, "/ns")
        for episode_id, steps, ended in (("done", 3, True), ("cut", 4, False)):
            rec.event(episode_id, 0)
            for step in range(steps):
                rec.observation(episode_id, step)
                rec.chunk(episode_id, step, _chunk(step, 1), "policy")
                if step < 3:  # the recording stops before the reward of the cut episode's step 3
                    rec.reward(episode_id, step, 1.0)
            if ended:
                rec.event(episode_id, 1, length=steps)
    bag = writer.bag_paths[0]
    assert [e.episode_id for e in episodes_from_bag(bag)] == ["done"]
    done, cut = episodes_from_bag(bag, include_incomplete=True)
    assert done.complete and len(done) == 3
    assert not cut.complete and len(cut) == 3 and cut.termination_reason == "" and cut.log_probs is None


def test_a_stalled_episode_is_incomplete_whatever_steps_it_has(tmp_path):
    # The episode manager ends an episode as stalled when its messages were lost (a reward skipped steps) and runs
    # its seed again; the steps before the stall join, but the episode is the graph's failure, not data
    with BagWriter(tmp_path) as writer:
        rec = _Recorder(writer, "/ns")
        rec.event("stalled", 0)
        for step in range(3):
            rec.observation("stalled", step)
            rec.chunk("stalled", step, _chunk(step, 1), "expert")
            if step != 2:
                rec.reward("stalled", step, 0.0)
        rec.event("stalled", 1, length=2, reason="stalled")
    bag = writer.bag_paths[0]
    assert episodes_from_bag(bag) == []
    (kept,) = episodes_from_bag(bag, include_incomplete=True)
    assert not kept.complete and len(kept) == 2 and kept.termination_reason == "stalled"


def test_episode_record_validates_shapes():
    images = np.zeros((3, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="actions"):
        EpisodeRecord("e", "x", images, np.zeros((3, 2)), np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="rewards"):
        EpisodeRecord("e", "x", images, np.zeros((3, 2)), np.zeros((3, 5)), np.zeros(2))
    with pytest.raises(ValueError, match="uint8"):
        EpisodeRecord("e", "x", images.astype(np.float32), np.zeros((3, 2)), np.zeros((3, 5)), np.zeros(3))


def test_episode_record_from_policy_observations():
    observations = [
        {"image": np.full((4, 4, 3), t, np.uint8), "proprio": np.full(2, t, np.float32), "instruction": "lift"}
        for t in range(3)
    ]
    episode = EpisodeRecord.from_steps(
        observations, np.zeros((3, 5)), [0.0, 0.0, 1.0], episode_id="sim-1", successes=[False, False, True]
    )
    assert len(episode) == 3 and episode.success and episode.episode_return == 1.0
    assert episode.observation(2)["image"][0, 0, 0] == 2 and episode.instruction == "lift"
    assert episode.actions.dtype == np.float32 and episode.interventions.sum() == 0
