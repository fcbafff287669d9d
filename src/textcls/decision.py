"""How a model's scores become answers: the one place every backend, ``evaluate``, ``bench`` and
the server go through, decided by the model's config alone.

- **Calibrated probabilities.** ``softmax(logits / T)`` for one label per text, ``sigmoid(logits /
  T_j + b_j)`` per label for multi-label; T is fitted on the validation logits by NLL after
  training (temperature scaling, Guo et al. 2017); multi-label fits each label's T_j and b_j
  (Platt scaling), so a label the model has not learned scores its base rate, not 0.5. One label per text may
  add a monotone map of the top label's probability (isotonic regression on validation, kept by
  ``top_label: auto`` only when it lowers the top-label Brier score out of fold); the other labels
  share the rest.
- **Multi-label answers.** Every label whose probability reaches its threshold, tuned on
  validation for that label's F1; labels with too few validation positives share one global
  threshold tuned for micro-F1.
- **Out of scope.** A trained class named ``oos_label``, or abstention: the calibrated top
  in-scope probability below ``abstain_below`` (given, or chosen on validation for a target
  out-of-scope recall). The answer then names the out-of-scope label and says ``out_of_scope``.

Also here: the expected calibration error (15 equal-width bins) and the reliability diagram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textcls.config import ModelConfig
from textcls.errors import ConfigError

ECE_BINS = 15
POS_WEIGHT_CAP = 100.0


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # no overflow for large |logits|


class Decision:
    """A model's decision rule, read from its ``ModelConfig`` (labels, ``multi_label`` and
    ``decision``). A config without fitted values decides as before calibration existed:
    softmax (or sigmoid at 0.5) of the raw logits, no abstention."""

    def __init__(self, model: ModelConfig) -> None:
        self.labels = list(model.labels)
        self.multi_label = bool(model.multi_label)
        settings = model.decision
        size = len(self.labels)
        temperature = settings.temperature or [1.0]
        if len(temperature) not in (1, size):
            raise ConfigError(f"decision.temperature has {len(temperature)} values for {size} labels")
        self.temperature = np.asarray(temperature, np.float32)
        if settings.bias and (not self.multi_label or len(settings.bias) != size):
            raise ConfigError(f"decision.bias is one value per label of a multi-label model ({size})")
        self.bias = np.asarray(settings.bias or [0.0], np.float32)
        thresholds = settings.thresholds or [settings.global_threshold] * size
        if len(thresholds) != size:
            raise ConfigError(f"decision.thresholds has {len(thresholds)} values for {size} labels")
        self.thresholds = np.asarray(thresholds, np.float32)
        knots = settings.confidence_map
        if knots and (self.multi_label or len(knots) != 2 or len(knots[0]) != len(knots[1]) or not knots[0]):
            raise ConfigError("decision.confidence_map is [[x...], [y...]], for one label per text")
        self.confidence_map = tuple(np.asarray(k, np.float64) for k in knots) if knots else None
        self.oos_label = settings.oos_label
        self.oos_index = self.labels.index(self.oos_label) if self.oos_label in self.labels else None
        self.abstain_below = settings.abstain_below
        if self.multi_label and self.abstain_below is not None:
            raise ConfigError("abstention is for one label per text; a multi-label answer may be empty")

    @property
    def out_of_scope(self) -> bool:
        """Whether this model can answer 'out of scope' (a trained class or abstention)."""
        return not self.multi_label and (self.oos_index is not None or self.abstain_below is not None)

    def probabilities(self, logits: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Probabilities [n, labels]: softmax rows (one label per text) or sigmoid per label."""
        logits = np.asarray(logits, np.float32)
        if calibrated:
            logits = logits / self.temperature
        if self.multi_label:
            if calibrated:
                logits = logits + self.bias
            return sigmoid(logits)
        probabilities = softmax(logits)
        if calibrated and self.confidence_map is not None:
            return remap_top(probabilities, *self.confidence_map)
        return probabilities

    def confidence(self, probabilities: np.ndarray) -> np.ndarray:
        """The top in-scope probability of each row (the score abstention and AUROC use)."""
        if self.oos_index is None:
            return probabilities.max(axis=1)
        return np.delete(probabilities, self.oos_index, axis=1).max(axis=1)

    def abstains(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Rows answered out of scope: the trained class on top, or confidence below the
        threshold (``threshold`` overrides ``abstain_below``)."""
        threshold = self.abstain_below if threshold is None else threshold
        out = np.zeros(len(probabilities), bool)
        if self.oos_index is not None:
            out |= probabilities.argmax(axis=1) == self.oos_index
        if threshold is not None:
            out |= self.confidence(probabilities) < threshold
        return out

    def answers(
        self, probabilities: np.ndarray, top_k: int | None = None, threshold: float | None = None
    ) -> list[list[dict[str, Any]]]:
        """One ranked list of ``{"label", "score"}`` per row.

        One label per text: the ``top_k`` best (default 1); an out-of-scope row starts with
        ``{"label": <oos_label>, "score": <top in-scope probability>, "out_of_scope": true}``
        (``"abstained": true`` when a threshold decided it), followed by the best in-scope labels.
        Multi-label: every label at or above its threshold (``threshold`` replaces them all),
        best first, at most ``top_k``; possibly none."""
        if top_k is not None and top_k < 1:
            raise ConfigError(f"top_k must be at least 1, got {top_k}")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be between 0 and 1, got {threshold}")
        order = np.argsort(-probabilities, axis=1, kind="stable")
        labels = self.labels
        if self.multi_label:
            limits = self.thresholds if threshold is None else np.full(len(labels), threshold, np.float32)
            results = []
            for row, ranked in zip(probabilities, order, strict=True):
                chosen = [j for j in ranked if row[j] >= limits[j]][:top_k]
                results.append([{"label": labels[j], "score": float(row[j])} for j in chosen])
            return results
        k = min(top_k or 1, len(labels))
        abstained = self.abstains(probabilities, threshold)
        confidence = self.confidence(probabilities)
        results = []
        for i, (row, ranked) in enumerate(zip(probabilities, order, strict=True)):
            if not abstained[i]:
                results.append([{"label": labels[j], "score": float(row[j])} for j in ranked[:k]])
                continue
            trained = self.oos_index is not None and ranked[0] == self.oos_index
            entry: dict[str, Any] = {
                "label": self.oos_label,
                "score": float(row[self.oos_index] if trained else confidence[i]),
                "out_of_scope": True,
            }
            if not trained:
                entry["abstained"] = True
            rest = [j for j in ranked if j != self.oos_index][: k - 1]
            results.append([entry, *({"label": labels[j], "score": float(row[j])} for j in rest)])
        return results

    def predicted(self, probabilities: np.ndarray, threshold: float | None = None) -> list[Any]:
        """What evaluation scores: the answered label per row (the out-of-scope label when it
        abstains), or for multi-label the tuple of answered labels."""
        answers = self.answers(probabilities, None, threshold)
        if self.multi_label:
            return [tuple(a["label"] for a in row) for row in answers]
        return [row[0]["label"] for row in answers]


def remap_top(probabilities: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Rows whose top probability is mapped through the increasing knots (xs, ys) (linear between
    them, flat beyond), the other labels sharing the rest in their proportions (equally when they
    had none). The top label stays on top: its new value is kept just above the level where it
    would tie the runner-up."""
    p = np.asarray(probabilities, np.float64)
    if p.shape[1] < 2 or len(p) == 0:
        return np.asarray(probabilities, np.float32)
    rows, top_index = np.arange(len(p)), p.argmax(axis=1)
    top = p[rows, top_index]
    rest = p.sum(axis=1) - top
    second = np.partition(p, -2, axis=1)[:, -2]
    new = np.clip(np.interp(top, xs, ys), 0.0, 1.0)
    new = np.minimum(np.maximum(new, second / np.maximum(rest + second, 1e-12) + 1e-6), 1.0)
    shared = rest > 1e-12
    out = np.where(
        shared[:, None],
        p * ((1.0 - new) / np.where(shared, rest, 1.0))[:, None],
        ((1.0 - new) / (p.shape[1] - 1))[:, None],
    )
    out[rows, top_index] = new
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- fitting on validation
TOP_LABEL_FOLDS = 5
TOP_LABEL_MIN_EXAMPLES = 500


def fit_confidence_map(probabilities: np.ndarray, gold: np.ndarray) -> list[list[float]]:
    """Knots [[x...], [y...]] of the isotonic regression of 'the top label is right' on the top
    probability (scikit-learn; linear between knots, as its ``predict``)."""
    from sklearn.isotonic import IsotonicRegression

    top = probabilities.max(axis=1)
    right = (probabilities.argmax(axis=1) == gold).astype(np.float64)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(top, right)
    return [fitted.X_thresholds_.tolist(), fitted.y_thresholds_.tolist()]


def top_label_brier(probabilities: np.ndarray, gold: np.ndarray) -> float:
    """Mean squared gap between the top probability and 'the top label is right' (a proper score:
    unlike the binned ECE, no map of the scores can lower it below the truth's on average)."""
    right = probabilities.argmax(axis=1) == gold
    return float(np.mean((probabilities.max(axis=1) - right) ** 2))


def out_of_fold_mapped(probabilities: np.ndarray, gold: np.ndarray, seed: int = 0) -> np.ndarray:
    """``probabilities`` with each of :data:`TOP_LABEL_FOLDS` folds mapped by the knots
    :func:`fit_confidence_map` fits on the other folds (what the map does to unseen texts)."""
    order = np.random.default_rng(seed).permutation(len(gold))
    mapped = np.empty_like(probabilities)
    for fold in np.array_split(order, TOP_LABEL_FOLDS):
        others = np.setdiff1d(order, fold)
        xs, ys = fit_confidence_map(probabilities[others], gold[others])
        mapped[fold] = remap_top(probabilities[fold], np.asarray(xs), np.asarray(ys))
    return mapped


def choose_confidence_map(mode: str, probabilities: np.ndarray, gold: np.ndarray) -> tuple[list, dict]:
    """The top-label map ``mode`` asks for, with what the choice was based on. ``auto`` keeps it
    only if, out of fold, it lowers the top-label Brier score (not the ECE: even out of fold, a few
    flat steps can lower the binned ECE of scores that were calibrated already)."""
    if mode == "none" or len(gold) == 0 or probabilities.shape[1] < 2:
        return [], {}
    if mode == "isotonic":
        return fit_confidence_map(probabilities, gold), {"top_label": "isotonic"}
    if len(gold) < TOP_LABEL_MIN_EXAMPLES:
        return [], {"top_label": f"none ({len(gold)} valid examples; auto needs {TOP_LABEL_MIN_EXAMPLES})"}
    mapped = out_of_fold_mapped(probabilities, gold)
    stats = {
        "brier_temperature": top_label_brier(probabilities, gold),
        "brier_isotonic_out_of_fold": top_label_brier(mapped, gold),
        "ece_isotonic_out_of_fold": expected_calibration_error(mapped, gold),
    }
    if stats["brier_isotonic_out_of_fold"] < stats["brier_temperature"]:
        return fit_confidence_map(probabilities, gold), {**stats, "top_label": "isotonic"}
    return [], {**stats, "top_label": "none (no gain out of fold)"}


LOG_T_BOUNDS = (-7.0, 7.0)
BIAS_BOUNDS = (-30.0, 30.0)


def _scalar_temperature(loss: Any) -> float:
    """exp of the log-temperature minimising ``loss`` within :data:`LOG_T_BOUNDS`; 1 when the
    minimum is at the lower bound: validation without a single error or doubt, where the NLL
    only falls as T shrinks and every score would become 0 or 1 (ill-posed; nothing learned)."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(loss, bounds=LOG_T_BOUNDS, method="bounded")
    if loss(LOG_T_BOUNDS[0]) <= found.fun + 1e-9:  # still falling at the bound: no minimum inside
        return 1.0
    return float(math.exp(found.x))


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) (Guo et al. 2017); 1 when
    the validation logits are separated without error (see :func:`_scalar_temperature`)."""
    from scipy.special import log_softmax

    gold = np.asarray(gold, np.int64)
    if len(gold) == 0:
        return 1.0
    logits = np.asarray(logits, np.float64)

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / math.exp(log_t), axis=1)[np.arange(len(gold)), gold].mean())

    return _scalar_temperature(nll)


def fit_label_platt(logits: np.ndarray, targets: np.ndarray) -> tuple[list[float], list[float]]:
    """Each label's temperature T_j and bias b_j minimising the binary cross-entropy of
    sigmoid(z / T_j + b_j) (Platt scaling, with T > 0 so the ranking is kept) against Platt's
    (1999) smoothed targets, (positives + 1) / (positives + 2) and 1 / (negatives + 2), so that a
    few separable validation examples do not send T to 0. A label the logits say nothing about
    gets a large T and the bias of its base rate. A label with no positive or no negative
    validation example keeps T = 1 and b = 0."""
    from scipy.optimize import minimize
    from scipy.special import expit

    logits, targets = np.asarray(logits, np.float64), np.asarray(targets, np.float64)
    temperatures, biases = [], []
    for j in range(logits.shape[1]):
        z, y = logits[:, j], targets[:, j]
        if y.min() == y.max():
            temperatures.append(1.0)
            biases.append(0.0)
            continue
        positives = y.sum()
        y = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (len(y) - positives + 2))

        def bce(x: np.ndarray, z: np.ndarray = z, y: np.ndarray = y) -> tuple[float, np.ndarray]:
            scale = math.exp(-x[0])
            s = z * scale + x[1]
            residual = expit(s) - y  # d loss / d s
            loss = float((np.logaddexp(0.0, s) - y * s).mean())
            return loss, np.array([float((residual * -z * scale).mean()), float(residual.mean())])

        found = minimize(bce, np.zeros(2), jac=True, method="L-BFGS-B", bounds=[LOG_T_BOUNDS, BIAS_BOUNDS])
        temperatures.append(float(math.exp(found.x[0])))
        biases.append(float(found.x[1]))
    return temperatures, biases


def best_f1_threshold(scores: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """(threshold, F1): the threshold t maximising the F1 of ``scores >= t`` against the 0/1
    ``targets`` (midway between the chosen score and the next lower one, so nearby unseen scores
    fall on the same side); (0.5, 0.0) when there is no positive."""
    from sklearn.metrics import precision_recall_curve

    if targets.sum() == 0:
        return 0.5, 0.0
    precision, recall, cuts = precision_recall_curve(targets, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    cut = float(cuts[best])
    lower = scores[scores < cut]
    threshold = (cut + float(lower.max())) / 2 if len(lower) else cut
    return threshold, float(f1[best])


def tune_thresholds(
    probabilities: np.ndarray, targets: np.ndarray, min_positives: int
) -> tuple[list[float], float, dict[str, Any]]:
    """Per-label thresholds maximising each label's validation F1; labels with fewer than
    ``min_positives`` positives take the global threshold maximising micro-F1 over all labels."""
    global_threshold, micro = best_f1_threshold(probabilities.ravel(), targets.ravel())
    thresholds, own = [], 0
    for j in range(probabilities.shape[1]):
        if targets[:, j].sum() >= min_positives:
            thresholds.append(best_f1_threshold(probabilities[:, j], targets[:, j])[0])
            own += 1
        else:
            thresholds.append(global_threshold)
    stats = {
        "global_threshold": global_threshold,
        "global_micro_f1": micro,
        "labels_with_own_threshold": own,
        "labels_with_global_threshold": len(thresholds) - own,
    }
    return thresholds, global_threshold, stats


def abstention_threshold(confidence: np.ndarray, out_of_scope: np.ndarray, target_recall: float) -> float:
    """The lowest threshold t with ``confidence < t`` catching at least ``target_recall`` of the
    out-of-scope rows (midway to the next higher confidence of any row)."""
    scores = np.sort(confidence[out_of_scope])
    if len(scores) == 0:
        raise ConfigError("--oos-target-recall needs out-of-scope examples in the validation data")
    cut = float(scores[min(len(scores), math.ceil(target_recall * len(scores) - 1e-9)) - 1])
    above = confidence[confidence > cut]
    return (cut + float(above.min())) / 2 if len(above) else min(1.0, cut + 1e-6)


def multi_hot(gold: Sequence[Sequence[int]], size: int) -> np.ndarray:
    """0/1 matrix [n, size] of label-id tuples (ids at or past ``size``, unseen labels, dropped)."""
    out = np.zeros((len(gold), size), np.float32)
    for i, ids in enumerate(gold):
        for j in ids:
            if 0 <= j < size:
                out[i, j] = 1.0
    return out


def calibrate(
    model: ModelConfig,
    logits: np.ndarray,
    gold: Sequence[Any],
    out_of_scope: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit the decision of a trained model on its validation logits and gold ids (ids past the
    labels are labels unseen in training; ``out_of_scope`` marks the rows whose gold label is the
    out-of-scope one); sets ``model.decision`` and returns what was fitted, with the ECE before
    and after."""
    settings = model.decision
    size = len(model.labels)
    logits = np.asarray(logits, np.float32)
    stats: dict[str, Any] = {}
    if settings.oos_target_recall is not None and settings.abstain_below is not None:
        raise ConfigError("give --oos-target-recall or --abstain-below, not both")
    if model.multi_label:
        if settings.oos_target_recall is not None or settings.abstain_below is not None:
            raise ConfigError("abstention (--oos-target-recall, --abstain-below) is for one label per text")
        targets = multi_hot(gold, size)
        settings.confidence_map = []
        settings.temperature, settings.bias = (
            fit_label_platt(logits, targets) if settings.calibrate else ([], [])
        )
        decision = Decision(model)
        raw, calibrated = decision.probabilities(logits, False), decision.probabilities(logits)
        stats["ece_before"] = label_ece(raw, targets)
        stats["ece_after"] = label_ece(calibrated, targets)
        if settings.tune_thresholds and len(logits):
            settings.thresholds, settings.global_threshold, found = tune_thresholds(
                calibrated, targets, settings.min_positives
            )
            stats.update(found)
        else:
            settings.thresholds, settings.global_threshold = [], 0.5
        stats["thresholds"] = dict(zip(model.labels, Decision(model).thresholds.tolist(), strict=True))
    else:
        gold_ids = np.asarray(gold, np.int64)
        known = (gold_ids >= 0) & (gold_ids < size)
        settings.temperature = [fit_temperature(logits[known], gold_ids[known])] if settings.calibrate else []
        settings.bias = []
        settings.confidence_map = []
        if settings.calibrate:
            scaled = Decision(model).probabilities(logits[known])
            stats["ece_after_temperature"] = expected_calibration_error(scaled, gold_ids[known])
            knots, chosen = choose_confidence_map(settings.top_label, scaled, gold_ids[known])
            settings.confidence_map = knots
            stats.update(chosen)
        decision = Decision(model)
        stats["ece_before"] = expected_calibration_error(
            decision.probabilities(logits[known], False), gold_ids[known]
        )
        stats["ece_after"] = expected_calibration_error(
            decision.probabilities(logits[known]), gold_ids[known]
        )
        if settings.oos_target_recall is not None:
            if out_of_scope is None or not out_of_scope.any():
                raise ConfigError(
                    f"--oos-target-recall needs out-of-scope examples (label {settings.oos_label!r}) in "
                    "the validation data; add some, or give a fixed --abstain-below"
                )
            confidence = decision.confidence(decision.probabilities(logits))
            settings.abstain_below = abstention_threshold(
                confidence, out_of_scope, settings.oos_target_recall
            )
            stats["abstain_below"] = settings.abstain_below
            stats["valid_out_of_scope"] = int(out_of_scope.sum())
    if settings.bias:
        stats["bias"] = settings.bias
    if settings.temperature:
        stats["temperature"] = (
            settings.temperature[0] if len(settings.temperature) == 1 else settings.temperature
        )
    return stats


# ----------------------------------------------------------------------------- calibration error
def expected_calibration_error(probabilities: np.ndarray, gold: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the top-label confidence (Guo et al. 2017): Σ_b |B_b|/n · |accuracy(B_b) −
    confidence(B_b)| over ``bins`` equal-width bins of (0, 1] (a confidence on an edge falls in
    the lower bin)."""
    if len(gold) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == np.asarray(gold)).astype(np.float64)
    return _binned_gap(confidence, correct, bins)


def label_ece(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """Multi-label: the mean over labels of each label's binary ECE (its probability against the
    share of positives, in equal-width bins)."""
    if len(targets) == 0:
        return 0.0
    gaps = [_binned_gap(probabilities[:, j], targets[:, j], bins) for j in range(targets.shape[1])]
    return float(np.mean(gaps))


def _binned_gap(confidence: np.ndarray, outcome: np.ndarray, bins: int) -> float:
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.sum() * abs(outcome[members].mean() - confidence[members].mean())
    return float(total / len(confidence))


def reliability_bins(confidence: np.ndarray, outcome: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per bin: its range, count, mean confidence and observed accuracy (the diagram's data)."""
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        rows.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": int(members.sum()),
                "confidence": float(confidence[members].mean()) if members.any() else None,
                "accuracy": float(outcome[members].mean()) if members.any() else None,
            }
        )
    return rows


def plot_reliability(curves: dict[str, list[dict]], path: Path, title: str) -> None:
    """A reliability diagram: observed accuracy per confidence bin, one line per curve (before /
    after calibration), with the diagonal of perfect calibration."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, rows in curves.items():
        shown = [r for r in rows if r["count"]]
        ax.plot([r["confidence"] for r in shown], [r["accuracy"] for r in shown], marker="o", label=name)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
