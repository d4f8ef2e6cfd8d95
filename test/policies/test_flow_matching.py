"""The flow-matching action expert: chunks from K denoising steps, exact chain log-probs for RL, BC by flow
matching, the two RL parameterisations (Flow-Noise, DSRL) and checkpoints."""

import pytest
import torch

from rlvla_ros.policies import FlowMatchingConfig, FlowMatchingPolicy, load_policy

from .conftest import make_obs

SIZE = 32


def tiny_flow(**overrides) -> FlowMatchingPolicy:
    config = FlowMatchingConfig(chunk_size=2, image_size=SIZE, channels=[8, 8], strides=[2, 1], expert_hidden_size=32,
                                expert_layers=2, num_steps=4, head_hidden_size=32, **overrides)
    return FlowMatchingPolicy(config)


@pytest.mark.parametrize("rl_method", ["flow_noise", "dsrl"])
@pytest.mark.parametrize(("deterministic", "temperature"), [(False, 1.0), (False, 0.5), (True, 1.0)])
def test_predicted_log_probs_equal_the_log_probs_of_the_returned_chain(rl_method, deterministic, temperature):
    policy = tiny_flow().set_rl_method(rl_method).eval()
    obs = make_obs(3, size=SIZE)
    out = policy.predict(obs, deterministic=deterministic, temperature=temperature)
    assert out.actions.shape == (3, 2, 5) and out.actions.abs().max() <= 1.0
    assert out.log_probs.shape == (3, 2) and out.values.shape == (3,)
    chain = out.latents.reshape(3, 5, 2, 5)  # x_0 .. x_K with K = 4
    assert torch.equal(chain[:, -1].clamp(-1, 1), out.actions)
    log_probs, entropy = policy.log_prob(obs, out.actions, temperature=temperature, latents=out.latents)
    assert torch.allclose(log_probs, out.log_probs, atol=1e-5)
    assert entropy.shape == (3, 2) and torch.isfinite(entropy).all()


def test_flow_noise_scores_every_denoising_step_and_dsrl_only_the_initial_noise():
    policy = tiny_flow().eval()
    obs = make_obs(2, size=SIZE)
    out = policy.predict(obs, deterministic=True)  # every step at its Gaussian's mean
    chain = out.latents.reshape(2, 5, 10).clone()
    moved = chain.clone()
    moved[:, 2] += 0.05  # an intermediate step
    moved = moved.flatten(1)
    flow_noise, _ = policy.log_prob(obs, out.actions, latents=moved)
    assert (flow_noise < out.log_probs).all(), "an intermediate step off its Gaussian's mean costs likelihood"
    policy.set_rl_method("dsrl")
    dsrl, _ = policy.log_prob(obs, out.actions, latents=moved)
    same, _ = policy.log_prob(obs, out.actions, latents=out.latents)
    assert torch.equal(dsrl, same), "DSRL's density is over x_0 alone"


def test_log_probs_without_the_chain_are_refused_with_the_reason():
    policy = tiny_flow()
    obs = make_obs(2, size=SIZE)
    with pytest.raises(ValueError, match="denoising chain"):
        policy.log_prob(obs, torch.zeros(2, 2, 5))
    with pytest.raises(ValueError, match="latents must be"):
        policy.log_prob(obs, torch.zeros(2, 2, 5), latents=torch.zeros(2, 7))


def test_dsrl_starts_as_the_base_policy_and_trains_only_the_noise_policy_and_the_critic():
    policy = tiny_flow().eval()
    obs = make_obs(2, size=SIZE)
    base = policy.predict(obs, deterministic=True).actions
    policy.set_rl_method("dsrl")
    assert torch.equal(policy.predict(obs, deterministic=True).actions, base)
    trainable = {name.split(".")[0] for name, p in policy.named_parameters() if p.requires_grad}
    assert trainable == {"noise_policy", "noise_policy_log_std", "critic"}
    assert policy.config.freeze_encoder and policy.frozen_features


def test_flow_matching_bc_fits_a_chunk_that_deterministic_denoising_then_reproduces():
    torch.manual_seed(0)
    policy = tiny_flow()
    obs = make_obs(4, size=SIZE, instructions=["lift the red block"] * 4)
    target = torch.tensor([[0.5, -0.3, 0.8, 0.0, 0.9], [0.2, 0.1, -0.6, 0.3, -0.9]]).expand(4, 2, 5)
    mask = torch.ones(4, 2, dtype=torch.bool)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    fixed = torch.Generator().manual_seed(0)
    before = float(policy.imitation_loss(obs, target, mask, generator=fixed))
    error_before = (policy.eval().predict(obs, deterministic=True).actions - target).abs().max()
    policy.train()
    for _ in range(300):
        loss = policy.imitation_loss(obs, target, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = float(policy.imitation_loss(obs, target, mask, generator=torch.Generator().manual_seed(0)))
    assert after < 0.2 * before, (before, after)
    chunk = policy.eval().predict(obs, deterministic=True).actions
    assert (chunk - target).abs().max() < min(0.25, 0.3 * error_before)


@pytest.mark.parametrize("rl_method", ["flow_noise", "dsrl"])
def test_checkpoint_round_trip_keeps_outputs_rl_method_and_what_trains(tmp_path, rl_method):
    policy = tiny_flow().set_rl_method(rl_method)
    with torch.no_grad():
        policy.noise_policy[-1].bias.add_(0.3)
        policy.log_noise_std.add_(0.2)
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt")
    assert isinstance(loaded, FlowMatchingPolicy) and loaded.config.rl_method == rl_method
    obs = make_obs(2, size=SIZE)
    a, b = policy.eval().predict(obs, deterministic=True), loaded.predict(obs, deterministic=True)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.log_probs, b.log_probs)
    assert torch.equal(a.values, b.values)
    assert ({n for n, p in policy.named_parameters() if p.requires_grad}
            == {n for n, p in loaded.named_parameters() if p.requires_grad})


def test_invalid_configs_are_refused():
    with pytest.raises(ValueError, match="rl_method"):
        FlowMatchingConfig(rl_method="sac")
    with pytest.raises(ValueError, match="noise_std"):
        FlowMatchingConfig(init_noise_std=0.0)
