import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from rlvla_ros.policies import LlavaActionAdapter, LlavaAdapterConfig, load_policy

from .conftest import make_obs


@pytest.fixture(scope="module")
def adapter(llava_checkpoint) -> LlavaActionAdapter:
    torch.manual_seed(0)
    return LlavaActionAdapter.from_checkpoint(str(llava_checkpoint), chunk_size=2)


def test_predicts_ee_delta_chunks_with_consistent_log_probs(adapter):
    obs = make_obs(2, instructions=["lift the cube", "push the red block to the left pad"])
    out = adapter.predict(obs, temperature=1.2)
    assert out.actions.shape == (2, 2, 5) and out.actions.abs().max() <= 1.0
    assert out.log_probs.shape == (2, 2) and out.values.shape == (2,)
    log_probs, entropy = adapter.log_prob(obs, out.actions, temperature=1.2)
    assert torch.allclose(log_probs, out.log_probs, atol=1e-4)
    # 5 executed dims of a near-uniform random model: entropy close to 5 * ln(256).
    assert torch.allclose(entropy, torch.full_like(entropy, 5 * torch.log(torch.tensor(256.0))), rtol=0.01)
    assert torch.allclose(adapter.value(obs), out.values, atol=1e-5)


def test_unexecuted_native_dims_are_pinned_and_gripper_sign_is_flipped(adapter):
    native = torch.tensor([[0.1, 0.2, 0.3, 0.9, -0.9, 0.4, 0.8] * 2])  # OpenVLA order, gripper +1 = open
    bins = adapter.bins.to_bins(native)
    actions = adapter._native_bins_to_actions(bins)
    assert torch.allclose(actions[0, 0], torch.tensor([0.1, 0.2, 0.3, 0.4, -0.8]), atol=adapter.bins.width)
    back = adapter._actions_to_native_bins(actions)
    neutral = adapter.bins.to_bins(torch.tensor(0.0))
    assert torch.equal(back[:, [0, 1, 2, 5, 6]], bins[:, [0, 1, 2, 5, 6]])
    assert (back[:, [3, 4, 10, 11]] == neutral).all()
    assert adapter.forced_bins[3] == adapter.forced_bins[4] == int(neutral) and adapter.forced_bins[0] is None


def test_fine_tuned_adapter_round_trips_through_load_policy(adapter, tmp_path):
    obs = make_obs(2)
    with torch.no_grad():
        adapter.value_head[-1].bias.add_(0.5)
    before = adapter.predict(obs, deterministic=True)
    adapter.save_pretrained(tmp_path / "tuned")
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert config["policy_type"] == "llava_adapter" and config["chunk_size"] == 2
    loaded = load_policy(tmp_path / "tuned")
    after = loaded.predict(obs, deterministic=True)
    assert torch.equal(after.actions, before.actions) and torch.equal(after.values, before.values)


def test_a_map_that_could_leave_the_action_box_is_rejected(llava_checkpoint):
    with pytest.raises(ValueError, match="gain"):
        LlavaAdapterConfig(checkpoint_dir=str(llava_checkpoint), offset=[0.5, 0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="checkpoint_dir"):
        LlavaAdapterConfig()


def test_a_checkpoint_with_only_pickled_weights_is_refused(llava_checkpoint, tmp_path):
    directory = tmp_path / "pickled"
    shutil.copytree(llava_checkpoint, directory)
    torch.save(load_file(directory / "model.safetensors"), directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    with pytest.raises(OSError):
        LlavaActionAdapter.from_checkpoint(str(directory))
