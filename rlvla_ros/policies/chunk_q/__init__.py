"""Chunk Q-function on frozen generic or steered-policy features: scores action chunks for steering and offline RL."""

from rlvla_ros.policies.chunk_q.configuration_chunk_q import CHUNK_Q_ENCODERS, ChunkQConfig
from rlvla_ros.policies.chunk_q.modeling_chunk_q import ChunkQFunction, CriticEnsemble

__all__ = ["CHUNK_Q_ENCODERS", "ChunkQConfig", "ChunkQFunction", "CriticEnsemble"]
