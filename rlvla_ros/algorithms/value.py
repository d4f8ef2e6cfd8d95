"""Action-chunk Q-functions learned from offline data, for test-time steering (V-GPS / Hume) and offline RL.

:class:`ChunkQFunction` scores ``Q(s, a_chunk)``: an ensemble of MLP critics on the frozen perception features of
:class:`~rlvla_ros.policies.FrozenEncoderPolicy` (MobileNetV2 image features, MiniLM instruction embedding, proprio)
and a flattened ``(H, 5)`` ``ee_delta`` chunk. It is saved like a policy (``config.json`` + ``model.safetensors``,
frozen encoders left out) but is not one: it only scores chunks that a policy proposes.

The critic objective is Cal-QL's (Nakamoto et al. 2023): chunk-level TD (``Q(s_t, a_{t:t+H}) = sum_k gamma^k
r_{t+k} + gamma^H Q(s_{t+H}, a')``) plus CQL's conservative regulariser, ``logsumexp`` of Q over uniformly random and
policy-sampled chunks minus Q of the data chunk, where Q of the policy samples is first raised to the state's
Monte-Carlo return (the calibration lower bound), so the regulariser never pushes values below what the data
already achieved. :class:`ValueTrainer` (``value``) fits it with SARSA targets (the data's next chunk), so no action
outside the data is ever bootstrapped from, and draws the policy samples from the policy it will steer
(``init_checkpoint``), which makes the Q-function conservative exactly on the candidates it has to rank.
:func:`evaluate_with_steering` measures a policy's success with and without steering on the same episodes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from rlvla_ros.algorithms.base import JobContext, Trainer, TrainerConfig
from rlvla_ros.algorithms.bc import load_episodes
from rlvla_ros.data import EpisodeRecord, discounted_returns
from rlvla_ros.policies import ACTION_DIM, Policy
from rlvla_ros.policies.base import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    ObsBatch,
    load_safetensors_strict,
    read_config_json,
    write_dir_atomically,
)
from rlvla_ros.policies.encoders import EMBEDDING_DIM, FEATURE_DIM, MiniLmSentenceEncoder, pretrained_mobilenet_v2
from rlvla_ros.policies.observations import batch_size, image_tensor, proprio_tensor
from rlvla_ros.policies.steering import steering_hook
from rlvla_ros.rollouts.evaluation import EvalResults, evaluate
from rlvla_ros.rollouts.sim_rollouts import SimRollouts

ENCODE_BATCH = 64
"""Images per frozen-encoder forward pass when caching dataset features."""


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


class CriticEnsemble(nn.Module):
    """``num_critics`` MLPs ``Q_k(features, chunk)``; each embeds the observation once and reuses it per chunk."""

    def __init__(self, feature_dim: int, chunk_size: int, hidden_size: int, num_layers: int, num_critics: int):
        super().__init__()
        self.chunk_dim = chunk_size * ACTION_DIM
        self.trunks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, hidden_size), nn.LayerNorm(hidden_size),
                          nn.ReLU())
            for _ in range(num_critics)
        )
        self.heads = nn.ModuleList(self._head(hidden_size, num_layers) for _ in range(num_critics))

    def _head(self, hidden_size: int, num_layers: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        width = hidden_size + self.chunk_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(width, hidden_size), nn.LayerNorm(hidden_size), nn.ReLU()]
            width = hidden_size
        return nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, features: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """Q-values (K, B, ...) of chunks (B, ..., H, 5) at features (B, F): one chunk or several per state."""
        if chunks.shape[0] != features.shape[0] or chunks.shape[-1] != ACTION_DIM:
            raise ValueError(f"chunks {tuple(chunks.shape)} do not match features {tuple(features.shape)}")
        flat = chunks.reshape(*chunks.shape[:-2], chunks.shape[-2] * ACTION_DIM)
        if flat.shape[-1] != self.chunk_dim:
            raise ValueError(f"chunks must have {self.chunk_dim // ACTION_DIM} steps, got {chunks.shape[-2]}")
        values = []
        for trunk, head in zip(self.trunks, self.heads, strict=True):
            embedded = trunk(features)
            embedded = embedded.view(len(features), *([1] * (flat.ndim - 2)), -1).expand(*flat.shape[:-1], -1)
            values.append(head(torch.cat([embedded, flat], dim=-1)).squeeze(-1))
        return torch.stack(values)


class ChunkQFunction(nn.Module):
    """``Q(s, a_chunk)`` on frozen MobileNetV2 + MiniLM features; see the module docstring."""

    frozen_prefixes = ("image_encoder.", "text_encoder.")

    def __init__(self, config: ChunkQConfig) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = pretrained_mobilenet_v2().requires_grad_(False)
        self.text_encoder = MiniLmSentenceEncoder()
        feature_dim = FEATURE_DIM + EMBEDDING_DIM + config.proprio_dim
        self.critics = CriticEnsemble(
            feature_dim, config.chunk_size, config.hidden_size, config.num_layers, config.num_critics
        )

    def train(self, mode: bool = True) -> ChunkQFunction:
        """Train mode for the critics only: the frozen encoders stay in eval mode."""
        super().train(mode)
        self.image_encoder.eval()
        return self

    @property
    def device(self) -> torch.device:
        """Device of the critics."""
        return next(self.critics.parameters()).device

    def features(self, obs_batch: ObsBatch) -> torch.Tensor:
        """Frozen features (B, 1280 + 384 + P), the same as ``FrozenEncoderPolicy.features`` at this image size."""
        batch_size(obs_batch)
        with torch.no_grad():
            pixels = image_tensor(obs_batch["image"], self.config.image_size, self.device)
            image = self.image_encoder.embed(self.image_encoder.normalize(pixels))
            text = self.text_encoder(list(obs_batch["instruction"]))
        proprio = proprio_tensor(obs_batch["proprio"], self.config.proprio_dim, self.device)
        return torch.cat([image, text, proprio], dim=-1)

    def forward(self, features: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """Ensemble Q-values (K, B, ...) of chunks (B, ..., H, 5) at precomputed :meth:`features` (B, F)."""
        return self.critics(features, chunks)

    def score(self, obs: dict[str, Any], candidates: torch.Tensor) -> torch.Tensor:
        """Conservative (ensemble-minimum) Q (n,) of candidate chunks (n, H, 5) for one unbatched observation."""
        single = {
            "image": np.asarray(obs["image"])[None],
            "proprio": np.asarray(obs["proprio"], dtype=np.float32)[None],
            "instruction": [obs["instruction"]],
        }
        with torch.no_grad():
            features = self.features(single)
            chunks = torch.as_tensor(candidates, dtype=torch.float32, device=self.device)[None]
            return self(features, chunks).amin(0)[0]

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (critics only) atomically into ``directory``."""
        state = {
            name: tensor.detach().clone().contiguous().cpu()
            for name, tensor in self.state_dict().items()
            if not name.startswith(self.frozen_prefixes)
        }

        def write(tmp: Path) -> None:
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})

        write_dir_atomically(Path(directory), write)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> ChunkQFunction:
        """Rebuild from a :meth:`save_pretrained` directory (safetensors only), in eval mode."""
        directory = Path(directory)
        config = ChunkQConfig.from_dict(read_config_json(directory))
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in {directory}")
        model = cls(config)
        missing, unexpected = model.load_state_dict(load_safetensors_strict(weights), strict=False)
        missing = [name for name in missing if not name.startswith(cls.frozen_prefixes)]
        if missing or unexpected:
            raise ValueError(f"{weights}: missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")
        return model.to(device).eval()


@dataclass
class ChunkTransitions:
    """Every step of a set of episodes as a chunk transition, on cached frozen features (tensors, first dim N)."""

    features: torch.Tensor
    """(N, F) frozen features of s_t."""
    actions: torch.Tensor
    """(N, H, 5) data chunk a_{t:t+H}, zero past the episode end."""
    action_mask: torch.Tensor
    """(N, H) bool, False on the zero padding."""
    chunk_rewards: torch.Tensor
    """(N,) sum_k gamma^k r_{t+k} over the chunk."""
    next_index: torch.Tensor
    """(N,) long row of s_{t+H} (the row itself where the episode ended within the chunk)."""
    bootstrap: torch.Tensor
    """(N,) gamma^H, or 0 where the episode ended within the chunk (success, or a timeout with no later state)."""
    mc_returns: torch.Tensor
    """(N,) Monte-Carlo discounted return-to-go of s_t (Cal-QL's lower bound)."""
    episode_index: torch.Tensor
    """(N,) long index of the episode each row belongs to."""

    def __len__(self) -> int:
        return len(self.features)

    @classmethod
    def from_episodes(
        cls,
        episodes: Sequence[EpisodeRecord],
        encode: Callable[[ObsBatch], torch.Tensor],
        horizon: int,
        gamma: float,
    ) -> ChunkTransitions:
        """Encode every step once with ``encode`` (frozen, so features can be reused for every update)."""
        if horizon < 1 or not 0.0 <= gamma <= 1.0:
            raise ValueError(f"need horizon >= 1 and gamma in [0, 1], got {horizon}, {gamma}")
        episodes = [episode for episode in episodes if len(episode)]
        if not episodes:
            raise ValueError("no non-empty episodes to build transitions from")
        columns: dict[str, list] = {name: [] for name in ("features", "actions", "mask", "rewards", "next", "boot")}
        mc_returns, episode_index, offset = [], [], 0
        for index, episode in enumerate(episodes):
            length = len(episode)
            columns["features"].append(_encode_episode(episode, encode))
            padded = np.concatenate([episode.actions, np.zeros((horizon, ACTION_DIM), np.float32)])
            rewards = np.concatenate([episode.rewards, np.zeros(horizon, np.float32)]).astype(np.float64)
            steps = np.arange(length)
            window = steps[:, None] + np.arange(horizon)[None]
            columns["actions"].append(padded[window])
            columns["mask"].append(window < length)
            columns["rewards"].append((rewards[window] * gamma ** np.arange(horizon)).sum(1))
            inside = steps + horizon < length
            columns["next"].append(offset + np.where(inside, steps + horizon, steps))
            columns["boot"].append(np.where(inside, gamma**horizon, 0.0))
            mc_returns.append(discounted_returns(episode.rewards, gamma))
            episode_index.append(np.full(length, index))
            offset += length
        return cls(
            features=torch.cat(columns["features"]),
            actions=torch.as_tensor(np.concatenate(columns["actions"]), dtype=torch.float32),
            action_mask=torch.as_tensor(np.concatenate(columns["mask"])),
            chunk_rewards=torch.as_tensor(np.concatenate(columns["rewards"]), dtype=torch.float32),
            next_index=torch.as_tensor(np.concatenate(columns["next"]), dtype=torch.long),
            bootstrap=torch.as_tensor(np.concatenate(columns["boot"]), dtype=torch.float32),
            mc_returns=torch.as_tensor(np.concatenate(mc_returns), dtype=torch.float32),
            episode_index=torch.as_tensor(np.concatenate(episode_index), dtype=torch.long),
        )


def _encode_episode(episode: EpisodeRecord, encode: Callable[[ObsBatch], torch.Tensor]) -> torch.Tensor:
    parts = []
    for start in range(0, len(episode), ENCODE_BATCH):
        stop = min(start + ENCODE_BATCH, len(episode))
        batch = {
            "image": episode.images[start:stop],
            "proprio": episode.proprio[start:stop],
            "instruction": [episode.instruction] * (stop - start),
        }
        parts.append(encode(batch).detach())
    return torch.cat(parts)


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
class ConservativeCriticConfig(TrainerConfig):
    """Hyper-parameters of a conservative chunk critic ensemble (shared by ``value`` and ``calql``)."""

    batch_size: int = 256
    """Transitions per update."""
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
    log_interval: int = 50
    """Updates between logged metrics."""
    checkpoint_interval: int = 500
    """Updates between checkpoints (one is always written at the end)."""
    tasks: list[str] = field(default_factory=list)
    """Only episodes of these tasks; empty: all."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1 or self.num_random_chunks < 1 or self.num_policy_chunks < 0:
            raise ValueError("batch_size and num_random_chunks must be >= 1 and num_policy_chunks >= 0")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 < self.tau <= 1.0:
            raise ValueError(f"need gamma in [0, 1] and tau in (0, 1], got {self.gamma}, {self.tau}")
        if self.cql_alpha < 0:
            raise ValueError(f"cql_alpha must be >= 0, got {self.cql_alpha}")
        if self.hidden_size > 4096 or self.num_layers > 16 or self.num_critics > 16:
            raise ValueError("hidden_size must be <= 4096, num_layers and num_critics <= 16")


@dataclass
class ValueConfig(ConservativeCriticConfig):
    """Hyper-parameters of the steering Q-function (``value``)."""

    learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    sample_temperature: float = 1.0
    """Temperature of the policy samples (use the one steering will sample candidates at)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sample_temperature <= 0:
            raise ValueError(f"sample_temperature must be > 0, got {self.sample_temperature}")


def policy_samples(
    policy: Policy, episodes: Sequence[EpisodeRecord], num_samples: int, temperature: float
) -> torch.Tensor:
    """(N, M, H, 5) chunks sampled from ``policy`` at every step of ``episodes`` (in ChunkTransitions order)."""
    samples = [
        policy.sample_candidates(episode.observation(step), num_samples, temperature)
        for episode in episodes
        for step in range(len(episode))
    ]
    return torch.stack(samples).float().cpu()


class ValueTrainer(Trainer):
    """Fit a :class:`ChunkQFunction` for steering a fixed policy (``init_checkpoint``) with Cal-QL + SARSA."""

    name = "value"
    config_class = ValueConfig
    needs_datasets = True
    default_steps = 3000

    def run(self, context: JobContext) -> dict[str, float]:
        config: ValueConfig = context.config  # type: ignore[assignment]
        episodes = load_episodes(context.datasets, config.tasks)
        policy = context.make_policy().eval() if config.init_checkpoint else None
        chunk_size = policy.chunk_size if policy is not None else config.chunk_size
        image_size = policy.config.image_size if policy is not None else config.image_size
        q = ChunkQFunction(
            ChunkQConfig(
                chunk_size=chunk_size,
                proprio_dim=episodes[0].proprio.shape[1],
                image_size=image_size,
                hidden_size=config.hidden_size,
                num_layers=config.num_layers,
                num_critics=config.num_critics,
            )
        )
        return fit_chunk_q(q, episodes, config, context, policy)


def fit_chunk_q(
    q: ChunkQFunction,
    episodes: Sequence[EpisodeRecord],
    config: ValueConfig,
    context: JobContext,
    policy: Policy | None = None,
) -> dict[str, float]:
    """Train ``q`` for ``context.steps`` updates (or until stopped) on ``episodes``, saving it as the job's latest
    checkpoint (no score: a Q-function is never a policy for ``on_new_best``); returns the last metrics."""
    horizon = q.config.chunk_size
    transitions = ChunkTransitions.from_episodes(episodes, q.features, horizon, config.gamma)
    num_policy = config.num_policy_chunks if policy is not None else 0
    sampled = policy_samples(policy, episodes, num_policy, config.sample_temperature) if num_policy else None
    # SARSA target: the data's own next chunk (its value is irrelevant where the episode ended: bootstrap is 0).
    next_chunks = transitions.actions[transitions.next_index]
    generator = torch.Generator().manual_seed(config.seed)
    target = copy.deepcopy(q.critics).requires_grad_(False)
    optimizer = torch.optim.Adam(q.critics.parameters(), lr=config.learning_rate)
    q.train()
    metrics: dict[str, float] = {}
    for step in range(1, context.steps + 1):
        rows = torch.randint(len(transitions), (config.batch_size,), generator=generator)
        policy_chunks = sampled[rows] if sampled is not None else torch.empty((len(rows), 0, horizon, ACTION_DIM))
        loss, metrics = conservative_critic_loss(
            q.critics, target, transitions, rows, next_chunks[rows], policy_chunks,
            cql_alpha=config.cql_alpha, num_random_chunks=config.num_random_chunks,
            calibrated=config.calibrated, generator=generator,
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        polyak_update(target, q.critics, config.tau)
        last = step == context.steps or context.should_stop()
        if step % config.log_interval == 0 or last:
            context.log(step, metrics)
        if step % config.checkpoint_interval == 0 or last:
            context.save_checkpoint(q, step, metrics)
        if last:
            break
    q.eval()
    return metrics


def evaluate_with_steering(
    policy: Policy,
    q_model: ChunkQFunction,
    tasks: Sequence[str],
    splits: Sequence[str],
    seeds: Sequence[int],
    *,
    budget: int = 8,
    temperature: float = 1.0,
    num_envs: int = 8,
    seed: int = 0,
) -> dict[str, EvalResults]:
    """Success rates ``{"policy": ..., "steered": ...}`` of ``policy`` on the same episodes without and with steering.

    ``budget`` is the test-time compute: candidate chunks sampled (at ``temperature``) and scored per decision.
    Without steering the policy acts deterministically; the weights are the same in both runs.
    """
    rollouts = SimRollouts(num_envs, image_size=policy.config.image_size)
    try:
        plain = evaluate(policy, tasks, splits, seeds, rollouts=rollouts)
        torch.manual_seed(seed)
        hook = steering_hook(policy, q_model, budget, temperature)
        steered = evaluate(policy, tasks, splits, seeds, choose_chunk=hook, rollouts=rollouts)
    finally:
        rollouts.close()
    return {"policy": plain, "steered": steered}
