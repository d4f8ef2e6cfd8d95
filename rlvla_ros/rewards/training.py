"""Training, threshold calibration and evaluation of the success classifier on labelled episodes.

Frames are labelled by :func:`frame_labels` (image t shows the outcome of action t - 1). Episodes, not frames, are
split into train and validation, so the decision threshold is calibrated on scenes the model never saw. Training
batches are half success frames and half others (success frames are rare); the checkpoint kept is the one with the
best validation F1, and its threshold maximises F1 on the validation frames, or, with ``min_precision`` > 0,
maximises recall among thresholds whose validation precision reaches ``min_precision``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from rlvla_ros.data.dataset_sources import dataset_episodes
from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.policies.augmentation import shift_and_brighten
from rlvla_ros.rewards.labelled_episodes import frame_labels
from rlvla_ros.rewards.success_classifier import SuccessClassifier, SuccessClassifierConfig


@dataclass
class SuccessTrainingConfig:
    """Optimisation and calibration settings; ``model`` is the classifier architecture."""

    steps: int = 1500
    """Optimisation steps."""
    batch_size: int = 64
    """Frames per step, half of them success frames."""
    learning_rate: float = 1e-3
    """AdamW learning rate (cosine decay to 10% over ``steps``)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    val_fraction: float = 0.2
    """Fraction of the episodes held out for checkpoint selection and threshold calibration."""
    eval_interval: int = 250
    """Steps between validation passes (and progress reports)."""
    min_precision: float = 0.0
    """If > 0, calibrate to the highest recall with at least this validation precision instead of the best F1."""
    shift_px: int = 4
    """Random translation augmentation, in pixels of the model input."""
    brightness: float = 0.15
    """Random brightness scaling augmentation: factor in [1 - b, 1 + b]."""
    seed: int = 0
    """Seed of the split, the initialisation and the batches."""
    device: str = "cpu"
    """Torch device to train on."""
    use_proprio: bool = True
    """Feed the episodes' proprioception to the classifier (names stored in its config)."""
    model: SuccessClassifierConfig = field(default_factory=SuccessClassifierConfig)
    """Classifier architecture (its ``threshold`` is overwritten by calibration)."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.eval_interval < 1:
            raise ValueError("steps >= 1, batch_size >= 2 and eval_interval >= 1 are required")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.min_precision < 1.0:
            raise ValueError(f"min_precision must be in [0, 1), got {self.min_precision}")
        if self.learning_rate <= 0 or self.weight_decay < 0 or self.shift_px < 0 or not 0 <= self.brightness < 1:
            raise ValueError("learning_rate > 0, weight_decay >= 0, shift_px >= 0, 0 <= brightness < 1 are required")


def with_overrides(config: SuccessTrainingConfig, overrides: Mapping[str, Any]) -> SuccessTrainingConfig:
    """A copy of ``config`` with flat overrides applied to its own fields or its ``model`` fields (validated)."""
    train_fields = {f.name for f in dataclasses.fields(SuccessTrainingConfig)} - {"model"}
    model_fields = {f.name for f in dataclasses.fields(SuccessClassifierConfig)}
    unknown = sorted(set(overrides) - train_fields - model_fields)
    if unknown:
        raise ValueError(f"unknown success_classifier options {unknown}; known: {sorted(train_fields | model_fields)}")
    model = dataclasses.replace(config.model, **{k: v for k, v in overrides.items() if k in model_fields})
    return dataclasses.replace(config, model=model, **{k: v for k, v in overrides.items() if k in train_fields})


@dataclass
class _Frames:
    """Every stored image of some episodes, prepared for the model, with instructions, proprio and labels."""

    images: torch.Tensor  # (N, S, S, 3) uint8
    instructions: list[str]
    proprio: np.ndarray | None  # (N, P) float32 in the model's proprio_names order, or None
    labels: np.ndarray  # (N,) bool

    def probabilities(self, model: SuccessClassifier) -> np.ndarray:
        return model.predict_proba(self.images, self.instructions, self.proprio, prepared=True)


def select_proprio(episode: EpisodeRecord, names: Sequence[str]) -> np.ndarray:
    """(T, len(names)) proprioception columns of an episode, by name; ValueError if one is missing."""
    missing = [n for n in names if n not in episode.proprio_names]
    if missing:
        raise ValueError(f"episode {episode.episode_id} has no proprioception {missing} "
                         f"(it has {list(episode.proprio_names)})")
    return episode.proprio[:, [episode.proprio_names.index(n) for n in names]]


def _frames(model: SuccessClassifier, episodes: Sequence[EpisodeRecord]) -> _Frames:
    names = model.config.proprio_names
    return _Frames(
        images=torch.cat([model.prepare_images(e.images) for e in episodes]),
        instructions=[e.instruction for e in episodes for _ in range(len(e))],
        proprio=np.concatenate([select_proprio(e, names) for e in episodes]) if names else None,
        labels=np.concatenate([frame_labels(e) for e in episodes]),
    )


def binary_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 and accuracy of boolean predictions (precision is 1 when nothing is predicted)."""
    labels, predictions = np.asarray(labels, bool), np.asarray(predictions, bool)
    true_pos = int((labels & predictions).sum())
    predicted, actual = int(predictions.sum()), int(labels.sum())
    precision = true_pos / predicted if predicted else 1.0
    recall = true_pos / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": float((labels == predictions).mean()) if len(labels) else 1.0,
        "positives": actual,
        "negatives": len(labels) - actual,
    }


def calibrate_threshold(probabilities: np.ndarray, labels: np.ndarray, min_precision: float = 0.0) -> float:
    """Decision threshold for ``probability >= threshold``: the best F1 on these frames, or (``min_precision`` > 0)
    the best recall with precision >= ``min_precision``, falling back to the best F1 when no threshold gets there.

    The threshold is placed halfway between the lowest probability it accepts and the next lower one, a margin
    for unseen frames that score a little under the lowest accepted one.
    """
    probabilities, labels = np.asarray(probabilities, float), np.asarray(labels, bool)
    if not labels.any() or labels.all():
        raise ValueError("calibration needs both success and non-success frames")
    order = np.argsort(-probabilities, kind="stable")
    sorted_probs = probabilities[order]
    # candidate k accepts every frame down to the last one with probability sorted_probs[last[k]]
    last = np.r_[np.flatnonzero(sorted_probs[1:] != sorted_probs[:-1]), len(sorted_probs) - 1]
    true_pos = np.cumsum(labels[order])[last]
    predicted = last + 1
    precision, recall = true_pos / predicted, true_pos / labels.sum()
    f1 = 2 * true_pos / (predicted + labels.sum())
    feasible = np.flatnonzero(precision >= min_precision) if min_precision > 0 else np.zeros(0, int)
    # ties go to the highest threshold (the first candidate): fewest borderline acceptances
    best = int(feasible[np.argmax(recall[feasible])]) if len(feasible) else int(np.argmax(f1))
    accepted = sorted_probs[last[best]]
    next_lower = sorted_probs[last[best] + 1] if last[best] + 1 < len(sorted_probs) else 0.0
    return float((accepted + next_lower) / 2)


def evaluate_success_classifier(model: SuccessClassifier, episodes: Sequence[EpisodeRecord]) -> dict[str, float]:
    """Frame-level precision/recall/F1/accuracy at the model's threshold and frame counts, plus the same per episode
    (``episode_*``: an episode counts as detected successful when any of its frames is), as the episode manager
    would see it when it ends episodes on the first detected success."""
    frames = _frames(model, episodes)
    predictions = frames.probabilities(model) >= model.threshold
    bounds = np.cumsum([0, *(len(e) for e in episodes)])
    episode_labels = np.array([frames.labels[a:b].any() for a, b in zip(bounds[:-1], bounds[1:])], dtype=bool)
    episode_predictions = np.array([predictions[a:b].any() for a, b in zip(bounds[:-1], bounds[1:])], dtype=bool)
    episode_metrics = binary_metrics(episode_labels, episode_predictions)
    return {
        **binary_metrics(frames.labels, predictions),
        **{f"episode_{k}": v for k, v in episode_metrics.items() if k != "accuracy"},
        "episodes": len(episodes),
    }


def split_episodes(
    episodes: Sequence[EpisodeRecord], val_fraction: float, seed: int
) -> tuple[list[EpisodeRecord], list[EpisodeRecord]]:
    """(train, validation) episodes, shuffled by ``seed``; validation gets at least one episode."""
    if len(episodes) < 2:
        raise ValueError(f"need at least 2 episodes to hold some out for validation, got {len(episodes)}")
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_val = min(len(episodes) - 1, max(1, round(val_fraction * len(episodes))))
    return [episodes[i] for i in order[n_val:]], [episodes[i] for i in order[:n_val]]


ProgressCallback = Callable[[int, int, dict[str, float]], None]
"""Called as ``progress(step, total_steps, metrics)`` after each validation pass."""


def train_success_classifier(
    episodes: Sequence[EpisodeRecord],
    config: SuccessTrainingConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[SuccessClassifier, dict[str, float]]:
    """Train on ``episodes`` (split by episode into train/validation), calibrate the threshold on validation.

    Returns the model with the best validation F1 (eval mode, threshold in its config) and metrics: validation
    precision/recall/F1 at the calibrated threshold, the threshold, frame counts, the final training loss and the
    wall time. ``should_stop`` is polled every step; when it returns true training ends early with the best
    model so far.
    """
    config = config or SuccessTrainingConfig()
    start_s = time.monotonic()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    train_episodes, val_episodes = split_episodes(episodes, config.val_fraction, config.seed)
    proprio_names = list(episodes[0].proprio_names) if config.use_proprio else []
    if config.use_proprio and not proprio_names:
        raise ValueError("use_proprio needs episodes with proprio_names")
    model = SuccessClassifier(dataclasses.replace(config.model, proprio_names=proprio_names)).to(config.device)
    train, val = _frames(model, train_episodes), _frames(model, val_episodes)
    if train.proprio is not None:
        model.set_proprio_normalization(train.proprio)
    positives, negatives = np.flatnonzero(train.labels), np.flatnonzero(~train.labels)
    if not len(positives) or not len(negatives):
        raise ValueError(f"training episodes need success and non-success frames; got {len(positives)} success "
                         f"and {len(negatives)} other frames")
    if not val.labels.any() or val.labels.all():
        raise ValueError("validation episodes need success and non-success frames; add episodes or raise val_fraction")

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps))
    )
    half = config.batch_size // 2
    best_f1, best_state, best_probs = -1.0, None, None
    loss_ema = float("nan")
    labels = torch.tensor(np.r_[np.ones(half), np.zeros(config.batch_size - half)], dtype=torch.float32)
    step = 0
    while step < config.steps and not (should_stop is not None and should_stop()):
        model.train()
        pick = np.r_[
            positives[torch.randint(len(positives), (half,), generator=generator).numpy()],
            negatives[torch.randint(len(negatives), (config.batch_size - half,), generator=generator).numpy()],
        ]
        images = shift_and_brighten(train.images[pick], config.shift_px, config.brightness, generator)
        proprio = train.proprio[pick] if train.proprio is not None else None
        logits = model(images, [train.instructions[i] for i in pick], proprio)
        loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        loss_ema = loss.item() if math.isnan(loss_ema) else 0.95 * loss_ema + 0.05 * loss.item()
        if step % config.eval_interval == 0 or step == config.steps:
            probs = val.probabilities(model)
            f1 = binary_metrics(val.labels, probs >= calibrate_threshold(probs, val.labels))["f1"]
            if f1 > best_f1:
                best_f1, best_probs = f1, probs
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if progress is not None:
                progress(step, config.steps, {"loss": loss_ema, "val_f1": f1})
    if best_state is None:  # stopped before the first validation pass: use the current weights
        best_probs = val.probabilities(model)
    else:
        model.load_state_dict(best_state)
    model.config.threshold = calibrate_threshold(best_probs, val.labels, config.min_precision)
    model.eval()
    val_metrics = binary_metrics(val.labels, best_probs >= model.threshold)
    metrics = {
        **{f"val_{k}": float(v) for k, v in val_metrics.items()},
        "threshold": model.threshold,
        "train_frames": float(len(train.labels)),
        "train_positives": float(len(positives)),
        "train_episodes": float(len(train_episodes)),
        "val_episodes": float(len(val_episodes)),
        "loss": loss_ema,
        "steps": float(step),
        "train_time_s": time.monotonic() - start_s,
    }
    return model, metrics


def train_success_classifier_from_datasets(
    datasets: Sequence[str | Path],
    output_dir: str | Path,
    *,
    steps: int = 0,
    overrides: Mapping[str, Any] | None = None,
    camera: str | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[SuccessClassifier, dict[str, float]]:
    """The learner's ``success_classifier`` algorithm: train on the complete episodes of recorded bags (bag
    directories or folders of bags), with ``steps`` (0: the default) and flat config ``overrides``, and save the
    calibrated model to ``output_dir``. Success labels are the recorded ``Reward.success`` flags."""
    config = with_overrides(SuccessTrainingConfig(), overrides or {})
    if steps:
        config = dataclasses.replace(config, steps=steps)
    if not datasets:
        raise ValueError("success_classifier needs at least one recorded dataset")
    episodes = [e for path in datasets for e in dataset_episodes(path, camera=camera)]
    model, metrics = train_success_classifier(episodes, config, progress=progress, should_stop=should_stop)
    model.save_pretrained(output_dir)
    return model, metrics
