"""A fixed set of observations, ready for repeated differentiable passes through a policy's heads.

Policies with frozen encoders expose ``features()`` / ``log_prob_from_features()`` / ``value_from_features()`` and a
true ``frozen_features`` (:class:`FrozenEncoderPolicy`, or :class:`FilmKeypointsPolicy` with a frozen encoder): their
observations are encoded once and every epoch and minibatch reuses the cached features, which is what makes RL
updates affordable on a CPU. Other policies get the raw observations each pass, their images optionally augmented
(a new draw each pass).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlvla_ros.policies import Policy
from rlvla_ros.policies.base import masked_row_mean
from rlvla_ros.policies.observations import resized_images


def supports_cached_features(policy: Policy) -> bool:
    """Whether ``policy`` can act on precomputed frozen features."""
    methods = ("features", "log_prob_from_features", "value_from_features")
    return all(hasattr(policy, name) for name in methods) and getattr(policy, "frozen_features", True)


class PolicyInputs:
    """Observations of N decisions, indexed by minibatch, in the form the policy's heads consume."""

    def __init__(self, policy: Policy, obs_batch: dict[str, Any], encode_batch_size: int = 256,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """``augment`` maps a uint8 (B, S, S, 3) batch of images at the policy's input size to another; it needs a
        trainable image encoder (frozen features are computed once, from the images as they are)."""
        self.policy = policy
        self.size = len(obs_batch["instruction"])
        self.cached = supports_cached_features(policy)
        if augment is not None and self.cached:
            raise ValueError("image augmentation needs a trainable image encoder; this policy's features are frozen")
        self.augment = augment
        if augment is not None:  # resized once, not at every pass
            obs_batch = {**obs_batch, "image": resized_images(obs_batch["image"], policy.config.image_size)}
        if self.cached:
            with torch.no_grad():
                self.features = torch.cat(
                    [
                        policy.features(_take(obs_batch, np.arange(i, min(i + encode_batch_size, self.size))))
                        for i in range(0, self.size, encode_batch_size)
                    ]
                )
        else:
            self.obs_batch = obs_batch

    def __len__(self) -> int:
        return self.size

    def log_prob(
        self, index: np.ndarray, actions: torch.Tensor, temperature: float = 1.0, latents: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable per-row ``(log_probs, entropy)`` (B, H) of ``actions`` at the indexed observations;
        ``latents`` (B, L): what the policy drew with them, for policies that need it (:class:`PolicyOutput`)."""
        extra = {} if latents is None else {"latents": latents}
        if self.cached:
            return self.policy.log_prob_from_features(self.features[index], actions, temperature=temperature, **extra)
        return self.policy.log_prob(self._observations(index), actions, temperature=temperature, **extra)

    def imitation_loss(
        self, index: np.ndarray, actions: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The policy's behaviour-cloning loss (:meth:`Policy.imitation_loss`) of ``actions`` at the indexed
        observations, on the rows ``mask`` keeps."""
        if not self.cached:
            return self.policy.imitation_loss(self._observations(index), actions, mask, generator=generator)
        if hasattr(self.policy, "imitation_loss_from_features"):
            return self.policy.imitation_loss_from_features(self.features[index], actions, mask, generator=generator)
        log_probs, _ = self.policy.log_prob_from_features(self.features[index], actions)
        return masked_row_mean(-log_probs, mask)

    def value(self, index: np.ndarray) -> torch.Tensor:
        """Differentiable value estimates (B,) of the indexed observations."""
        if self.cached:
            return self.policy.value_from_features(self.features[index])
        return self.policy.value(self._observations(index))

    def _observations(self, index: np.ndarray) -> dict[str, Any]:
        observations = _take(self.obs_batch, index)
        if self.augment is not None:
            observations["image"] = self.augment(torch.as_tensor(observations["image"]))
        return observations


def _take(obs_batch: dict[str, Any], index: np.ndarray) -> dict[str, Any]:
    return {
        "image": np.asarray(obs_batch["image"])[index],
        "proprio": np.asarray(obs_batch["proprio"])[index],
        "instruction": [obs_batch["instruction"][i] for i in index],
    }
