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


def multi_label_scores(targets: Any, predicted: Any) -> dict[str, float]:
    """Multi-label metrics of 0/1 matrices [examples, labels] (scikit-learn): micro / macro /
    samples F1, hamming loss and subset accuracy (every label of the example right). Macro-F1
    averages over the labels present in the gold labels or the predictions, as above."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss

    targets, predicted = np.asarray(targets), np.asarray(predicted)
    if len(targets) == 0:
        return {k: 0.0 for k in ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy")}
    present = (targets.sum(0) + predicted.sum(0)) > 0
    macro = (
        float(f1_score(targets[:, present], predicted[:, present], average="macro", zero_division=0))
        if present.any()
        else 0.0
    )
    return {
        "micro_f1": float(f1_score(targets, predicted, average="micro", zero_division=0)),
        "macro_f1": macro,
        "samples_f1": float(f1_score(targets, predicted, average="samples", zero_division=0)),
        "hamming_loss": float(hamming_loss(targets, predicted)),
        "subset_accuracy": float(accuracy_score(targets, predicted)),
    }
