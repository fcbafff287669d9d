"""Learning-rate schedules: linear warm-up, then linear / cosine decay or constant."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def make_schedule(optimizer: Optimizer, kind: str, total_steps: int, warmup_ratio: float) -> LambdaLR:
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return LambdaLR(optimizer, factor)


def step_batches(position: int, batches: int, grad_accum: int) -> range:
    """The batches (0-based, of an epoch's ``batches``) that the optimizer step of batch
    ``position`` sums: ``grad_accum`` of them, or fewer for an epoch's short last step. Each
    batch's loss then weighs its share of the step, so that a step is the mean over all it holds,
    as one batch would give: training's share of the examples, pretraining's of the predicted tokens.

    >>> [len(step_batches(i, 5, 2)) for i in range(5)]
    [2, 2, 2, 2, 1]
    >>> step_batches(3, 5, 2)
    range(2, 4)
    """
    first = position - position % grad_accum
    return range(first, min(first + grad_accum, batches))
