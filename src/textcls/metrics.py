"""The one definition of each metric, used by the training loop (early stopping, search),
evaluation, bench and distillation reports alike.

Macro-F1 is scikit-learn's default: the unweighted mean of per-label F1 over the labels that
occur in the gold labels or in the predictions. A model label absent from both does not count
(it has no examples to get right or wrong); a gold label the model never saw in training counts
with F1 0 (recall 0), and its examples count as errors in accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def accuracy(gold: Sequence[Any], predicted: Sequence[Any]) -> float:
    """Share of examples whose prediction equals the gold label, over all examples."""
    if len(gold) == 0:
        return 0.0
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def macro_f1(gold: Sequence[Any], predicted: Sequence[Any]) -> float:
    """Mean F1 over the labels present in ``gold`` or ``predicted`` (see the module docstring)."""
    from sklearn.metrics import f1_score

    if len(gold) == 0:
        return 0.0
    return float(f1_score(list(gold), list(predicted), average="macro", zero_division=0))
