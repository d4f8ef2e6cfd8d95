"""Offline byte-level vocabulary: specials, 256 byte tokens, then one token per action bin.

Any text encodes (UTF-8 bytes), nothing is downloaded, and the action tokens are a contiguous id range so the bin
logits are a slice of the LM head.
"""

from __future__ import annotations

import torch

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
NUM_SPECIAL = 3
NUM_BYTES = 256


class ByteActionTokenizer:
    """``[PAD, BOS, EOS] + 256 bytes + num_bins action tokens``."""

    def __init__(self, num_bins: int = 256) -> None:
        self.num_bins = num_bins
        self.action_offset = NUM_SPECIAL + NUM_BYTES
        self.vocab_size = self.action_offset + num_bins

    def encode_instructions(
        self, instructions: list[str], max_bytes: int, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``(ids (B, L), attention_mask (B, L))``: BOS then the first ``max_bytes`` UTF-8 bytes."""
        rows = [[BOS_ID] + [NUM_SPECIAL + b for b in text.encode("utf-8")[:max_bytes]] for text in instructions]
        length = max(len(row) for row in rows)
        ids = torch.full((len(rows), length), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, length - len(row) :] = torch.tensor(row)
            mask[i, length - len(row) :] = 1
        return ids.to(device), mask.to(device)

    def action_token_ids(self, bins: torch.Tensor) -> torch.Tensor:
        """Token id of each bin index."""
        return bins + self.action_offset

    def bins_from_token_ids(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Bin index of each action token id; any other id is an error."""
        bins = token_ids - self.action_offset
        if bool(((bins < 0) | (bins >= self.num_bins)).any()):
            raise ValueError("token ids outside the action token range")
        return bins
