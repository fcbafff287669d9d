"""Gaussian naive Bayes as a layer: learnable class means, variances and priors.

logit_c = log p(c) + Σ_d log N(x_d; μ_cd, σ²_cd) over the masked-mean-pooled embedding x, trained
end to end with cross-entropy (a generative classifier fitted discriminatively).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from textcls.encoders.base import Encoder, Features, masked_mean


class GaussianNBEncoder(Encoder):
    produces_logits = True

    def __init__(self, input_dim: int, num_labels: int, min_variance: float = 1e-3) -> None:
        super().__init__(input_dim, num_labels)
        self.output_dim = num_labels
        self.min_variance = min_variance
        self.means = nn.Parameter(torch.randn(num_labels, input_dim) * 0.1)
        self.log_variances = nn.Parameter(torch.zeros(num_labels, input_dim))
        self.prior_logits = nn.Parameter(torch.zeros(num_labels))

    def forward(self, features: Features) -> Features:
        x = masked_mean(features["token_embeddings"], features["attention_mask"])  # [B, D]
        variances = self.log_variances.exp() + self.min_variance  # [C, D]
        diff = x.unsqueeze(1) - self.means.unsqueeze(0)  # [B, C, D]
        log_likelihood = -0.5 * (
            (diff.pow(2) / variances).sum(-1)
            + variances.log().sum(-1)
            + self.input_dim * math.log(2 * math.pi)
        )
        log_prior = torch.log_softmax(self.prior_logits, dim=0)
        features["logits"] = log_likelihood + log_prior
        return features
