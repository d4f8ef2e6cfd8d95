import pytest
import torch

from rlvla_ros.policies.action_tokens import ActionBins, bin_log_probs, sample_bins
from rlvla_ros.policies.token_vla import ByteActionTokenizer


def test_value_to_bin_round_trip_within_half_a_bin():
    bins = ActionBins(256)
    values = torch.linspace(-1.0, 1.0, 10_001)
    error = (bins.to_values(bins.to_bins(values)) - values).abs().max().item()
    assert error <= bins.width / 2 + 1e-6
    assert bins.width == pytest.approx(2 / 256)


def test_out_of_range_values_go_to_edge_bins():
    bins = ActionBins(256)
    assert bins.to_bins(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]


def test_action_tokens_round_trip_through_token_ids():
    tokenizer = ByteActionTokenizer(256)
    bins = torch.arange(256)
    ids = tokenizer.action_token_ids(bins)
    assert ids.min().item() == 3 + 256 and ids.max().item() == tokenizer.vocab_size - 1 == 514
    assert torch.equal(tokenizer.bins_from_token_ids(ids), bins)
    with pytest.raises(ValueError):
        tokenizer.bins_from_token_ids(torch.tensor([5]))


def test_byte_tokenizer_left_pads_any_utf8_text():
    tokenizer = ByteActionTokenizer()
    ids, mask = tokenizer.encode_instructions(["hi", "grüß dich"], max_bytes=64)
    assert ids.shape == (2, 1 + len("grüß dich".encode()))
    assert mask[0].tolist() == [0] * 9 + [1] * 3  # "grüß dich" is 11 UTF-8 bytes
    assert ids[0, -3:].tolist() == [1, 3 + ord("h"), 3 + ord("i")]
    truncated, _ = tokenizer.encode_instructions(["x" * 100], max_bytes=10)
    assert truncated.shape == (1, 11)


def test_sampled_bin_log_probs_match_teacher_forced_ones():
    logits = torch.randn(3, 7, 256)
    bins, log_p = sample_bins(logits, deterministic=False, temperature=0.7)
    again, entropy = bin_log_probs(logits, bins, temperature=0.7)
    assert torch.allclose(log_p, again)
    assert (entropy > 0).all() and (entropy <= torch.log(torch.tensor(256.0)) + 1e-5).all()
    mode, _ = sample_bins(logits, deterministic=True, temperature=1.0)
    assert torch.equal(mode, logits.argmax(-1))
    with pytest.raises(ValueError):
        sample_bins(logits, deterministic=False, temperature=0.0)
