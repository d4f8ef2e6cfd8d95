"""DSRL (diffusion steering): PPO on a Gaussian policy in the initial-noise space of a frozen flow policy.

The flow policy (``flow_matching``) maps initial noise ``x_0`` to a chunk deterministically once its step noise is
off; DSRL leaves that map, and the encoder, as BC trained them and learns where to start it: a small Gaussian
policy ``x_0 ~ N(mu(features), sigma)`` that starts as the base policy's N(0, I). The update is :class:`PpoTrainer`'s
on the noise-space log-probs (:class:`~rlvla_ros.policies.flow_matching.FlowMatchingPolicy` with
``rl_method: dsrl``); features are cached because the encoder is frozen. DSRL's paper trains the noise policy with
SAC; this is its on-policy variant, so it shares the rollouts, critic and diagnostics of chunk PPO.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlvla_ros.algorithms.base import JobContext
from rlvla_ros.algorithms.ppo import PpoConfig, PpoTrainer
from rlvla_ros.policies import Policy


@dataclass
class DsrlConfig(PpoConfig):
    """Hyper-parameters of DSRL: those of chunk PPO, with the flow policy's encoder frozen."""

    freeze_encoder: bool = True
    """DSRL keeps the whole flow policy as BC left it; the noise-space policy and the critic train on its cached
    features."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.freeze_encoder:
            raise ValueError("dsrl trains in the noise space of a frozen flow policy: freeze_encoder must stay true")


class DsrlTrainer(PpoTrainer):
    """PPO in the noise space of a frozen flow-matching policy; see the module docstring."""

    name = "dsrl"
    config_class = DsrlConfig

    def start_policy(self, context: JobContext) -> Policy:
        policy = super().start_policy(context)
        if not hasattr(policy, "set_rl_method"):
            raise ValueError(f"dsrl steers the initial noise of a flow policy (flow_matching); "
                             f"{type(policy).__name__} has none")
        return policy.set_rl_method("dsrl")
