"""The policy API every model implements, the registry of policy types, and :func:`load_policy`.

A policy maps a batch of observations (the shared contract: ``"image"`` uint8 ``(B, H, W, 3)``, ``"proprio"`` float32
``(B, P)``, ``"instruction"`` list of ``B`` str) to a chunk of ``ee_delta`` actions ``(B, horizon, 5)`` in [-1, 1],
with per-step log-probabilities and a value estimate so that the same object serves acting, PPO/GRPO updates and
test-time steering.

Checkpoints are :mod:`rlvla_ros.policies.pretrained` directories whose ``config.json`` names the ``policy_type``;
:func:`load_policy` loads any registered type from one.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from rlvla_ros.policies.pretrained import PretrainedConfig, PretrainedModel, read_config_json

ObsBatch = dict[str, Any]
"""Batched observation: ``image`` (B, H, W, 3) uint8, ``proprio`` (B, P) float32, ``instruction`` list of str."""


@dataclass
class PolicyConfig(PretrainedConfig):
    """Fields every policy config has; subclasses add their own and set ``policy_type``."""

    type_key: ClassVar[str] = "policy_type"
    policy_type: ClassVar[str] = ""
    chunk_size: int = 4
    """Actions per predicted chunk (the horizon H)."""
    proprio_dim: int = 6
    """Length of the proprio vector: ``len(PROPRIOCEPTION_NAMES)`` of the sim or robot (5 arm joints + gripper)."""
    image_size: int = 128
    """Side of the square image the model consumes; other sizes are resized."""


@dataclass
class PolicyOutput:
    """What :meth:`Policy.predict` returns; all tensors are detached."""

    actions: torch.Tensor
    """(B, H, 5) float32 ``ee_delta`` chunk in [-1, 1]."""
    log_probs: torch.Tensor
    """(B, H) log-probability of each action step (summed over the 5 dims) under the sampling distribution."""
    values: torch.Tensor
    """(B,) value estimate of the observation."""
    latents: torch.Tensor | None = None
    """(B, L) what the policy drew besides the actions when its log-probs need it (a flow policy's denoising
    chain): pass it back as ``log_prob(..., latents=...)``. None for policies whose log-probs depend on the actions
    alone."""


def masked_row_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-row ``values`` (B, H) over the rows where ``mask`` (B, H) is true (0 when none is)."""
    mask = mask.float()
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


_REGISTRY: dict[str, type[Policy]] = {}
P = TypeVar("P", bound="Policy")


def register_policy(cls: type[P]) -> type[P]:
    """Class decorator: make ``cls`` loadable by :func:`load_policy` under ``cls.config_class.policy_type``."""
    policy_type = cls.config_class.policy_type
    if not policy_type:
        raise ValueError(f"{cls.__name__}.config_class must set policy_type")
    if _REGISTRY.get(policy_type, cls) is not cls:
        raise ValueError(f"policy_type {policy_type!r} is already registered by {_REGISTRY[policy_type].__name__}")
    _REGISTRY[policy_type] = cls
    return cls


def registered_policies() -> dict[str, type[Policy]]:
    """Copy of the ``policy_type -> class`` registry."""
    return dict(_REGISTRY)


def new_policy(policy_type: str, **config_fields: Any) -> Policy:
    """A freshly initialised policy of a registered type, its config built from ``config_fields`` (e.g.
    ``chunk_size``, ``image_size``; the others keep their defaults); ValueError for an unknown type or field."""
    if policy_type not in _REGISTRY:
        raise ValueError(f"unknown policy_type {policy_type!r}; registered: {sorted(_REGISTRY)}")
    config_class = _REGISTRY[policy_type].config_class
    return _REGISTRY[policy_type](config_class.from_dict({config_class.type_key: policy_type, **config_fields}))


def load_policy(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Policy:
    """Load any registered policy from a checkpoint directory, dispatching on its ``policy_type``."""
    policy_type = read_config_json(directory).get("policy_type")
    if policy_type not in _REGISTRY:
        raise ValueError(f"{directory}: unknown policy_type {policy_type!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[policy_type].from_pretrained(directory, device=device)


class Policy(PretrainedModel, abc.ABC):
    """Abstract VLA policy: observation batch in, ``ee_delta`` action chunk out.

    Subclasses set ``config_class``, build themselves from ``config`` alone, and implement :meth:`predict`,
    :meth:`log_prob` and :meth:`value`; checkpoints are :class:`~rlvla_ros.policies.pretrained.PretrainedModel`'s.
    """

    config_class: ClassVar[type[PolicyConfig]] = PolicyConfig

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ValueError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    @property
    def chunk_size(self) -> int:
        """Horizon H of predicted chunks."""
        return self.config.chunk_size

    @abc.abstractmethod
    def predict(self, obs_batch: ObsBatch, *, deterministic: bool = False, temperature: float = 1.0) -> PolicyOutput:
        """Act: sample (or take the mode of) the chunk distribution at ``temperature``; no gradients.

        ``log_probs`` are under the same tempered distribution, so they equal
        ``log_prob(obs_batch, actions, temperature=temperature)[0]`` also when ``deterministic``.
        """

    @abc.abstractmethod
    def log_prob(
        self, obs_batch: ObsBatch, actions: torch.Tensor, *, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable ``(log_probs (B, H), entropy (B, H))`` of ``actions`` (B, H, 5), summed over the 5 dims.

        Policies whose :meth:`predict` returns ``latents`` also take ``latents=`` (B, L) here, and need it."""

    def imitation_loss(
        self, obs_batch: ObsBatch, actions: torch.Tensor, mask: torch.Tensor, *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Behaviour-cloning loss of recorded chunks ``actions`` (B, H, 5) on the rows where ``mask`` (B, H) is
        true: the mean negative log-likelihood per row. Families without a tractable likelihood (flow matching)
        override it; ``generator`` draws whatever randomness such a loss needs (fixed for validation)."""
        log_probs, _ = self.log_prob(obs_batch, actions)
        return masked_row_mean(-log_probs, mask)

    @abc.abstractmethod
    def value(self, obs_batch: ObsBatch) -> torch.Tensor:
        """Differentiable value estimate (B,)."""

    def sample_candidates(self, obs: dict[str, Any], n: int, temperature: float = 1.0) -> torch.Tensor:
        """``n`` sampled chunks (n, H, 5) for one unbatched observation, for test-time steering."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        batch = {
            "image": np.repeat(np.asarray(obs["image"])[None], n, axis=0),
            "proprio": np.repeat(np.asarray(obs["proprio"], dtype=np.float32)[None], n, axis=0),
            "instruction": [obs["instruction"]] * n,
        }
        return self.predict(batch, deterministic=False, temperature=temperature).actions
