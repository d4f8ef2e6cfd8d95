"""Chunk Q-function on frozen MobileNetV2 + MiniLM features: scores action chunks for steering and offline RL."""

from rlvla_ros.policies.chunk_q.configuration_chunk_q import ChunkQConfig
from rlvla_ros.policies.chunk_q.modeling_chunk_q import ChunkQFunction, CriticEnsemble

__all__ = ["ChunkQConfig", "ChunkQFunction", "CriticEnsemble"]
