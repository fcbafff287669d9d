"""Metrics, reports, latency and evaluate() — with fake predictors, so no training is needed."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from textcls.data.formats import Example
from textcls.errors import DataError
from textcls.evaluation import classification_report, evaluate, measure_latency, report_markdown
from textcls.inference.predictor import Predictor

LABELS = ["alarm", "music", "weather"]
GOLD = ["alarm", "alarm", "music", "weather", "weather", "weather", "music"]
PRED = ["alarm", "music", "music", "weather", "alarm", "weather", "alarm"]


class KeywordPredictor(Predictor):
    """Scores each label by whether its name occurs in the text; counts calls."""

    backend = "fake"

    def __init__(self, labels: list[str] = LABELS) -> None:
        self.labels = list(labels)
        self.calls: list[tuple[int, int]] = []

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        self.calls.append((len(texts), batch_size))
        return np.array(
            [[5.0 if label in text else 0.0 for label in self.labels] for text in texts],
            dtype=np.float32,
        ).reshape(len(texts), len(self.labels))


# ---------------------------------------------------------------------------- metrics


def test_classification_report_matches_sklearn() -> None:
    report = classification_report(GOLD, PRED, LABELS)
    assert report["n"] == 7
    assert report["labels"] == LABELS
    assert report["accuracy"] == pytest.approx(accuracy_score(GOLD, PRED))
    assert report["accuracy"] == pytest.approx(4 / 7)  # alarm, music, weather, weather
    for average in ("macro", "micro", "weighted"):
        expected = f1_score(GOLD, PRED, labels=LABELS, average=average, zero_division=0)
        assert report[f"{average}_f1"] == pytest.approx(expected)
    precision, recall, f1, support = precision_recall_fscore_support(
        GOLD, PRED, labels=LABELS, zero_division=0
    )
    for i, label in enumerate(LABELS):
        row = report["per_class"][label]
        assert row["precision"] == pytest.approx(precision[i])
        assert row["recall"] == pytest.approx(recall[i])
        assert row["f1"] == pytest.approx(f1[i])
        assert row["support"] == support[i]
    assert report["confusion_matrix"] == confusion_matrix(GOLD, PRED, labels=LABELS).tolist()


def test_classification_report_by_hand() -> None:
    report = classification_report(GOLD, PRED, LABELS)
    alarm = report["per_class"]["alarm"]
    # alarm: predicted 3 times, right once; gold twice
    assert alarm["precision"] == pytest.approx(1 / 3)
    assert alarm["recall"] == pytest.approx(1 / 2)
    assert alarm["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert report["confusion_matrix"] == [[1, 1, 0], [1, 1, 0], [1, 0, 2]]
    assert sum(map(sum, report["confusion_matrix"])) == report["n"]


def test_classification_report_label_never_predicted_nor_seen() -> None:
    labels = [*LABELS, "timer"]
    report = classification_report(GOLD, PRED, labels)
    assert report["per_class"]["timer"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # macro-F1 is over the labels present in gold or predictions (scikit-learn's default), as in
    # the training loop: a model label with no example and no prediction does not count
    assert report["macro_f1"] == pytest.approx(f1_score(GOLD, PRED, average="macro", zero_division=0))
    assert report["macro_f1"] == pytest.approx(classification_report(GOLD, PRED, LABELS)["macro_f1"])
    assert len(report["confusion_matrix"]) == 4


def test_training_loop_and_evaluation_share_one_macro_f1() -> None:
    from textcls.training.loop import validation_metrics

    labels = [*LABELS, "timer"]  # timer: a training label absent from this validation file
    ids = {label: i for i, label in enumerate(labels)}
    logits = np.zeros((len(GOLD), len(labels)), np.float32)
    logits[np.arange(len(PRED)), [ids[p] for p in PRED]] = 5.0
    metrics = validation_metrics(logits, [ids[g] for g in GOLD])
    report = classification_report(GOLD, PRED, labels)
    assert metrics["macro_f1"] == pytest.approx(report["macro_f1"])
    assert metrics["accuracy"] == pytest.approx(report["accuracy"])
    # the definition that averaged over every training label gives another number
    assert metrics["macro_f1"] != pytest.approx(
        f1_score(GOLD, PRED, labels=labels, average="macro", zero_division=0)
    )


def test_unseen_gold_labels_count_as_errors_in_every_metric() -> None:
    from textcls.training.loop import validation_metrics

    gold = ["alarm", "music", "flight#airfare", "flight#airfare"]
    predicted = ["alarm", "music", "alarm", "music"]
    report = classification_report(gold, predicted, ["alarm", "music"])
    assert report["accuracy"] == pytest.approx(0.5)  # over all four examples
    assert report["unseen"] == {"flight#airfare": 2}
    row = report["per_class"]["flight#airfare"]
    assert row["recall"] == 0.0 and row["support"] == 2 and row["unseen_in_training"]
    assert report["labels"] == ["alarm", "music", "flight#airfare"]
    assert report["macro_f1"] == pytest.approx(f1_score(gold, predicted, average="macro", zero_division=0))
    # the training loop: unseen ids lie past the model's labels
    logits = np.array([[5, 0], [0, 5], [5, 0], [0, 5]], np.float32)
    metrics = validation_metrics(logits, [0, 1, 2, 2])
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["macro_f1"] == pytest.approx(report["macro_f1"])
    assert np.isfinite(metrics["loss"])


def test_metrics_of_a_single_example_and_of_none() -> None:
    from textcls.metrics import accuracy, macro_f1

    assert accuracy(["alarm"], ["alarm"]) == 1.0 and macro_f1(["alarm"], ["alarm"]) == 1.0
    assert accuracy(["alarm"], ["music"]) == 0.0 and macro_f1(["alarm"], ["music"]) == 0.0
    # an empty split (a tiny validation carve, an empty test file) scores 0 instead of failing
    assert accuracy([], []) == 0.0 and macro_f1([], []) == 0.0


def test_accuracy_refuses_predictions_that_do_not_match_the_examples() -> None:
    from textcls.metrics import accuracy

    with pytest.raises(ValueError):  # one prediction missing: never score the shorter list silently
        accuracy(["alarm", "music", "weather"], ["alarm", "music"])
    with pytest.raises(ValueError):
        accuracy(["alarm"], ["alarm", "music"])


def test_report_markdown() -> None:
    report = classification_report(GOLD, PRED, LABELS)
    report.update(source="test.txt", backend="fake")
    text = report_markdown(report)
    assert "test.txt" in text
    assert f"accuracy: {report['accuracy'] * 100:.2f}" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "precision" not in line]
    assert [row.split("|")[1].strip() for row in rows] == LABELS
    alarm_row = next(row for row in rows if row.startswith("| alarm |"))
    assert "33.33" in alarm_row and "50.00" in alarm_row and alarm_row.rstrip().endswith("| 2 |")
    # the confusion matrix in a fenced block, one line per gold label with its counts
    block = text.split("```")[1].strip("\n").splitlines()
    assert len(block) == 1 + len(LABELS)
    for label, counts, line in zip(LABELS, report["confusion_matrix"], block[1:]):
        assert line.split()[0] == label
        assert [int(v) for v in line.split()[1 : 1 + len(LABELS)]] == counts
    assert "latency" not in text


def test_report_markdown_with_latency() -> None:
    report = classification_report(GOLD, PRED, LABELS)
    report["latency"] = {
        "p50_ms": 1.5,
        "p95_ms": 2.25,
        "throughput_per_s": 1234.0,
        "batch_size": 64,
        "threads": 2,
    }
    text = report_markdown(report)
    assert "p50 1.500 ms" in text and "p95 2.250 ms" in text and "1234 examples/s" in text


# ---------------------------------------------------------------------------- latency


def test_measure_latency_with_a_fake_predictor() -> None:
    predictor = KeywordPredictor()
    texts = [f"text {i} alarm" for i in range(30)]
    latency = measure_latency(predictor, texts, single=20, repeats=2)
    assert latency["p50_ms"] > 0
    assert latency["p95_ms"] >= latency["p50_ms"]
    assert latency["throughput_per_s"] > 0
    assert latency["batch_size"] == 64
    assert isinstance(latency["threads"], int) and latency["threads"] >= 1
    singles = [c for c in predictor.calls if c == (1, 1)]
    batches = [c for c in predictor.calls if c == (30, 64)]
    assert len(singles) == 10 + 20  # warm-up, then one timed call per sampled text
    assert len(batches) == 2


# ---------------------------------------------------------------------------- evaluate


def examples(pairs: list[tuple[str, str]]) -> list[Example]:
    return [Example(text=t, label=l, line=i + 1) for i, (t, l) in enumerate(pairs)]


def test_evaluate_with_a_fake_predictor(tmp_path: Path) -> None:
    data = examples(
        [
            ("set an alarm", "alarm"),
            ("music please", "music"),
            ("weather today", "weather"),
            ("weather alarm", "alarm"),  # tie → first label wins: alarm
            ("rain\ttomorrow", "weather"),  # no keyword: all equal → alarm (wrong)
        ]
    )
    predictor = KeywordPredictor()
    report = evaluate(predictor, data, tmp_path / "out", latency=False, source="fake.txt")
    assert report["accuracy"] == pytest.approx(4 / 5)
    assert report["source"] == "fake.txt" and report["backend"] == "fake"
    assert "latency" not in report
    out = tmp_path / "out"
    for name in ("report.json", "report.md", "predictions.tsv", "confusion.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert json.loads((out / "report.json").read_text())["accuracy"] == report["accuracy"]
    with open(out / "predictions.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0] == ["text", "gold", "pred", "score"]
    assert [row[2] for row in rows[1:]] == ["alarm", "music", "weather", "alarm", "alarm"]
    assert rows[5][0] == "rain tomorrow"  # tabs in texts never break the columns
    assert all(len(row) == 4 for row in rows)
    assert float(rows[1][3]) == pytest.approx(np.exp(5) / (np.exp(5) + 2), abs=1e-4)
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_measures_latency_when_asked() -> None:
    report = evaluate(KeywordPredictor(), examples([("alarm", "alarm"), ("music", "music")]))
    assert report["latency"]["p50_ms"] > 0 and report["latency"]["throughput_per_s"] > 0


def test_evaluate_counts_a_label_unknown_to_the_model_as_wrong(tmp_path: Path) -> None:
    data = examples([("set an alarm", "alarm"), ("order a pizza", "food"), ("more pizza", "food")])
    report = evaluate(KeywordPredictor(), data, tmp_path, latency=False, source="test.txt")
    assert report["accuracy"] == pytest.approx(1 / 3) and report["n"] == 3
    assert report["unseen"] == {"food": 2}
    assert report["per_class"]["food"]["recall"] == 0.0
    assert "never seen in training: food, 2 examples" in (tmp_path / "report.md").read_text()


def test_evaluate_with_a_label_unknown_to_the_model_strict() -> None:
    data = examples([("set an alarm", "alarm"), ("order a pizza", "food"), ("more pizza", "food")])
    with pytest.raises(DataError) as info:
        evaluate(KeywordPredictor(), data, latency=False, source="test.txt", strict_labels=True)
    message = str(info.value)
    assert "'food'" in message and "test.txt" in message
    assert "2 examples" in message and info.value.line == 2  # count and first line of 'food'
    assert "'alarm'" not in message  # known labels are not reported


def test_evaluate_pairs_join_both_texts() -> None:
    data = [
        Example(text="please set", text_pair="an alarm", label="alarm", line=1),
        Example(text="play", text_pair="music", label="music", line=2),
    ]
    predictor = KeywordPredictor()
    report = evaluate(predictor, data, latency=False)
    assert report["accuracy"] == 1.0
