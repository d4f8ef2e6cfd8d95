"""The BC -> eval -> RL -> eval experiment on a tiny budget writes its results and figures."""

import json

import pytest
import yaml

from rlvla_ros.training.experiments import ExperimentConfig, main, run_experiment
from rlvla_ros.training.recipes import RECIPES_DIR, load_recipe


RL_OVERRIDES = {
    "grpo": {"group_size": 2, "groups_per_iteration": 1, "max_sampling_rounds": 1, "eval_episodes": 1},
    # A learning rate whose shortest repr has no dot (3e-05): it must reach the job as a number.
    "ppo": {"episodes_per_iteration": 2, "minibatch_size": 16, "eval_episodes": 2, "learning_rate": 3.0e-5},
}


def tiny_experiment(tmp_path, algorithm: str, processes: int = 1, **fields) -> ExperimentConfig:
    recipe = yaml.safe_load((RECIPES_DIR / "demo_quick.yaml").read_text())
    recipe.update(demo_episodes=2, image_size=32, bc_steps=10, rl_algorithm=algorithm, rl_iterations=2,
                  rl_overrides=RL_OVERRIDES[algorithm], eval_episodes=2)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    return ExperimentConfig(
        recipe=load_recipe(str(tmp_path / "tiny.yaml")), output_dir=str(tmp_path / "results"),
        work_dir=str(tmp_path / "work"), eval_splits=["id", "ood_color"], num_envs=2, rl_processes=processes,
        **fields,
    )


@pytest.mark.parametrize("algorithm, processes", [("grpo", 1), ("ppo", 2)])
def test_tiny_experiment_writes_results_curves_and_comparison(tmp_path, algorithm, processes):
    results = run_experiment(tiny_experiment(tmp_path, algorithm, processes))
    saved = json.loads((tmp_path / "results" / "results.json").read_text())
    assert saved["expert_success_rate"] == 1.0
    assert set(saved["bc"]["success"]["lift"]) == {"id", "ood_color"}
    # The budget is the recipe's iteration count: the run makes exactly that many updates.
    assert saved["rl"]["iterations"] == 2 and saved["rl"]["periodic_eval"]["curve"][0]["iteration"] == 0
    assert saved["rl"]["processes"] == processes
    assert ("2 processes x" in saved["rl"]["training_episodes"]) == (processes == 2)
    improvement = saved["improvement_points"]["lift"]["id"]
    assert improvement == 100.0 * (results["rl"]["success"]["lift"]["id"] - results["bc"]["success"]["lift"]["id"])
    table = saved["table"]  # Wilson per split and pooled OOD, Newcombe for RL - BC
    assert table["bc"]["episodes"] == 2 and {"id_ci95", "ood_color_ci95", "ood_ci95"} <= set(table["bc"])
    assert table["rl_minus_bc"]["id_ci95"][0] <= improvement / 100.0 <= table["rl_minus_bc"]["id_ci95"][1]
    assert table["bc"]["id_ci95"][0] <= saved["bc"]["success"]["lift"]["id"] <= table["bc"]["id_ci95"][1]
    final = saved["rl"]["final_checkpoint"]
    assert final["step"] == saved["rl"]["iterations"] >= saved["rl"]["best_eval_step"]
    assert final["improvement_points"]["lift"]["ood_color"] == pytest.approx(
        100.0 * (final["success"]["lift"]["ood_color"] - results["bc"]["success"]["lift"]["ood_color"]))
    for name in ("bc_learning_curve.png", f"{algorithm}_learning_curve.png", f"{algorithm}_success_curve.png",
                 "success_by_split.png"):
        assert (tmp_path / "results" / name).stat().st_size > 1000
    assert not (tmp_path / "results" / "demos").exists()  # heavy files stay in work_dir
    assert (tmp_path / "work" / algorithm / "best" / "model.safetensors").is_file()


def test_an_experiment_starts_from_an_earlier_bc_job_without_recording_or_training_bc_again(tmp_path):
    first = run_experiment(tiny_experiment(tmp_path / "first", "ppo"))
    again = run_experiment(tiny_experiment(tmp_path / "again", "ppo", bc_job_dir=str(tmp_path / "first/work/bc")))
    assert again["bc"]["reused"] and again["bc"]["checkpoint"] == first["bc"]["checkpoint"]
    assert again["bc"]["success"] == first["bc"]["success"]  # the same checkpoint on the same seeds
    assert again["bc"]["final_metrics"] == first["bc"]["final_metrics"]
    assert not (tmp_path / "again/work/demos").exists() and not (tmp_path / "again/work/bc").exists()
    assert (tmp_path / "again/work/ppo/best/model.safetensors").is_file()


def test_a_bc_job_dir_that_is_not_a_finished_bc_job_is_refused_before_anything_runs(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    with pytest.raises(SystemExit):
        main(["--recipe", "demo_quick", "--bc-job-dir", str(tmp_path / "half"), "--work-dir", str(tmp_path / "work"),
              "--output-dir", str(tmp_path / "results")])
    assert f"bc_job_dir {tmp_path / 'half'} is not a finished BC job" in capsys.readouterr().err
    assert not (tmp_path / "work").exists() and not (tmp_path / "results").exists()


def test_an_experiment_needs_at_least_one_rl_process(tmp_path):
    with pytest.raises(ValueError, match="rl_processes must be >= 1 and eval_workers >= 0, got 0 and 0"):
        ExperimentConfig(recipe=load_recipe("demo_quick"), output_dir=str(tmp_path / "results"), rl_processes=0)


def test_the_panda_experiment_trains_bc_from_a_lerobot_export_and_reports_intervals(tmp_path):
    recipe = yaml.safe_load((RECIPES_DIR / "panda_pick_cube.yaml").read_text())
    recipe.update(demo_episodes=2, image_size=32, bc_steps=4, rl_iterations=1, eval_episodes=1,
                  rl_overrides={**RL_OVERRIDES["ppo"], "eval_episodes": 1, "num_envs": 2, "rollout_workers": 0})
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    config = ExperimentConfig(
        recipe=load_recipe(str(tmp_path / "tiny.yaml")), output_dir=str(tmp_path / "results"),
        work_dir=str(tmp_path / "work"), eval_splits=["id", "ood_lighting"], num_envs=2, eval_workers=1,
        final_eval=False, bc_from_lerobot=True,
    )
    results = run_experiment(config)
    assert results["expert_success_rate"] == 1.0
    assert results["demos"]["format"] == "lerobot v3.0"
    assert (tmp_path / "work" / "demos-lerobot" / "meta" / "info.json").is_file()
    assert json.loads((tmp_path / "work" / "bc" / "best" / "config.json").read_text())["proprio_dim"] == 8
    table = results["table"]
    rates = {"bc": results["bc"]["success"], "rl": results["rl"]["success"]}
    final = results["rl"]["final_checkpoint"]
    # Without final_eval the last checkpoint is evaluated only when it is the best one (then it is the rl row).
    last_is_best = final["step"] == results["rl"]["best_eval_step"]
    assert ("rl_final" in table) == (final["success"] is not None) == last_is_best
    for name, success in rates.items():
        rate = success["pick_cube"]["id"]
        assert table[name]["id"] == rate and table[name]["episodes"] == 1
        assert set(table[name]) == {"id", "ood_lighting", "ood", "episodes", "id_ci95", "ood_lighting_ci95", "ood_ci95"}
        assert table[name]["id_ci95"] == ([0.0, 0.793] if rate == 0 else [0.207, 1.0])  # Wilson, 1 episode
    assert table["rl_minus_bc"]["id"] == table["rl"]["id"] - table["bc"]["id"]
    assert json.loads((tmp_path / "results" / "results.json").read_text())["table"] == table


def test_an_experiments_splits_belong_to_its_robot(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'ood_distractor' for the panda tasks"):
        ExperimentConfig(recipe=load_recipe("panda_pick_cube"), eval_splits=["id", "ood_distractor"])
    assert ExperimentConfig(recipe=load_recipe("panda_pick_cube")).eval_splits == [
        "id", "ood_position", "ood_color", "ood_lighting"]


def test_a_recipe_key_of_another_algorithm_stops_the_experiment_before_it_records_anything(tmp_path, capsys):
    recipe = yaml.safe_load((RECIPES_DIR / "ppo_end_to_end.yaml").read_text())
    recipe["rl_overrides"]["group_size"] = 8  # a GRPO setting in a PPO run
    (tmp_path / "mixed.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(SystemExit):
        main(["--recipe", str(tmp_path / "mixed.yaml"), "--work-dir", str(tmp_path / "work"),
              "--output-dir", str(tmp_path / "results")])
    assert "the ppo job: unknown PpoConfig overrides ['group_size']" in capsys.readouterr().err
    assert not (tmp_path / "work").exists() and not (tmp_path / "results").exists()
