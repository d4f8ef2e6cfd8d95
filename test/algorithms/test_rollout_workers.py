"""Rollouts over worker processes: same episodes as one process, the current weights, clear errors."""

import numpy as np
import pytest
import torch

from rlvla_ros.algorithms.ppo import PpoConfig
from rlvla_ros.policies import new_policy
from rlvla_ros.rollouts.sim_rollouts import EpisodeSpec, SimRollouts
from rlvla_ros.rollouts.workers import ParallelSimRollouts, changing_state

SPECS = [EpisodeSpec("lift", "id", seed) for seed in (3, 4, 5)] + [EpisodeSpec("push", "ood_color", 6)]


@pytest.fixture(scope="module")
def policy():
    return new_policy("frozen_encoder", image_size=32).eval()


@pytest.fixture(scope="module")
def pool(policy):
    rollouts = ParallelSimRollouts(policy, num_envs=2, image_size=32, workers=1)
    yield rollouts
    rollouts.close()


@pytest.fixture(scope="module")
def local():
    rollouts = SimRollouts(num_envs=2, image_size=32)
    yield rollouts
    rollouts.close()


def _assert_same_episodes(first, second):
    assert [(e.task, e.split, e.seed) for e in first] == [(e.task, e.split, e.seed) for e in second]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.images[0], b.images[0])
        np.testing.assert_allclose(a.actions[:4], b.actions[:4], atol=1e-5)


def test_workers_run_their_share_and_return_episodes_in_spec_order(policy, pool, local):
    parallel = pool.run(policy, SPECS, deterministic=True)
    _assert_same_episodes(parallel, local.run(policy, SPECS, deterministic=True))
    ids = [episode.episode_id for episode in parallel]
    assert len(set(ids)) == len(ids)
    assert {i.split("-")[0] for i in ids} == {"sim", "sim1"}  # the last two specs ran in the worker


def test_workers_act_with_the_current_weights(policy, pool, local):
    before = pool.run(policy, SPECS[2:], deterministic=True)
    with torch.no_grad():
        for parameter in policy.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))
    after = pool.run(policy, SPECS[2:], deterministic=True)
    assert not np.allclose(before[1].actions[:4], after[1].actions[:4], atol=1e-3)
    _assert_same_episodes(after, local.run(policy, SPECS[2:], deterministic=True))


def test_changing_state_skips_frozen_parameters(policy):
    frozen = {name for name, parameter in policy.named_parameters() if not parameter.requires_grad}
    state = changing_state(policy)
    assert state and not frozen & set(state)


def test_a_failing_worker_is_a_clear_error(policy, pool):
    with pytest.raises(RuntimeError, match=r"rollout worker 1 failed:(.|\n)*unknown task"):
        pool.run(policy, [EpisodeSpec("lift", "id", 0), EpisodeSpec("fly", "id", 0)])
    assert len(pool.run(policy, SPECS[:2])) == 2  # the worker keeps serving


def test_a_failing_local_share_leaves_no_stale_worker_reply(policy, pool):
    with pytest.raises(ValueError, match="unknown task 'fly'"):
        pool.run(policy, [EpisodeSpec("fly", "id", 0), EpisodeSpec("lift", "id", 7)])
    episodes = pool.run(policy, [EpisodeSpec("lift", "id", 8), EpisodeSpec("push", "id", 9)])
    assert [(e.task, e.seed) for e in episodes] == [("lift", 8), ("push", 9)]


def test_rollout_workers_must_not_be_negative():
    with pytest.raises(ValueError, match="rollout_workers must be >= 0"):
        PpoConfig(rollout_workers=-1)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        ParallelSimRollouts(None, num_envs=1, image_size=32, workers=0)


def test_an_online_job_trains_on_the_episodes_of_every_process(tmp_path):
    from rlvla_ros.training.jobs import JobRequest, prepare_job, run_job

    trainer, context = prepare_job(JobRequest("ppo", steps=1, overrides_yaml=(
        "{policy_type: frozen_encoder, image_size: 32, num_envs: 2, rollout_workers: 1, episodes_per_iteration: 4, "
        "eval_episodes: 2}")), tmp_path)
    metrics = run_job(trainer, context)
    # 4 lift episodes of a fresh policy time out after 50 steps: 13 chunks of 4 each, half of them in the worker.
    assert metrics["decisions"] == 4 * 13 and metrics["rollout/episode_length"] == 50
    assert [step for step, _ in context.history["eval/id"]] == [0, 1]


def test_rollout_benchmark_reports_both_setups_and_their_ratio():
    from rlvla_ros.rollouts.benchmark import benchmark_rollouts

    result = benchmark_rollouts(episodes=2, repeats=1, num_envs=1, image_size=32)
    one, parallel = result["one_process_env_steps_per_s"], result["with_1_workers_env_steps_per_s"]
    assert one > 0 and parallel > 0 and result["speedup"] == pytest.approx(parallel / one, abs=0.01)


def test_episodes_of_a_flow_policy_carry_its_denoising_chains_from_every_process():
    flow = new_policy("flow_matching", image_size=32, chunk_size=4, channels=[8, 8], strides=[2, 1],
                      expert_hidden_size=32, num_steps=4, head_hidden_size=32).eval()
    rollouts = ParallelSimRollouts(flow, num_envs=2, image_size=32, workers=1)
    try:
        episodes = rollouts.run(flow, SPECS[:2])
    finally:
        rollouts.close()
    assert {e.episode_id.split("-")[0] for e in episodes} == {"sim", "sim1"}
    for episode in episodes:
        assert episode.latents.shape == (len(episode), 5 * 4 * 5)  # the chain x_0..x_4 of 4 x 5 actions
        final = episode.latents[0].reshape(5, 4, 5)[-1].clip(-1, 1)
        np.testing.assert_array_equal(final, episode.actions[:4])  # step 0 executes row 0 of its chunk...
        np.testing.assert_array_equal(episode.latents[3], episode.latents[0])  # ...and steps 1-3 the same chunk
