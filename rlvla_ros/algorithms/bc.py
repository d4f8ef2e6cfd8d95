"""Behaviour cloning (supervised fine-tuning) of action chunks from recorded bags.

Each transition of the bags is an observation and the chunk of the next H recorded actions (rows past the episode
end are masked). The loss is the policy's imitation loss (:meth:`~rlvla_ros.policies.base.Policy.imitation_loss`):
the negative log-likelihood of the recorded chunk, so BC fits both the mean and the spread of the action
distribution, the stochastic policy that online RL then starts from (FLaRe); for a flow-matching policy, whose
likelihood is intractable, the flow-matching loss. Frozen encoder features are computed once; a trainable encoder can
see its training images randomly shifted and brightened (``shift_px``, ``brightness``). Episodes are split
into train/validation by episode; the best checkpoint is the one with the lowest validation loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rlvla_ros.algorithms.base import JobContext, Trainer
from rlvla_ros.algorithms.offline import Metrics, OfflineConfig, load_episodes, proprio_dim, run_updates
from rlvla_ros.algorithms.policy_inputs import PolicyInputs
from rlvla_ros.data import EpisodeRecord, OfflineDataset
from rlvla_ros.policies.augmentation import image_augmenter
from rlvla_ros.rollouts import distributed


@dataclass
class BcConfig(OfflineConfig):
    """Hyper-parameters of behaviour cloning."""

    learning_rate: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient norm clip (<= 0: off)."""
    action_clip: float = 0.9
    """Recorded actions are clipped to +-action_clip for the likelihood: a tanh-Gaussian fitted to actions at exactly
    +-1 (gripper commands, saturated moves) must push its pre-tanh mean towards atanh(1 - 1e-6) ~ 7, which then
    dominates the loss."""
    val_fraction: float = 0.1
    """Fraction of episodes held out for the validation loss (computed at each log; at least one episode when there
    are two or more)."""
    shift_px: int = 0
    """Random translation of the training images by up to this many pixels of the policy's input (DrQ, robomimic's
    random crops); 0: off. Needs a trainable image encoder."""
    brightness: float = 0.0
    """Random brightness scaling of the training images by a factor in [1 - b, 1 + b]; 0: off."""
    patience: int = 0
    """Stop once this many validations in a row brought no lower validation loss ("until validation stops
    improving"); 0: run every step."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.action_clip <= 1.0:
            raise ValueError(f"action_clip must be in (0, 1], got {self.action_clip}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.brightness >= 1.0:
            raise ValueError(f"brightness must be < 1, got {self.brightness}")


class _ChunkTargets:
    """Encoded observations with their recorded action chunks."""

    def __init__(self, policy, episodes: list[EpisodeRecord], action_clip: float, augment=None) -> None:
        dataset = OfflineDataset(episodes, horizon=policy.chunk_size)
        batch = dataset.get_batch(np.arange(len(dataset)))
        self.inputs = PolicyInputs(policy, batch, augment=augment)
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
        policy = context.make_policy(proprio_dim=proprio_dim(episodes))
        distributed.broadcast_parameters(policy)
        augment = image_augmenter(config.shift_px, config.brightness, config.seed * 1_000_003 + distributed.rank())
        train = _ChunkTargets(policy, [episodes[i] for i in order[num_val:]], config.action_clip, augment)
        val = _ChunkTargets(policy, [episodes[i] for i in order[:num_val]], config.action_clip) if num_val else None
        optimizer = torch.optim.AdamW(
            [p for p in policy.parameters() if p.requires_grad], lr=config.learning_rate,
            weight_decay=config.weight_decay,
        )
        # Each rank draws different minibatches; averaged gradients keep the parameters identical.
        rng = np.random.default_rng([config.seed, distributed.rank()])
        best_val_loss, stale = float("inf"), 0

        def update(step: int) -> Metrics:
            index = rng.integers(0, len(train), size=min(config.batch_size, len(train)))
            loss = train.loss(index)
            grad_norm = distributed.optimizer_step(policy, optimizer, loss, config.max_grad_norm)
            return {"loss": loss.item(), "grad_norm": grad_norm}

        def summarize(updates: list[Metrics]) -> Metrics:
            metrics = {"loss": float(np.mean([u["loss"] for u in updates])), "grad_norm": updates[-1]["grad_norm"]}
            if val is not None:
                with torch.no_grad():
                    # The same draws at every validation, so that a loss that samples (flow matching) compares.
                    metrics["val_loss"] = float(val.loss(np.arange(len(val)), torch.Generator().manual_seed(0)))
            return distributed.all_mean(metrics)

        def stops_improving(metrics: Metrics) -> bool:
            nonlocal best_val_loss, stale
            if "val_loss" not in metrics:
                return False
            if metrics["val_loss"] < best_val_loss:
                best_val_loss, stale = metrics["val_loss"], 0
            else:
                stale += 1
            return 0 < config.patience <= stale

        def save(step: int, metrics: Metrics) -> None:
            score = -metrics.get("val_loss", metrics.get("loss", float("inf")))
            context.save_checkpoint(policy, step, metrics, score=score)

        return run_updates(context, config, update, save, summarize=summarize, done=stops_improving)
