"""Test-time steering picks, among the policy's own samples, the chunk the Q-function scores highest."""

import numpy as np
import pytest
import torch

from rlvla_ros.policies import FrozenEncoderConfig, FrozenEncoderPolicy
from rlvla_ros.policies.chunk_q import ChunkQConfig, ChunkQFunction
from rlvla_ros.policies.steering import choose_chunk, steering_hook

SIZE = 32


class FixedCandidates:
    """Stands in for a policy: always proposes the same candidates, and counts the calls."""

    def __init__(self, candidates: torch.Tensor) -> None:
        self.candidates = candidates
        self.temperatures: list[float] = []

    def sample_candidates(self, obs, n, temperature=1.0):
        self.temperatures.append(temperature)
        return self.candidates[:n]


class FirstActionScorer:
    """Scores a chunk by the dx of its first action."""

    def score(self, obs, candidates):
        return candidates[:, 0, 0]


def observation(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
        "proprio": rng.normal(size=6).astype(np.float32),
        "instruction": "lift the red block",
    }


def test_choose_chunk_returns_the_argmax_q_candidate():
    candidates = torch.zeros(4, 2, 5)
    candidates[:, 0, 0] = torch.tensor([0.1, -0.3, 0.7, 0.2])
    policy = FixedCandidates(candidates)
    chunk, scores = choose_chunk(policy, FirstActionScorer(), observation(), n=4, temperature=0.5)
    assert torch.equal(chunk, candidates[2])
    assert scores.tolist() == pytest.approx([0.1, -0.3, 0.7, 0.2])
    assert policy.temperatures == [0.5]


def test_choose_chunk_refuses_a_scorer_with_the_wrong_number_of_scores():
    class Broken:
        def score(self, obs, candidates):
            return torch.zeros(len(candidates) + 1)

    with pytest.raises(ValueError, match=r"\(5,\) scores for 4 candidates"):
        choose_chunk(FixedCandidates(torch.zeros(4, 2, 5)), Broken(), observation(), n=4)


def test_steering_with_a_chunk_q_function_executes_its_best_sample():
    torch.manual_seed(0)
    policy = FrozenEncoderPolicy(FrozenEncoderConfig(chunk_size=2, image_size=SIZE, hidden_size=32)).eval()
    q_model = ChunkQFunction(ChunkQConfig(chunk_size=2, image_size=SIZE, hidden_size=32)).eval()
    obs = observation()
    torch.manual_seed(1)
    chunk, scores = choose_chunk(policy, q_model, obs, n=8)
    torch.manual_seed(1)
    candidates = policy.sample_candidates(obs, 8)
    assert torch.equal(scores, q_model.score(obs, candidates))
    assert torch.equal(chunk, candidates[int(scores.argmax())])
    assert len(set(scores.tolist())) == 8  # distinct samples, so the choice is not a tie-break


def test_steering_hook_steers_every_observation_of_a_batch():
    candidates = torch.zeros(3, 2, 5)
    candidates[:, 0, 0] = torch.tensor([0.4, 0.9, -0.2])
    hook = steering_hook(FixedCandidates(candidates), FirstActionScorer(), n=3)
    batch = {
        "image": np.zeros((2, SIZE, SIZE, 3), np.uint8),
        "proprio": np.zeros((2, 6), np.float32),
        "instruction": ("lift the red block", "lift the blue block"),
    }
    chunks = hook(batch)
    assert chunks.shape == (2, 2, 5) and chunks.dtype == np.float32
    assert np.all(chunks[:, 0, 0] == np.float32(0.9))


def test_steering_hook_needs_a_candidate():
    with pytest.raises(ValueError, match="at least one candidate"):
        steering_hook(FixedCandidates(torch.zeros(1, 2, 5)), FirstActionScorer(), n=0)
