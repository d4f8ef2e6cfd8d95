"""Fine-tuning algorithms behind one :class:`Trainer` API, and the registry StartFineTune looks names up in.

Online: ``ppo`` and ``grpo`` (rollouts from the in-process simulation or the live ROS graph), and ``dsrl`` (PPO in the
noise space of a frozen flow policy). Offline: ``bc`` from
recorded bags, ``calql`` (Cal-QL + BC), ``recap`` (advantage-conditioned policy) and ``value`` (chunk Q-function for
test-time steering). Each entry maps the request's ``algorithm`` to its trainer class.
"""

from rlvla_ros.algorithms.base import (
    JobContext,
    Trainer,
    TrainerConfig,
    apply_overrides,
    parse_overrides_yaml,
    progress_fraction,
)
from rlvla_ros.algorithms.bc import BcConfig, BcTrainer
from rlvla_ros.algorithms.calql import CalQlConfig, CalQlTrainer
from rlvla_ros.algorithms.dsrl import DsrlConfig, DsrlTrainer
from rlvla_ros.algorithms.grpo import GrpoConfig, GrpoTrainer
from rlvla_ros.algorithms.online import OnlineConfig, OnlineTrainer, RolloutSource
from rlvla_ros.algorithms.ppo import PpoConfig, PpoTrainer
from rlvla_ros.algorithms.recap import RecapConfig, RecapTrainer
from rlvla_ros.algorithms.value import ValueConfig, ValueTrainer

ALGORITHMS: dict[str, type[Trainer]] = {
    BcTrainer.name: BcTrainer,
    PpoTrainer.name: PpoTrainer,
    GrpoTrainer.name: GrpoTrainer,
    DsrlTrainer.name: DsrlTrainer,
    CalQlTrainer.name: CalQlTrainer,
    RecapTrainer.name: RecapTrainer,
    ValueTrainer.name: ValueTrainer,
}
"""Algorithm name -> trainer class."""

__all__ = [
    "ALGORITHMS",
    "BcConfig",
    "BcTrainer",
    "CalQlConfig",
    "CalQlTrainer",
    "DsrlConfig",
    "DsrlTrainer",
    "GrpoConfig",
    "GrpoTrainer",
    "JobContext",
    "OnlineConfig",
    "OnlineTrainer",
    "PpoConfig",
    "PpoTrainer",
    "RecapConfig",
    "RecapTrainer",
    "RolloutSource",
    "Trainer",
    "TrainerConfig",
    "ValueConfig",
    "ValueTrainer",
    "apply_overrides",
    "parse_overrides_yaml",
    "progress_fraction",
]
