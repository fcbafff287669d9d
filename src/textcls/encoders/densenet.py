"""DenseNet over Conv1d, with a max-pooling (``densenet-cnn``) or a Dynamic Self-Attention
(``densenet-dsa``, Yoon et al. 2018, arXiv 1808.07383) read-out."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from textcls.encoders.base import Encoder, Features, masked, masked_max


class DenseNet1d(nn.Module):
    """A first convolution, then ``depth`` layers each reading the concatenation of every earlier
    output (dense connectivity), then a 1×1 transition. Padding stays zero between layers."""

    def __init__(
        self,
        input_dim: int,
        first_filters: int = 128,
        growth: int = 64,
        depth: int = 4,
        kernel_size: int = 3,
        last_filters: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.first = nn.Conv1d(input_dim, first_filters, kernel_size, padding=padding)
        self.layers = nn.ModuleList(
            nn.Conv1d(first_filters + i * growth, growth, kernel_size, padding=padding) for i in range(depth)
        )
        self.transition = nn.Conv1d(first_filters + depth * growth, last_filters, 1)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = last_filters

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        channel_mask = mask.unsqueeze(1).to(embeddings.dtype)  # [B, 1, T]
        x = masked(embeddings, mask).transpose(1, 2)
        features = [torch.relu(self.first(x)) * channel_mask]
        for layer in self.layers:
            out = torch.relu(layer(self.dropout(torch.cat(features, dim=1)))) * channel_mask
            features.append(out)
        out = torch.relu(self.transition(torch.cat(features, dim=1))) * channel_mask
        return out.transpose(1, 2)  # [B, T, last_filters]


class DenseNetCNNEncoder(Encoder):
    def __init__(self, input_dim: int, num_labels: int, **densenet: int | float) -> None:
        super().__init__(input_dim, num_labels)
        self.densenet = DenseNet1d(input_dim, **densenet)
        self.output_dim = self.densenet.output_dim

    def forward(self, features: Features) -> Features:
        mask = features["attention_mask"]
        hidden = self.densenet(features["token_embeddings"], mask)
        features["sentence_embedding"] = masked_max(hidden, mask)
        return features


class DynamicSelfAttention(nn.Module):
    """Multi-head dynamic self-attention: attention weights refined by routing iterations.

    Per head h: x̂_j = LeakyReLU(W_h x_j); b = 0; repeat: q = softmax_j(b) over real tokens,
    z = tanh(Σ_j q_j x̂_j), b_j += x̂_j · z. Gradients flow through every iteration.
    """

    def __init__(self, input_dim: int, num_heads: int = 2, head_dim: int = 128, iterations: int = 3):
        super().__init__()
        self.num_heads, self.head_dim, self.iterations = num_heads, head_dim, iterations
        self.project = nn.Linear(input_dim, num_heads * head_dim)
        self.output_dim = num_heads * head_dim

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, _ = hidden.shape
        x_hat = F.leaky_relu(self.project(hidden)).view(batch, length, self.num_heads, self.head_dim)
        x_hat = x_hat.transpose(1, 2)  # [B, H, T, d]
        pad = ~mask.bool().unsqueeze(1)  # [B, 1, T]
        logits = hidden.new_zeros(batch, self.num_heads, length)
        for iteration in range(self.iterations):
            weights = torch.softmax(logits.masked_fill(pad, torch.finfo(hidden.dtype).min), dim=-1)
            z = torch.tanh(torch.einsum("bht,bhtd->bhd", weights, x_hat))
            if iteration < self.iterations - 1:
                logits = logits + torch.einsum("bhtd,bhd->bht", x_hat, z)
        return z.reshape(batch, self.output_dim)


class DenseNetDSAEncoder(Encoder):
    def __init__(
        self,
        input_dim: int,
        num_labels: int,
        num_heads: int = 2,
        head_dim: int = 128,
        iterations: int = 3,
        **densenet: int | float,
    ) -> None:
        super().__init__(input_dim, num_labels)
        self.densenet = DenseNet1d(input_dim, **densenet)
        self.attention = DynamicSelfAttention(self.densenet.output_dim, num_heads, head_dim, iterations)
        self.output_dim = self.attention.output_dim

    def forward(self, features: Features) -> Features:
        mask = features["attention_mask"]
        hidden = self.densenet(features["token_embeddings"], mask)
        features["sentence_embedding"] = self.attention(hidden, mask)
        return features
