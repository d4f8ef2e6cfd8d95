"""StartFineTune overrides: applied to the trainer's config, unknown names and wrong types refused."""

import pytest

from rlvla_ros.algorithms import ALGORITHMS, GrpoConfig, PpoConfig, apply_overrides, parse_overrides_yaml


def test_registry_has_the_online_and_bc_algorithms():
    assert {"bc", "ppo", "grpo"} <= set(ALGORITHMS)
    for name, trainer in ALGORITHMS.items():
        assert trainer.name == name


def test_overrides_set_fields_and_accept_ints_for_floats():
    config = apply_overrides(GrpoConfig, parse_overrides_yaml("{learning_rate: 1, group_size: 4, tasks: [push]}"))
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.group_size == 4 and config.tasks == ["push"]
    assert config.eps_low == 0.2 and config.eps_high == 0.28


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{group_sise: 4}", "unknown GrpoConfig overrides \\['group_sise'\\]; valid: .*group_size"),
        ("{group_size: 2.5}", "must be an integer"),
        ("{group_size: true}", "must be an integer"),
        ("{tasks: lift}", "must be a list"),
        ("{tasks: [fly]}", "unknown task 'fly'"),
        ("{group_size: 1}", "group_size must be >= 2"),
        ("{learn_log_std: 'no'}", "must be a bool"),
        ("{anneal_lr: 1}", "must be a bool"),
        ("{reward_mode: shaped}", "reward_mode must be one of \\('sparse', 'dense'\\), got 'shaped'"),
        ("{encoder_lr_scale: 0}", "encoder_lr_scale must be > 0, got 0.0"),
        ("{reward_mode: dense}", "grpo ranks episodes by their binary success: reward_mode must be sparse"),
        ("{learning_rate: .nan}", "learning_rate must be finite, got nan"),
        ("{learning_rate: -.inf}", "learning_rate must be finite, got -inf"),
        ("{learning_rate: 0.0}", "learning_rate must be in \\(0, 1\\], got 0.0"),
        ("{time_budget_s: .nan}", "time_budget_s must be finite, got nan"),
        ("{time_budget_s: -5}", "time_budget_s must be >= 0, got -5.0"),
        ("{seed: 18446744073709551615}", "seed must be at most 2147483647, got 18446744073709551615"),
        ("{eval_episodes: 4294967296}", "eval_episodes must be at most 2147483647"),
        ("{learning_rate: 3}", "learning_rate must be in \\(0, 1\\], got 3.0"),
        ("{encoder_lr_scale: 2600684422}", "encoder_lr_scale must be at most 2147483647, got 2600684422.0"),
        ("{num_envs: 257}", "num_envs must be <= 256 and rollout_workers <= 64, got 257 and 0"),
        ("{chunk_size: 65}", "chunk_size must be in \\[1, 64\\], got 65"),
        ("[1, 2]", "must be a mapping"),
        ("{a: [", "not valid YAML"),
    ],
)
def test_bad_overrides_are_refused_with_a_clear_message(text, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(GrpoConfig, parse_overrides_yaml(text))


def test_a_negative_critic_warmup_is_refused():
    with pytest.raises(ValueError, match="critic_warmup_iterations must be >= 0, got -1"):
        apply_overrides(PpoConfig, parse_overrides_yaml("{critic_warmup_iterations: -1}"))


def test_a_non_numeric_target_kl_is_refused():
    with pytest.raises(ValueError, match="override 'target_kl' must be a number, got 'fast'"):
        apply_overrides(PpoConfig, parse_overrides_yaml("{target_kl: fast}"))


def test_ppo_accepts_the_dense_sim_reward():
    assert apply_overrides(PpoConfig, parse_overrides_yaml("{reward_mode: dense}")).reward_mode == "dense"


def test_empty_overrides_give_the_defaults():
    assert parse_overrides_yaml("") == {} and parse_overrides_yaml("  \n") == {}
    assert apply_overrides(GrpoConfig, {}) == GrpoConfig()
