"""Mean pooling: the simplest baseline (a bag of word vectors)."""

from __future__ import annotations

from textcls.encoders.base import Encoder, Features, masked_mean


class MeanEncoder(Encoder):
    def __init__(self, input_dim: int, num_labels: int) -> None:
        super().__init__(input_dim, num_labels)
        self.output_dim = input_dim

    def forward(self, features: Features) -> Features:
        pooled = masked_mean(features["token_embeddings"], features["attention_mask"])
        features["sentence_embedding"] = pooled
        return features
