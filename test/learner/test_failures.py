"""Failure kinds from the privileged sim state, checked with scripted behaviours whose kind is known."""

import json

import numpy as np
import pytest

from rlvla_ros.sim.env import TabletopEnv
from rlvla_ros.sim.experts import PickAndPlaceExpert
from rlvla_ros.training.failures import FAILURE_KINDS, episode_failure, failure_counts


def named_cube_expert(env, observation):
    return env.expert_action()[None]


def other_cube_expert():
    experts = {}

    def choose(env, observation):
        expert = experts.setdefault(id(env.task), PickAndPlaceExpert(1, env.ee_config))
        return expert.act(env.sim, env.ee_pose())[None]

    return choose


def stay_still(env, observation):
    return np.zeros((4, 5), np.float32)


@pytest.fixture(scope="module")
def env():
    env = TabletopEnv(task=None, image_size=32)
    yield env
    env.close()


def test_the_named_cube_expert_succeeds_and_the_other_cube_expert_picks_the_wrong_cube(env):
    assert episode_failure(env, "lift", "id", 1, named_cube_expert) == "success"
    assert episode_failure(env, "lift", "id", 1, other_cube_expert()) == "wrong_cube"
    assert episode_failure(env, "lift", "id", 1, stay_still) == "never_reached"


def test_counts_list_every_kind_and_add_up_to_the_episodes():
    counts = failure_counts(stay_still, "place_side", ["id", "ood_distractor"], range(3), image_size=32)
    assert counts == {split: {kind: 3 if kind == "never_reached" else 0 for kind in FAILURE_KINDS}
                      for split in ("id", "ood_distractor")}


def test_a_task_that_names_two_cubes_is_refused(env):
    with pytest.raises(ValueError, match="names one cube.*got 'stack'"):
        episode_failure(env, "stack", "id", 0, stay_still)


def test_the_command_line_prints_the_counts_of_a_checkpoint(tmp_path, capsys):
    from rlvla_ros.policies import new_policy
    from rlvla_ros.training.failures import main

    new_policy("film_keypoints", image_size=32).save_pretrained(tmp_path / "policy")
    assert main([str(tmp_path / "policy"), "--splits", "id", "ood_color", "--episodes", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["seeds"] == "5000..5001" and set(printed["counts"]) == {"id", "ood_color"}
    assert all(sum(kinds.values()) == 2 for kinds in printed["counts"].values())


@pytest.mark.parametrize(("arguments", "message"), [
    (["--episodes", "0"], "--episodes must be >= 1, got 0"),
    ([], "is not a policy checkpoint"),
])


def test_the_command_line_refuses_bad_arguments_with_the_reason(tmp_path, capsys, arguments, message):
    from rlvla_ros.training.failures import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing"), *arguments])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
