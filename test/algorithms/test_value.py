"""Chunk Q-function: conservative critic objective on a toy problem, chunk transitions, checkpoints, trainer."""

import copy
import time

import numpy as np
import pytest
import torch

from rlvla_ros.algorithms.base import JobContext, apply_overrides
from rlvla_ros.algorithms.chunk_transitions import ChunkTransitions
from rlvla_ros.algorithms.conservative_critic import conservative_critic_loss, polyak_update
from rlvla_ros.algorithms.value import ValueConfig, ValueTrainer
from rlvla_ros.data import BagWriter, EpisodeRecord, write_episode
from rlvla_ros.policies import FrozenEncoderConfig, FrozenEncoderPolicy
from rlvla_ros.policies.chunk_q import ChunkQConfig, ChunkQFunction, CriticEnsemble

DATA_ACTION = 0.5
OOD_ACTION = -0.9


def one_step_episodes(num: int, seed: int = 0) -> list[EpisodeRecord]:
    """Single-step successful episodes whose actions all lie near DATA_ACTION; the state is the proprio."""
    rng = np.random.default_rng(seed)
    return [
        EpisodeRecord(
            episode_id=str(i),
            instruction="lift",
            images=np.zeros((1, 4, 4, 3), np.uint8),
            proprio=rng.normal(size=(1, 4)).astype(np.float32),
            actions=np.clip(DATA_ACTION + 0.05 * rng.normal(size=(1, 5)), -1, 1),
            rewards=np.ones(1),
            successes=np.ones(1, bool),
        )
        for i in range(num)
    ]


def fit_toy_critic(cql_alpha: float, policy_action: float | None = None, calibrated: bool = True):
    """Train a critic for 300 updates on the toy data; returns (Q at data actions, Q at the OOD/policy action)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    transitions = ChunkTransitions.from_episodes(
        one_step_episodes(64), lambda batch: torch.as_tensor(batch["proprio"]), horizon=1, gamma=0.9
    )
    critics = CriticEnsemble(feature_dim=4, chunk_size=1, hidden_size=64, num_layers=2, num_critics=2)
    target = copy.deepcopy(critics)
    optimizer = torch.optim.Adam(critics.parameters(), lr=1e-3)
    probe = OOD_ACTION if policy_action is None else policy_action
    for _ in range(300):
        rows = torch.randint(len(transitions), (64,), generator=generator)
        num_policy = 0 if policy_action is None else 4
        policy_chunks = torch.full((64, num_policy, 1, 5), probe)
        loss, _ = conservative_critic_loss(
            critics, target, transitions, rows, transitions.actions[transitions.next_index[rows]], policy_chunks,
            cql_alpha=cql_alpha, num_random_chunks=8, calibrated=calibrated, generator=generator,
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        polyak_update(target, critics, 0.05)
    with torch.no_grad():
        q_data = critics(transitions.features, transitions.actions).mean().item()
        q_probe = critics(transitions.features, torch.full((64, 1, 5), probe)).mean().item()
    return q_data, q_probe


def test_conservative_penalty_pushes_out_of_distribution_q_down():
    q_data_plain, q_ood_plain = fit_toy_critic(cql_alpha=0.0)
    q_data_cql, q_ood_cql = fit_toy_critic(cql_alpha=1.0)
    # Without the regulariser the critic extrapolates the data's return (1.0) to actions it never saw.
    assert q_data_plain == pytest.approx(1.0, abs=0.05)
    assert q_ood_plain > 0.7
    # With it, the unseen action is valued far below the data while the data keeps (about) its return.
    assert q_data_cql > 0.9
    assert q_ood_cql < q_data_cql - 2.0
    assert q_ood_cql < q_ood_plain - 2.0


def test_calibration_bounds_the_push_on_policy_samples():
    _, q_policy_calibrated = fit_toy_critic(cql_alpha=1.0, policy_action=-0.5, calibrated=True)
    _, q_policy_cql = fit_toy_critic(cql_alpha=1.0, policy_action=-0.5, calibrated=False)
    # Cal-QL stops pushing a policy sample once it is below the Monte-Carlo return (1.0): it stays much higher.
    assert q_policy_calibrated > q_policy_cql + 5.0


def test_chunk_transitions_sum_rewards_and_bootstrap_over_the_chunk():
    episode = EpisodeRecord(
        episode_id="e",
        instruction="lift",
        images=np.zeros((5, 4, 4, 3), np.uint8),
        proprio=np.arange(5, dtype=np.float32)[:, None],
        actions=np.arange(25, dtype=np.float32).reshape(5, 5) / 25,
        rewards=[0, 0, 0, 0, 1],
        successes=[0, 0, 0, 0, 1],
    )
    t = ChunkTransitions.from_episodes([episode], lambda b: torch.as_tensor(b["proprio"]), horizon=2, gamma=0.5)
    assert t.next_index.tolist() == [2, 3, 4, 3, 4]
    assert t.bootstrap.tolist() == [0.25, 0.25, 0.25, 0.0, 0.0]
    assert t.chunk_rewards.tolist() == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert t.mc_returns.tolist() == [0.0625, 0.125, 0.25, 0.5, 1.0]
    assert t.action_mask[-1].tolist() == [True, False]
    assert torch.equal(t.actions[3], torch.as_tensor(episode.actions[3:5]))
    assert torch.all(t.actions[4, 1] == 0)


@pytest.fixture(scope="module")
def q_model():
    torch.manual_seed(0)
    return ChunkQFunction(ChunkQConfig(chunk_size=2, image_size=32, hidden_size=32)).eval()


def observation(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "proprio": rng.normal(size=6).astype(np.float32),
        "instruction": "lift the red block",
    }


def test_value_model_save_load_gives_identical_scores(q_model, tmp_path):
    candidates = torch.rand(5, 2, 5) * 2 - 1
    before = q_model.score(observation(), candidates)
    q_model.save_pretrained(tmp_path / "q")
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["config.json", "model.safetensors"]
    loaded = ChunkQFunction.from_pretrained(tmp_path / "q")
    assert loaded.config == q_model.config
    assert torch.equal(loaded.score(observation(), candidates), before)
    assert before.shape == (5,)


def test_value_model_refuses_another_models_config(tmp_path):
    (tmp_path / "config.json").write_text('{"policy_type": "frozen_encoder"}')
    with pytest.raises(ValueError, match="model_type"):
        ChunkQFunction.from_pretrained(tmp_path)


def test_value_model_refuses_wrong_chunk_horizon(q_model):
    with pytest.raises(ValueError, match="2 steps"):
        q_model.score(observation(), torch.zeros(3, 4, 5))


def test_value_trainer_values_successful_data_above_failed_data(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [
        EpisodeRecord(
            episode_id=f"e{i}",
            instruction="lift the red block",
            images=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
            proprio=rng.normal(size=(4, 6)).astype(np.float32),
            actions=np.full((4, 5), 0.5 if i % 2 == 0 else -0.5, np.float32),
            rewards=[0, 0, 0, float(i % 2 == 0)],
            successes=[0, 0, 0, i % 2 == 0],
        )
        for i in range(8)
    ]
    with BagWriter(tmp_path / "data") as writer:
        stamp = time.time_ns()
        for episode in episodes:
            stamp = write_episode(writer, episode, start_time_ns=stamp)
    config = apply_overrides(ValueConfig, {"image_size": 32, "chunk_size": 2, "hidden_size": 32, "batch_size": 32,
                                           "log_interval": 10, "learning_rate": 3e-3, "gamma": 0.9,
                                           "tau": 0.1})
    context = JobContext(config=config, output_dir=tmp_path / "job", steps=200, datasets=[tmp_path / "data"],
                         tensorboard=False)
    ValueTrainer().run(context)
    q = ChunkQFunction.from_pretrained(tmp_path / "job" / "latest")
    assert q.config.chunk_size == 2 and q.config.image_size == 32
    first_chunk_q = [q.score(episode.observation(0), torch.as_tensor(episode.actions[None, :2])).item()
                     for episode in episodes]
    # Monte-Carlo returns of step 0: 0.9^3 = 0.73 for successes, 0 for failures.
    assert np.mean(first_chunk_q[0::2]) > np.mean(first_chunk_q[1::2]) + 0.4


@pytest.fixture(scope="module")
def steered_policy():
    torch.manual_seed(0)
    return FrozenEncoderPolicy(FrozenEncoderConfig(chunk_size=2, image_size=32, hidden_size=32)).eval()


def test_a_q_function_on_the_steered_policys_features_saves_that_policy_and_reloads_identically(
        steered_policy, tmp_path):
    q_model = ChunkQFunction(ChunkQConfig(chunk_size=2, image_size=32, hidden_size=32, encoder="policy"),
                             steered_policy).eval()
    obs = {key: value[None] if key != "instruction" else [value] for key, value in observation().items()}
    assert torch.equal(q_model.features(obs), steered_policy.features(obs))
    candidates = torch.rand(5, 2, 5) * 2 - 1
    before = q_model.score(observation(), candidates)
    q_model.save_pretrained(tmp_path / "q")
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["config.json", "model.safetensors", "policy"]
    loaded = ChunkQFunction.from_pretrained(tmp_path / "q")
    assert loaded.config.encoder == "policy"
    assert torch.equal(loaded.score(observation(), candidates), before)


def test_a_q_function_on_policy_features_needs_a_matching_policy(steered_policy):
    with pytest.raises(ValueError, match="needs the policy it steers"):
        ChunkQFunction(ChunkQConfig(chunk_size=2, image_size=32, encoder="policy"))
    with pytest.raises(ValueError, match=r"chunk size and proprio \(2, 6\) differ from the Q-function's \(4, 6\)"):
        ChunkQFunction(ChunkQConfig(chunk_size=4, image_size=32, encoder="policy"), steered_policy)
    with pytest.raises(ValueError, match="encoder must be one of"):
        ChunkQConfig(encoder="dino")


def test_value_trainer_adds_the_steered_policys_own_rollouts_and_reads_its_features(steered_policy, tmp_path):
    steered_policy.save_pretrained(tmp_path / "policy")
    episodes = one_step_episodes(4)
    for episode in episodes:
        episode.images = np.zeros((1, 32, 32, 3), np.uint8)
        episode.proprio = np.zeros((1, 6), np.float32)
        episode.task = "lift"
    with BagWriter(tmp_path / "data") as writer:
        stamp = time.time_ns()
        for episode in episodes:
            stamp = write_episode(writer, episode, start_time_ns=stamp)
    config = apply_overrides(ValueConfig, {"hidden_size": 32, "batch_size": 16, "num_policy_chunks": 2,
                                           "encoder": "policy", "rollout_episodes": 3,
                                           "init_checkpoint": str(tmp_path / "policy")})
    context = JobContext(config=config, output_dir=tmp_path / "job", steps=2, datasets=[tmp_path / "data"],
                         tensorboard=False)
    ValueTrainer().run(context)
    assert context.history["rollout/episodes"] == [(0, 3.0)]
    q = ChunkQFunction.from_pretrained(tmp_path / "job" / "latest")
    assert q.config.encoder == "policy"
    obs = {key: value[None] if key != "instruction" else [value] for key, value in observation().items()}
    assert torch.equal(q.features(obs), steered_policy.features(obs))


@pytest.mark.parametrize("overrides", [{"encoder": "policy"}, {"rollout_episodes": 4}])
def test_value_trainer_refuses_policy_features_or_rollouts_without_the_policy(overrides):
    with pytest.raises(ValueError, match="need init_checkpoint"):
        apply_overrides(ValueConfig, overrides)
