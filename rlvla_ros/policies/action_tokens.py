"""Discretising continuous actions into bins, the categorical maths on bin logits and the value head (shared by token
VLAs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from rlvla_ros.contract import ACTION_DIM
from rlvla_ros.policies.base import PolicyOutput


@dataclass(frozen=True)
class ActionBins:
    """Uniform bins over [low, high]; a value decodes to its bin centre, so a round trip errs by <= width / 2."""

    num_bins: int = 256
    """Number of bins per action dimension."""
    low: float = -1.0
    """Lower edge of the first bin."""
    high: float = 1.0
    """Upper edge of the last bin."""

    @property
    def width(self) -> float:
        """Width of one bin."""
        return (self.high - self.low) / self.num_bins

    def to_bins(self, values: torch.Tensor) -> torch.Tensor:
        """Bin index (long) of each value; values outside [low, high] go to the edge bins."""
        index = torch.floor((values - self.low) / self.width).long()
        return index.clamp_(0, self.num_bins - 1)

    def to_values(self, bins: torch.Tensor) -> torch.Tensor:
        """Centre (float32) of each bin index."""
        return (self.low + (bins.float() + 0.5) * self.width).float()


def value_head(hidden_size: int, width: int) -> nn.Sequential:
    """A token VLA's value head: the LM's hidden state at the last prompt position -> tanh MLP -> a scalar."""
    return nn.Sequential(nn.Linear(hidden_size, width), nn.Tanh(), nn.Linear(width, 1))


def vocabulary_tail_ids(bins: torch.Tensor, vocab_size: int, num_bins: int, reversed_order: bool) -> torch.Tensor:
    """Token id of each bin when the bins are the last ``num_bins`` ids of a vocabulary: OpenVLA's layout
    (``reversed_order``: bin b is ``vocab_size - 1 - b``) or in order (``vocab_size - num_bins + b``)."""
    return vocab_size - 1 - bins if reversed_order else vocab_size - num_bins + bins


def _tempered_log_softmax(bin_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature} (use deterministic=True for the mode)")
    return torch.log_softmax(bin_logits.float() / temperature, dim=-1)


def sample_bins(
    bin_logits: torch.Tensor, *, deterministic: bool, temperature: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick bins from logits (..., num_bins): ``(bins (...), log_probs (...))`` under the tempered distribution."""
    log_p = _tempered_log_softmax(bin_logits, temperature)
    if deterministic:
        bins = log_p.argmax(dim=-1)
    else:
        flat = log_p.reshape(-1, log_p.shape[-1]).exp()
        bins = torch.multinomial(flat, 1, generator=generator).reshape(log_p.shape[:-1])
    return bins, log_p.gather(-1, bins.unsqueeze(-1)).squeeze(-1)


def bin_log_probs(
    bin_logits: torch.Tensor, bins: torch.Tensor, *, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable ``(log_prob (...), entropy (...))`` of given bins under logits (..., num_bins)."""
    log_p = _tempered_log_softmax(bin_logits, temperature)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return log_p.gather(-1, bins.unsqueeze(-1)).squeeze(-1), entropy


def row_log_probs(
    bin_logits: torch.Tensor, bins: torch.Tensor, chunk_size: int, *, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable ``(log_probs (B, H), entropy (B, H))`` of a chunk's action tokens ``bins`` (B, H * 5) under
    ``bin_logits`` (B, H * 5, bins), summed over each row's 5 tokens."""
    log_probs, entropy = bin_log_probs(bin_logits, bins, temperature=temperature)
    shape = (bins.shape[0], chunk_size, ACTION_DIM)
    return log_probs.reshape(shape).sum(-1), entropy.reshape(shape).sum(-1)


def chunk_output(
    action_bins: ActionBins, bins: torch.Tensor, log_probs: torch.Tensor, values: torch.Tensor, chunk_size: int
) -> PolicyOutput:
    """What a token policy predicts from decoded tokens ``bins`` (B, H * 5) with their ``log_probs``: the bin
    centres as a chunk (B, H, 5), log-probs summed per row, ``values`` (B,)."""
    n = bins.shape[0]
    return PolicyOutput(
        actions=action_bins.to_values(bins).reshape(n, chunk_size, ACTION_DIM),
        log_probs=log_probs.reshape(n, chunk_size, ACTION_DIM).sum(-1),
        values=values,
    )


def decode_autoregressive(
    hidden: torch.Tensor,
    step: Callable[[torch.Tensor], torch.Tensor],
    bin_logits: Callable[[torch.Tensor], torch.Tensor],
    num_tokens: int,
    *,
    deterministic: bool,
    temperature: float,
    forced_bins: Sequence[int | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token bin decoding with a KV-cached model: ``(bins (B, N), log_probs (B, N))``.

    ``hidden`` (B, D) is the last prefix position's hidden state; ``step(bins (B,))`` feeds the chosen tokens and
    returns the next hidden state. ``forced_bins[k]``, when not None, pins token k to that bin (log-prob 0): it is
    not part of the policy's distribution.
    """
    bins, log_probs = [], []
    for k in range(num_tokens):
        forced = forced_bins[k] if forced_bins is not None else None
        if forced is None:
            b, lp = sample_bins(bin_logits(hidden), deterministic=deterministic, temperature=temperature)
        else:
            b = torch.full(hidden.shape[:1], forced, dtype=torch.long, device=hidden.device)
            lp = torch.zeros(hidden.shape[:1], device=hidden.device)
        bins.append(b)
        log_probs.append(lp)
        if k + 1 < num_tokens:
            hidden = step(b)
    return torch.stack(bins, 1), torch.stack(log_probs, 1)
