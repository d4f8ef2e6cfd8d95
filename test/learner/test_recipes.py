"""Recipes: the shipped ones load, bad ones are refused at load with what is wrong, and the learner's jobs read them."""

import dataclasses
import math

import pytest
import yaml

from rlvla_ros.algorithms import ALGORITHMS
from rlvla_ros.training.experiments import ALGORITHM_RECIPES
from rlvla_ros.training.jobs import JobRequest, prepare_job
from rlvla_ros.training.recipes import RECIPES_DIR, load_recipe, recipe_path


def write_recipe(tmp_path, name="custom", base="demo_quick", **changes):
    data = yaml.safe_load((RECIPES_DIR / f"{base}.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["demo", "demo_quick", "ppo_end_to_end", "grpo_lift"])
def test_every_shipped_recipe_loads_with_counts_for_budgets(name):
    recipe = load_recipe(name)
    assert recipe.name == name and recipe.path == str(RECIPES_DIR / f"{name}.yaml")
    assert recipe.rl_iterations > 0 and recipe.eval_episodes > 0
    assert "time_budget_s" not in recipe.rl_overrides  # the budget is the iteration count


def test_the_demo_recipe_evaluates_100_episodes_per_split():
    assert load_recipe("demo").eval_episodes == 100


def test_a_recipe_file_is_found_by_path_too(tmp_path):
    path = write_recipe(tmp_path)
    assert recipe_path(str(path)) == path.resolve() and load_recipe(str(path)).name == "custom"


def test_an_unknown_recipe_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown recipe 'nope'; known: .*demo_quick"):
        load_recipe("nope")


@pytest.mark.parametrize(("changes", "message"), [
    ({"rl_budget_s": 480.0}, r"unknown keys \['rl_budget_s'\]"),
    ({"rl_iterations": None}, r"missing keys \['rl_iterations'\]"),
    ({"rl_iterations": "120"}, "rl_iterations must be an integer, got '120'"),
    ({"rl_iterations": 2.5}, "rl_iterations must be an integer"),
    ({"eval_episodes": True}, "eval_episodes must be an integer"),
    ({"eval_episodes": 0}, "eval_episodes must be > 0"),
    ({"tasks": "lift"}, "tasks must be a list of strings"),
    ({"tasks": []}, "tasks must name at least one task"),
    ({"rl_overrides": {"learning_rate": math.nan}}, "rl_overrides.learning_rate must be a finite number, got nan"),
    ({"bc_overrides": {"batch_size": math.inf}}, "bc_overrides.batch_size must be a finite number"),
    ({"rl_overrides": {"learning_rate": "3e-4"}}, "the ppo job: override 'learning_rate' must be a number"),
    ({"rl_overrides": {"lerning_rate": 0.1}}, r"the ppo job: unknown .*\['lerning_rate'\]"),
    ({"rl_overrides": {"time_budget_s": 0.0}}, "time_budget_s is a safety cap and must be > 0"),
    ({"rl_algorithm": "sac"}, "unknown rl_algorithm 'sac'"),
])
def test_a_bad_recipe_is_refused_at_load_naming_the_file_and_the_fault(tmp_path, changes, message):
    path = write_recipe(tmp_path, **changes)
    with pytest.raises(ValueError, match=message) as error:
        load_recipe(str(path))
    assert str(path) in str(error.value)


def test_a_recipe_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_recipe(str(path))


def test_a_learner_job_takes_steps_and_overrides_from_the_recipe_under_its_own(tmp_path):
    recipe = load_recipe("demo")
    trainer, context = prepare_job(JobRequest("ppo", [], 0, "{recipe: demo, eval_episodes: 3}"), tmp_path / "job")
    assert isinstance(trainer, ALGORITHMS["ppo"]) and context.steps == recipe.rl_iterations == 120
    assert context.config.learning_rate == recipe.rl_overrides["learning_rate"]
    assert context.config.freeze_encoder is recipe.rl_overrides["freeze_encoder"] is False
    assert context.config.eval_episodes == 3  # the request's own wins
    _, context = prepare_job(JobRequest("ppo", [], 7, "{recipe: demo}"), tmp_path / "job2")
    assert context.steps == 7  # explicit steps win too


def test_a_learner_job_the_recipe_has_no_settings_for_is_refused(tmp_path):
    with pytest.raises(ValueError, match="recipe 'demo_quick' has no 'grpo' job"):
        prepare_job(JobRequest("grpo", [], 0, "{recipe: demo_quick}"), tmp_path / "job")
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        prepare_job(JobRequest("ppo", [], 0, "{recipe: nope}"), tmp_path / "job")


@pytest.mark.parametrize("algorithm", sorted(ALGORITHM_RECIPES))
def test_the_experiments_algorithm_option_runs_a_recipe_of_that_algorithm(algorithm):
    recipe = load_recipe(ALGORITHM_RECIPES[algorithm])
    assert recipe.rl_algorithm == algorithm
    steps, overrides = recipe.job(algorithm)
    assert steps == recipe.rl_iterations and set(overrides) <= {f.name for f in dataclasses.fields(
        ALGORITHMS[algorithm].config_class)}
