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
    table_labels = [*labels, *sorted(unseen)]
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=table_labels, zero_division=0
    )
    return {
        "n": len(gold),
        "accuracy": float(accuracy(gold, predicted)),
        "macro_f1": macro_f1(gold, predicted),
        "micro_f1": float(f1_score(gold, predicted, average="micro", zero_division=0)),
        "weighted_f1": float(f1_score(gold, predicted, average="weighted", zero_division=0)),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
                **({"unseen_in_training": True} if label in unseen else {}),
            }
            for i, label in enumerate(table_labels)
        },
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


def evaluate(
    predictor: Predictor,
    examples: Sequence[Example],
    out_dir: str | Path | None = None,
    *,
    latency: bool = True,
    batch_size: int = 64,
    source: str = "data",
    strict_labels: bool = False,
) -> dict[str, Any]:
    """Score ``predictor`` on labelled ``examples``; write report.json / report.md /
    predictions.tsv / confusion.png into ``out_dir`` when given. Returns the report.

    Examples whose label the model never saw count as wrong (accuracy is over all examples, as
    other tools report it) and are listed in the report; ``strict_labels`` refuses them."""
    note = check_known_labels(examples, predictor.labels, source, strict=strict_labels)
    if note:
        log.warning("%s", note)
    texts = [e.as_input() for e in examples]
    gold = [str(e.label) for e in examples]
    probabilities = predictor.predict_proba(texts, batch_size)
    predicted_ids = probabilities.argmax(1)
    predicted = [predictor.labels[i] for i in predicted_ids]
    report = classification_report(gold, predicted, predictor.labels)
    report.update(
        source=source,
        backend=predictor.backend,
        longer_than_max_length=predictor.count_long(texts),
        truncation=predictor.truncation(texts),
    )
    if latency:
        report["latency"] = measure_latency(predictor, texts)
    if out_dir is not None:
        scores = probabilities[np.arange(len(texts)), predicted_ids]
        write_report(Path(out_dir), report, texts, gold, predicted, scores)
    return report


def write_report(
    out_dir: Path,
    report: dict[str, Any],
    texts: Sequence[str],
    gold: Sequence[str],
    predicted: Sequence[str],
    scores: np.ndarray,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(report), encoding="utf-8")
    with open(out_dir / "predictions.tsv", "w", encoding="utf-8") as handle:
        handle.write("text\tgold\tpred\tscore\n")
        for text, g, p, s in zip(texts, gold, predicted, scores, strict=True):
            shown = text if isinstance(text, str) else " ||| ".join(text)
            handle.write(f"{_clean(shown)}\t{g}\t{p}\t{s:.4f}\n")
    plot_confusion(report, out_dir / "confusion.png")


def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


def report_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation on {report.get('source', 'data')}",
        "",
        f"{report['n']} examples, backend {report.get('backend')}",
        "",
        f"- accuracy: {report['accuracy'] * 100:.2f}",
        f"- macro F1: {report['macro_f1'] * 100:.2f}",
        f"- micro F1: {report['micro_f1'] * 100:.2f}",
        f"- weighted F1: {report['weighted_f1'] * 100:.2f}",
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
