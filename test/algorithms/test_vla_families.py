"""RL and BC on every VLA family: PPO and GRPO on action tokens (token_vla, hf_vlm with LoRA), PPO / GRPO through
Flow-Noise and DSRL on the flow-matching expert; latents travel from rollouts to the update."""

import json

import numpy as np
import pytest
import torch

from rlvla_ros.algorithms import ALGORITHMS, apply_overrides
from rlvla_ros.algorithms.base import JobContext
from rlvla_ros.algorithms.segments import chunk_segments
from rlvla_ros.data import EpisodeRecord
from rlvla_ros.policies import (
    FlowMatchingConfig,
    FlowMatchingPolicy,
    HfVlmConfig,
    HfVlmPolicy,
    TokenVla,
    TokenVlaConfig,
    load_policy,
)
from rlvla_ros.policies.hf_vlm import build_tiny_vlm
from rlvla_ros.training.jobs import JobRequest, prepare_job, run_job

from .conftest import TOY_IMAGE_SIZE


# Token policies get 16 bins: with 256, every row's ratio multiplies five dimensions' worth of near-uniform token
# noise, most of the minibatch leaves PPO's clip range and a dozen iterations move the toy's success little. The flow
# policy gets step noise of 0.3 and (under PPO) 20 iterations: its Flow-Noise gradient sees only the step noise,
# while x_0's, which it cannot change, decides most of the toy's outcomes.
NUM_BINS = 16


def _token_vla() -> TokenVla:
    return TokenVla(TokenVlaConfig(chunk_size=2, image_size=TOY_IMAGE_SIZE, vision_hidden_size=32, vision_layers=1,
                                   vision_heads=2, vision_intermediate_size=64, hidden_size=64, num_layers=2,
                                   num_heads=2, num_kv_heads=1, intermediate_size=128, value_hidden_size=32,
                                   num_bins=NUM_BINS))


def _flow(prediction: str = "sample") -> FlowMatchingPolicy:
    return FlowMatchingPolicy(FlowMatchingConfig(chunk_size=2, image_size=TOY_IMAGE_SIZE, channels=[8, 8],
                                                 strides=[2, 1], expert_hidden_size=32, expert_layers=2, num_steps=4,
                                                 head_hidden_size=32, init_noise_std=0.3, prediction=prediction))


@pytest.fixture(scope="module")
def start_checkpoints(tmp_path_factory) -> dict:
    """A tiny start policy of each family, saved as the online jobs' init_checkpoint."""
    root = tmp_path_factory.mktemp("families")
    torch.manual_seed(0)
    vlm = build_tiny_vlm("llava", root / "llava")
    # DSRL steers the initial noise, so its flow must map noise to different chunks: an untrained velocity field
    # passes x_0 through, while a sample-predicting expert's last step replaces x_t by its own output.
    policies = {"token_vla": _token_vla(), "flow_matching": _flow(), "flow_matching_velocity": _flow("velocity"),
                "hf_vlm": HfVlmPolicy(HfVlmConfig(base_model_dir=str(vlm), chunk_size=2, image_size=TOY_IMAGE_SIZE,
                                                  decoding="parallel", lora_rank=4, num_bins=NUM_BINS))}
    for name, policy in policies.items():
        policy.save_pretrained(root / name)
    return {name: str(root / name) for name in policies}


@pytest.mark.parametrize(("algorithm", "family", "iterations"), [
    ("ppo", "token_vla", 12), ("grpo", "token_vla", 12), ("ppo", "hf_vlm", 12), ("grpo", "hf_vlm", 12),
    ("ppo", "flow_matching", 20), ("grpo", "flow_matching", 12), ("dsrl", "flow_matching_velocity", 12),
])
def test_online_rl_raises_success_of_the_toy_task_for_every_family(tmp_path, toy_source, start_checkpoints,
                                                                    algorithm, family, iterations):
    batch = ({"group_size": 8, "groups_per_iteration": 4, "max_sampling_rounds": 2, "temperature": 1.0}
             if algorithm == "grpo" else {"episodes_per_iteration": 32, "update_epochs": 4, "minibatch_size": 16})
    config = apply_overrides(ALGORITHMS[algorithm].config_class, {
        "init_checkpoint": start_checkpoints[family], "eval_episodes": 1, "num_envs": 1, "eval_interval": 100,
        "learning_rate": 3e-3, **batch})
    context = JobContext(config=config, output_dir=tmp_path / algorithm, steps=iterations, rollout_source=toy_source,
                         tensorboard=False)
    run_job(ALGORITHMS[algorithm](), context)
    rates = [value for _, value in context.history["rollout/success_rate"]]
    assert np.mean(rates[-3:]) >= rates[0] + 0.3, rates
    trained = load_policy(tmp_path / algorithm / "latest")
    assert family.startswith(type(trained).config_class.policy_type)


def test_dsrl_moves_only_the_noise_space_policy_and_the_critic(tmp_path, toy_source, start_checkpoints):
    # A flow whose chunks depend on the initial noise (see start_checkpoints): otherwise every episode of the toy
    # task ends alike, the advantages vanish and only the critic learns.
    config = apply_overrides(ALGORITHMS["dsrl"].config_class, {
        "init_checkpoint": start_checkpoints["flow_matching_velocity"], "episodes_per_iteration": 16, "minibatch_size": 8,
        "eval_episodes": 1, "num_envs": 1})
    context = JobContext(config=config, output_dir=tmp_path, steps=1, rollout_source=toy_source, tensorboard=False)
    trainer = ALGORITHMS["dsrl"]()
    policy = trainer.start_policy(context)
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    trainer.iterate(policy, toy_source, context)
    changed = {name.split(".")[0] for name, p in policy.named_parameters() if not torch.equal(before[name], p)}
    assert changed == {"noise_policy", "noise_policy_log_std", "critic"}
    assert policy.config.rl_method == "dsrl"


def test_dsrl_refuses_a_policy_without_a_noise_space_and_an_unfrozen_encoder(tmp_path, toy_source,
                                                                             start_checkpoints):
    config = apply_overrides(ALGORITHMS["dsrl"].config_class, {"init_checkpoint": start_checkpoints["token_vla"]})
    context = JobContext(config=config, output_dir=tmp_path, steps=1, rollout_source=toy_source, tensorboard=False)
    with pytest.raises(ValueError, match="initial noise of a flow policy"):
        ALGORITHMS["dsrl"]().start_policy(context)
    with pytest.raises(ValueError, match="freeze_encoder must stay true"):
        apply_overrides(ALGORITHMS["dsrl"].config_class, {"freeze_encoder": False})


def test_segments_carry_the_latents_each_decision_was_sampled_with():
    latents = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    latents[2:4] = latents[2]  # steps 2-3 execute the second chunk (chunk size 2)
    latents[4] = 40.0
    episode = EpisodeRecord(episode_id="e", instruction="lift", images=np.zeros((5, 8, 8, 3), np.uint8),
                            proprio=np.zeros((5, 6), np.float32), actions=np.zeros((5, 5), np.float32),
                            rewards=np.zeros(5, np.float32), log_probs=np.zeros(5, np.float32), latents=latents)
    segments = chunk_segments([episode], chunk_size=2)
    assert segments.latents.tolist() == [latents[0].tolist(), latents[2].tolist(), latents[4].tolist()]
    assert torch.equal(segments.latents_at(np.array([2])), torch.tensor([[40.0] * 3]))
    plain = EpisodeRecord(episode_id="p", instruction="lift", images=np.zeros((2, 8, 8, 3), np.uint8),
                          proprio=np.zeros((2, 6), np.float32), actions=np.zeros((2, 5), np.float32),
                          rewards=np.zeros(2, np.float32), log_probs=np.zeros(2, np.float32))
    assert chunk_segments([plain], chunk_size=2).latents_at(np.array([0])) is None
    with pytest.raises(ValueError, match="some episodes carry latents"):
        chunk_segments([episode, plain], chunk_size=2)


def test_flow_bc_stops_once_validation_stops_improving_and_keeps_the_best(expert_bag, tmp_path):
    overrides = {"image_size": TOY_IMAGE_SIZE, "policy_type": "flow_matching", "log_interval": 5,
                 "checkpoint_interval": 5, "val_fraction": 0.25, "patience": 2, "learning_rate": 0.05}
    trainer, context = prepare_job(JobRequest("bc", [str(expert_bag)], 400, json.dumps(overrides)), tmp_path)
    run_job(trainer, context)
    val = context.history["val_loss"]
    best_step, best = min(val, key=lambda point: point[1])
    assert val[-1][0] < 400, "stopped before the step budget"
    assert val[-1][0] == best_step + 2 * 5 and all(loss >= best for _, loss in val[-2:])
    state = json.loads((tmp_path / "best" / "trainer_state.json").read_text())
    assert state["step"] == best_step
    assert isinstance(load_policy(tmp_path / "best"), FlowMatchingPolicy)


def test_a_fresh_policy_takes_further_config_fields_from_policy_config(tmp_path):
    from rlvla_ros.algorithms.base import TrainerConfig, fresh_policy

    policy = fresh_policy(TrainerConfig(policy_type="token_vla", image_size=TOY_IMAGE_SIZE,
                                        policy_config="{patch_size: 8, num_layers: 1}"))
    assert (policy.config.patch_size, policy.config.num_layers, policy.num_image_tokens) == (8, 1, 16)
    vlm = build_tiny_vlm("idefics3", tmp_path / "vlm")
    wrapped = fresh_policy(TrainerConfig(policy_type="hf_vlm", image_size=TOY_IMAGE_SIZE,
                                         policy_config=f"{{base_model_dir: {vlm}, lora_rank: 2}}"))
    assert isinstance(wrapped, HfVlmPolicy) and wrapped.config.lora_rank == 2
    with pytest.raises(ValueError, match="trainer fields"):
        TrainerConfig(policy_config="{image_size: 32}")
    with pytest.raises(ValueError, match="policy_config: overrides_yaml is not valid YAML"):
        TrainerConfig(policy_config="{patch_size: [")
    with pytest.raises(ValueError, match="unknown TokenVlaConfig fields"):
        fresh_policy(TrainerConfig(policy_type="token_vla", policy_config="{patch: 8}"))
