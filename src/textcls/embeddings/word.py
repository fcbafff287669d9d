"""The word embedder: token ids → token embeddings."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class WordEmbedder(nn.Module):
    """``input_ids`` → ``token_embeddings`` (padding rows are zero and get no gradient)."""

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        trainable: bool = True,
        dropout: float = 0.0,
        weights: np.ndarray | None = None,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0, sparse=sparse)
        if weights is not None:
            self.embedding.weight.data.copy_(torch.from_numpy(weights))
        self.embedding.weight.requires_grad_(trainable)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = dim

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        embeddings = self.dropout(self.embedding(features["input_ids"]))
        features["token_embeddings"] = embeddings
        return features
