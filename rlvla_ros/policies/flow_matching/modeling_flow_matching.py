"""pi0-style flow-matching action expert: a chunk denoised from Gaussian noise in K Euler steps, with RL-ready noise.

Observation features are those of ``film_keypoints`` (FiLM-conditioned conv keypoints trained from scratch, the
frozen MiniLM instruction embedding, proprio). The action expert is an MLP over the features, the flattened chunk
``x_t`` (H * 5) and a sinusoidal embedding of the flow time ``t`` (measured here: a DiT-style residual expert
modulated by adaLN fitted the demonstrations as closely but succeeded in none of 24 episodes after 300 BC steps,
this MLP in 3). Flow matching (rectified flow): ``x_t = (1 - t) x_0 + t a`` with ``x_0 ~ N(0, I)``; the
expert regresses the clean chunk ``a`` (``prediction: sample``; the velocity is then ``(a_hat - x_t) / (1 - t)``) or
the velocity ``a - x_0`` (``prediction: velocity``) from ``x_t``, ``t`` and the features
(:meth:`FlowMatchingPolicy.imitation_loss`, the BC loss), and a chunk is ``x_{k+1} = x_k + v(x_k, k / K) / K`` from
``x_0`` to ``x_K``, executed clamped to [-1, 1].

A flow policy's likelihood of its actions is intractable, so RL scores the randomness that produced them instead;
:meth:`~FlowMatchingPolicy.predict` returns the denoising chain ``x_0 .. x_K`` as ``latents`` and
:meth:`~FlowMatchingPolicy.log_prob` takes it back. ``config.rl_method`` says which randomness:

- ``flow_noise`` (pi-RL's Flow-Noise, ReinFlow): every step adds Gaussian noise ``sigma_k`` (learned, per step and
  chunk entry, state-independent), so the chain is a Markov chain of Gaussians whose log-likelihood, summed over
  steps, is exact and differentiable in the velocity field; RL fine-tunes the expert (and the encoder unless it is
  frozen).
- ``dsrl`` (DSRL): the steps are the deterministic ODE and a small Gaussian policy over the initial noise ``x_0``
  (an MLP on the features, starting as N(0, I), i.e. as the base policy) is what RL trains; the flow policy stays
  frozen. Its log-probs are noise-space densities: they differ from the action density by the flow's log-Jacobian,
  which no trained parameter changes, so PPO's ratios are exact.

Both decompose over the chunk's rows (each row's entries are independent Gaussians at every step), which gives the
per-row log-probs the trainers clip. ``temperature`` scales every noise std; ``deterministic`` takes the mean of
each Gaussian (``x_0 = 0`` or the noise policy's mean, no step noise), and its log-probs are the densities there.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.policies.base import ObsBatch, Policy, PolicyOutput, masked_row_mean, register_policy
from rlvla_ros.policies.film_keypoints.modeling_film_keypoints import FilmObservationEncoding
from rlvla_ros.policies.flow_matching.configuration_flow_matching import RL_METHODS, FlowMatchingConfig
from rlvla_ros.policies.gaussian_chunk import mlp
from rlvla_ros.policies.observations import action_tensor

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, std^2)."""
    return -0.5 * ((x - mean) / std) ** 2 - std.log() - HALF_LOG_2PI


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (N, dim) of flow times ``t`` (N,) in [0, 1]."""
    frequencies = torch.exp(torch.linspace(0.0, math.log(1000.0), dim // 2, device=t.device))
    angles = t[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ActionExpert(nn.Module):
    """Output v(x_t, t | features), or the clean chunk (``prediction: sample``): an MLP over the layer-normalised
    ``[features, x_t, time embedding]`` (N, H * 5), (N,), (N, F) -> (N, H * 5)."""

    def __init__(self, action_dims: int, feature_dim: int, hidden: int, layers: int, time_dim: int) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.net = mlp(feature_dim + action_dims + time_dim, hidden, layers, action_dims)

    def forward(self, x: torch.Tensor, t: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, x, time_embedding(t, self.time_dim)], dim=-1))


@register_policy
class FlowMatchingPolicy(FilmObservationEncoding, Policy):
    """FiLM keypoint features -> flow-matching action expert, a critic, and the noise RL trains; see the module
    docstring."""

    config_class = FlowMatchingConfig
    config: FlowMatchingConfig

    def __init__(self, config: FlowMatchingConfig) -> None:
        super().__init__(config)
        self.chunk_dims = config.chunk_size * ACTION_DIM
        feature_dim = self.build_encoders()
        self.expert = ActionExpert(self.chunk_dims, feature_dim, config.expert_hidden_size, config.expert_layers,
                                   config.time_embedding_dim)
        self.log_noise_std = nn.Parameter(torch.full((config.num_steps, self.chunk_dims),
                                                     math.log(config.init_noise_std)))
        self.noise_policy = mlp(feature_dim, config.head_hidden_size, 2, self.chunk_dims)
        nn.init.zeros_(self.noise_policy[-1].weight)
        nn.init.zeros_(self.noise_policy[-1].bias)
        self.noise_policy_log_std = nn.Parameter(torch.full((self.chunk_dims,), config.noise_policy_init_log_std))
        self.critic = mlp(feature_dim, config.head_hidden_size, 2, 1)
        if config.freeze_encoder:
            self.freeze_encoder()
        self.set_rl_method(config.rl_method)

    # --- what trains -------------------------------------------------------------------------------------------

    def set_rl_method(self, method: str) -> FlowMatchingPolicy:
        """Score (and train) RL through ``method`` (:data:`RL_METHODS`), recorded in the config so checkpoints keep
        it. ``dsrl`` freezes the whole flow policy (encoder, expert, step noise): only the noise-space policy and the
        critic train."""
        if method not in RL_METHODS:
            raise ValueError(f"rl_method must be one of {RL_METHODS}, got {method!r}")
        self.config.rl_method = method
        dsrl = method == "dsrl"
        if dsrl:
            self.freeze_encoder()
        self.expert.requires_grad_(not dsrl)
        self.log_noise_std.requires_grad_(not dsrl)
        self.noise_policy.requires_grad_(dsrl)
        self.noise_policy_log_std.requires_grad_(dsrl)
        return self

    def freeze_log_std(self) -> FlowMatchingPolicy:
        """Keep the exploration noise of the current rl_method as it is (``learn_log_std: false``)."""
        if self.config.rl_method == "dsrl":
            self.noise_policy_log_std.requires_grad_(False)
        else:
            self.log_noise_std.requires_grad_(False)
        return self

    # --- the denoising chain -----------------------------------------------------------------------------------

    def _velocity(self, x: torch.Tensor, t: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """v(x_t, t | features) (N, H * 5) for flow times ``t`` (N,) < 1."""
        output = self.expert(x, t, features)
        if self.config.prediction == "sample":
            return (output - x) / (1.0 - t[:, None])
        return output

    def _times(self, device: torch.device) -> torch.Tensor:
        return torch.arange(self.config.num_steps, device=device, dtype=torch.float32) / self.config.num_steps

    def _step_std(self, temperature: float) -> torch.Tensor:
        """(K, H * 5) std of each step's noise (flow_noise)."""
        low, high = math.log(self.config.min_noise_std), math.log(self.config.max_noise_std)
        return self.log_noise_std.clamp(low, high).exp() * temperature

    def _initial_distribution(self, features: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std (B, H * 5) of x_0: N(0, T^2), or the noise-space policy's under dsrl."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature} (use deterministic=True for the mode)")
        if self.config.rl_method == "dsrl":
            mean = self.noise_policy(features)
            std = self.noise_policy_log_std.exp().expand_as(mean) * temperature
            return mean, std
        zeros = features.new_zeros(features.shape[0], self.chunk_dims)
        return zeros, torch.full_like(zeros, temperature)

    def _sample(self, features: torch.Tensor, deterministic: bool, temperature: float) -> PolicyOutput:
        mean, std = self._initial_distribution(features, temperature)
        x = mean if deterministic else mean + std * torch.randn_like(mean)
        chain = [x]
        noisy = self.config.rl_method == "flow_noise" and not deterministic
        step_std = self._step_std(temperature)
        dt = 1.0 / self.config.num_steps
        for k, t in enumerate(self._times(features.device)):
            x = x + dt * self._velocity(x, t.expand(x.shape[0]), features)
            if noisy:
                x = x + step_std[k] * torch.randn_like(x)
            chain.append(x)
        chain_t = torch.stack(chain, dim=1)  # (B, K + 1, H * 5)
        log_probs, _ = self._chain_log_prob(features, chain_t, temperature)
        actions = x.reshape(-1, self.chunk_size, ACTION_DIM).clamp(-1.0, 1.0)
        return PolicyOutput(actions=actions, log_probs=log_probs, values=self.value_from_features(features),
                            latents=chain_t.flatten(1))

    def _chain_log_prob(
        self, features: torch.Tensor, chain: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row ``(log_prob, entropy)`` (B, H) of a chain (B, K + 1, H * 5) under the current rl_method."""
        n, rows = chain.shape[0], self.chunk_size
        mean0, std0 = self._initial_distribution(features, temperature)
        log_density = gaussian_log_density(chain[:, 0], mean0, std0).reshape(n, rows, ACTION_DIM).sum(-1)
        entropy = (0.5 + HALF_LOG_2PI + std0.log()).reshape(n, rows, ACTION_DIM).sum(-1)
        if self.config.rl_method == "flow_noise":
            steps = self.config.num_steps
            x, following = chain[:, :-1].reshape(n * steps, -1), chain[:, 1:]
            t = self._times(chain.device).repeat(n)
            velocity = self._velocity(x, t, features.repeat_interleave(steps, dim=0))
            means = (x + velocity / steps).reshape(n, steps, -1)
            step_std = self._step_std(temperature).expand_as(means)
            log_density = log_density + gaussian_log_density(following, means, step_std).reshape(
                n, steps, rows, ACTION_DIM).sum((1, 3))
            entropy = entropy + (0.5 + HALF_LOG_2PI + step_std[0].log()).reshape(steps, rows, ACTION_DIM).sum((0, 2))
        return log_density, entropy

    def _chain(self, latents: torch.Tensor | None, batch: int) -> torch.Tensor:
        if latents is None:
            raise ValueError("flow_matching log-probs score the denoising chain drawn with the actions: pass the "
                             "latents predict() returned (episodes from the ROS graph do not carry them; train this "
                             "family on in-process simulated rollouts)")
        expected = (batch, (self.config.num_steps + 1) * self.chunk_dims)
        if tuple(latents.shape) != expected:
            raise ValueError(f"latents must be {expected} (the chain x_0..x_K), got {tuple(latents.shape)}")
        return latents.to(self.device, torch.float32).reshape(batch, self.config.num_steps + 1, self.chunk_dims)

    # --- the Policy API ----------------------------------------------------------------------------------------

    def predict(self, obs_batch: ObsBatch, *, deterministic: bool = False, temperature: float = 1.0) -> PolicyOutput:
        with torch.no_grad():
            return self._sample(self.features(obs_batch), deterministic, temperature)

    def log_prob(
        self, obs_batch: ObsBatch, actions: torch.Tensor, *, temperature: float = 1.0,
        latents: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row ``(log_prob, entropy)`` (B, H) of the chain ``latents`` that produced ``actions`` (see the
        module docstring); the actions are only checked for shape: the chain determines them."""
        return self.log_prob_from_features(self.features(obs_batch), actions, temperature=temperature,
                                           latents=latents)

    def log_prob_from_features(
        self, features: torch.Tensor, actions: torch.Tensor, *, temperature: float = 1.0,
        latents: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`log_prob` on precomputed :meth:`features`."""
        action_tensor(actions, features.shape[0], self.chunk_size, ACTION_DIM, features.device)
        return self._chain_log_prob(features, self._chain(latents, features.shape[0]), temperature)

    def value(self, obs_batch: ObsBatch) -> torch.Tensor:
        return self.value_from_features(self.features(obs_batch))

    def value_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`value` on precomputed :meth:`features`."""
        return self.critic(features).squeeze(-1)

    def imitation_loss(
        self, obs_batch: ObsBatch, actions: torch.Tensor, mask: torch.Tensor, *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The flow-matching loss at ``x_t = (1 - t) x_0 + t a`` (``loss_draws`` draws of t, from pi0's schedule,
        and x_0 ~ N(0, I) per chunk, with ``generator``): the mean squared error of the expert's output against ``a`` (``prediction: sample``) or
        against the velocity ``a - x_0``, over the rows ``mask`` keeps."""
        return self.imitation_loss_from_features(self.features(obs_batch), actions, mask, generator=generator)

    def imitation_loss_from_features(
        self, features: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor, *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """:meth:`imitation_loss` on precomputed :meth:`features`."""
        draws = self.config.loss_draws
        target = action_tensor(actions, features.shape[0], self.chunk_size, ACTION_DIM, features.device)
        target = target.reshape(features.shape[0], -1).repeat_interleave(draws, dim=0)
        features = features.repeat_interleave(draws, dim=0)
        mask = torch.as_tensor(mask, device=features.device).repeat_interleave(draws, dim=0)
        n = features.shape[0]
        noise = torch.randn(target.shape, generator=generator).to(features.device)
        # pi0's schedule, noisy times more often (t = 1 - s, s ~ Beta(1.5, 1), by inverse CDF): near the noise end the
        # chunk can only come from the observation, which is what the encoder must learn.
        t = (1.0 - torch.rand(n, generator=generator) ** (1.0 / 1.5)).to(features.device)
        x_t = (1.0 - t[:, None]) * noise + t[:, None] * target
        regressed = target if self.config.prediction == "sample" else target - noise
        error = (self.expert(x_t, t, features) - regressed) ** 2
        per_row = error.reshape(n, self.chunk_size, ACTION_DIM).mean(-1)
        return masked_row_mean(per_row, mask)
