"""The loop every online RL trainer shares: collect episodes, update, evaluate, checkpoint the best.

Episodes come from a :class:`RolloutSource`: by default the in-process simulation (:class:`SimRollouts`), or the live
ROS graph (:class:`rlvla_ros.ros.graph_rollouts.GraphRolloutSource`) when the learner node is configured with
``rollout_source: graph``. Every ``eval_interval`` iterations the policy is evaluated deterministically on fixed
validation seeds (``5000 .. 5000 + eval_episodes - 1``: disjoint from the training seeds and from the test seeds
``0 ..`` that experiments report, so picking the best checkpoint does not peek at the test) in simulation; the mean
success rate on the first of ``eval_splits`` is the checkpoint score, so ``best/`` is the best evaluated policy.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np
import torch

from rlvla_ros.algorithms.base import JobContext, Trainer, TrainerConfig, progress_fraction
from rlvla_ros.contract import TRAIN_SEED_RANGE, VALIDATION_SEED_START
from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.policies import Policy
from rlvla_ros.envs import family_of_tasks
from rlvla_ros.rollouts import distributed
from rlvla_ros.rollouts.evaluation import evaluate, mean_over_tasks
from rlvla_ros.rollouts.sim_rollouts import EpisodeSpec, SimRollouts
from rlvla_ros.rollouts.workers import ParallelSimRollouts
from rlvla_ros.sim import REWARD_MODES


class RolloutSource(Protocol):
    """Where online trainers get on-policy episodes (with per-step log-probs) from."""

    def collect(self, policy: Policy, specs: Sequence[EpisodeSpec], temperature: float) -> list[EpisodeRecord]:
        """Episodes of the current ``policy`` sampled at ``temperature``; ideally one per spec."""

    def close(self) -> None:
        """Release environments or subscriptions."""


class SimRolloutSource:
    """Simulated rollouts as a :class:`RolloutSource`: runs exactly the requested specs; the trainer, which
    evaluates on the same rollouts, closes them."""

    def __init__(self, rollouts: SimRollouts | ParallelSimRollouts) -> None:
        self.rollouts = rollouts

    def collect(self, policy: Policy, specs: Sequence[EpisodeSpec], temperature: float) -> list[EpisodeRecord]:
        return self.rollouts.run(policy, specs, temperature=temperature)

    def close(self) -> None:
        """Nothing to release here (see the class docstring)."""


MAX_NUM_ENVS = 256
MAX_ROLLOUT_WORKERS = 64


@dataclass
class OnlineConfig(TrainerConfig):
    """Rollout, optimisation and evaluation settings shared by the online trainers."""

    tasks: list[str] = field(default_factory=lambda: ["lift"])
    """Tasks to train on (drawn uniformly per episode or group)."""
    train_split: str = "id"
    """Split the training episodes come from."""
    num_envs: int = 16
    """Simulated environments stepped together (batched inference), in this process and in each rollout worker."""
    rollout_workers: int = 0
    """Extra processes that each run a share of every iteration's simulated episodes and evaluations, with the
    current weights (0: all in this process). One worker about doubles the episodes per second on 2 cores."""
    temperature: float = 1.0
    """Sampling temperature of training rollouts (scales the policy's std)."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    anneal_lr: bool = False
    """Decay the learning rate linearly towards 0 over the run (CleanRL's ``anneal_lr``): over its iterations, or
    over ``time_budget_s`` where that ends the run first."""
    max_grad_norm: float = 1.0
    """Gradient norm clip (<= 0: off)."""
    update_epochs: int = 2
    """Passes over each iteration's decisions."""
    minibatch_size: int = 256
    """Decisions per gradient step."""
    eval_interval: int = 5
    """Iterations between evaluations (and best-checkpoint candidates); also evaluated before the first and after
    the last iteration."""
    eval_splits: list[str] = field(default_factory=lambda: ["id"])
    """Splits evaluated; the first one scores checkpoints."""
    eval_episodes: int = 16
    """Periodic evaluation episodes per task and split (validation seeds, see the module docstring)."""
    time_budget_s: float = 0.0
    """Stop after this much wall-clock time (<= 0: no limit); the final evaluation runs after it."""
    freeze_encoder: bool = False
    """Freeze the start policy's trainable image encoder (``FilmKeypointsPolicy.freeze_encoder``), so updates train
    the heads on cached features (FLaRe style); policies without one are unaffected."""
    reward_mode: str = "sparse"
    """Reward of the in-process sim rollouts: ``sparse`` (1 on success) or ``dense`` (plus the task's privileged
    potential-based progress shaping, see :class:`~rlvla_ros.sim.env.TabletopEnv`). Graph rollouts carry the reward
    node's rewards (its ``shaping`` parameter) and need ``sparse`` here."""
    encoder_lr_scale: float = 1.0
    """Learning rate of a trainable image encoder (``freeze_encoder`` false) relative to ``learning_rate``: below 1
    the BC-trained features move slower than the heads."""
    learn_log_std: bool = True
    """Train a Gaussian policy's state-independent log std; false keeps the start policy's exploration noise, so
    updates move only the chunk means (the mode that deterministic evaluation runs). Others are unaffected."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tasks:
            raise ValueError("tasks must name at least one task")
        family_of_tasks(self.tasks, [self.train_split, *self.eval_splits])
        if not self.eval_splits:
            raise ValueError("eval_splits must name at least one split")
        if self.rollout_workers < 0:
            raise ValueError(f"rollout_workers must be >= 0, got {self.rollout_workers}")
        # Each env renders and each worker is a process: beyond these a typo exhausts the machine, not a budget.
        if self.num_envs > MAX_NUM_ENVS or self.rollout_workers > MAX_ROLLOUT_WORKERS:
            raise ValueError(f"num_envs must be <= {MAX_NUM_ENVS} and rollout_workers <= {MAX_ROLLOUT_WORKERS}, "
                             f"got {self.num_envs} and {self.rollout_workers}")
        if self.num_envs < 1 or self.update_epochs < 1 or self.minibatch_size < 1 or self.eval_episodes < 1:
            raise ValueError("num_envs, update_epochs, minibatch_size and eval_episodes must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not self.encoder_lr_scale > 0:
            raise ValueError(f"encoder_lr_scale must be > 0, got {self.encoder_lr_scale}")
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.reward_mode!r}")


class OnlineTrainer(Trainer):
    """Collect -> update -> (evaluate, checkpoint) for ``context.steps`` iterations; subclasses fill in the two."""

    default_steps = 50
    adam_eps: ClassVar[float] = 1e-8
    """Adam's epsilon for this trainer's optimizer."""

    def __init__(self) -> None:
        self.optimizer: torch.optim.Optimizer | None = None
        self.progress = 0.0
        """Fraction of the run done before the current iteration (of its iterations or of its time budget)."""

    def optimizer_for(self, policy: Policy, config: OnlineConfig) -> torch.optim.Optimizer:
        """Adam over the policy's trainable parameters (made at the first call), at this iteration's learning rate;
        a trainable image encoder's parameters at ``encoder_lr_scale`` times it."""
        if self.optimizer is None:
            encoder = {id(p) for p in policy.encoder_parameters()} if hasattr(policy, "encoder_parameters") else set()
            trainable = [p for p in policy.parameters() if p.requires_grad]
            groups = [{"params": [p for p in trainable if id(p) not in encoder], "lr_scale": 1.0},
                      {"params": [p for p in trainable if id(p) in encoder], "lr_scale": config.encoder_lr_scale}]
            self.optimizer = torch.optim.Adam([g for g in groups if g["params"]], lr=config.learning_rate,
                                              eps=self.adam_eps)
        learning_rate = config.learning_rate * (1.0 - self.progress) if config.anneal_lr else config.learning_rate
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate * group["lr_scale"]
        return self.optimizer

    @abc.abstractmethod
    def iterate(self, policy: Policy, source: RolloutSource, context: JobContext) -> dict[str, float]:
        """Collect one iteration's episodes, update ``policy`` on them, return the iteration's metrics."""

    def train_specs(self, context: JobContext, count: int, repeats: int = 1) -> list[EpisodeSpec]:
        """``count`` fresh training episode specs, each repeated ``repeats`` times in a row (GRPO groups)."""
        config: OnlineConfig = context.config  # type: ignore[assignment]
        specs = []
        for _ in range(count):
            task = config.tasks[int(context.rng.integers(len(config.tasks)))]
            seed = int(context.rng.integers(*TRAIN_SEED_RANGE))
            specs += [EpisodeSpec(task, config.train_split, seed)] * repeats
        return specs

    def evaluate(
        self, policy: Policy, context: JobContext, rollouts: SimRollouts | ParallelSimRollouts
    ) -> tuple[float, dict[str, float]]:
        """Score (mean success on the first eval split) and per task/split success metrics.

        Under torchrun every rank runs its share of the validation seeds and the success counts are summed."""
        config: OnlineConfig = context.config  # type: ignore[assignment]
        all_seeds = range(VALIDATION_SEED_START, VALIDATION_SEED_START + config.eval_episodes)
        seeds = list(all_seeds)[distributed.rank() :: distributed.world_size()]
        local = evaluate(policy, config.tasks, config.eval_splits, seeds, rollouts=rollouts) if seeds else {}
        # Means over ranks of success counts and episode counts: their ratio is the success rate over all seeds.
        counts = distributed.all_mean({
            f"eval/{task}/{split}": local[task][split] * len(seeds) if seeds else 0.0
            for task in config.tasks for split in config.eval_splits
        } | {"episodes": float(len(seeds))})
        episodes = counts.pop("episodes")
        metrics = {name: count / episodes for name, count in counts.items()}
        results = {task: {split: metrics[f"eval/{task}/{split}"] for split in config.eval_splits} for task in config.tasks}
        for split in config.eval_splits:
            metrics[f"eval/{split}"] = mean_over_tasks(results, [split])
        return metrics[f"eval/{config.eval_splits[0]}"], metrics

    def start_policy(self, context: JobContext) -> Policy:
        """The policy to fine-tune, with the parts the config keeps fixed frozen."""
        config: OnlineConfig = context.config  # type: ignore[assignment]
        policy = context.make_policy(proprio_dim=len(family_of_tasks(config.tasks).proprio_names))
        if config.freeze_encoder and hasattr(policy, "freeze_encoder"):
            policy.freeze_encoder()
        if not config.learn_log_std and hasattr(policy, "freeze_log_std"):
            policy.freeze_log_std()
        return policy

    def run(self, context: JobContext) -> dict[str, float]:
        config: OnlineConfig = context.config  # type: ignore[assignment]
        policy = self.start_policy(context)
        distributed.broadcast_parameters(policy)
        # Ranks draw different training seeds and share the validation seeds; rank 0 alone writes files.
        context.rng = np.random.default_rng([config.seed, distributed.rank()])
        if context.rollout_source is not None and config.reward_mode != "sparse":
            raise ValueError("reward_mode shapes in-process sim rollouts only; on the live graph the reward node "
                             "shapes rewards (its shaping parameter)")
        if config.rollout_workers:
            sim_rollouts = ParallelSimRollouts(policy, config.num_envs, policy.config.image_size,
                                               config.rollout_workers, seed=config.seed * 1000 + distributed.rank(),
                                               reward_mode=config.reward_mode)
        else:
            sim_rollouts = SimRollouts(config.num_envs, policy.config.image_size, reward_mode=config.reward_mode)
        source = context.rollout_source or SimRolloutSource(sim_rollouts)
        start_s = time.monotonic()
        metrics: dict[str, float] = {}
        try:
            score, evaluated = self.evaluate(policy, context, sim_rollouts)
            context.log(0, evaluated)
            context.save_checkpoint(policy, 0, evaluated, score=score)
            iteration = 0
            while iteration < context.steps:
                elapsed_s = time.monotonic() - start_s
                over_budget = config.time_budget_s > 0 and elapsed_s >= config.time_budget_s
                # Every rank stops at the same iteration (their clocks and stop requests may differ).
                if distributed.agree_max(int(over_budget or context.should_stop())):
                    break
                if config.anneal_lr:
                    self.progress = run_progress(iteration, context.steps, elapsed_s, config.time_budget_s)
                iteration += 1
                metrics = distributed.all_mean(self.iterate(policy, source, context))
                if self.optimizer is not None:
                    metrics["learning_rate"] = self.optimizer.param_groups[0]["lr"]
                metrics["time_s"] = time.monotonic() - start_s
                if iteration % config.eval_interval == 0 and iteration < context.steps:
                    score, evaluated = self.evaluate(policy, context, sim_rollouts)
                    metrics.update(evaluated)
                    context.log(iteration, metrics)
                    context.save_checkpoint(policy, iteration, metrics, score=score)
                else:
                    context.log(iteration, metrics)
            if distributed.agree_max(int(context.should_stop())):
                # Stop promptly: keep the current weights as latest, without the final evaluation.
                context.save_checkpoint(policy, iteration, metrics)
            elif iteration > 0:
                score, evaluated = self.evaluate(policy, context, sim_rollouts)
                metrics.update(evaluated)
                context.log(iteration, evaluated)
                context.save_checkpoint(policy, iteration, metrics, score=score)
        finally:
            source.close()
            sim_rollouts.close()
        return metrics


def run_progress(iteration: int, steps: int, elapsed_s: float, time_budget_s: float) -> float:
    """:func:`progress_fraction` of an online run, the same on every rank (their clocks differ)."""
    progress = progress_fraction(iteration, steps, elapsed_s, time_budget_s)
    return distributed.all_mean({"progress": progress})["progress"]


def episode_successes(episodes: Sequence[EpisodeRecord]) -> np.ndarray:
    """(N,) float32 1.0 for each successful episode."""
    return np.asarray([episode.success for episode in episodes], dtype=np.float32)
