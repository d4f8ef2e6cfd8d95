"""Cal-QL + BC: reparameterised actor samples, and the trainer on a tiny bag of successes and failures."""

import time

import numpy as np
import pytest
import torch

from rlvla_ros.algorithms.base import JobContext, apply_overrides
from rlvla_ros.algorithms.calql import CRITIC_DIR, CalQlConfig, CalQlTrainer, sample_chunks
from rlvla_ros.data import BagWriter, EpisodeRecord, write_episode
from rlvla_ros.policies import FrozenEncoderConfig, FrozenEncoderPolicy, TokenVla, load_policy
from rlvla_ros.policies.chunk_q import ChunkQFunction

SIZE = 32


def test_actor_samples_are_reparameterised_and_in_the_action_box():
    torch.manual_seed(0)
    policy = FrozenEncoderPolicy(FrozenEncoderConfig(chunk_size=3, image_size=SIZE, hidden_size=16))
    features = torch.randn(4, 1280 + 384 + 6)
    chunks = sample_chunks(policy, features, 5)
    assert chunks.shape == (4, 5, 3, 5)
    assert chunks.abs().max() < 1.0
    chunks.sum().backward()
    assert policy.log_std.grad is not None and policy.log_std.grad.abs().sum() > 0
    assert policy.actor[-1].weight.grad.abs().sum() > 0


def write_mixed_bag(root) -> list[EpisodeRecord]:
    """Eight 5-step episodes: successes act +0.5 and get reward 1 at the end, failures act -0.5 and get nothing."""
    rng = np.random.default_rng(0)
    episodes = []
    with BagWriter(root) as writer:
        stamp = time.time_ns()
        for i in range(8):
            success = i % 2 == 0
            episodes.append(EpisodeRecord(
                episode_id=f"e{i}", instruction="lift the red block",
                images=rng.integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8),
                proprio=rng.normal(size=(5, 6)).astype(np.float32),
                actions=np.clip(rng.normal(0.5 if success else -0.5, 0.1, (5, 5)), -1, 1).astype(np.float32),
                rewards=[0, 0, 0, 0, float(success)], successes=[0, 0, 0, 0, success],
            ))
            stamp = write_episode(writer, episodes[-1], start_time_ns=stamp)
    return episodes


def run_calql(tmp_path, steps: int, **overrides) -> JobContext:
    config = apply_overrides(
        CalQlConfig,
        {"image_size": SIZE, "chunk_size": 2, "hidden_size": 32, "batch_size": 32, "log_interval": 10,
         "critic_warmup_steps": 20, "critic_learning_rate": 3e-3, "actor_learning_rate": 3e-3, **overrides},
    )
    context = JobContext(config=config, output_dir=tmp_path / "job", steps=steps, datasets=[tmp_path / "data"],
                         tensorboard=False)
    CalQlTrainer().run(context)
    return context


def test_trainer_on_a_tiny_dataset_learns_which_chunks_succeed_and_saves_policy_and_critic(tmp_path):
    episodes = write_mixed_bag(tmp_path / "data")
    context = run_calql(tmp_path, steps=150)
    nll = [value for _, value in context.history["actor/bc_nll"]]
    assert nll[-1] < nll[0] - 1.0
    policy = load_policy(tmp_path / "job" / "latest")
    assert isinstance(policy, FrozenEncoderPolicy) and policy.chunk_size == 2
    critic = ChunkQFunction.from_pretrained(tmp_path / "job" / CRITIC_DIR)
    assert critic.config.chunk_size == 2 and critic.config.image_size == SIZE
    # The TD loss of a moving target is too noisy to assert on; what the critic learned is not: the first chunk of a
    # success (Monte-Carlo return 0.97^4 = 0.89) scores above that of a failure (return 0).
    first_chunk_q = [critic.score(e.observation(0), torch.as_tensor(e.actions[None, :2])).item() for e in episodes]
    assert np.mean(first_chunk_q[0::2]) > np.mean(first_chunk_q[1::2]) + 0.3, first_chunk_q


def test_trainer_refuses_a_policy_without_frozen_features(tmp_path):
    write_mixed_bag(tmp_path / "data")
    with pytest.raises(ValueError, match="frozen_encoder policy, got TokenVla"):
        run_calql(tmp_path, steps=1, policy_type="token_vla")
    assert TokenVla.config_class.policy_type == "token_vla"
