"""Calibrators after temperature scaling, compared on one trained model (issue 19's SST-2 miss).

    .venv/bin/python benchmarks/compare_calibrators.py MODEL_DIR DATA_DIR

Fits each on the validation file's logits and prints, on the test file: the ECE (15 bins), the
top-label Brier score and log loss (proper scores: a map that only flattens the scores cannot
lower them), and the ECE perfectly calibrated scores with the same confidences would show (the
noise floor of the test file's size). Calibrators: temperature (what training saves), then on its
probabilities: the isotonic top-label map (``--top-label isotonic``), Platt scaling of the top
label's log-odds, beta calibration (Kull et al. 2017) and equal-mass histogram binning.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize


def main(model_dir: Path, data: Path) -> None:
    import textcls
    from textcls.api import read_labelled
    from textcls.data.splits import find_split_files
    from textcls.decision import (
        choose_confidence_map,
        fit_confidence_map,
        fit_temperature,
        remap_top,
        softmax,
        top_label_brier,
    )
    from textcls.decision import expected_calibration_error as ece

    classifier = textcls.load(model_dir)
    labels = list(classifier.config.model.labels)
    split = {}
    for name, path in find_split_files(data).items():
        if name in ("valid", "test") and path is not None:
            examples = read_labelled(path, classifier.config)
            gold = np.array([labels.index(e.label) if e.label in labels else -1 for e in examples])
            logits = classifier.predictor.logits([e.as_input() for e in examples], 64)
            split[name] = (logits[gold >= 0], gold[gold >= 0])
    (vl, vg), (tl, tg) = split["valid"], split["test"]
    t = fit_temperature(vl, vg)
    pv, pt = softmax(vl / t), softmax(tl / t)
    right = (pv.argmax(1) == vg).astype(float)
    rows = {"raw": softmax(tl), f"temperature (T {t:.3f})": pt}
    xs, ys = map(np.asarray, fit_confidence_map(pv, vg))
    rows[f"T + isotonic map ({len(xs)} knots)"] = remap_top(pt, xs, ys)

    def top_features(p: np.ndarray, kind: str) -> np.ndarray:
        c = np.clip(p.max(1), 1e-7, 1 - 1e-7)
        if kind == "Platt":
            return np.stack([np.log(c / (1 - c)), np.ones_like(c)], 1)
        return np.stack([np.log(c), -np.log(1 - c), np.ones_like(c)], 1)  # beta

    for kind in ("Platt", "beta"):
        x = top_features(pv, kind)
        start = np.array([1.0, 0.0]) if kind == "Platt" else np.array([1.0, 1.0, 0.0])
        w = minimize(lambda w, x=x: float(np.mean(np.logaddexp(0, x @ w) - right * (x @ w))), start).x
        mapped = 1 / (1 + np.exp(-(top_features(pt, kind) @ w)))
        # as knots: the sorted (confidence, mapped) pairs, a monotone rearrangement of the map
        rows[f"T + {kind} on the top label"] = remap_top(pt, np.sort(pt.max(1)), np.sort(mapped))
    for bins in (5, 10, 15):
        edges = np.quantile(pv.max(1), np.linspace(0, 1, bins + 1))
        which = np.clip(np.searchsorted(edges, pv.max(1), side="right") - 1, 0, bins - 1)
        means = np.array([right[which == b].mean() if (which == b).any() else 0.5 for b in range(bins)])
        steps = np.repeat(edges, 2)[1:-1], np.repeat(means, 2)  # flat within each bin
        rows[f"T + histogram binning ({bins} bins)"] = remap_top(pt, *steps)
    print(f"{model_dir}: valid {len(vg)}, test {len(tg)} examples")
    print("| calibrator | test ECE | top-label Brier | top-label log loss |\n|---|---:|---:|---:|")
    for name, p in rows.items():
        c, r = np.clip(p.max(1), 1e-6, 1 - 1e-6), p.argmax(1) == tg
        loss = float(-np.mean(np.where(r, np.log(c), np.log(1 - c))))
        print(f"| {name} | {ece(p, tg):.4f} | {top_label_brier(p, tg):.4f} | {loss:.4f} |")
    _, chosen = choose_confidence_map("auto", pv, vg)
    print(f"\n--top-label auto on validation: {chosen}")
    rng, c = np.random.default_rng(0), pt.max(1)
    floor = [ece(np.stack([c, 1 - c], 1), np.where(rng.uniform(size=len(c)) < c, 0, 1)) for _ in range(50)]
    print(
        f"\nECE of perfectly calibrated scores at the temperature's test confidences (50 draws): "
        f"median {np.median(floor):.4f}, 90th percentile {np.percentile(floor, 90):.4f}"
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
