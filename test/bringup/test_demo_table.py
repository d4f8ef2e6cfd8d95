"""The demo's table and JSON last line: rates and differences with 95 % intervals, from the recipe's episode count."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from rlvla_ros.cli.demo import DemoConfig, TABLE_KEYS, format_table, success_table
from rlvla_ros.training.recipes import RECIPES_DIR, load_recipe

REPO = pathlib.Path(__file__).resolve().parents[2]
OOD = ("ood_color", "ood_position", "ood_distractor", "ood_visual")


def rates(id_rate, ood_rates):
    return {"id": id_rate, **dict(zip(OOD, ood_rates))}


@pytest.fixture
def table():
    return success_table({"bc": rates(0.42, [0.1, 0.2, 0.2, 0.02]), "rl": rates(0.61, [0.2, 0.3, 0.2, 0.06]),
                          "rl_steering": rates(0.61, [0.2, 0.3, 0.2, 0.06])}, episodes=100)


def test_the_json_keeps_the_old_keys_and_adds_intervals_and_differences(table):
    assert tuple(table) == TABLE_KEYS == ("bc", "rl", "rl_steering", "rl_minus_bc", "steering_minus_rl")
    for name in ("bc", "rl", "rl_steering"):
        assert set(table[name]) == {"id", "ood", "episodes", "id_ci95", "ood_ci95"} and table[name]["episodes"] == 100
    for name in ("rl_minus_bc", "steering_minus_rl"):
        assert set(table[name]) == {"id", "id_ci95", "ood", "ood_ci95"}
    json.loads(json.dumps(table))


def test_rates_carry_wilson_intervals_and_ood_pools_its_four_splits(table):
    assert table["bc"]["id"] == 0.42 and table["bc"]["id_ci95"] == [0.328, 0.518]  # Wilson, 42 of 100
    assert table["bc"]["ood"] == 0.13 and table["bc"]["ood_ci95"] == [0.101, 0.167]  # 52 of 400 episodes


def test_differences_carry_newcombe_intervals(table):
    # 61/100 - 42/100, Newcombe's hybrid score interval (as in the 100-episode re-evaluation)
    assert table["rl_minus_bc"]["id"] == 0.19 and table["rl_minus_bc"]["id_ci95"] == [0.051, 0.319]
    assert table["steering_minus_rl"]["id"] == 0.0
    low, high = table["steering_minus_rl"]["id_ci95"]
    assert low == -high < 0


def test_the_printed_table_shows_every_rate_and_difference_with_its_interval(table):
    text = format_table(table)
    assert "BC                0.42     [0.33, 0.52]" in text
    assert "RL - BC          +0.19   [+0.05, +0.32]" in text
    assert text.splitlines()[-1].startswith("steering - RL")


def test_the_demo_config_is_the_recipe_and_refuses_one_without_the_steering_stage(tmp_path):
    assert DemoConfig(load_recipe("demo")).recipe.rl_iterations == 120
    data = yaml.safe_load((RECIPES_DIR / "demo_quick.yaml").read_text())
    del data["value_steps"]
    (tmp_path / "no_steering.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="the demo needs value_steps > 0"):
        DemoConfig(load_recipe(str(tmp_path / "no_steering.yaml")))


def test_rlvla_demo_refuses_a_bad_recipe_before_starting_anything(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rlvla_ros.cli", "demo", "--recipe", "nope", "--output-dir",
                             str(tmp_path / "out")], cwd=REPO, env=os.environ, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "rlvla demo: unknown recipe 'nope'" in result.stdout
    assert not (tmp_path / "out").exists()
