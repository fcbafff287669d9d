"""Kim (2014) CNN: parallel Conv1d of several widths, ReLU, max over time."""

from __future__ import annotations

import torch
from torch import nn

from textcls.encoders.base import Encoder, Features, masked


class MultiWidthConv(nn.Module):
    """Wide convolutions (padding k-1 on both sides) so a text shorter than the kernel still
    yields features; output positions whose window holds no real token are masked out."""

    def __init__(self, input_dim: int, num_filters: int, kernel_sizes: list[int]) -> None:
        super().__init__()
        self.kernel_sizes = list(kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv1d(input_dim, num_filters, k, padding=k - 1) for k in self.kernel_sizes
        )
        self.output_dim = num_filters * len(self.kernel_sizes)

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = masked(embeddings, mask).transpose(1, 2)  # [B, D, T]
        widest = max(self.kernel_sizes)
        lengths = mask.sum(1, keepdim=True)  # [B, 1] (padding is on the right)
        # Output position q of a width-k convolution reads the window starting at q - (k - 1); it
        # holds a real token iff that start is before the end of the text. One mask over every
        # start serves all widths (a width-k output is its last T + k - 1 columns), which keeps
        # the exported graph small: this is the hot path of the ONNX word CNN.
        starts = torch.arange(1 - widest, mask.size(1), device=x.device).unsqueeze(0)
        valid = (starts < lengths).unsqueeze(1).to(x.dtype)  # [B, 1, T + widest - 1]
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            out = torch.relu(conv(x))  # [B, F, T + k - 1]
            # ReLU outputs are >= 0, so zeroing the invalid positions masks them out of the max
            pooled.append((out * valid[:, :, widest - k :]).amax(dim=2))
        return torch.cat(pooled, dim=-1)


class CNNEncoder(Encoder):
    def __init__(
        self,
        input_dim: int,
        num_labels: int,
        num_filters: int = 128,
        kernel_sizes: list[int] | None = None,
    ) -> None:
        super().__init__(input_dim, num_labels)
        self.conv = MultiWidthConv(input_dim, num_filters, kernel_sizes or [3, 4, 5])
        self.output_dim = self.conv.output_dim

    def forward(self, features: Features) -> Features:
        features["sentence_embedding"] = self.conv(features["token_embeddings"], features["attention_mask"])
        return features
