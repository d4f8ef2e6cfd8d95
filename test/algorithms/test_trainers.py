"""BC, GRPO and PPO end to end on tiny budgets: losses fall, success rises, checkpoints and curves are written."""

import json

import numpy as np
import pytest
import torch

from rlvla_ros.algorithms import ALGORITHMS, apply_overrides, progress_fraction
from rlvla_ros.algorithms.base import JobContext
from rlvla_ros.algorithms.offline import proprio_dim
from rlvla_ros.algorithms.online import run_progress
from rlvla_ros.data import episodes_from_bag
from rlvla_ros.policies import load_policy, new_policy
from rlvla_ros.training.jobs import JobRequest, prepare_job, run_job

from .conftest import TOY_IMAGE_SIZE


def test_bc_loss_decreases_and_writes_checkpoints_curve_and_tensorboard(expert_bag, tmp_path):
    trainer, context = prepare_job(
        JobRequest("bc", [str(expert_bag)], 60,
                   "{image_size: 32, log_interval: 10, checkpoint_interval: 30, val_fraction: 0.25}"),
        tmp_path / "bc",
    )
    metrics = run_job(trainer, context)
    losses = [value for _, value in context.history["loss"]]
    assert losses[-1] < losses[0] - 1.0, losses
    assert "val_loss" in metrics
    policy = load_policy(tmp_path / "bc" / "latest")
    assert policy.config.image_size == 32
    assert json.loads((tmp_path / "bc" / "latest" / "trainer_state.json").read_text())["step"] == 60
    assert (tmp_path / "bc" / "best" / "model.safetensors").is_file()
    assert (tmp_path / "bc" / "learning_curve.png").stat().st_size > 1000
    assert list((tmp_path / "bc" / "tensorboard").glob("events.out.tfevents.*"))
    saved = json.loads((tmp_path / "bc" / "metrics.json").read_text())
    assert len(saved["history"]["loss"]) == 6


def _online_context(algorithm: str, tmp_path, source, overrides: dict, steps: int = 12) -> tuple:
    trainer_class = ALGORITHMS[algorithm]
    config = apply_overrides(trainer_class.config_class, {
        "policy_type": "frozen_encoder", "image_size": TOY_IMAGE_SIZE, "eval_episodes": 1, "num_envs": 1,
        "eval_interval": 100, **overrides,
    })
    context = JobContext(config=config, output_dir=tmp_path / algorithm, steps=steps,
                         rollout_source=source, tensorboard=False)
    return trainer_class(), context


def _success_trend(context) -> tuple[float, float]:
    rates = [value for _, value in context.history["rollout/success_rate"]]
    return rates[0], float(np.mean(rates[-3:]))


def test_grpo_raises_success_of_a_learnable_toy_task(tmp_path, toy_source):
    trainer, context = _online_context("grpo", tmp_path, toy_source, {
        "group_size": 8, "groups_per_iteration": 4, "learning_rate": 3e-3, "temperature": 1.0,
        "max_sampling_rounds": 2,
    })
    metrics = run_job(trainer, context)
    first, last = _success_trend(context)
    assert last >= first + 0.3, (first, last)
    assert metrics["approx_kl"] >= 0 and 0.0 <= metrics["clip_fraction"] <= 1.0
    assert (tmp_path / "grpo" / "latest" / "config.json").is_file()
    assert (tmp_path / "grpo" / "learning_curve.png").is_file()


def test_ppo_raises_success_of_a_learnable_toy_task(tmp_path, toy_source):
    trainer, context = _online_context("ppo", tmp_path, toy_source, {
        # The default learning rate: at 3e-3 one Adam step moves the chunk mean by several standard deviations and
        # PPO's ratios collapse (approx_kl > 10), so success then depended on the draw.
        "episodes_per_iteration": 32, "learning_rate": 3e-4, "update_epochs": 4, "minibatch_size": 16,
    })
    metrics = run_job(trainer, context)
    first, last = _success_trend(context)
    assert last >= first + 0.3, (first, last)
    assert np.isfinite(metrics["value_loss"]) and "explained_variance" in metrics


def test_ppo_critic_warmup_fits_the_value_head_before_touching_the_policy(tmp_path, toy_source):
    trainer, context = _online_context("ppo", tmp_path, toy_source, {
        "episodes_per_iteration": 16, "update_epochs": 4, "minibatch_size": 8, "critic_warmup_iterations": 2,
    }, steps=3)
    policy = context.make_policy()
    critic = {name for name, _ in policy.named_parameters() if name.startswith("critic.")}
    snapshots = [{name: p.detach().clone() for name, p in policy.named_parameters()}]
    updated = []
    for _ in range(3):
        updated.append(trainer.iterate(policy, toy_source, context)["policy_updated"])
        snapshots.append({name: p.detach().clone() for name, p in policy.named_parameters()})

    def changed(before, after) -> set[str]:
        return {name for name in before if not torch.equal(before[name], after[name])}

    assert updated == [0.0, 0.0, 1.0]
    for before, after in zip(snapshots[:2], snapshots[1:3]):
        assert changed(before, after) == critic  # warmup: the value head only
    assert changed(snapshots[2], snapshots[3]) - critic  # then the actor too


def test_ppo_target_kl_stops_the_epochs_of_an_iteration_early(tmp_path, toy_source):
    toy_source.threshold = 0.0  # about half the episodes succeed: the update has a signal
    epochs_run = {}
    for target_kl in (0.0, 1e-9):
        trainer, context = _online_context("ppo", tmp_path / str(target_kl), toy_source, {
            "episodes_per_iteration": 16, "update_epochs": 4, "minibatch_size": 8, "target_kl": target_kl,
        }, steps=1)
        epochs_run[target_kl] = trainer.iterate(context.make_policy(), toy_source, context)["update_epochs_run"]
    assert epochs_run == {0.0: 4.0, 1e-9: 1.0}


@pytest.mark.parametrize(("algorithm", "batch"), [
    ("ppo", {"episodes_per_iteration": 8, "minibatch_size": 8}),
    ("grpo", {"group_size": 4, "groups_per_iteration": 2, "minibatch_size": 8}),
])


def test_anneal_lr_decays_the_learning_rate_linearly_over_the_iterations(tmp_path, toy_source, algorithm, batch):
    learning_rates = {}
    for anneal in (False, True):
        trainer, context = _online_context(algorithm, tmp_path / str(anneal), toy_source, {
            "learning_rate": 1e-3, "anneal_lr": anneal, **batch}, steps=4)
        run_job(trainer, context)
        learning_rates[anneal] = [value for _, value in context.history["learning_rate"]]
    assert learning_rates[False] == pytest.approx([1e-3] * 4)
    assert learning_rates[True] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])


def test_a_trainable_encoder_learns_at_its_scaled_learning_rate():
    config = apply_overrides(ALGORITHMS["ppo"].config_class, {"learning_rate": 1e-3, "encoder_lr_scale": 0.1})
    policy = new_policy("film_keypoints", image_size=TOY_IMAGE_SIZE)
    heads, encoder = ALGORITHMS["ppo"]().optimizer_for(policy, config).param_groups
    assert (heads["lr"], encoder["lr"]) == pytest.approx((1e-3, 1e-4))
    assert {id(p) for p in encoder["params"]} == {id(p) for p in policy.encoder_parameters()}
    assert len(heads["params"]) + len(encoder["params"]) == len([p for p in policy.parameters() if p.requires_grad])
    frozen = ALGORITHMS["ppo"]().optimizer_for(policy.freeze_encoder(), config).param_groups
    assert len(frozen) == 1 and frozen[0]["lr"] == pytest.approx(1e-3)


def test_a_dense_sim_reward_is_refused_for_rollouts_from_another_source(tmp_path, toy_source):
    trainer, context = _online_context("ppo", tmp_path, toy_source, {"reward_mode": "dense"}, steps=1)
    with pytest.raises(ValueError, match="reward_mode shapes in-process sim rollouts only"):
        run_job(trainer, context)


def test_anneal_lr_follows_the_time_budget_when_it_ends_the_run_first():
    assert run_progress(10, 1000, elapsed_s=30.0, time_budget_s=120.0) == pytest.approx(0.25)
    assert run_progress(500, 1000, elapsed_s=30.0, time_budget_s=120.0) == pytest.approx(0.5)
    assert run_progress(10, 1000, elapsed_s=130.0, time_budget_s=120.0) == 1.0
    assert run_progress(10, 1000, elapsed_s=130.0, time_budget_s=0.0) == pytest.approx(0.01)
    assert progress_fraction(3, 0, elapsed_s=30.0, time_budget_s=0.0) == 0.0  # no plan, no progress to report


def test_ppo_keeps_the_start_log_std_when_asked_to(tmp_path, toy_source):
    toy_source.threshold = 0.0  # about half the episodes succeed: the update has a signal
    changed = {}
    for learn in (True, False):
        trainer, context = _online_context("ppo", tmp_path / str(learn), toy_source, {
            "episodes_per_iteration": 16, "update_epochs": 2, "minibatch_size": 8, "learn_log_std": learn,
        }, steps=1)
        policy = trainer.start_policy(context)
        before = {name: p.detach().clone() for name, p in policy.named_parameters()}
        trainer.iterate(policy, toy_source, context)
        changed[learn] = {name for name, p in policy.named_parameters() if not torch.equal(before[name], p)}
    assert "log_std" in changed[True] and "log_std" not in changed[False]
    assert any(name.startswith("actor.") for name in changed[False])


def test_stop_request_ends_an_online_job_early_with_a_loadable_checkpoint(tmp_path, toy_source):
    trainer, context = _online_context("grpo", tmp_path, toy_source, {}, steps=1000)
    original = toy_source.collect

    def collect_then_stop(*args, **kwargs):
        context.stop_event.set()
        return original(*args, **kwargs)

    toy_source.collect = collect_then_stop
    run_job(trainer, context)
    assert len(context.history["rollout/success_rate"]) == 1
    assert load_policy(tmp_path / "grpo" / "latest").config.image_size == TOY_IMAGE_SIZE


def test_prepare_job_refuses_bad_requests_with_reasons(tmp_path, expert_bag):
    with pytest.raises(ValueError, match="unknown algorithm 'dqn'; valid: bc, .*grpo, ppo"):
        prepare_job(JobRequest("dqn"), tmp_path)
    with pytest.raises(ValueError, match="give at least one dataset"):
        prepare_job(JobRequest("bc"), tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        prepare_job(JobRequest("bc", [str(tmp_path / "nope")]), tmp_path)
    with pytest.raises(ValueError, match="not a checkpoint"):
        prepare_job(JobRequest("grpo", overrides_yaml=f"{{init_checkpoint: {tmp_path}}}"), tmp_path)
    trainer, context = prepare_job(JobRequest("bc", [str(expert_bag)]), tmp_path / "ok")
    assert context.steps == trainer.default_steps


def test_grpo_skips_the_update_when_every_group_is_uninformative(tmp_path, toy_source):
    toy_source.threshold = -2.0  # every episode succeeds: no group has a reward spread
    trainer, context = _online_context("grpo", tmp_path, toy_source, {
        "group_size": 4, "groups_per_iteration": 2, "max_sampling_rounds": 3}, steps=1)
    policy = context.make_policy()
    before = [p.detach().clone() for p in policy.parameters() if p.requires_grad]
    trainer.optimizer = None
    metrics = trainer.iterate(policy, toy_source, context)
    assert metrics["decisions"] == 0 and metrics["rollout/informative_fraction"] == 0.0
    assert toy_source.collected == 3 * 2 * 4  # all sampling rounds were used looking for signal
    after = [p for p in policy.parameters() if p.requires_grad]
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_a_fresh_policy_takes_its_robots_proprioception_and_a_checkpoint_for_another_is_refused(
        expert_bag, tmp_path):
    episodes = episodes_from_bag(expert_bag)
    assert proprio_dim(episodes) == 6  # the tabletop arm's 5 joints and gripper
    panda_like = episodes[0]
    panda_like.proprio = np.zeros((len(panda_like), 8), np.float32)
    panda_like.proprio_names = ()
    with pytest.raises(ValueError, match=r"mix proprio lengths \[6, 8\]"):
        proprio_dim(episodes)

    tabletop = new_policy("film_keypoints", image_size=TOY_IMAGE_SIZE)
    tabletop.save_pretrained(tmp_path / "tabletop")
    config = apply_overrides(ALGORITHMS["ppo"].config_class, {
        "tasks": ["pick_cube"], "init_checkpoint": str(tmp_path / "tabletop")})
    context = JobContext(config=config, output_dir=tmp_path / "ppo", steps=1, tensorboard=False)
    with pytest.raises(ValueError, match="takes 6 proprio entries, the job's robot has 8"):
        ALGORITHMS["ppo"]().start_policy(context)
    fresh = apply_overrides(ALGORITHMS["ppo"].config_class, {"tasks": ["pick_cube"], "image_size": TOY_IMAGE_SIZE})
    context = JobContext(config=fresh, output_dir=tmp_path / "fresh", steps=1, tensorboard=False)
    assert ALGORITHMS["ppo"]().start_policy(context).config.proprio_dim == 8
