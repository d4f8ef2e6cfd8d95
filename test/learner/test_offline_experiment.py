"""The offline RL / steering experiment on a tiny budget: every method trains the frozen-encoder policy, and the
results go to the results folder it is given, never into the source package."""

import json
from pathlib import Path

from rlvla_ros.training import offline_experiments
from rlvla_ros.training.offline_experiments import OfflineExperimentConfig, run_experiment


def test_tiny_offline_experiment_writes_its_results_into_the_results_dir(tmp_path):
    config = OfflineExperimentConfig(
        work_dir=str(tmp_path / "work"), results_dir=str(tmp_path / "results"), num_setups=3, failed_per_setup=1,
        image_size=32, bc_steps=2, offline_steps=2, value_steps=2, eval_episodes=1, budget=2, num_envs=2)
    run_experiment(config)
    offline = json.loads((tmp_path / "results" / "offline_lift" / "results.json").read_text())
    steering = json.loads((tmp_path / "results" / "steering_lift" / "results.json").read_text())
    assert set(offline["success_rate"]) == {"bc", "calql", "recap"} and offline["evaluation"]["episodes"] == 3
    assert set(steering["bc"]) == {"without_steering", "with_steering"}
    assert (tmp_path / "results" / "offline_lift" / "success.png").stat().st_size > 1000
    package = Path(offline_experiments.__file__).parent
    assert not [path.name for path in package.iterdir() if path.is_dir() and path.name != "__pycache__"]
