"""Advantage estimators, the clipped surrogate, chunk segmentation and GRPO's dynamic sampling."""

import numpy as np
import pytest
import torch

from rlvla_ros.algorithms.grpo import group_advantages, group_episodes, is_informative
from rlvla_ros.algorithms.ppo import explained_variance, gae
from rlvla_ros.algorithms.segments import chunk_segments
from rlvla_ros.algorithms.surrogate import clipped_surrogate
from rlvla_ros.data import EpisodeRecord


def _episode(length: int, success: bool, seed: int = 0, task: str = "lift") -> EpisodeRecord:
    rewards = np.zeros(length, np.float32)
    rewards[-1] = float(success)
    return EpisodeRecord(
        episode_id=f"e{seed}-{length}-{success}", instruction="lift the red block",
        images=np.zeros((length, 8, 8, 3), np.uint8), proprio=np.zeros((length, 6), np.float32),
        actions=np.arange(length * 5, dtype=np.float32).reshape(length, 5) / 100, rewards=rewards,
        successes=rewards > 0, log_probs=-np.arange(length, dtype=np.float32), task=task, seed=seed,
    )


def test_group_advantages_are_normalised_and_rank_successes_first():
    adv = group_advantages(np.array([1, 0, 0, 1, 1, 0, 0, 0], np.float32))
    assert adv.mean() == pytest.approx(0.0, abs=1e-6)
    assert adv.std() == pytest.approx(1.0, abs=1e-4)
    assert adv[0] > 0 > adv[1]
    np.testing.assert_array_equal(group_advantages(np.ones(4)), np.zeros(4))


def test_dynamic_sampling_keeps_only_mixed_groups():
    assert is_informative(np.array([0.0, 1.0, 0.0]))
    assert not is_informative(np.ones(4))
    assert not is_informative(np.zeros(4))
    assert not is_informative(np.array([1.0]))


def test_group_episodes_groups_by_initial_state():
    episodes = [_episode(3, True, seed=1), _episode(3, False, seed=2), _episode(4, False, seed=1),
                _episode(3, True, seed=1, task="push")]
    assert group_episodes(episodes) == [[0, 2], [1], [3]]


def test_gae_matches_hand_computation_and_stops_at_episode_ends():
    rewards = np.array([0.0, 1.0, 0.0, 0.0], np.float32)
    values = np.array([0.5, 0.6, 0.2, 0.1], np.float32)
    dones = np.array([False, True, False, True])
    adv, returns = gae(rewards, values, dones, gamma=0.9, lam=0.8)
    d1 = 1.0 - 0.6
    d0 = 0.0 + 0.9 * 0.6 - 0.5
    assert adv[1] == pytest.approx(d1)
    assert adv[0] == pytest.approx(d0 + 0.9 * 0.8 * d1)
    d3 = -0.1
    assert adv[3] == pytest.approx(d3)
    assert adv[2] == pytest.approx(0.9 * 0.1 - 0.2 + 0.9 * 0.8 * d3)
    np.testing.assert_allclose(returns, adv + values, rtol=1e-6)


def test_explained_variance_is_one_for_perfect_predictions():
    target = np.array([0.0, 1.0, 2.0])
    assert explained_variance(target, target) == pytest.approx(1.0)
    assert explained_variance(np.zeros(3), target) == pytest.approx(0.0)


def test_surrogate_gradient_raises_log_prob_of_positive_advantage_actions():
    log_probs = torch.zeros(2, 3, requires_grad=True)
    loss, stats = clipped_surrogate(log_probs, torch.zeros(2, 3), torch.tensor([1.0, -1.0]),
                                    torch.ones(2, 3, dtype=torch.bool), 0.2, 0.28)
    loss.backward()
    # Minimising the loss moves log-probs against the gradient: up for A > 0, down for A < 0.
    assert (log_probs.grad[0] < 0).all() and (log_probs.grad[1] > 0).all()
    assert stats["approx_kl"] == pytest.approx(0.0) and stats["clip_fraction"] == 0.0


def test_clip_higher_bounds_the_ratio_asymmetrically():
    old = torch.zeros(1, 1)
    mask = torch.ones(1, 1, dtype=torch.bool)

    def loss_and_grad(log_ratio: float, advantage: float):
        log_probs = torch.full((1, 1), log_ratio, requires_grad=True)
        loss, stats = clipped_surrogate(log_probs, old, torch.tensor([advantage]), mask, 0.2, 0.28)
        loss.backward()
        return loss.item(), float(log_probs.grad), stats

    # A > 0: the gain is capped at ratio 1.28 (not 1.2), and the gradient vanishes beyond it.
    loss, grad, stats = loss_and_grad(np.log(1.5), 1.0)
    assert loss == pytest.approx(-1.28) and grad == 0.0 and stats["clip_fraction"] == 1.0
    loss, grad, _ = loss_and_grad(np.log(1.25), 1.0)
    assert loss == pytest.approx(-1.25) and grad != 0.0
    # A < 0: capped at ratio 0.8 below.
    loss, grad, _ = loss_and_grad(np.log(0.5), -1.0)
    assert loss == pytest.approx(0.8) and grad == 0.0
    # A < 0 with a grown ratio is never clipped (pessimistic bound).
    loss, grad, _ = loss_and_grad(np.log(1.5), -1.0)
    assert loss == pytest.approx(1.5) and grad != 0.0


def test_surrogate_ignores_masked_rows():
    log_probs = torch.tensor([[0.0, 5.0]], requires_grad=True)
    loss, stats = clipped_surrogate(log_probs, torch.zeros(1, 2), torch.tensor([1.0]),
                                    torch.tensor([[True, False]]), 0.2, 0.2)
    loss.backward()
    assert loss.item() == pytest.approx(-1.0)
    assert log_probs.grad[0, 1] == 0.0 and stats["clip_fraction"] == 0.0


def test_chunk_segments_cover_every_step_once_with_masked_tail():
    episodes = [_episode(6, True), _episode(4, False, seed=1)]
    seg = chunk_segments(episodes, chunk_size=4)
    assert seg.start.tolist() == [0, 4, 0]
    assert seg.episode.tolist() == [0, 0, 1]
    assert seg.mask.sum() == 10
    assert seg.mask[1].tolist() == [True, True, False, False]
    np.testing.assert_array_equal(seg.actions[1, :2], episodes[0].actions[4:6])
    np.testing.assert_array_equal(seg.actions[1, 2:], 0.0)
    np.testing.assert_array_equal(seg.old_log_probs[1], [-4.0, -5.0, 0.0, 0.0])
    assert seg.rewards.tolist() == [0.0, 1.0, 0.0]
    assert seg.dones.tolist() == [False, True, True]


def test_chunk_segments_refuse_episodes_without_log_probs():
    episode = _episode(3, True)
    episode.log_probs = None
    with pytest.raises(ValueError, match="log-probs"):
        chunk_segments([episode], 2)
