"""Hugging Face style checkpoints for every model here: a directory holding ``config.json`` (the config dataclass
and its type) and ``model.safetensors``.

:class:`PretrainedConfig` turns a config dataclass into the JSON dict and back, refusing a config of another type or
with unknown keys; :class:`PretrainedModel` gives a module ``save_pretrained`` / ``from_pretrained``. Checkpoints are
written into a temporary sibling directory and renamed into place, so a crash never leaves a half-written one, and
they are only ever read with safetensors: nothing is unpickled. Policies (:class:`rlvla_ros.policies.Policy`), the
chunk Q-function and the success classifier all save and load through here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class PretrainedConfig:
    """A model config that round-trips through ``config.json``; subclasses are dataclasses that set the type."""

    type_key: ClassVar[str] = "model_type"
    """The ``config.json`` key naming the model type: ``model_type``, or ``policy_type`` for policies."""
    model_type: ClassVar[str] = ""

    @classmethod
    def type_name(cls) -> str:
        """This config's model type (the value it saves under :attr:`type_key`)."""
        return getattr(cls, cls.type_key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict including the model type."""
        return {self.type_key: self.type_name(), **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of :meth:`to_dict`; another type or unknown keys are a ValueError, so typos do not pass silently."""
        data = dict(data)
        found = data.pop(cls.type_key, None)
        if found != cls.type_name():
            raise ValueError(f"config is for {cls.type_key} {found!r}, not {cls.type_name()!r}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(f"invalid {cls.__name__}: {error}") from None


def read_config_json(directory: str | os.PathLike) -> dict[str, Any]:
    """Parsed ``config.json`` of a checkpoint directory."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}")
    return json.loads(path.read_text())


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
            if file.is_file():  # a sub-checkpoint directory was written (and synced) atomically itself
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


M = TypeVar("M", bound="PretrainedModel")


class PretrainedModel(nn.Module):
    """A module built from its config alone that saves and loads as a checkpoint directory.

    Subclasses set ``config_class`` and take the config as their constructor's only required argument. Parameter and
    buffer names starting with one of ``frozen_prefixes`` are weights the constructor loads itself (e.g. a frozen
    pretrained encoder); they are left out of checkpoints.
    """

    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    frozen_prefixes: ClassVar[tuple[str, ...]] = ()
    config: PretrainedConfig

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.parameters()).device

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors saved to ``model.safetensors``: everything but the frozen, self-loaded weights."""
        return {
            name: tensor.detach().contiguous().cpu()
            for name, tensor in self.state_dict().items()
            if not name.startswith(self.frozen_prefixes)
        }

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` atomically into ``directory``."""
        # Cloning breaks storage sharing (tied weights), which safetensors refuses to save.
        state = {name: tensor.clone() for name, tensor in self.checkpoint_state_dict().items()}

        def write(tmp: Path) -> None:
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            self.save_parts(tmp)

        write_dir_atomically(Path(directory), write)

    def save_parts(self, directory: Path) -> None:
        """Write what a model keeps beside ``model.safetensors`` (sub-model checkpoints, peft adapters) into the
        checkpoint being written; nothing here."""

    def upgrade_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A checkpoint's tensors under the names this version gives them (a model whose names changed maps the old
        ones here, so its old checkpoints still load); unchanged by default."""
        return state

    def load_parts(self, directory: Path) -> None:
        """Read what :meth:`save_parts` wrote that :meth:`build` did not, after ``model.safetensors`` is in."""

    @classmethod
    def build(cls: type[M], config: PretrainedConfig, directory: Path) -> M:
        """The model of ``config`` before its weights are loaded; sub-models come from ``directory``."""
        return cls(config)

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike, device: str | torch.device = "cpu") -> M:
        """Rebuild the model from a :meth:`save_pretrained` directory, in eval mode; FileNotFoundError when a file is
        missing, ValueError for a config of another model, a file that is not safetensors or tensors that do not
        match the config."""
        directory = Path(directory)
        config = cls.config_class.from_dict(read_config_json(directory))
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in {directory} (only safetensors checkpoints are loaded)")
        model = cls.build(config, directory)
        state = model.upgrade_state_dict(load_safetensors_strict(weights))
        expected = set(model.checkpoint_state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"{weights}: missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as error:  # tensors of the wrong shape
            raise ValueError(f"{weights} does not match its config: {error}") from None
        model.load_parts(directory)
        return model.to(device).eval()
