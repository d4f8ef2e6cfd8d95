"""Test-time steering executes the policy's mode unless every critic agrees that one of its samples is better by
more than the margin; then the sample with the largest agreed gain."""

import numpy as np
import pytest
import torch

from rlvla_ros.policies import FrozenEncoderConfig, FrozenEncoderPolicy, PolicyOutput
from rlvla_ros.policies.chunk_q import ChunkQConfig, ChunkQFunction
from rlvla_ros.policies.steering import choose_chunks, propose, steering_hook

SIZE = 32


class FixedProposals:
    """Stands in for a policy: its mode is all zeros, its samples are ``samples`` in turn; records temperatures."""

    def __init__(self, samples: torch.Tensor) -> None:
        self.samples = samples
        self.temperatures: list[float] = []

    def predict(self, obs_batch, *, deterministic=False, temperature=1.0):
        batch = len(obs_batch["instruction"])
        if deterministic:
            actions = torch.zeros(batch, *self.samples.shape[1:])
        else:
            self.temperatures.append(temperature)
            actions = self.samples[torch.arange(batch) % len(self.samples)]
        return PolicyOutput(actions=actions, log_probs=torch.zeros(actions.shape[:2]), values=torch.zeros(batch))


class DxCritics:
    """Two critics scoring a chunk by its first dx; the second also by its first dy (scaled by ``dy_weight``)."""

    def __init__(self, dy_weight: float = 0.0) -> None:
        self.dy_weight = dy_weight

    def features(self, obs_batch):
        return torch.zeros(len(obs_batch["instruction"]), 1)

    def __call__(self, features, chunks):
        dx, dy = chunks[..., 0, 0], chunks[..., 0, 1]
        return torch.stack([dx, dx + self.dy_weight * dy])


def batch(size: int = 1) -> dict:
    rng = np.random.default_rng(0)
    return {
        "image": rng.integers(0, 256, (size, SIZE, SIZE, 3), dtype=np.uint8),
        "proprio": rng.normal(size=(size, 6)).astype(np.float32),
        "instruction": ["lift the red block"] * size,
    }


def samples(*first_actions: tuple[float, float]) -> torch.Tensor:
    chunks = torch.zeros(len(first_actions), 2, 5)
    chunks[:, 0, :2] = torch.tensor(first_actions)
    return chunks


def test_proposals_are_the_mode_then_samples_at_the_temperature():
    policy = FixedProposals(samples((0.5, 0.0), (0.2, 0.0), (0.7, 0.0)))
    candidates = propose(policy, batch(2), n=4, temperature=0.5)
    assert candidates.shape == (2, 4, 2, 5)
    assert torch.equal(candidates[:, 0], torch.zeros(2, 2, 5))
    assert candidates[0, 1:, 0, 0].tolist() == pytest.approx([0.5, 0.2, 0.7])
    assert policy.temperatures == [0.5]


def test_the_sample_every_critic_prefers_most_is_executed():
    policy = FixedProposals(samples((0.3, 0.0), (0.8, 0.0), (0.5, 0.0)))
    chunks, chosen, q = choose_chunks(policy, DxCritics(), batch(), n=4)
    assert chosen.tolist() == [2]
    assert chunks[0, 0, 0].item() == pytest.approx(0.8)
    assert q.tolist() == pytest.approx([0.8])


def test_the_mode_stays_where_the_critics_disagree():
    # Critic 1 likes +dx, critic 2 (dx - 2 dy) dislikes the sample's dy more: no agreed gain.
    policy = FixedProposals(samples((0.4, 0.5)))
    _, chosen, _ = choose_chunks(policy, DxCritics(dy_weight=-2.0), batch(), n=2)
    assert chosen.tolist() == [0]


def test_a_gain_within_the_margin_keeps_the_mode():
    policy = FixedProposals(samples((0.1, 0.0), (0.3, 0.0)))
    assert choose_chunks(policy, DxCritics(), batch(), n=3, margin=0.2)[1].tolist() == [2]
    assert choose_chunks(policy, DxCritics(), batch(), n=3, margin=0.3)[1].tolist() == [0]


def test_a_scorer_with_scores_of_the_wrong_shape_is_refused():
    class Broken(DxCritics):
        def __call__(self, features, chunks):
            return torch.zeros(2, chunks.shape[0], chunks.shape[1] + 1)

    with pytest.raises(ValueError, match=r"scores for \(1, 3\) candidates"):
        choose_chunks(FixedProposals(samples((0.1, 0.0))), Broken(), batch(), n=3)


def test_steering_a_policy_with_a_q_function_on_its_own_features_picks_the_agreed_best():
    torch.manual_seed(0)
    policy = FrozenEncoderPolicy(FrozenEncoderConfig(chunk_size=2, image_size=SIZE, hidden_size=32)).eval()
    q_model = ChunkQFunction(ChunkQConfig(chunk_size=2, image_size=SIZE, hidden_size=32, encoder="policy"),
                             policy).eval()
    obs = batch(3)
    torch.manual_seed(1)
    chunks, chosen, q = choose_chunks(policy, q_model, obs, n=8)
    torch.manual_seed(1)
    candidates = propose(policy, obs, n=8)
    with torch.no_grad():
        scores = q_model(q_model.features(obs), candidates)
    gain = (scores - scores[..., :1]).amin(0)
    gain[:, 0] = 0.0
    assert torch.equal(chosen, gain.argmax(1))
    assert torch.equal(chunks, candidates[torch.arange(3), chosen])
    assert torch.equal(q, scores.amin(0)[torch.arange(3), chosen])


def test_steering_hook_steers_every_observation_of_a_batch():
    hook = steering_hook(FixedProposals(samples((0.4, 0.0), (0.9, 0.0), (-0.2, 0.0))), DxCritics(), n=4)
    chunks = hook(batch(2))
    assert chunks.shape == (2, 2, 5) and chunks.dtype == np.float32
    assert np.all(chunks[:, 0, 0] == np.float32(0.9))


def test_steering_needs_a_candidate():
    with pytest.raises(ValueError, match="at least one candidate"):
        steering_hook(FixedProposals(samples((0.0, 0.0))), DxCritics(), n=0)
