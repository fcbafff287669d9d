"""Bidirectional LSTM over packed (unpadded) sequences, pooled over time."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textcls.encoders.base import Encoder, Features, masked_max, masked_mean


class BiLSTMEncoder(Encoder):
    def __init__(
        self,
        input_dim: int,
        num_labels: int,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        pooling: Literal["max", "mean", "last"] = "max",
    ) -> None:
        super().__init__(input_dim, num_labels)
        self.lstm = nn.LSTM(
            input_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.pooling = pooling
        self.output_dim = 2 * hidden_size

    def forward(self, features: Features) -> Features:
        embeddings, mask = features["token_embeddings"], features["attention_mask"]
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(embeddings, lengths, batch_first=True, enforce_sorted=False)
        output, (h_n, _) = self.lstm(packed)
        if self.pooling == "last":
            pooled = torch.cat([h_n[-2], h_n[-1]], dim=-1)
        else:
            output, _ = pad_packed_sequence(output, batch_first=True, total_length=mask.size(1))
            pool = masked_max if self.pooling == "max" else masked_mean
            pooled = pool(output, mask)
        features["sentence_embedding"] = pooled
        return features
