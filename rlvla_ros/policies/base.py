"""The policy API every model implements, and Hugging Face style checkpoints.

A policy maps a batch of observations (the shared contract: ``"image"`` uint8 ``(B, H, W, 3)``, ``"proprio"`` float32
``(B, P)``, ``"instruction"`` list of ``B`` str) to a chunk of ``ee_delta`` actions ``(B, horizon, 5)`` in [-1, 1],
with per-step log-probabilities and a value estimate so that the same object serves acting, PPO/GRPO updates and
test-time steering.

Checkpoints are a directory holding ``config.json`` (the config dataclass plus a ``policy_type`` field) and
``model.safetensors``. They are written into a temporary sibling directory and renamed into place, so a crash never
leaves a half-written checkpoint, and they are only ever read with safetensors: nothing is unpickled.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

ACTION_DIM = 5
"""Length of one ``ee_delta`` action: ``[dx, dy, dz, dyaw, gripper]``."""

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

ObsBatch = dict[str, Any]
"""Batched observation: ``image`` (B, H, W, 3) uint8, ``proprio`` (B, P) float32, ``instruction`` list of str."""


@dataclass
class PolicyConfig:
    """Fields every policy config has; subclasses add their own and set ``policy_type``."""

    policy_type: ClassVar[str] = ""
    chunk_size: int = 4
    """Actions per predicted chunk (the horizon H)."""
    proprio_dim: int = 6
    """Length of the proprio vector: ``len(PROPRIOCEPTION_NAMES)`` of the sim or robot (5 arm joints + gripper)."""
    image_size: int = 128
    """Side of the square image the model consumes; other sizes are resized."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict including ``policy_type``."""
        return {"policy_type": self.policy_type, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error so typos do not pass silently."""
        data = dict(data)
        policy_type = data.pop("policy_type", cls.policy_type)
        if policy_type != cls.policy_type:
            raise ValueError(f"config is for policy_type {policy_type!r}, not {cls.policy_type!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
        return cls(**data)


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


def read_config_json(directory: str | os.PathLike) -> dict[str, Any]:
    """Parsed ``config.json`` of a checkpoint directory."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}")
    return json.loads(path.read_text())


def load_policy(directory: str | os.PathLike, device: str | torch.device = "cpu") -> Policy:
    """Load any registered policy from a checkpoint directory, dispatching on its ``policy_type``."""
    policy_type = read_config_json(directory).get("policy_type")
    if policy_type not in _REGISTRY:
        raise ValueError(f"{directory}: unknown policy_type {policy_type!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[policy_type].from_pretrained(directory, device=device)


def load_safetensors_strict(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, refusing anything else (a pickle or zip checkpoint is never unpickled)."""
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors = 8-byte little-endian header length, then a JSON header starting with '{'.
    if len(head) < 9 or head[8:9] != b"{":
        raise ValueError(f"{path} is not a safetensors file; refusing to load it (pickled weights are never loaded)")
    return load_file(str(path))


def write_dir_atomically(target: Path, write: Any) -> None:
    """Call ``write(tmp_dir)`` then rename ``tmp_dir`` to ``target``, replacing an existing directory."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        for file in tmp.iterdir():
            with open(file, "rb") as f:
                os.fsync(f.fileno())
        if target.exists():
            # Directories cannot be os.replace'd over a non-empty one: move the old one aside first.
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old)
        else:
            os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


class Policy(nn.Module, abc.ABC):
    """Abstract VLA policy: observation batch in, ``ee_delta`` action chunk out.

    Subclasses set ``config_class``, build themselves from ``config`` alone, and implement :meth:`predict`,
    :meth:`log_prob` and :meth:`value`. Parameter names starting with one of ``frozen_prefixes`` are weights that
    the constructor loads itself (e.g. a frozen pretrained encoder); they are left out of checkpoints.
    """

    config_class: ClassVar[type[PolicyConfig]] = PolicyConfig
    frozen_prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ValueError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    @property
    def chunk_size(self) -> int:
        """Horizon H of predicted chunks."""
        return self.config.chunk_size

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.parameters()).device

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

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors saved to ``model.safetensors``: everything but the frozen, self-loaded weights."""
        return {
            name: tensor.detach().contiguous().cpu()
            for name, tensor in self.state_dict().items()
            if not name.startswith(self.frozen_prefixes)
        }

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json``, ``model.safetensors`` and the family's extra files atomically into ``directory``."""
        # Cloning breaks storage sharing (tied weights), which safetensors refuses to save.
        state = {name: tensor.clone() for name, tensor in self.checkpoint_state_dict().items()}

        def write(tmp: Path) -> None:
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            self.save_extra_files(tmp)

        write_dir_atomically(Path(directory), write)

    def save_extra_files(self, directory: Path) -> None:
        """Write the files a family keeps beside ``config.json`` and ``model.safetensors`` (e.g. peft adapters) into
        the checkpoint being written; none by default."""

    def load_extra_files(self, directory: Path) -> None:
        """Read what :meth:`save_extra_files` wrote, after the weights of ``model.safetensors`` are in."""

    @classmethod
    def from_pretrained(cls: type[P], directory: str | os.PathLike, device: str | torch.device = "cpu") -> P:
        """Rebuild the policy from a :meth:`save_pretrained` directory, in eval mode."""
        directory = Path(directory)
        config = cls.config_class.from_dict(read_config_json(directory))
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in {directory} (only safetensors checkpoints are loaded)")
        state = load_safetensors_strict(weights)
        policy = cls(config)
        expected = set(policy.checkpoint_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"{weights}: missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")
        policy.load_state_dict(state, strict=False)
        policy.load_extra_files(directory)
        return policy.to(device).eval()
