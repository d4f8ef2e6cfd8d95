"""The clipped policy-gradient surrogate shared by PPO and GRPO, with its diagnostics.

Ratios are per executed action row (a row is the chunk analogue of a token), the loss is averaged over all
unmasked rows of the minibatch (token-level averaging as in DAPO / SimpleVLA-RL), and the clip range may be
asymmetric: ``eps_high > eps_low`` ("clip-higher") lets unlikely good actions gain probability faster.
"""

from __future__ import annotations

import torch


def clipped_surrogate(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float,
    eps_high: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss ``-mean(min(r A, clip(r, 1 - eps_low, 1 + eps_high) A))`` over unmasked rows, and diagnostics.

    ``log_probs``/``old_log_probs``/``mask`` are (B, H); ``advantages`` is (B,) (one per decision, shared by its
    rows). Diagnostics: ``approx_kl`` (the low-variance ``(r - 1) - log r`` estimator), ``clip_fraction`` (rows whose
    ratio left the clip range), ``ratio_mean``.
    """
    if eps_low < 0 or eps_high < 0:
        raise ValueError(f"clip ranges must be >= 0, got eps_low={eps_low}, eps_high={eps_high}")
    mask = mask.float()
    rows = mask.sum().clamp(min=1.0)
    log_ratio = log_probs - old_log_probs
    ratio = log_ratio.exp()
    adv = advantages[:, None]
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * adv
    loss = -(torch.minimum(unclipped, clipped) * mask).sum() / rows
    with torch.no_grad():
        outside = (ratio < 1.0 - eps_low) | (ratio > 1.0 + eps_high)
        stats = {
            "approx_kl": float((((ratio - 1.0) - log_ratio) * mask).sum() / rows),
            "clip_fraction": float((outside.float() * mask).sum() / rows),
            "ratio_mean": float((ratio * mask).sum() / rows),
        }
    return loss, stats
