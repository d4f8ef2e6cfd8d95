"""The policy node with test-time steering: it publishes its mode, or a sample that every critic of the steering
Q-function scores higher."""

import numpy as np
import pytest
import torch
from rclpy.parameter import Parameter

from rlvla_ros.contract import PROPRIOCEPTION_NAMES
from rlvla_ros.msg import ActionChunk, Observation
from rlvla_ros.nodes.policy import PolicyNode
from rlvla_ros.policies import FrozenEncoderConfig, FrozenEncoderPolicy
from rlvla_ros.policies.chunk_q import ChunkQConfig, ChunkQFunction
from rlvla_ros.ros.images import rgb_to_image

HORIZON = 4
SIZE = 32
CANDIDATES = 16


def observation(seed: int) -> Observation:
    rng = np.random.default_rng(seed)
    return Observation(
        images=[rgb_to_image(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))], camera_names=["front"],
        proprioception=rng.normal(size=6).tolist(), proprioception_names=list(PROPRIOCEPTION_NAMES),
        instruction="lift the red block", episode_id="ep", step=seed)


def as_obs(msg: Observation) -> dict:
    image = msg.images[0]
    return {"image": np.frombuffer(bytes(image.data), np.uint8).reshape(SIZE, SIZE, 3).copy(),
            "proprio": np.asarray(msg.proprioception, np.float32), "instruction": msg.instruction}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A policy and a Q-function checkpoint, and the loaded objects to check the node against."""
    root = tmp_path_factory.mktemp("steering")
    torch.manual_seed(0)
    FrozenEncoderPolicy(FrozenEncoderConfig(chunk_size=HORIZON, image_size=SIZE, hidden_size=32)).save_pretrained(
        root / "policy")
    policy = FrozenEncoderPolicy.from_pretrained(root / "policy")
    ChunkQFunction(ChunkQConfig(chunk_size=HORIZON, image_size=SIZE, hidden_size=32, encoder="policy"),
                   policy).save_pretrained(root / "q")
    return root, policy, ChunkQFunction.from_pretrained(root / "q")


def start(ros_graph, **parameters) -> PolicyNode:
    overrides = [Parameter(name, value=value) for name, value in {"horizon": HORIZON, **parameters}.items()]
    return ros_graph.add(PolicyNode(context=ros_graph.context, parameter_overrides=overrides))


def test_steered_chunks_are_the_mode_or_a_sample_every_critic_prefers(ros_graph, wait_for, models):
    root, policy, q_model = models
    start(ros_graph, checkpoint=str(root / "policy"), steering_candidates=CANDIDATES, steering_model=str(root / "q"))
    test = ros_graph.node("steering_test")
    chunks: list[ActionChunk] = []
    test.create_subscription(ActionChunk, "action_chunk", chunks.append, 10)
    publisher = test.create_publisher(Observation, "observation", 10)
    assert wait_for(lambda: publisher.get_subscription_count() > 0, 10.0)
    for seed in range(3):
        msg = observation(seed)
        publisher.publish(msg)
        assert wait_for(lambda n=seed: len(chunks) > n, 20.0)
        chunk, obs = chunks[-1], as_obs(msg)
        actions = torch.as_tensor(np.asarray(chunk.actions, np.float32).reshape(1, HORIZON, 5))
        batch = {"image": obs["image"][None], "proprio": obs["proprio"][None], "instruction": [obs["instruction"]]}
        mode = policy.predict(batch, deterministic=True).actions
        with torch.no_grad():
            scores = q_model(q_model.features(batch), torch.cat([mode, actions])[None])[:, 0]  # (critics, 2)
        # The published value is the (ensemble-minimum) Q of the published chunk, the log-probs are the policy's.
        assert chunk.value == pytest.approx(float(scores[:, 1].min()), abs=1e-5)
        np.testing.assert_allclose(chunk.log_probs, policy.log_prob(batch, actions)[0][0].detach().numpy(), rtol=1e-5)
        if not torch.allclose(actions, mode, atol=1e-6):
            assert bool((scores[:, 1] > scores[:, 0]).all()), "a sample replaced the mode without every critic's gain"


def test_steering_without_a_model_or_of_another_horizon_stops_the_node(ros_graph, models):
    root, _, _ = models
    with pytest.raises(ValueError, match="needs a steering_model"):
        start(ros_graph, checkpoint=str(root / "policy"), steering_candidates=4)
    ChunkQFunction(ChunkQConfig(chunk_size=2, image_size=SIZE, hidden_size=32)).save_pretrained(root / "q2")
    with pytest.raises(ValueError, match="scores chunks of 2, the node's horizon is 4"):
        start(ros_graph, checkpoint=str(root / "policy"), steering_candidates=4, steering_model=str(root / "q2"))
