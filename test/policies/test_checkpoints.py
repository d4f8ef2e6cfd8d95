import json
import os

import pytest
import torch

from rlvla_ros.policies import TokenVla, load_policy, registered_policies
from rlvla_ros.policies.pretrained import WEIGHTS_NAME

from .conftest import make_obs, tiny_token_vla_config


@pytest.fixture
def saved(tmp_path):
    policy = TokenVla(tiny_token_vla_config("parallel")).eval()
    policy.save_pretrained(tmp_path / "ckpt")
    return policy, tmp_path / "ckpt"


def test_checkpoint_is_config_json_with_policy_type_and_safetensors(saved):
    _, directory = saved
    assert sorted(os.listdir(directory)) == ["config.json", "model.safetensors"]
    config = json.loads((directory / "config.json").read_text())
    assert config["policy_type"] == "token_vla" and config["decoding"] == "parallel"


def test_registry_knows_every_builtin_policy():
    assert {"token_vla", "frozen_encoder", "llava_adapter"} <= set(registered_policies())


def test_pickled_weights_are_refused_without_unpickling(saved, tmp_path):
    policy, directory = saved
    marker = tmp_path / "unpickled"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"state": policy.state_dict(), "payload": Exploit()}, directory / WEIGHTS_NAME)
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_policy(directory)
    assert not marker.exists()


def test_a_pytorch_bin_alone_is_not_loaded(saved):
    _, directory = saved
    os.rename(directory / WEIGHTS_NAME, directory / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_policy(directory)


def test_saving_over_a_checkpoint_replaces_it_whole_and_leaves_no_temp_dirs(saved):
    policy, directory = saved
    with torch.no_grad():
        policy.value_head[-1].bias.add_(1.0)
    policy.save_pretrained(directory)
    assert sorted(os.listdir(directory.parent)) == ["ckpt"]
    obs = make_obs(2, size=32)
    assert torch.equal(load_policy(directory).value(obs), policy.value(obs))


def test_a_failed_save_leaves_the_previous_checkpoint_intact(saved, monkeypatch):
    policy, directory = saved
    before = (directory / WEIGHTS_NAME).read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("rlvla_ros.policies.pretrained.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        policy.save_pretrained(directory)
    assert (directory / WEIGHTS_NAME).read_bytes() == before
    assert sorted(os.listdir(directory.parent)) == ["ckpt"]


def test_mismatched_tensors_and_unknown_types_are_errors(saved):
    _, directory = saved
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "decoding": "autoregressive"}))
    with pytest.raises(ValueError, match="unexpected tensors"):
        load_policy(directory)
    (directory / "config.json").write_text(json.dumps({**config, "policy_type": "nope"}))
    with pytest.raises(ValueError, match="unknown policy_type"):
        load_policy(directory)
    (directory / "config.json").write_text(json.dumps({**config, "hiden_size": 3}))
    with pytest.raises(ValueError, match="unknown TokenVlaConfig fields"):
        load_policy(directory)
