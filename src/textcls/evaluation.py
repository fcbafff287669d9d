"""Metrics and reports: scikit-learn metrics, confusion matrix, predictions file, latency."""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textcls.data.batching import describe_truncation
from textcls.data.formats import Example
from textcls.data.splits import check_known_labels
from textcls.inference.predictor import Predictor

log = logging.getLogger(__name__)


def classification_report(gold: Sequence[str], predicted: Sequence[str], labels: list[str]) -> dict:
    """Accuracy, macro / micro / weighted F1, per-class P/R/F1 and the confusion matrix.

    ``labels`` are the model's labels. Gold labels outside them (never seen in training) are
    appended to the per-class table and the confusion matrix (recall 0: the model cannot predict
    them) and listed under ``unseen``; their examples count as errors. Macro-F1 follows
    :func:`textcls.metrics.macro_f1` (labels present in gold or predictions)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    from textcls.metrics import accuracy, macro_f1

    known = set(labels)
    unseen: dict[str, int] = {}
    for label in gold:
        if label not in known:
            unseen[label] = unseen.get(label, 0) + 1
    answered = sorted(set(predicted) - known - set(unseen))  # an abstention's out-of-scope label
    table_labels = [*labels, *sorted(unseen), *answered]
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=table_labels, zero_division=0
    )
    return {
        "n": len(gold),
        "accuracy": float(accuracy(gold, predicted)),
        "macro_f1": macro_f1(gold, predicted),
        "micro_f1": float(f1_score(gold, predicted, average="micro", zero_division=0)),
        "weighted_f1": float(f1_score(gold, predicted, average="weighted", zero_division=0)),
        "per_class": per_class(table_labels, precision, recall, f1, support, unseen),
        "labels": table_labels,
        "unseen": dict(sorted(unseen.items())),
        "confusion_matrix": confusion_matrix(gold, predicted, labels=table_labels).tolist(),
    }


def single_timings(predictor: Predictor, texts: Sequence[str], single: int = 200) -> list[float]:
    """ms per call at batch size 1 on each of the first ``single`` texts, after 10 warm-up calls."""
    sample = list(texts[:single])
    for text in sample[:10]:
        predictor.logits([text], 1)
    timings = []
    for text in sample:
        start = time.perf_counter()
        predictor.logits([text], 1)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def measure_latency(
    predictor: Predictor, texts: Sequence[str], single: int = 200, repeats: int = 3
) -> dict[str, float]:
    """p50 / p95 ms per example at batch size 1 and examples/s at batch 64 (median of repeats)."""
    timings = single_timings(predictor, texts, single)
    batch_texts = list(texts[:2048])
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.logits(batch_texts, 64)
        rates.append(len(batch_texts) / (time.perf_counter() - start))
    return {
        "p50_ms": float(np.percentile(timings, 50)),
        "p95_ms": float(np.percentile(timings, 95)),
        "throughput_per_s": float(statistics.median(rates)),
        "batch_size": 64,
        "threads": predictor.threads,
    }


def per_class(
    labels: Sequence[str], precision: Any, recall: Any, f1: Any, support: Any, unseen: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """The per-label table of scikit-learn's precision_recall_fscore_support, labels never seen
    in training marked."""
    return {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            **({"unseen_in_training": True} if label in unseen else {}),
        }
        for i, label in enumerate(labels)
    }


def multi_label_report(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], labels: list[str]
) -> dict[str, Any]:
    """Multi-label metrics (scikit-learn): micro / macro / weighted / samples F1, hamming loss,
    subset accuracy (as ``accuracy``), per-label precision / recall / F1, and how often labels
    occur together in the gold labels and in the predictions. Gold labels the model never saw
    are listed under ``unseen`` and count as missed."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support
    from sklearn.preprocessing import MultiLabelBinarizer

    from textcls.metrics import multi_label_scores

    known = set(labels)
    unseen: dict[str, int] = {}
    for row in gold:
        for label in row:
            if label not in known:
                unseen[label] = unseen.get(label, 0) + 1
    classes = [*labels, *sorted(unseen)]
    binarizer = MultiLabelBinarizer(classes=classes)
    y, p = binarizer.fit_transform(gold), binarizer.transform(predicted)
    precision, recall, f1, support = precision_recall_fscore_support(y, p, zero_division=0)
    scores = multi_label_scores(y, p)
    gold_pairs, predicted_pairs, right_pairs = y.T @ y, p.T @ p, (y & p).T @ (y & p)
    pairs = [
        {
            "labels": [classes[a], classes[b]],
            "gold": int(gold_pairs[a, b]),
            "predicted": int(predicted_pairs[a, b]),
            "both_found": int(right_pairs[a, b]),
        }
        for a in range(len(classes))
        for b in range(a + 1, len(classes))
        if gold_pairs[a, b] or predicted_pairs[a, b]
    ]
    pairs.sort(key=lambda pair: (-pair["gold"], -pair["predicted"], pair["labels"]))
    return {
        "n": len(gold),
        "multi_label": True,
        "accuracy": scores["subset_accuracy"],
        **scores,
        "weighted_f1": float(f1_score(y, p, average="weighted", zero_division=0)),
        "labels_per_example": {"gold": float(y.sum(1).mean()), "predicted": float(p.sum(1).mean())},
        "without_prediction": int((p.sum(1) == 0).sum()),
        "per_class": per_class(classes, precision, recall, f1, support, unseen),
        "labels": classes,
        "unseen": dict(sorted(unseen.items())),
        "co_occurrence": pairs,
    }


def calibration_report(
    decision: Any, raw: np.ndarray, calibrated: np.ndarray, examples: Sequence[Example]
) -> dict[str, Any]:
    """ECE (15 equal-width bins) before and after the model's calibration, with the reliability
    bins of both (multi-label: per-label binary ECE, averaged; the bins over every (example,
    label) probability). Examples whose gold label the model never saw are left out."""
    from textcls.decision import expected_calibration_error, label_ece, multi_hot, reliability_bins, softmax

    index = {label: i for i, label in enumerate(decision.labels)}
    if decision.multi_label:
        targets = multi_hot([[index.get(l, -1) for l in e.label_set] for e in examples], len(index))
        return {
            "ece_before": label_ece(raw, targets),
            "ece_after": label_ece(calibrated, targets),
            "bins": {
                "before": reliability_bins(raw.ravel(), targets.ravel()),
                "after": reliability_bins(calibrated.ravel(), targets.ravel()),
            },
            "temperature": decision.temperature.tolist(),
            "bias": decision.bias.tolist(),
        }
    keep = np.asarray([e.label in index for e in examples], bool)
    gold = np.asarray([index.get(str(e.label), -1) for e in examples])[keep]
    raw, calibrated = raw[keep], calibrated[keep]
    mapped = {}
    if decision.confidence_map is not None:  # what temperature scaling alone gives, for comparison
        with np.errstate(divide="ignore"):
            scaled = softmax(np.log(raw) / decision.temperature[0])
        mapped = {"ece_after_temperature": expected_calibration_error(scaled, gold), "top_label": "isotonic"}
    return {
        "ece_before": expected_calibration_error(raw, gold),
        "ece_after": expected_calibration_error(calibrated, gold),
        **mapped,
        "bins": {
            "before": reliability_bins(raw.max(1), (raw.argmax(1) == gold).astype(float)),
            "after": reliability_bins(calibrated.max(1), (calibrated.argmax(1) == gold).astype(float)),
        },
        "temperature": float(decision.temperature[0]),
        "examples": int(keep.sum()),
    }


def out_of_scope_report(
    decision: Any, probabilities: np.ndarray, gold: Sequence[str], predicted: Sequence[str]
) -> dict[str, Any]:
    """Larson et al. (2019)'s CLINC150 measures: in-scope accuracy, out-of-scope precision /
    recall / F1 (an answer of the out-of-scope label, trained or abstained, is a positive), and
    the AUROC of the top in-scope probability for in- against out-of-scope inputs."""
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    name = decision.oos_label
    gold_oos = np.asarray([g == name for g in gold])
    predicted_oos = np.asarray([p == name for p in predicted])
    in_scope = ~gold_oos
    right = np.asarray([g == p for g, p in zip(gold, predicted, strict=True)])
    precision, recall, f1, _ = precision_recall_fscore_support(
        gold_oos, predicted_oos, average="binary", zero_division=0
    )
    confidence = decision.confidence(probabilities)
    both = gold_oos.any() and in_scope.any()
    return {
        "label": name,
        "trained_class": decision.oos_index is not None,
        "abstain_below": decision.abstain_below,
        "in_scope_examples": int(in_scope.sum()),
        "out_of_scope_examples": int(gold_oos.sum()),
        "in_scope_accuracy": float(right[in_scope].mean()) if in_scope.any() else None,
        "oos_precision": float(precision),
        "oos_recall": float(recall),
        "oos_f1": float(f1),
        "answered_out_of_scope": int(predicted_oos.sum()),
        "auroc": float(roc_auc_score(in_scope, confidence)) if both else None,
    }


def evaluate(
    predictor: Predictor,
    examples: Sequence[Example],
    out_dir: str | Path | None = None,
    *,
    latency: bool = True,
    batch_size: int = 64,
    source: str = "data",
    strict_labels: bool = False,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Score ``predictor`` on labelled ``examples``; write report.json / report.md /
    predictions.tsv / confusion.png / reliability.png into ``out_dir`` when given. Returns the
    report.

    The answers are the model's own (``textcls.decision``: calibrated scores, multi-label
    thresholds, out of scope; ``threshold`` replaces the model's). Examples whose label the model
    never saw count as wrong (accuracy is over all examples, as other tools report it) and are
    listed in the report; ``strict_labels`` refuses them. The report adds the calibration error
    before and after calibration and, when the model can answer out of scope or the data holds
    the out-of-scope label, the out-of-scope measures."""
    decision = predictor.decider()
    expected = [*predictor.labels, *([decision.oos_label] if decision.out_of_scope else [])]
    note = check_known_labels(examples, expected, source, strict=strict_labels)
    if note:
        log.warning("%s", note)
    texts = [e.as_input() for e in examples]
    logits = predictor.logits(texts, batch_size)
    raw, probabilities = decision.probabilities(logits, False), decision.probabilities(logits)
    predicted = decision.predicted(probabilities, threshold)
    if decision.multi_label:
        gold: list[Any] = [e.label_set for e in examples]
        report = multi_label_report(gold, predicted, predictor.labels)
    else:
        gold = [str(e.label) for e in examples]
        report = classification_report(gold, predicted, expected)
        if decision.out_of_scope or decision.oos_label in gold:
            report["out_of_scope"] = out_of_scope_report(decision, probabilities, gold, predicted)
    report.update(
        source=source,
        backend=predictor.backend,
        longer_than_max_length=predictor.count_long(texts),
        truncation=predictor.truncation(texts),
        calibration=calibration_report(decision, raw, probabilities, examples),
    )
    if latency:
        report["latency"] = measure_latency(predictor, texts)
    if out_dir is not None:
        write_report(Path(out_dir), report, texts, gold, predicted, probabilities, decision)
    return report


def write_report(
    out_dir: Path,
    report: dict[str, Any],
    texts: Sequence[Any],
    gold: Sequence[Any],
    predicted: Sequence[Any],
    probabilities: np.ndarray,
    decision: Any,
) -> None:
    from textcls.decision import plot_reliability

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(report), encoding="utf-8")
    index = {label: i for i, label in enumerate(decision.labels)}
    with open(out_dir / "predictions.tsv", "w", encoding="utf-8") as handle:
        handle.write("text\tgold\tpred\tscore\n")
        for i, (text, g, p) in enumerate(zip(texts, gold, predicted, strict=True)):
            shown = text if isinstance(text, str) else " ||| ".join(text)
            if decision.multi_label:  # the answered labels' scores
                score = ",".join(f"{probabilities[i, index[label]]:.4f}" for label in p)
                g, p = ",".join(g), ",".join(p)
            else:
                row = probabilities[i : i + 1]
                value = row[0, index[p]] if p in index else decision.confidence(row)[0]
                score = f"{value:.4f}"
            handle.write(f"{_clean(shown)}\t{g}\t{p}\t{score}\n")
    if not decision.multi_label:
        plot_confusion(report, out_dir / "confusion.png")
    calibration = report["calibration"]
    plot_reliability(
        {
            f"raw (ECE {calibration['ece_before']:.3f})": calibration["bins"]["before"],
            f"calibrated (ECE {calibration['ece_after']:.3f})": calibration["bins"]["after"],
        },
        out_dir / "reliability.png",
        f"reliability on {Path(str(report.get('source', 'data'))).name}",
    )


def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def report_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation on {report.get('source', 'data')}",
        "",
        f"{report['n']} examples, backend {report.get('backend')}",
        "",
        f"- {'subset accuracy' if report.get('multi_label') else 'accuracy'}: {report['accuracy'] * 100:.2f}",
        f"- macro F1: {report['macro_f1'] * 100:.2f}",
        f"- micro F1: {report['micro_f1'] * 100:.2f}",
        f"- weighted F1: {report['weighted_f1'] * 100:.2f}",
    ]
    if report.get("multi_label"):
        cardinality = report["labels_per_example"]
        lines += [
            f"- samples F1: {report['samples_f1'] * 100:.2f}",
            f"- hamming loss: {report['hamming_loss']:.4f}",
            f"- labels per example: gold {cardinality['gold']:.3f}, "
            f"predicted {cardinality['predicted']:.3f}; "
            f"{report['without_prediction']} examples without any label above its threshold",
        ]
    calibration = report.get("calibration")
    if calibration:
        lines.append(
            f"- expected calibration error (15 bins"
            f"{', mean over labels' if report.get('multi_label') else ''}): "
            f"{calibration['ece_before']:.4f} raw, {calibration['ece_after']:.4f} calibrated"
            + (
                f" (temperature alone: {calibration['ece_after_temperature']:.4f}; then the top-label map)"
                if "ece_after_temperature" in calibration
                else ""
            )
        )
    oos = report.get("out_of_scope")
    if oos:
        ways = ["a trained class"] if oos["trained_class"] else []
        if oos["abstain_below"] is not None:
            ways.append(f"abstention below {oos['abstain_below']:.4f}")
        how = " and ".join(ways) or "no way to answer it"
        accuracy = oos["in_scope_accuracy"]
        auroc = oos["auroc"]
        lines += [
            f"- out of scope ({oos['label']!r}, {how}): {oos['out_of_scope_examples']} out-of-scope / "
            f"{oos['in_scope_examples']} in-scope examples; in-scope accuracy "
            f"{'n/a' if accuracy is None else f'{accuracy * 100:.2f}'}; out-of-scope precision "
            f"{oos['oos_precision'] * 100:.2f}, recall {oos['oos_recall'] * 100:.2f}, "
            f"F1 {oos['oos_f1'] * 100:.2f}; "
            f"AUROC {'n/a' if auroc is None else f'{auroc:.4f}'}",
        ]
    for label, count in report.get("unseen", {}).items():
        lines.append(f"- never seen in training: {label}, {count} example{'s' if count != 1 else ''}")
    if report.get("longer_than_max_length") is not None:
        lines.append(f"- inputs longer than max_length: {report['longer_than_max_length']}")
    if report.get("truncation"):
        lines.append(f"- {describe_truncation(report['truncation'])}")
    if "latency" in report:
        lat = report["latency"]
        lines += [
            f"- latency at batch 1: p50 {lat['p50_ms']:.3f} ms, p95 {lat['p95_ms']:.3f} ms "
            f"({lat['threads']} threads)",
            f"- throughput at batch {lat['batch_size']}: {lat['throughput_per_s']:.0f} examples/s",
        ]
    lines += ["", "| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, row in report["per_class"].items():
        lines.append(
            f"| {label} | {row['precision'] * 100:.2f} | {row['recall'] * 100:.2f} | "
            f"{row['f1'] * 100:.2f} | {row['support']} |"
        )
    if report.get("multi_label"):
        lines += [
            "",
            "Label co-occurrence: the most frequent gold pairs (examples with both labels; both found: "
            "examples where the model answered both)",
            "",
            "| labels | gold | predicted | both found |",
            "|---|---:|---:|---:|",
        ]
        for pair in report["co_occurrence"][:15]:
            lines.append(
                f"| {' + '.join(pair['labels'])} | {pair['gold']} | {pair['predicted']} "
                f"| {pair['both_found']} |"
            )
        return "\n".join(lines) + "\n"
    lines += ["", "Confusion matrix (rows: gold, columns: predicted)", "", confusion_text(report)]
    return "\n".join(lines) + "\n"


def confusion_text(report: dict[str, Any]) -> str:
    labels, matrix = report["labels"], report["confusion_matrix"]
    width = max(len(label) for label in labels)
    cell = max(5, *(len(str(v)) for row in matrix for v in row))
    header = " " * width + " " + " ".join(f"{i:>{cell}}" for i in range(len(labels)))
    rows = [
        f"{label:<{width}} " + " ".join(f"{v:>{cell}}" for v in row) + f"   ({i})"
        for i, (label, row) in enumerate(zip(labels, matrix, strict=True))
    ]
    return "```\n" + "\n".join([header, *rows]) + "\n```"


def plot_confusion(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    labels, matrix = report["labels"], np.asarray(report["confusion_matrix"])
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if len(labels) <= 20:
        for (i, j), value in np.ndenumerate(matrix):
            color = "white" if value > matrix.max() / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)
    ax.set_title(f"accuracy {report['accuracy'] * 100:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
