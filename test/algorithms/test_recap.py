"""RECAP: advantage labels, the advantage-conditioned policy, its checkpoints, and the trainer on a tiny bag."""

import time

import numpy as np
import pytest
import torch

from rlvla_ros.algorithms.base import JobContext, apply_overrides
from rlvla_ros.algorithms.chunk_transitions import ChunkTransitions
from rlvla_ros.algorithms.recap import RecapConfig, RecapTrainer, advantages, binarise
from rlvla_ros.data import BagWriter, EpisodeRecord, write_episode
from rlvla_ros.policies import FrozenEncoderConfig, FrozenEncoderPolicy, load_policy
from rlvla_ros.policies.advantage_conditioned import (
    NOT_POSITIVE,
    POSITIVE,
    AdvantageConditionedConfig,
    AdvantageConditionedPolicy,
    condition,
)

SIZE = 32
IMAGE = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
"""The one observation image of the contradicting bag."""


def obs_batch(batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (batch, SIZE, SIZE, 3), dtype=np.uint8),
        "proprio": rng.normal(size=(batch, 6)).astype(np.float32),
        "instruction": ["lift the red block"] * batch,
    }


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    policy = AdvantageConditionedPolicy(AdvantageConditionedConfig(chunk_size=2, image_size=SIZE, hidden_size=32))
    with torch.no_grad():
        policy.actor.embedding.normal_()  # as after training: the indicator matters
    return policy.eval()


def test_binarise_labels_the_top_fraction_positive():
    advantage = torch.tensor([0.3, -0.2, 0.9, 0.1, -0.7, 0.5])
    assert binarise(advantage, 0.5).tolist() == [POSITIVE, NOT_POSITIVE, POSITIVE, NOT_POSITIVE, NOT_POSITIVE,
                                                 POSITIVE]


def test_advantages_are_h_step_td_errors_of_the_value():
    episode = EpisodeRecord(
        episode_id="e", instruction="lift", images=np.zeros((3, 4, 4, 3), np.uint8), proprio=np.zeros((3, 1)),
        actions=np.zeros((3, 5)), rewards=[0, 0, 1], successes=[0, 0, 1],
    )
    transitions = ChunkTransitions.from_episodes([episode], lambda b: torch.zeros(len(b["proprio"]), 1), 2, 0.5)
    values = torch.tensor([0.2, 0.4, 0.9])
    # t=0: 0 + 0.25 * V(s_2) - V(s_0); t=1: 0.5 * r_2 - V(s_1) (ends inside the chunk); t=2: r_2 - V(s_2).
    assert advantages(values, transitions).tolist() == pytest.approx([0.025, 0.1, 0.1])


def test_conditioning_changes_the_policys_action(policy):
    features = policy.plain_features(obs_batch(3))
    positive = policy.log_prob_from_features(condition(features, POSITIVE), torch.zeros(3, 2, 5))[0]
    negative = policy.log_prob_from_features(condition(features, NOT_POSITIVE), torch.zeros(3, 2, 5))[0]
    assert (positive - negative).abs().min() > 1e-3
    acting = policy.predict(obs_batch(3), deterministic=True).actions
    policy.config.inference_indicator = NOT_POSITIVE
    try:
        other = policy.predict(obs_batch(3), deterministic=True).actions
    finally:
        policy.config.inference_indicator = POSITIVE
    assert (acting - other).abs().max() > 1e-2


def test_value_ignores_the_indicator(policy):
    features = policy.plain_features(obs_batch(2))
    assert torch.equal(
        policy.value_from_features(condition(features, POSITIVE)),
        policy.value_from_features(condition(features, NOT_POSITIVE)),
    )


def test_round_trips_through_save_and_load(policy, tmp_path):
    before = policy.predict(obs_batch(2), deterministic=True)
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt")
    assert isinstance(loaded, AdvantageConditionedPolicy)
    assert loaded.config == policy.config
    after = loaded.predict(obs_batch(2), deterministic=True)
    assert torch.equal(after.actions, before.actions)
    assert torch.equal(after.values, before.values)


def test_converted_bc_policy_acts_exactly_like_it():
    torch.manual_seed(1)
    bc = FrozenEncoderPolicy(FrozenEncoderConfig(chunk_size=2, image_size=SIZE, hidden_size=32)).eval()
    converted = AdvantageConditionedPolicy.from_policy(bc).eval()
    expected = bc.predict(obs_batch(2), deterministic=True).actions
    assert torch.equal(converted.predict(obs_batch(2), deterministic=True).actions, expected)


def write_contradicting_bag(root) -> None:
    """Same first observation; successful episodes act +0.8, failed ones -0.8 (as many of each), and the proprio
    (the "position") then moves with the action, so later states tell the two apart."""
    with BagWriter(root) as writer:
        stamp = time.time_ns()
        for i in range(12):
            success = i % 2 == 0
            episode = EpisodeRecord(
                episode_id=f"e{i}", instruction="lift the red block", images=np.repeat(IMAGE[None], 3, axis=0),
                proprio=np.full((3, 6), 0.8 if success else -0.8, np.float32) * np.arange(3)[:, None],
                actions=np.full((3, 5), 0.8 if success else -0.8, np.float32),
                rewards=[0, 0, float(success)], successes=[0, 0, success],
            )
            stamp = write_episode(writer, episode, start_time_ns=stamp)


def test_trainer_imitates_the_successful_half_of_contradicting_data(tmp_path):
    write_contradicting_bag(tmp_path / "data")
    config = apply_overrides(
        RecapConfig,
        {"image_size": SIZE, "chunk_size": 2, "batch_size": 36, "value_steps": 150, "learning_rate": 3e-3,
         "log_interval": 25},
    )
    context = JobContext(config=config, output_dir=tmp_path / "job", steps=250, datasets=[tmp_path / "data"],
                         tensorboard=False)
    metrics = RecapTrainer().run(context)
    # Only the first step decides the outcome (later advantages are ~0 either way), so successes get more labels.
    assert metrics["labels/positive_rate_success_episodes"] > metrics["labels/positive_rate_failed_episodes"] + 0.2
    nll = [value for _, value in context.history["policy/nll"]]
    assert nll[-1] < nll[0] - 1.0
    trained = load_policy(tmp_path / "job" / "latest")
    obs = {"image": IMAGE[None], "proprio": np.zeros((1, 6), np.float32), "instruction": ["lift the red block"]}
    # Plain BC would average the two halves to ~0 at the shared first state; conditioned on "positive" the policy
    # acts like the successes there.
    assert trained.predict(obs, deterministic=True).actions.mean().item() > 0.6
    trained.config.inference_indicator = NOT_POSITIVE
    assert trained.predict(obs, deterministic=True).actions.mean().item() < -0.6
