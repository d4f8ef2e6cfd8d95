import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rlvla_ros.algorithms.policy_inputs import supports_cached_features
from rlvla_ros.policies import FilmKeypointsConfig, FilmKeypointsPolicy, load_policy
from rlvla_ros.policies.film_keypoints.modeling_film_keypoints import spatial_softmax

from .conftest import make_obs

SIZE = 32


def tiny_config(**kwargs) -> FilmKeypointsConfig:
    return FilmKeypointsConfig(chunk_size=3, image_size=SIZE, channels=[8, 8], strides=[2, 1], hidden_size=32, **kwargs)


@pytest.fixture(scope="module")
def policy() -> FilmKeypointsPolicy:
    torch.manual_seed(0)
    policy = FilmKeypointsPolicy(tiny_config()).eval()
    with torch.no_grad():  # non-zero FiLM so the instruction reaches the image features from the start
        for block in policy.image_encoder.blocks:
            block.film.weight.normal_(0.0, 0.5)
    return policy


def test_spatial_softmax_finds_the_peak():
    maps = torch.full((1, 1, 5, 9), -50.0)
    maps[0, 0, 4, 0] = 50.0  # bottom-left corner
    assert torch.allclose(spatial_softmax(maps), torch.tensor([[-1.0, 1.0]]), atol=1e-4)


def test_checkpoints_with_the_pre_block_weight_names_still_load(policy, tmp_path):
    policy.save_pretrained(tmp_path / "legacy")
    weights = tmp_path / "legacy" / "model.safetensors"
    legacy = {re.sub(r"image_encoder\.blocks\.(\d+)\.(conv|film)\.", r"image_encoder.\2s.\1.", key): value
              for key, value in load_file(str(weights)).items()}
    assert any(key.startswith("image_encoder.convs.0.") for key in legacy)
    assert any(key.startswith("image_encoder.films.1.") for key in legacy)
    save_file(legacy, str(weights))  # as a checkpoint written before FilmConvBlock
    loaded = load_policy(tmp_path / "legacy")
    for key, value in policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_predict_shapes_and_log_probs_match_log_prob(policy):
    obs = make_obs(3, size=SIZE)
    out = policy.predict(obs, temperature=1.3)
    assert out.actions.shape == (3, 3, 5) and out.log_probs.shape == (3, 3) and out.values.shape == (3,)
    assert out.actions.abs().max() < 1.0
    log_probs, entropy = policy.log_prob(obs, out.actions, temperature=1.3)
    assert torch.allclose(log_probs, out.log_probs, atol=1e-3) and entropy.shape == (3, 3)
    deterministic = policy.predict(obs, deterministic=True)
    assert torch.allclose(policy.log_prob(obs, deterministic.actions)[0], deterministic.log_probs, atol=1e-3)
    assert torch.allclose(policy.value(obs), out.values)
    assert policy.sample_candidates({k: v[0] for k, v in obs.items()}, 5).shape == (5, 3, 5)


def test_the_instruction_changes_the_keypoints(policy):
    obs = make_obs(2, size=SIZE, instructions=["lift the red block", "lift the blue block"])
    obs["image"][1] = obs["image"][0]
    obs["proprio"][1] = obs["proprio"][0]
    keypoints = policy.features(obs)[:, : policy.image_encoder.keypoint_dim]
    assert (keypoints[0] - keypoints[1]).abs().max() > 1e-3


def test_save_load_round_trip_gives_identical_outputs(policy, tmp_path):
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt")
    assert isinstance(loaded, FilmKeypointsPolicy) and loaded.config == policy.config
    obs = make_obs(2, size=SIZE)
    a, b = policy.predict(obs, deterministic=True), loaded.predict(obs, deterministic=True)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.values, b.values)


def test_encoder_trains_end_to_end_unless_frozen():
    trainable = FilmKeypointsPolicy(tiny_config())
    assert not supports_cached_features(trainable)
    obs = make_obs(2, size=SIZE)
    trainable.log_prob(obs, torch.zeros(2, 3, 5))[0].sum().backward()
    assert trainable.image_encoder.blocks[0].conv.weight.grad is not None
    frozen = FilmKeypointsPolicy(tiny_config()).freeze_encoder()
    assert frozen.config.freeze_encoder and supports_cached_features(frozen)
    assert {name.split(".")[0] for name, p in frozen.named_parameters() if p.requires_grad} == {
        "actor", "critic", "log_std"
    }


def test_tiny_bc_lowers_the_loss():
    torch.manual_seed(0)
    policy = FilmKeypointsPolicy(tiny_config()).train()
    obs = make_obs(16, size=SIZE, instructions=["lift the red block", "lift the blue block"] * 8)
    # The target depends on the instruction only: the FiLM path and the heads have to pick it up.
    sign = torch.tensor([1.0, -1.0] * 8)[:, None, None]
    actions = (0.5 * sign * torch.ones(16, 3, 5)).numpy()
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = -policy.log_prob(obs, actions)[0].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0
