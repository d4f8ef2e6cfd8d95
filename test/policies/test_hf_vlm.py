"""The Hugging Face VLM family on tiny random models of real architectures (LLaVA, Idefics3 / SmolVLM, PaliGemma):
action tokens with exact log-probs, the observation in the prompt, LoRA adapters as what trains, peft checkpoints."""

import json
import os

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

from rlvla_ros.policies import HfVlmConfig, HfVlmPolicy, load_policy
from rlvla_ros.policies.hf_vlm import ARCHITECTURES, build_tiny_vlm
from rlvla_ros.policies.hf_vlm.tiny_models import RESERVED_TOKENS

from .conftest import make_obs


@pytest.fixture(scope="session")
def vlm_dirs(tmp_path_factory) -> dict:
    """One tiny random model directory (model + processor) per architecture."""
    return {arch: build_tiny_vlm(arch, tmp_path_factory.mktemp(arch)) for arch in ARCHITECTURES}


def make_policy(vlm_dirs, arch: str, decoding: str = "parallel", **overrides) -> HfVlmPolicy:
    torch.manual_seed(0)
    policy = HfVlmPolicy(HfVlmConfig(base_model_dir=str(vlm_dirs[arch]), chunk_size=2, image_size=64,
                                     decoding=decoding, **overrides))
    with torch.no_grad():  # a policy past its first update: the proprio projection is no longer zero
        policy.proprio_proj.weight.normal_(0.0, 0.5)
    return policy.eval()


@pytest.mark.parametrize("decoding", ["parallel", "autoregressive"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_chunks_are_action_tokens_with_log_probs_equal_to_teacher_forcing(vlm_dirs, arch, decoding):
    policy = make_policy(vlm_dirs, arch, decoding)
    obs = make_obs(3, size=64, instructions=["lift the red block", "push the blue block onto the green target", "x"])
    out = policy.predict(obs, temperature=1.3)
    assert out.actions.shape == (3, 2, 5) and out.actions.abs().max() < 1.0
    bins = policy.bins.to_bins(out.actions)
    assert torch.equal(policy.bins.to_values(bins), out.actions), "every value is a bin centre"
    log_probs, entropy = policy.log_prob(obs, out.actions, temperature=1.3)
    assert torch.allclose(log_probs, out.log_probs, atol=1e-4)
    assert (entropy > 0).all() and torch.allclose(policy.value(obs), out.values, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_chunk_scores_the_same_alone_and_in_a_left_padded_batch(vlm_dirs, arch):
    policy = make_policy(vlm_dirs, arch, "autoregressive")
    obs = make_obs(2, size=64, instructions=["lift", "push the blue block onto the green target"])
    out = policy.predict(obs)
    alone = {key: value[:1] for key, value in obs.items()}
    log_probs, _ = policy.log_prob(alone, out.actions[:1])
    assert torch.allclose(log_probs, out.log_probs[:1], atol=1e-4)


def test_image_instruction_and_proprioception_all_reach_the_prompt(vlm_dirs):
    policy = make_policy(vlm_dirs, "idefics3")
    obs = make_obs(2, size=64)
    actions = policy.predict(obs).actions
    reference, _ = policy.log_prob(obs, actions)
    for key, changed in [("image", 255 - obs["image"]), ("proprio", obs["proprio"] + 1.0),
                         ("instruction", ["stack the yellow block", "open the drawer"])]:
        log_probs, _ = policy.log_prob({**obs, key: changed}, actions)
        assert not torch.allclose(log_probs, reference, atol=1e-3), key


def test_the_reserved_vocabulary_tail_holds_the_slots_and_the_action_tokens(vlm_dirs):
    policy = make_policy(vlm_dirs, "llava", "autoregressive")
    vocab = policy.vocab_size
    assert policy.proprio_token_id == vocab - 257 and policy.query_token_id == vocab - 258
    assert RESERVED_TOKENS == 257
    bins = torch.tensor([0, 255])
    assert policy._token_ids(bins).tolist() == [vocab - 1, vocab - 256], "OpenVLA's reversed layout"
    head = policy.vlm.get_base_model().get_output_embeddings().weight
    assert torch.equal(policy.action_head.weight[0], head[vocab - 1]), "bin logits start from the LM head's rows"


def test_only_lora_adapters_and_heads_train_unless_the_base_is_asked_for(vlm_dirs):
    policy = make_policy(vlm_dirs, "paligemma")
    trainable = [name for name, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith(("action_head", "proprio_proj", "value_head",
                                                            "action_queries")) for n in trainable)
    assert any("language_model" in n for n in trainable) and any("vision" in n for n in trainable)
    full = make_policy(vlm_dirs, "paligemma", train_base=True)
    assert all(p.requires_grad for p in full.parameters())


def test_value_regression_moves_only_the_value_head(vlm_dirs):
    policy = make_policy(vlm_dirs, "llava").train()
    loss = policy.value(make_obs(2, size=64)).square().sum()
    loss.backward()
    with_grad = {name.split(".")[0] for name, p in policy.named_parameters() if p.grad is not None}
    assert with_grad == {"value_head"}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_checkpoint_holds_heads_and_peft_adapters_and_reloads_identically(vlm_dirs, arch, tmp_path):
    policy = make_policy(vlm_dirs, arch)
    with torch.no_grad():  # trained adapters: B is no longer zero
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.05)
    policy.save_pretrained(tmp_path / "ckpt")
    files = sorted(os.listdir(tmp_path / "ckpt"))
    assert files == ["adapter_config.json", "adapter_model.safetensors", "config.json", "model.safetensors"]
    heads = load_file(tmp_path / "ckpt" / "model.safetensors")
    assert {name.split(".")[0] for name in heads} == {"action_head", "proprio_proj", "value_head", "action_queries"}
    assert json.loads((tmp_path / "ckpt" / "adapter_config.json").read_text())["r"] == 8
    loaded = load_policy(tmp_path / "ckpt")
    obs = make_obs(2, size=64)
    a, b = policy.predict(obs, deterministic=True), loaded.predict(obs, deterministic=True)
    assert torch.equal(a.actions, b.actions) and torch.equal(a.log_probs, b.log_probs)
    assert torch.equal(a.values, b.values)
    # peft itself loads the adapters onto the base model.
    base = AutoModelForImageTextToText.from_pretrained(str(vlm_dirs[arch]), local_files_only=True)
    with_adapter = PeftModel.from_pretrained(base, str(tmp_path / "ckpt"))
    ours = dict(policy.vlm.named_parameters())
    theirs = {name: p for name, p in with_adapter.named_parameters() if "lora_B" in name}
    assert theirs and all(torch.equal(p, ours[name]) for name, p in theirs.items())


def test_a_fully_fine_tuned_base_is_saved_with_the_checkpoint(vlm_dirs, tmp_path):
    policy = make_policy(vlm_dirs, "idefics3", train_base=True)
    with torch.no_grad():
        policy.vlm.get_base_model().get_input_embeddings().weight.add_(0.1)
    policy.save_pretrained(tmp_path / "full")
    loaded = load_policy(tmp_path / "full")
    obs = make_obs(2, size=64)
    assert torch.equal(policy.predict(obs, deterministic=True).log_probs,
                       loaded.predict(obs, deterministic=True).log_probs)


def test_missing_or_pickled_adapters_are_refused(vlm_dirs, tmp_path):
    policy = make_policy(vlm_dirs, "llava")
    policy.save_pretrained(tmp_path / "ckpt")
    adapter = tmp_path / "ckpt" / "adapter_model.safetensors"
    tensors = {name: tensor.clone() for name, tensor in load_file(adapter).items()}
    adapter.unlink()
    torch.save(tensors, adapter)  # a pickle under the safetensors name
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_policy(tmp_path / "ckpt")
    adapter.unlink()
    with pytest.raises(FileNotFoundError, match="adapter"):
        load_policy(tmp_path / "ckpt")


def test_bad_configs_are_refused_with_the_reason(vlm_dirs, tmp_path):
    with pytest.raises(ValueError, match="base_model_dir is required"):
        HfVlmConfig()
    with pytest.raises(ValueError, match="instruction"):
        HfVlmConfig(base_model_dir=str(vlm_dirs["llava"]), prompt_template="{image} go")
    with pytest.raises(ValueError, match="decoding"):
        HfVlmConfig(base_model_dir=str(vlm_dirs["llava"]), decoding="beam")
    with pytest.raises(FileNotFoundError, match="config.json"):
        HfVlmPolicy(HfVlmConfig(base_model_dir=str(tmp_path)))
