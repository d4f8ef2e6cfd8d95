"""The shipped parameter files set only real parameters, with values the nodes accept."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from rlvla_ros.nodes.episode_manager import EpisodeManagerConfig
from rlvla_ros.nodes.recorder import RecorderConfig
from rlvla_ros.nodes.reward import RewardConfig
from rlvla_ros.sim import TASKS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def parameters(name: str) -> dict:
    document = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    (section,) = document.values()
    return section["ros__parameters"]


@pytest.mark.parametrize("name, config_type", [("reward", RewardConfig), ("episode_manager", EpisodeManagerConfig),
                                               ("recorder", RecorderConfig)])
def test_parameter_file_matches_the_node_config(name, config_type):
    values = parameters(name)
    assert set(values) <= {f.name for f in dataclasses.fields(config_type)}
    config_type(**values)  # validates


def test_episode_manager_time_limits_are_the_simulator_task_limits():
    values = parameters("episode_manager")
    assert values["max_steps"] == [TASKS[task].max_steps for task in values["tasks"]]


def test_episode_manager_refuses_a_negative_stall_timeout():
    with pytest.raises(ValueError, match="stall_timeout_s must be >= 0"):
        EpisodeManagerConfig(stall_timeout_s=-1.0)
