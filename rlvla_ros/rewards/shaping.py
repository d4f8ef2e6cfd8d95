"""Dense reward shaping, kept apart from the sparse success reward.

Every term here is potential-based (Ng, Harada & Russell 1999): ``F = discount * phi(s') - phi(s)``. Such terms
telescope over an episode, so they speed up learning without changing which policy is optimal. Potentials:

- a task's privileged progress (:meth:`rlvla_ros.sim.tasks.Task.progress_potential`: the sim's dense reward);
- a success classifier's probability (the ``reward`` node's shaping on the live graph).
"""

from __future__ import annotations

from rlvla_ros.contract import potential_shaping


class PotentialShaper:
    """Turns a stream of per-observation potentials into per-transition shaping terms, per episode.

    ``step(episode_id, phi)`` returns ``weight * (discount * phi - phi_previous)`` for the transition into this
    observation, or None for the first observation of an episode (no transition yet).
    """

    def __init__(self, weight: float = 1.0, discount: float = 0.99) -> None:
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        self.weight = weight
        self.discount = discount
        self._episode_id: str | None = None
        self._potential = 0.0

    def step(self, episode_id: str, potential: float) -> float | None:
        """Shaping term for the transition that led to an observation with potential ``potential``."""
        previous, first = self._potential, episode_id != self._episode_id
        self._episode_id, self._potential = episode_id, potential
        return None if first else self.weight * potential_shaping(previous, potential, self.discount)
