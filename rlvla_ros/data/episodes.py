"""One recorded or simulated episode as plain numpy arrays, shared by offline datasets and in-process rollouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from rlvla_ros.contract import ACTION_DIM


@dataclass
class EpisodeRecord:
    """Per-step arrays of one episode; step t holds the observation, the executed action and its reward."""

    episode_id: str
    """Unique episode identifier."""
    instruction: str
    """Natural-language task instruction."""
    images: np.ndarray
    """(T, H, W, 3) uint8 RGB images of the policy camera."""
    proprio: np.ndarray
    """(T, P) float32 proprioception, order given by `proprio_names`."""
    actions: np.ndarray
    """(T, 5) float32 executed `ee_delta` actions in [-1, 1] (the chunk row run at that step, or the teleop action)."""
    rewards: np.ndarray
    """(T,) float32 reward received after each action."""
    successes: np.ndarray | None = None
    """(T,) bool success flag of each step's reward; all False if not given."""
    interventions: np.ndarray | None = None
    """(T,) bool, True where a human (teleop) chose the action; all False if not given."""
    log_probs: np.ndarray | None = None
    """(T,) float32 log-probability of each executed action under its policy (NaN where unknown), or None."""
    latents: np.ndarray | None = None
    """(T, L) float32: at each step, what the policy drew with the chunk that step executes, for policies whose
    log-probs need it (``PolicyOutput.latents``: a flow policy's denoising chain); None when there is none."""
    task: str = ""
    """Task name (e.g. `lift`)."""
    split: str = "id"
    """Evaluation split: `id` or an out-of-distribution split name."""
    seed: int = 0
    """Environment seed of the episode."""
    success: bool | None = None
    """Final success; defaults to the last step's success flag."""
    termination_reason: str = ""
    """Why the episode ended: success, timeout, abort, intervention or stalled; empty if unknown."""
    complete: bool = True
    """False when the recording stopped before the episode ended (steps after the last full one are missing)."""
    proprio_names: tuple[str, ...] = field(default_factory=tuple)
    """Names of the proprioception entries."""

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (T, H, W, 3) uint8, got {self.images.shape} {self.images.dtype}")
        length = self.images.shape[0]
        self.proprio = _as_array(self.proprio, np.float32, "proprio", length, ndim=2)
        self.actions = _as_array(self.actions, np.float32, "actions", length, ndim=2)
        if self.actions.shape[1] != ACTION_DIM:
            raise ValueError(f"actions must have {ACTION_DIM} columns, got {self.actions.shape}")
        self.rewards = _as_array(self.rewards, np.float32, "rewards", length)
        self.successes = _flags(self.successes, "successes", length)
        self.interventions = _flags(self.interventions, "interventions", length)
        if self.log_probs is not None:
            self.log_probs = _as_array(self.log_probs, np.float32, "log_probs", length)
        if self.latents is not None:
            self.latents = _as_array(self.latents, np.float32, "latents", length, ndim=2)
        if self.proprio_names and len(self.proprio_names) != self.proprio.shape[1]:
            raise ValueError(f"{len(self.proprio_names)} proprio_names for {self.proprio.shape[1]} proprio entries")
        self.proprio_names = tuple(self.proprio_names)
        if self.success is None:
            self.success = bool(length and self.successes[-1])
        self.success = bool(self.success)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def episode_return(self) -> float:
        """Undiscounted sum of rewards."""
        return float(self.rewards.sum(dtype=np.float64))

    @property
    def intervention_steps(self) -> int:
        """Number of steps a human chose the action."""
        return int(self.interventions.sum())

    def observation(self, step: int) -> dict:
        """Policy observation (`image`, `proprio`, `instruction`) at `step`."""
        return {"image": self.images[step], "proprio": self.proprio[step], "instruction": self.instruction}

    @classmethod
    def from_steps(
        cls,
        observations: Sequence[Mapping],
        actions: Sequence[np.ndarray] | np.ndarray,
        rewards: Sequence[float] | np.ndarray,
        **fields,
    ) -> EpisodeRecord:
        """Build from per-step policy observations (dicts with `image`, `proprio`, `instruction`), e.g. from a
        simulated rollout; `fields` are the remaining dataclass fields (`episode_id`, `successes`, ...)."""
        if not observations:
            raise ValueError("an episode needs at least one observation")
        instruction = fields.pop("instruction", observations[0]["instruction"])
        return cls(
            instruction=instruction,
            images=np.stack([np.asarray(obs["image"]) for obs in observations]),
            proprio=np.stack([np.asarray(obs["proprio"], dtype=np.float32) for obs in observations]),
            actions=np.asarray(actions, dtype=np.float32),
            rewards=np.asarray(rewards, dtype=np.float32),
            **fields,
        )


def _as_array(values, dtype: type, name: str, length: int, ndim: int = 1) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != ndim or array.shape[0] != length:
        raise ValueError(f"{name} must have {ndim} dims and {length} steps, got shape {array.shape}")
    return array


def _flags(values, name: str, length: int) -> np.ndarray:
    if values is None:
        return np.zeros(length, dtype=bool)
    return _as_array(values, bool, name, length)
