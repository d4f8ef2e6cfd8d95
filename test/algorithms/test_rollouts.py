"""Simulated rollouts and evaluation: same seed = same start, log-probs recorded, hooks used, results per split."""

import numpy as np
import pytest
import torch

from rlvla_ros.policies import new_policy
from rlvla_ros.rollouts.evaluation import evaluate, evaluation_specs
from rlvla_ros.rollouts.sim_rollouts import EpisodeSpec, SimRollouts


@pytest.fixture(scope="module")
def policy():
    return new_policy("frozen_encoder", image_size=32).eval()


@pytest.fixture(scope="module")
def rollouts():
    sim = SimRollouts(num_envs=3, image_size=32)
    yield sim
    sim.close()


def test_group_rollouts_start_identically_and_record_log_probs(policy, rollouts):
    spec = EpisodeSpec("lift", "id", 123)
    episodes = rollouts.run(policy, [spec, spec, EpisodeSpec("lift", "id", 124)], temperature=1.5)
    np.testing.assert_array_equal(episodes[0].images[0], episodes[1].images[0])
    assert not np.array_equal(episodes[0].images[0], episodes[2].images[0])
    assert not np.array_equal(episodes[0].actions, episodes[1].actions)  # sampled independently
    for episode in episodes:
        assert len(episode) == 50 and episode.termination_reason == "timeout" and not episode.success
        assert episode.log_probs.shape == (50,) and np.isfinite(episode.log_probs).all()
        assert (episode.task, episode.split) == ("lift", "id")


def test_dense_rollouts_record_shaped_rewards_of_the_same_episode(policy):
    spec = EpisodeSpec("lift", "id", 123)
    episodes = {}
    for mode in ("sparse", "dense"):
        sim = SimRollouts(num_envs=1, image_size=32, reward_mode=mode)
        episodes[mode] = sim.run(policy, [spec], deterministic=True)[0]
        sim.close()
    np.testing.assert_array_equal(episodes["sparse"].actions, episodes["dense"].actions)
    assert set(episodes["sparse"].rewards.tolist()) == {0.0}  # the random policy never lifts the cube
    assert np.count_nonzero(episodes["dense"].rewards) > 0 and episodes["dense"].success is False


def test_deterministic_evaluation_is_repeatable_and_reports_every_split(policy, rollouts):
    first = evaluate(policy, ["lift"], ["id", "ood_color"], [0, 1], rollouts=rollouts)
    second = evaluate(policy, ["lift"], ["id", "ood_color"], [0, 1], rollouts=rollouts)
    assert first == second
    assert set(first["lift"]) == {"id", "ood_color"}
    assert all(0.0 <= rate <= 1.0 for rate in first["lift"].values())


def test_choose_chunk_hook_replaces_the_policy(policy, rollouts):
    batch_sizes = []

    def hold_still(batch):
        batch_sizes.append(len(batch["instruction"]))
        return np.zeros((len(batch["instruction"]), policy.chunk_size, 5), np.float32)

    episodes = rollouts.run(policy, [EpisodeSpec("lift", "id", 0)] * 2, choose_chunk=hold_still)
    assert batch_sizes[0] == 2 and len(batch_sizes) == 50 // policy.chunk_size + 1
    assert all((e.actions == 0).all() and np.isnan(e.log_probs).all() for e in episodes)


def test_a_seeded_evaluation_draws_the_same_whatever_was_drawn_before_and_restores_the_generator(policy, rollouts):
    # The demo's steering evaluation samples in its own process, after stages that drew an unknown amount
    draws = []

    def draw_and_hold_still(batch):
        draws.append(torch.rand(1).item())
        return np.zeros((len(batch["instruction"]), policy.chunk_size, 5), np.float32)

    runs = []
    for drawn_before in (1, 1000):
        torch.rand(drawn_before)
        state = torch.get_rng_state()
        evaluate(policy, ["lift"], ["id"], [0], rollouts=rollouts, choose_chunk=draw_and_hold_still, seed=3)
        assert torch.equal(torch.get_rng_state(), state)
        runs.append(draws[:])
        draws.clear()
    assert runs[0] == runs[1] and len(set(runs[0])) > 1


def test_evaluation_specs_refuse_unknown_tasks_and_splits():
    assert len(evaluation_specs(["lift", "push"], ["id"], [0, 1, 2])) == 6
    with pytest.raises(ValueError, match="unknown task 'fly'"):
        evaluation_specs(["fly"], ["id"], [0])
    with pytest.raises(ValueError, match="unknown split 'mars'"):
        evaluation_specs(["lift"], ["mars"], [0])
