"""Config of the chunk Q-function."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass
class ChunkQConfig:
    """Shape and width of a :class:`ChunkQFunction`."""

    model_type: ClassVar[str] = "chunk_q"
    chunk_size: int = 4
    """Horizon H of the scored chunks (the steered policy's)."""
    proprio_dim: int = 6
    """Length of the proprio vector."""
    image_size: int = 64
    """Side of the square image the frozen encoder sees; other sizes are resized."""
    hidden_size: int = 256
    """Width of each critic MLP."""
    num_layers: int = 2
    """Hidden layers of each critic MLP (the first one sees only the observation features)."""
    num_critics: int = 2
    """Ensemble size; scores and TD targets take the minimum over the ensemble."""

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or self.num_layers < 1 or self.num_critics < 1 or self.hidden_size < 1:
            raise ValueError(f"chunk_size, num_layers, num_critics and hidden_size must be >= 1: {self}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict including ``model_type``."""
        return {"model_type": self.model_type, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkQConfig:
        """Inverse of :meth:`to_dict`; another ``model_type`` or unknown keys are a ValueError."""
        data = dict(data)
        model_type = data.pop("model_type", None)
        if model_type != cls.model_type:
            raise ValueError(f"config is for model_type {model_type!r}, not {cls.model_type!r}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
        return cls(**data)
