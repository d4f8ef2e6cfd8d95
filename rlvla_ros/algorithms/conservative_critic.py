"""The conservative chunk critic objective (Cal-QL, Nakamoto et al. 2023), shared by ``value`` and ``calql``.

Chunk-level TD (``Q(s_t, a_{t:t+H}) = sum_k gamma^k r_{t+k} + gamma^H Q(s_{t+H}, a')``) plus CQL's conservative
regulariser: ``logsumexp`` of Q over uniformly random and policy-sampled chunks minus Q of the data chunk, where Q of
the policy samples is first raised to the state's Monte-Carlo return (the calibration lower bound), so the
regulariser never pushes values below what the data already achieved.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rlvla_ros.algorithms.chunk_transitions import ChunkTransitions
from rlvla_ros.algorithms.offline import OfflineConfig
from rlvla_ros.policies import Policy
from rlvla_ros.policies.chunk_q import ChunkQConfig, ChunkQFunction, CriticEnsemble


def uniform_chunks(shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """Chunks drawn uniformly from the ``ee_delta`` box [-1, 1]."""
    return torch.rand(shape, generator=generator) * 2.0 - 1.0


def conservative_critic_loss(
    critics: CriticEnsemble,
    target_critics: CriticEnsemble,
    transitions: ChunkTransitions,
    rows: torch.Tensor,
    next_chunks: torch.Tensor,
    policy_chunks: torch.Tensor,
    *,
    cql_alpha: float,
    num_random_chunks: int,
    calibrated: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cal-QL critic loss on the transitions at ``rows`` (B,).

    ``next_chunks`` (B, H, 5) are bootstrapped from at s_{t+H}; ``policy_chunks`` (B, M, H, 5) are the policy's
    samples at s_t that the regulariser pushes down (to no lower than the Monte-Carlo return when ``calibrated``),
    together with ``num_random_chunks`` uniform ones. Returns the loss and its parts as floats.
    """
    features = transitions.features[rows]
    random_chunks = uniform_chunks((len(rows), num_random_chunks, *policy_chunks.shape[2:]), generator)
    # One pass over [data | random | policy] chunks: each critic embeds the observations once.
    q_all = critics(features, torch.cat([transitions.actions[rows][:, None], random_chunks, policy_chunks], dim=1))
    q_data, q_random, q_policy = q_all.split([1, num_random_chunks, policy_chunks.shape[1]], dim=-1)
    q_data = q_data.squeeze(-1)
    with torch.no_grad():
        next_q = target_critics(transitions.features[transitions.next_index[rows]], next_chunks).amin(0)
        target = transitions.chunk_rewards[rows] + transitions.bootstrap[rows] * next_q
    td_loss = ((q_data - target) ** 2).mean()
    floor = transitions.mc_returns[rows][None, :, None]
    q_policy_floor = torch.maximum(q_policy, floor) if calibrated else q_policy
    pushed = torch.logsumexp(torch.cat([q_random, q_policy_floor], dim=-1), dim=-1)
    penalty = (pushed - q_data).mean()
    loss = td_loss + cql_alpha * penalty
    metrics = {
        "critic/td_loss": td_loss.item(),
        "critic/conservative_penalty": penalty.item(),
        "critic/q_data": q_data.mean().item(),
        "critic/q_random": q_random.mean().item(),
    }
    if q_policy.numel():
        metrics["critic/q_policy"] = q_policy.mean().item()
    return loss, metrics


def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * source, parameter by parameter."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, tau)


@dataclass
class ConservativeCriticConfig(OfflineConfig):
    """Hyper-parameters of a conservative chunk critic ensemble (shared by ``value`` and ``calql``)."""

    gamma: float = 0.97
    """Per-step discount (a chunk of H steps bootstraps with gamma^H)."""
    tau: float = 0.01
    """Polyak rate of the target critics."""
    cql_alpha: float = 0.5
    """Weight of the conservative regulariser."""
    num_random_chunks: int = 8
    """Uniformly random chunks per state in the regulariser."""
    num_policy_chunks: int = 8
    """Chunks per state sampled from the policy for the regulariser (``value``: 0 without ``init_checkpoint``)."""
    calibrated: bool = True
    """Cal-QL: never push Q of policy samples below the state's Monte-Carlo return (False: plain CQL)."""
    hidden_size: int = 256
    """Width of each critic MLP."""
    num_layers: int = 2
    """Hidden layers of each critic MLP."""
    num_critics: int = 2
    """Critic ensemble size."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_random_chunks < 1 or self.num_policy_chunks < 0:
            raise ValueError("num_random_chunks must be >= 1 and num_policy_chunks >= 0")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 < self.tau <= 1.0:
            raise ValueError(f"need gamma in [0, 1] and tau in (0, 1], got {self.gamma}, {self.tau}")
        if self.cql_alpha < 0:
            raise ValueError(f"cql_alpha must be >= 0, got {self.cql_alpha}")
        if self.hidden_size > 4096 or self.num_layers > 16 or self.num_critics > 16:
            raise ValueError("hidden_size must be <= 4096, num_layers and num_critics <= 16")


def make_critic(
    config: ConservativeCriticConfig, *, chunk_size: int, proprio_dim: int, image_size: int,
    policy: Policy | None = None,
) -> ChunkQFunction:
    """A fresh chunk Q-function of the config's width, depth and ensemble size, in train mode; on ``policy``'s own
    features when given, else on generic frozen ones."""
    return ChunkQFunction(ChunkQConfig(
        chunk_size=chunk_size, proprio_dim=proprio_dim, image_size=image_size, hidden_size=config.hidden_size,
        num_layers=config.num_layers, num_critics=config.num_critics,
        encoder="mobilenet" if policy is None else "policy",
    ), policy).train()


def critic_update(
    critic: ChunkQFunction,
    target: CriticEnsemble,
    optimizer: torch.optim.Optimizer,
    transitions: ChunkTransitions,
    rows: torch.Tensor,
    next_chunks: torch.Tensor,
    policy_chunks: torch.Tensor,
    config: ConservativeCriticConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """One optimiser step of :func:`conservative_critic_loss` on ``rows``, then the target critics' Polyak step;
    returns the loss's parts."""
    loss, metrics = conservative_critic_loss(
        critic.critics, target, transitions, rows, next_chunks, policy_chunks,
        cql_alpha=config.cql_alpha, num_random_chunks=config.num_random_chunks, calibrated=config.calibrated,
        generator=generator,
    )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    polyak_update(target, critic.critics, config.tau)
    return metrics
