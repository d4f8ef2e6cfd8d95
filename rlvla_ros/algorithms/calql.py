"""Conservative offline RL with a behaviour-cloning term: ConRFT's offline stage (Cal-QL critic + BC-regularised actor).

The critic is a :class:`~rlvla_ros.policies.chunk_q.ChunkQFunction` on the policy's own frozen features, trained
with :func:`~rlvla_ros.algorithms.conservative_critic.conservative_critic_loss` (chunk TD bootstrapped from the
actor's chunk at s_{t+H}, CQL regulariser with Cal-QL's Monte-Carlo lower bound on the actor's samples). The actor, a
:class:`~rlvla_ros.policies.FrozenEncoderPolicy`, minimises ``-Q(s, a~pi) / mean|Q| + bc_weight * NLL(a_data)``:
the Q term is reparameterised through the tanh-Gaussian and normalised as in TD3+BC so that ``bc_weight`` does not
depend on the reward scale; the BC term is the negative log-likelihood per executed row of the recorded chunk, as in
``bc``. The trained critic is saved next to the policy checkpoints (``<output_dir>/critic``) and can steer it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from rlvla_ros.algorithms.base import JobContext, Trainer
from rlvla_ros.algorithms.chunk_transitions import ChunkTransitions
from rlvla_ros.algorithms.conservative_critic import ConservativeCriticConfig, critic_update, make_critic
from rlvla_ros.algorithms.offline import load_episodes, proprio_dim, run_updates
from rlvla_ros.policies import FrozenEncoderPolicy

CRITIC_DIR = "critic"
"""Sub-directory of the job's output where the trained critic is saved."""


@dataclass
class CalQlConfig(ConservativeCriticConfig):
    """Hyper-parameters of Cal-QL + BC (the critic's are shared with ``value``)."""

    policy_type: str = "frozen_encoder"
    """Registered policy type of a fresh policy: calql trains a frozen_encoder policy (its actor and the critic share
    the frozen features)."""
    actor_learning_rate: float = 3e-4
    """Adam learning rate of the actor (mean head and log-std)."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    bc_weight: float = 1.0
    """Weight of the BC negative log-likelihood against the normalised -Q term."""
    critic_warmup_steps: int = 500
    """Critic-only updates before the actor starts following Q (its first Q-values are meaningless)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_policy_chunks < 1:
            raise ValueError(f"num_policy_chunks must be >= 1, got {self.num_policy_chunks}")
        if self.bc_weight < 0 or self.critic_warmup_steps < 0:
            raise ValueError("bc_weight and critic_warmup_steps must be >= 0")


def sample_chunks(policy: FrozenEncoderPolicy, features: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Reparameterised chunks (B, M, H, 5) from the policy's tanh-Gaussian at ``features`` (B, F)."""
    # _mean_std is the policy's own (pre-tanh mean, std) parameterisation: sampling through it keeps the gradient.
    mean, std = policy._mean_std(features, 1.0)
    noise = torch.randn((len(features), num_samples, *mean.shape[1:]), device=features.device)
    return torch.tanh(mean[:, None] + std * noise)


def bc_nll(policy: FrozenEncoderPolicy, transitions: ChunkTransitions, rows: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per executed row of the recorded chunks at ``rows``."""
    log_probs, _ = policy.log_prob_from_features(transitions.features[rows], transitions.actions[rows])
    mask = transitions.action_mask[rows].float()
    return -(log_probs * mask).sum() / mask.sum().clamp(min=1.0)


class CalQlTrainer(Trainer):
    """Cal-QL + BC from recorded bags of successes and failures; see the module docstring."""

    name = "calql"
    config_class = CalQlConfig
    needs_datasets = True
    default_steps = 3000

    def run(self, context: JobContext) -> dict[str, float]:
        config: CalQlConfig = context.config  # type: ignore[assignment]
        episodes = load_episodes(context.datasets, config.tasks)
        policy = context.make_policy(proprio_dim=proprio_dim(episodes))
        if not isinstance(policy, FrozenEncoderPolicy):
            raise ValueError(f"calql trains a frozen_encoder policy, got {type(policy).__name__}")
        transitions = ChunkTransitions.from_episodes(episodes, policy.features, policy.chunk_size, config.gamma)
        critic = make_critic(config, chunk_size=policy.chunk_size, proprio_dim=policy.config.proprio_dim,
                             image_size=policy.config.image_size)
        target = copy.deepcopy(critic.critics).requires_grad_(False)
        actor_params = [policy.log_std, *policy.actor.parameters()]
        actor_optimizer = torch.optim.Adam(actor_params, lr=config.actor_learning_rate)
        critic_optimizer = torch.optim.Adam(critic.critics.parameters(), lr=config.critic_learning_rate)
        generator = torch.Generator().manual_seed(config.seed)

        def update(step: int) -> dict[str, float]:
            rows = torch.randint(len(transitions), (config.batch_size,), generator=generator)
            with torch.no_grad():
                next_chunks = sample_chunks(policy, transitions.features[transitions.next_index[rows]], 1)[:, 0]
                policy_chunks = sample_chunks(policy, transitions.features[rows], config.num_policy_chunks)
            metrics = critic_update(critic, target, critic_optimizer, transitions, rows, next_chunks, policy_chunks,
                                    config, generator)
            nll = bc_nll(policy, transitions, rows)
            q_pi = critic(transitions.features[rows], sample_chunks(policy, transitions.features[rows], 1)[:, 0])
            q_pi = q_pi.amin(0)
            q_term = -q_pi.mean() / q_pi.abs().mean().detach().clamp(min=1e-3)
            actor_loss = config.bc_weight * nll + (q_term if step > config.critic_warmup_steps else 0.0)
            actor_optimizer.zero_grad()
            actor_loss.backward()
            actor_optimizer.step()
            return {**metrics, "actor/bc_nll": nll.item(), "actor/q_pi": q_pi.mean().item(),
                    "actor/loss": actor_loss.item()}

        def save(step: int, metrics: dict[str, float]) -> None:
            context.save_checkpoint(policy, step, metrics)
            if context.write_files:
                critic.save_pretrained(context.output_dir / CRITIC_DIR)

        return run_updates(context, config, update, save)
