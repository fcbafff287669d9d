"""First-token (``[CLS]``) read-out.

Over a transformer, ``cls`` means the backbone's own sequence-classification head (pooler where
the architecture has one), so the saved model is a standard ``AutoModelForSequenceClassification``
directory; ``native_head`` tells the model builder so. Over word vectors it is the first token.
"""

from __future__ import annotations

from textcls.encoders.base import Encoder, Features


class CLSEncoder(Encoder):
    native_head = True

    def __init__(self, input_dim: int, num_labels: int) -> None:
        super().__init__(input_dim, num_labels)
        self.output_dim = input_dim

    def forward(self, features: Features) -> Features:
        features["sentence_embedding"] = features["token_embeddings"][:, 0]
        return features
