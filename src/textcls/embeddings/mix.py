"""The ELMo scalar mix (Peters et al. 2018, eq. 1): γ · Σⱼ softmax(s)ⱼ · hⱼ over a model's layers.

One module for both users: the biLM embedder of word models (its token layer and LSTM layers) and
``--layer-mix`` over a transformer backbone's hidden states (the embeddings and every layer).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ScalarMix(nn.Module):
    """A softmax-normalised weight per layer (starting equal) and, with ``gamma``, a learned scale
    (starting at 1); without it the scale stays 1 (the γ ablation).

    >>> mix = ScalarMix(3)
    >>> mix([torch.ones(1, 2), 2 * torch.ones(1, 2), 3 * torch.ones(1, 2)]).tolist()
    [[2.0, 2.0]]
    """

    def __init__(self, layers: int, gamma: bool = True) -> None:
        super().__init__()
        self.scalars = nn.Parameter(torch.zeros(layers))
        if gamma:
            self.gamma = nn.Parameter(torch.ones(1))
        else:
            self.register_buffer("gamma", torch.ones(1), persistent=False)

    def weights(self) -> torch.Tensor:
        """softmax(s): the share of each layer (sums to 1)."""
        return torch.softmax(self.scalars, dim=0)

    def forward(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(layers) != self.scalars.numel():
            raise ValueError(f"the mix has {self.scalars.numel()} weights, got {len(layers)} layers")
        weights = self.weights()
        mixed = sum(weights[j] * layer for j, layer in enumerate(layers))
        return self.gamma * mixed

    def describe(self) -> dict[str, float | list[float]]:
        """The learned weights and γ, for the training report."""
        return {
            "weights": [round(float(w), 4) for w in self.weights().detach()],
            "gamma": round(float(self.gamma.detach()), 4),
        }
