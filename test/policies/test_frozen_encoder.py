import os

import pytest
import torch

from rlvla_ros.policies import FrozenEncoderConfig, FrozenEncoderPolicy, load_policy
from rlvla_ros.policies.gaussian_chunk import squashed_gaussian_log_prob

from .conftest import make_obs


@pytest.fixture(scope="module")
def policy() -> FrozenEncoderPolicy:
    torch.manual_seed(0)
    return FrozenEncoderPolicy(FrozenEncoderConfig(chunk_size=4)).eval()


def test_only_the_heads_are_trainable(policy):
    trainable = {name.split(".")[0] for name, p in policy.named_parameters() if p.requires_grad}
    assert trainable == {"actor", "critic", "log_std"}
    assert sum(p.numel() for p in policy.parameters() if p.requires_grad) < 1_500_000


def test_predict_shapes_ranges_and_exact_log_probs(policy):
    obs = make_obs(3)
    out = policy.predict(obs, temperature=1.5)
    assert out.actions.shape == (3, 4, 5) and out.actions.dtype == torch.float32
    assert out.actions.abs().max() < 1.0
    assert out.log_probs.shape == (3, 4) and out.values.shape == (3,)
    log_probs, entropy = policy.log_prob(obs, out.actions, temperature=1.5)
    assert torch.allclose(log_probs, out.log_probs, atol=1e-3)
    assert entropy.shape == (3, 4)
    deterministic = policy.predict(obs, deterministic=True)
    assert torch.allclose(policy.log_prob(obs, deterministic.actions)[0], deterministic.log_probs, atol=1e-3)


@pytest.mark.parametrize("mean, std", [(0.0, 0.3), (1.2, 0.5), (-0.4, 1.0)])
def test_squashed_gaussian_density_integrates_to_one_over_the_action_box(mean, std):
    actions = torch.linspace(-1 + 1e-6, 1 - 1e-6, 200_001, dtype=torch.float64)
    log_density = squashed_gaussian_log_prob(
        torch.atanh(actions), torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
    )
    integral = torch.trapezoid(log_density.exp(), actions).item()
    assert integral == pytest.approx(1.0, abs=1e-3)


def test_log_prob_is_differentiable_into_the_heads(policy):
    obs = make_obs(2)
    actions = torch.rand(2, 4, 5) * 1.8 - 0.9
    log_probs, _ = policy.log_prob(obs, actions)
    (log_probs.sum() + policy.value(obs).sum()).backward()
    assert policy.log_std.grad is not None and policy.actor[1].weight.grad.abs().sum() > 0
    assert policy.critic[1].weight.grad.abs().sum() > 0
    policy.zero_grad()


def test_train_mode_keeps_the_frozen_batchnorm_statistics(policy):
    policy.train()
    assert policy.actor.training and not policy.image_encoder.training and not policy.text_encoder.training
    policy.eval()


def test_checkpoint_omits_frozen_encoders_and_reloads_identically(policy, tmp_path):
    obs = make_obs(2)
    before = policy.predict(obs, deterministic=True)
    policy.save_pretrained(tmp_path / "ckpt")
    assert os.path.getsize(tmp_path / "ckpt" / "model.safetensors") < 8 * 2**20  # heads only, not 100 MB
    loaded = load_policy(tmp_path / "ckpt")
    after = loaded.predict(obs, deterministic=True)
    assert torch.equal(after.actions, before.actions)
    assert torch.equal(after.log_probs, before.log_probs)
    assert torch.equal(after.values, before.values)


def test_candidates_encode_the_observation_once(policy, monkeypatch):
    obs = make_obs(1)
    single = {"image": obs["image"][0], "proprio": obs["proprio"][0], "instruction": obs["instruction"][0]}
    calls = []
    embed = policy.image_encoder.embed
    monkeypatch.setattr(policy.image_encoder, "embed", lambda x: calls.append(x.shape[0]) or embed(x))
    candidates = policy.sample_candidates(single, n=16, temperature=0.5)
    assert candidates.shape == (16, 4, 5) and calls == [1]
    assert candidates.std(0).mean() > 0


def test_behaviour_cloning_on_the_heads_fits_targets():
    """60 Adam steps on cached features bring the deterministic action within 0.05 of the targets."""
    torch.manual_seed(0)
    policy = FrozenEncoderPolicy(FrozenEncoderConfig(chunk_size=2))
    obs = make_obs(2, instructions=["move left", "move right"])
    targets = torch.tensor([[[-0.5, 0.25, 0.0, -0.75, 0.9]] * 2, [[0.5, -0.25, 0.0, 0.75, -0.9]] * 2])
    features = policy.features(obs)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(60):
        loss = -policy.log_prob_from_features(features, targets)[0].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert features.shape == (2, 1280 + 384 + 6) and not features.requires_grad
    assert (policy.eval().predict(obs, deterministic=True).actions - targets).abs().max() < 0.05
