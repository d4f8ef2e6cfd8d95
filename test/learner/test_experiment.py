"""The BC -> eval -> RL -> eval experiment on a tiny budget writes its results and figures."""

import json

from rlvla_ros.training.experiments import ExperimentConfig, run_experiment


def test_tiny_experiment_writes_results_curves_and_comparison(tmp_path):
    config = ExperimentConfig(
        output_dir=str(tmp_path / "results"), work_dir=str(tmp_path / "work"), num_demos=2, image_size=32,
        bc_steps=10, rl_budget_s=1.0, eval_splits=["id", "ood_color"], eval_episodes=2, num_envs=2,
        rl_overrides={"group_size": 2, "groups_per_iteration": 1, "max_sampling_rounds": 1, "eval_episodes": 1},
    )
    results = run_experiment(config)
    saved = json.loads((tmp_path / "results" / "results.json").read_text())
    assert saved["expert_success_rate"] == 1.0
    assert set(saved["bc"]["success"]["lift"]) == {"id", "ood_color"}
    assert saved["rl"]["iterations"] >= 1 and saved["rl"]["periodic_eval"]["curve"][0]["iteration"] == 0
    improvement = saved["improvement_points"]["lift"]["id"]
    assert improvement == 100.0 * (results["rl"]["success"]["lift"]["id"] - results["bc"]["success"]["lift"]["id"])
    for name in ("bc_learning_curve.png", "grpo_learning_curve.png", "grpo_success_curve.png",
                 "success_by_split.png"):
        assert (tmp_path / "results" / name).stat().st_size > 1000
    assert not (tmp_path / "results" / "demos").exists()  # heavy files stay in work_dir
    assert (tmp_path / "work" / "grpo" / "best" / "model.safetensors").is_file()
