"""The policy node over real topics and services: contract chunks, hot-swapped checkpoints, refused inputs."""

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from rclpy.parameter import Parameter
from std_msgs.msg import String

from rlvla_ros.contract import PROPRIOCEPTION_NAMES
from rlvla_ros.msg import ActionChunk, Observation
from rlvla_ros.nodes import policy as policy_node
from rlvla_ros.nodes.policy import PolicyNode, PolicyNodeConfig
from rlvla_ros.policies import FrozenEncoderConfig, FrozenEncoderPolicy, TokenVla, TokenVlaConfig, load_policy
from rlvla_ros.ros.images import rgb_to_image
from rlvla_ros.ros.stats import STATS_QOS
from rlvla_ros.srv import LoadCheckpoint

HORIZON = 4
"""How long a test waits to be confident that nothing more gets published."""
MODELS = {"token_vla": (TokenVla, TokenVlaConfig), "frozen_encoder": (FrozenEncoderPolicy, FrozenEncoderConfig)}


def observation(seed: int = 0, size: int = 128, proprio_len: int = 6, step: int = 0, encoding: str = "rgb8",
                instruction: str = "pick up the red block") -> Observation:
    rng = np.random.default_rng(seed)
    image = rgb_to_image(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    image.encoding = encoding
    msg = Observation(images=[image], camera_names=["front"], proprioception=rng.normal(size=proprio_len).tolist(),
                      proprioception_names=list(PROPRIOCEPTION_NAMES)[:proprio_len], instruction=instruction,
                      episode_id="ep-7", step=step)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
    msg.header.frame_id = "front_camera"
    return msg


def policy_input(msg: Observation) -> dict:
    """The batch of one the node builds from `msg`."""
    image = msg.images[0]
    return {"image": np.frombuffer(bytes(image.data), np.uint8).reshape(1, image.height, image.width, 3).copy(),
            "proprio": np.asarray([msg.proprioception], dtype=np.float32), "instruction": [msg.instruction]}


class Rig:
    """A policy node and a test node publishing observations and calling ~/load_checkpoint."""

    def __init__(self, ros_graph, wait_for, **parameters):
        self.wait_for = wait_for
        parameters = {"horizon": HORIZON, "image_size": 128, "stats_period_s": 0.05, **parameters}
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = ros_graph.add(PolicyNode(context=ros_graph.context, parameter_overrides=overrides))
        self.test = ros_graph.node("policy_test")
        self.chunks: list[ActionChunk] = []
        self.stats: dict = {}
        self.test.create_subscription(ActionChunk, "action_chunk", self.chunks.append, 10)
        self.test.create_subscription(String, "policy/stats", lambda m: setattr(self, "stats", json.loads(m.data)),
                                      STATS_QOS)
        self.observations = self.test.create_publisher(Observation, "observation", 10)
        self.load_client = self.test.create_client(LoadCheckpoint, "policy/load_checkpoint")
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in self.node.subscriptions), 10.0)
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in self.test.subscriptions), 10.0)
        assert self.load_client.wait_for_service(timeout_sec=10.0)

    def act(self, msg: Observation) -> ActionChunk:
        """Publish `msg` and return the chunk that answers it."""
        count = len(self.chunks)
        self.observations.publish(msg)
        assert self.wait_for(lambda: len(self.chunks) > count, 10.0), "no chunk for a valid observation"
        return self.chunks[-1]

    def load(self, path) -> LoadCheckpoint.Response:
        future = self.load_client.call_async(LoadCheckpoint.Request(path=str(path)))
        assert self.wait_for(future.done, 30.0)
        return future.result()


@pytest.fixture
def rig(ros_graph, wait_for):
    return lambda **parameters: Rig(ros_graph, wait_for, **parameters)


@pytest.mark.parametrize("model", list(MODELS))
def test_chunks_follow_the_action_contract_and_copy_the_observation_metadata(rig, model):
    r = rig(model=model)
    chunk = r.act(observation(step=3))
    assert (chunk.horizon, chunk.action_dim, chunk.action_space, chunk.source) == (HORIZON, 5, "ee_delta", "policy")
    assert (chunk.episode_id, chunk.step, chunk.policy_version) == ("ep-7", 3, 0)
    assert (chunk.header.stamp.sec, chunk.header.stamp.nanosec, chunk.header.frame_id) == (12, 345, "front_camera")
    actions = np.asarray(chunk.actions)
    assert actions.shape == (HORIZON * 5,) and np.all(np.abs(actions) <= 1.0)
    assert len(chunk.log_probs) == HORIZON and np.isfinite(chunk.log_probs).all()
    assert np.isfinite(chunk.value)
    # deterministic is off: the same observation at another step gets another sample (the mode would be the same)
    assert not np.array_equal(np.asarray(r.act(observation(step=4)).actions), actions)


@pytest.mark.parametrize("model", list(MODELS))
def test_a_sampled_chunk_depends_on_the_observation_not_on_what_the_node_answered_before(rig, model):
    r = rig(model=model)
    first = np.asarray(r.act(observation(seed=0, step=3)).actions)
    for step in range(3):
        r.act(observation(seed=1, step=step))
    assert np.array_equal(np.asarray(r.act(observation(seed=0, step=3)).actions), first)


@pytest.mark.parametrize("model", list(MODELS))
def test_loaded_checkpoint_acts_exactly_like_the_saved_model_and_bumps_the_version(rig, model, tmp_path):
    r = rig(model=model, deterministic=True)
    policy_class, config_class = MODELS[model]
    torch.manual_seed(123)  # other weights than the node's fresh model
    trained = policy_class(config_class(chunk_size=HORIZON)).eval()
    trained.save_pretrained(tmp_path / "ckpt")
    msg = observation(seed=5)
    before = np.asarray(r.act(msg).actions)

    response = r.load(tmp_path / "ckpt")
    assert response.success, response.message
    assert response.policy_version == 1
    chunk = r.act(msg)
    expected = trained.predict(policy_input(msg), deterministic=True)
    np.testing.assert_array_equal(np.asarray(chunk.actions, np.float32), expected.actions[0].numpy().ravel())
    np.testing.assert_allclose(chunk.log_probs, expected.log_probs[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(chunk.value, float(expected.values[0]), rtol=1e-6)
    assert chunk.policy_version == 1
    assert not np.array_equal(before, np.asarray(chunk.actions)), "the new weights are in use"
    assert r.load(tmp_path / "ckpt").policy_version == 2
    assert r.wait_for(lambda: r.stats.get("policy_version") == 2, 5.0)


def test_control_goes_on_with_the_old_weights_while_a_checkpoint_loads(rig, tmp_path, monkeypatch):
    r = rig(model="token_vla")
    TokenVla(TokenVlaConfig(chunk_size=HORIZON)).save_pretrained(tmp_path / "ckpt")
    # The load waits until the test lets it go: how long a real one takes does not decide what the test sees.
    loading, may_load = threading.Event(), threading.Event()

    def held_load(path, **kwargs):
        loading.set()
        assert may_load.wait(30.0), "the test never let the load go on"
        return load_policy(path, **kwargs)

    monkeypatch.setattr(policy_node, "load_policy", held_load)
    future = r.load_client.call_async(LoadCheckpoint.Request(path=str(tmp_path / "ckpt")))
    assert loading.wait(30.0), "the load never started"
    assert [r.act(observation(step=step)).policy_version for step in range(3)] == [0, 0, 0]
    assert not future.done()
    may_load.set()
    assert r.wait_for(future.done, 30.0)
    assert future.result().success, future.result().message
    assert r.act(observation()).policy_version == 1


def test_unloadable_checkpoints_are_refused_and_control_goes_on(rig, tmp_path):
    r = rig(model="token_vla", deterministic=True)
    msg = observation(seed=1)
    before = r.act(msg).actions

    pickled = tmp_path / "pickled"
    good = TokenVla(TokenVlaConfig(chunk_size=HORIZON))
    good.save_pretrained(pickled)
    torch.save(good.state_dict(), pickled / "model.safetensors")  # a pickle under the safetensors name
    other_horizon = tmp_path / "horizon2"
    TokenVla(TokenVlaConfig(chunk_size=2)).save_pretrained(other_horizon)
    other_size = tmp_path / "size64"
    TokenVla(TokenVlaConfig(chunk_size=HORIZON, image_size=64)).save_pretrained(other_size)

    for path, reason in [(tmp_path / "missing", "no config.json"), (pickled, "not a safetensors file"),
                         (other_horizon, "chunks of 2"), (other_size, "image_size 64"), ("", "empty")]:
        response = r.load(path)
        assert not response.success, path
        assert reason in response.message
        assert response.policy_version == 0
        chunk = r.act(msg)
        assert chunk.policy_version == 0 and chunk.actions == before, "the old weights stay in control"


def test_observations_the_policy_cannot_use_are_refused_with_a_reason(rig, wait_for):
    r = rig(model="token_vla")
    no_image = observation()
    no_image.images, no_image.camera_names = [], []
    bad = [no_image, observation(encoding="bgr8"), observation(size=64), observation(proprio_len=5)]
    nan_proprio = observation()
    nan_proprio.proprioception[2] = float("nan")
    bad.append(nan_proprio)
    for refused, msg in enumerate(bad, start=1):
        r.observations.publish(msg)
        # Depth-1 queue: wait for each refusal before the next message could replace it.
        assert wait_for(lambda n=refused: r.stats.get("refused", {}).get("bad_observation") == n, 5.0)
    # The sentinel: one worker answers in order, so a chunk for any refused observation would come before its chunk.
    assert r.act(observation(step=99)).horizon == HORIZON
    assert [chunk.step for chunk in r.chunks] == [99]


def test_camera_parameter_picks_the_image_by_name(rig, wait_for):
    r = rig(model="token_vla", camera="wrist")
    front_only = observation()
    r.observations.publish(front_only)
    assert wait_for(lambda: r.stats.get("refused", {}).get("bad_observation") == 1, 5.0)
    both = observation()
    both.images.append(observation(seed=9).images[0])
    both.camera_names = ["front", "wrist"]
    assert r.act(both).horizon == HORIZON


def test_shipped_parameter_file_loads_and_states_the_defaults(ros_graph):
    path = Path(__file__).parents[2] / "config" / "policy.yaml"
    node = ros_graph.add(PolicyNode(context=ros_graph.context, cli_args=["--ros-args", "--params-file", str(path)]))
    assert node.config == PolicyNodeConfig()


def test_a_checkpoint_of_another_horizon_stops_the_node_at_start_up_and_leaves_no_thread(ros_graph, tmp_path):
    TokenVla(TokenVlaConfig(chunk_size=2)).save_pretrained(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="predicts chunks of 2, the node's horizon is 4"):
        PolicyNode(context=ros_graph.context, parameter_overrides=[
            Parameter("checkpoint", value=str(tmp_path / "ckpt")), Parameter("horizon", value=HORIZON)])
    # A worker left running would hold the refused node, and its DDS participant, for the rest of the process.
    assert "policy_inference" not in [thread.name for thread in threading.enumerate()]
