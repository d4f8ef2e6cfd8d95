"""Behaviour cloning (supervised fine-tuning) of action chunks from recorded bags.

Each transition of the bags is an observation and the chunk of the next H recorded actions (rows past the episode
end are masked). The loss is the policy's imitation loss (:meth:`~rlvla_ros.policies.base.Policy.imitation_loss`):
the negative log-likelihood of the recorded chunk, so BC fits both the mean and the spread of the action
distribution, the stochastic policy that online RL then starts from (FLaRe); for a flow-matching policy, whose
likelihood is intractable, the flow-matching loss. Frozen encoder features are computed once. Episodes are split
into train/validation by episode; the best checkpoint is the one with the lowest validation loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rlvla_ros.algorithms.base import JobContext, Trainer, TrainerConfig
from rlvla_ros.algorithms.policy_inputs import PolicyInputs
from rlvla_ros.data import EpisodeRecord, OfflineDataset, dataset_episodes
from rlvla_ros.training import distributed


@dataclass
class BcConfig(TrainerConfig):
    """Hyper-parameters of behaviour cloning."""

    learning_rate: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 256
    """Transitions per gradient step (per rank)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient norm clip (<= 0: off)."""
    action_clip: float = 0.9
    """Recorded actions are clipped to +-action_clip for the likelihood: a tanh-Gaussian fitted to actions at exactly
    +-1 (gripper commands, saturated moves) must push its pre-tanh mean towards atanh(1 - 1e-6) ~ 7, which then
    dominates the loss."""
    val_fraction: float = 0.1
    """Fraction of episodes held out for the validation loss (at least one when there are two or more)."""
    log_interval: int = 50
    """Steps between logged metrics (and validation losses)."""
    checkpoint_interval: int = 500
    """Steps between checkpoints (one is always written at the end)."""
    tasks: list[str] = field(default_factory=list)
    """Only episodes of these tasks; empty: all."""
    patience: int = 0
    """Stop once this many validations in a row brought no lower validation loss ("until validation stops
    improving"); 0: run every step."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1 or self.log_interval < 1 or self.checkpoint_interval < 1:
            raise ValueError("batch_size, log_interval and checkpoint_interval must be >= 1")
        if not 0.0 < self.action_clip <= 1.0:
            raise ValueError(f"action_clip must be in (0, 1], got {self.action_clip}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


def load_episodes(paths: list, tasks: list[str]) -> list[EpisodeRecord]:
    """Complete episodes of every bag under ``paths`` (or LeRobot v3.0 dataset among them), optionally only some
    tasks; ValueError when none."""
    episodes = [
        episode
        for path in paths
        for episode in dataset_episodes(path)
        if not tasks or episode.task in tasks
    ]
    if not episodes:
        raise ValueError(f"no complete episodes{' of tasks ' + str(tasks) if tasks else ''} in {list(map(str, paths))}")
    return episodes


class _ChunkTargets:
    """Encoded observations with their recorded action chunks."""

    def __init__(self, policy, episodes: list[EpisodeRecord], action_clip: float) -> None:
        dataset = OfflineDataset(episodes, horizon=policy.chunk_size)
        batch = dataset.get_batch(np.arange(len(dataset)))
        self.inputs = PolicyInputs(policy, batch)
        self.actions = torch.as_tensor(batch["actions"]).clamp(-action_clip, action_clip)
        self.mask = torch.as_tensor(batch["action_mask"])

    def __len__(self) -> int:
        return len(self.inputs)

    def loss(self, index: np.ndarray, generator: torch.Generator | None = None) -> torch.Tensor:
        """The policy's imitation loss of the indexed chunks on their executed rows (the mean negative
        log-likelihood per row, or the flow-matching loss)."""
        return self.inputs.imitation_loss(index, self.actions[index], self.mask[index], generator=generator)


class BcTrainer(Trainer):
    """Behaviour cloning from bags; see the module docstring."""

    name = "bc"
    config_class = BcConfig
    needs_datasets = True
    default_steps = 2000

    def run(self, context: JobContext) -> dict[str, float]:
        config: BcConfig = context.config  # type: ignore[assignment]
        episodes = load_episodes(context.datasets, config.tasks)
        order = context.rng.permutation(len(episodes))
        num_val = max(1, round(config.val_fraction * len(episodes))) if config.val_fraction and len(episodes) > 1 else 0
        policy = context.make_policy()
        distributed.broadcast_parameters(policy)
        train = _ChunkTargets(policy, [episodes[i] for i in order[num_val:]], config.action_clip)
        val = _ChunkTargets(policy, [episodes[i] for i in order[:num_val]], config.action_clip) if num_val else None
        optimizer = torch.optim.AdamW(
            [p for p in policy.parameters() if p.requires_grad], lr=config.learning_rate,
            weight_decay=config.weight_decay,
        )
        # Each rank draws different minibatches; averaged gradients keep the parameters identical.
        rng = np.random.default_rng([config.seed, distributed.rank()])
        metrics: dict[str, float] = {}
        running: list[float] = []
        best_val_loss, stale = float("inf"), 0
        for step in range(1, context.steps + 1):
            index = rng.integers(0, len(train), size=min(config.batch_size, len(train)))
            loss = train.loss(index)
            grad_norm = distributed.optimizer_step(policy, optimizer, loss, config.max_grad_norm)
            running.append(loss.item())
            last = step == context.steps or context.should_stop()
            if step % config.log_interval == 0 or last:
                metrics = {"loss": float(np.mean(running)), "grad_norm": grad_norm}
                running.clear()
                if val is not None:
                    with torch.no_grad():
                        # The same draws at every validation, so that a loss that samples (flow matching) compares.
                        metrics["val_loss"] = float(val.loss(np.arange(len(val)), torch.Generator().manual_seed(0)))
                metrics = distributed.all_mean(metrics)
                context.log(step, metrics)
            validated = val is not None and step % config.log_interval == 0
            if validated and metrics["val_loss"] < best_val_loss:
                best_val_loss, stale = metrics["val_loss"], 0
            elif validated:
                stale += 1
            last = last or (config.patience > 0 and stale >= config.patience)
            if step % config.checkpoint_interval == 0 or last:
                score = -metrics.get("val_loss", metrics.get("loss", float("inf")))
                context.save_checkpoint(policy, step, metrics, score=score)
            if last:
                break
        return metrics
