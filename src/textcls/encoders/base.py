"""What every encoder shares: the contract and masked pooling."""

from __future__ import annotations

import torch
from torch import nn

Features = dict[str, torch.Tensor]


class Encoder(nn.Module):
    """Reads ``token_embeddings`` [B, T, D] and ``attention_mask`` [B, T]; writes
    ``sentence_embedding`` [B, output_dim], or ``logits`` [B, num_labels] when ``produces_logits``.
    """

    produces_logits = False
    output_dim: int

    def __init__(self, input_dim: int, num_labels: int) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.num_labels = num_labels


def masked(embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the padded positions of [B, T, D] embeddings."""
    return embeddings * mask.unsqueeze(-1).to(embeddings.dtype)


def masked_mean(embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(embeddings.dtype)
    return (embeddings * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def masked_max(embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over time of [B, T, D] ignoring padding; rows with no valid position give 0."""
    filled = embeddings.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(embeddings.dtype).min)
    pooled = filled.max(dim=1).values
    return torch.where(mask.any(1, keepdim=True), pooled, torch.zeros_like(pooled))
