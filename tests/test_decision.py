"""Multi-label classification, calibrated confidence and out-of-scope answers (textcls.decision):
label parsing in every format, the BCE loss, threshold tuning, temperature scaling, ECE,
abstention, and the same answers through every backend, evaluate, the CLI and the server."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import textcls
from conftest import CLASS_WORDS, SMALL_ENCODER_PARAMS, TINY, make_examples
from textcls.config import DataConfig, ModelConfig, TrainConfig
from textcls.data.labels import detect_separator
from textcls.data.splits import load_splits, read_data_file
from textcls.decision import (
    TOP_LABEL_MIN_EXAMPLES,
    Decision,
    abstention_threshold,
    best_f1_threshold,
    choose_confidence_map,
    expected_calibration_error,
    fit_label_platt,
    fit_temperature,
    label_ece,
    remap_top,
    tune_thresholds,
)
from textcls.errors import ConfigError
from textcls.training.loop import make_loss

MEAN = {**TINY, "model": "mean", "encoder_params": {}}  # a bag model: the numpy backend runs it too
GIBBERISH = ["qzx", "vrrt", "plok", "zzub", "ftang", "wibl", "snarf", "grop"]


def multi_label_examples(count: int, seed: int) -> list[tuple[str, list[str]]]:
    """Texts made of the words of one or two of the synthetic classes, labelled with them."""
    rng = random.Random(seed)
    names = sorted(CLASS_WORDS)
    rows = []
    for _ in range(count):
        labels = rng.sample(names, rng.choice([1, 1, 2]))
        words = [w for label in labels for w in rng.choices(CLASS_WORDS[label], k=rng.randint(3, 5))]
        rng.shuffle(words)
        rows.append((" ".join(words), sorted(labels)))
    return rows


def write_multi(path: Path, rows: list[tuple[str, list[str]]], separator: str = ",") -> Path:
    path.write_text("".join(f"{t}\t{separator.join(ls)}\n" for t, ls in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def multi_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multi")
    for split, (count, seed) in {"train": (240, 0), "valid": (60, 1), "test": (60, 2)}.items():
        write_multi(root / f"{split}.txt", multi_label_examples(count, seed))
    return root


@pytest.fixture(scope="module")
def multi_model(tmp_path_factory, multi_dir) -> Path:
    """A tiny multi-label bag model (mean of embeddings: every backend can run it), exported."""
    out = tmp_path_factory.mktemp("multi-model") / "mean"
    classifier = textcls.TextClassifier(**{**MEAN, "epochs": 12, "lr": 3e-2})
    classifier.fit(multi_dir, out_dir=out, progress=False)
    from textcls.inference.export import export_model

    export_model(out, quantize="int8", max_drop=100.0)
    return out


# --------------------------------------------------------------------------------- label parsing
def test_comma_joined_tsv_labels_are_detected_and_split(multi_dir) -> None:
    splits = load_splits(multi_dir)
    assert splits.label_sep == ","
    assert any("multi-label data detected" in note for note in splits.notes)
    assert {len(e.label_set) for e in splits.train} == {1, 2}
    two = next(e for e in splits.train if len(e.label_set) == 2)
    assert two.label == ",".join(two.labels)
    assert all(len(e.label_set) in (1, 2) for e in splits.test)  # test read with the same separator


def test_a_given_separator_splits_intent_pairs(tmp_path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("show flights and fares\tflight#airfare\nshow flights\tflight\n", encoding="utf-8")
    examples = read_data_file(path, DataConfig(label_sep="#"))
    assert [e.label_set for e in examples] == [("flight", "airfare"), ("flight",)]
    assert read_data_file(path, DataConfig())[0].label_set == ("flight#airfare",)  # kept whole


def test_labels_joined_by_chance_are_not_taken_for_several(tmp_path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("a\tArts, Culture\nb\tScience\nc\tSports\n", encoding="utf-8")
    assert detect_separator(read_data_file(path)) == (None, None)
    splits = load_splits(path, valid=path)
    assert splits.label_sep is None and splits.train[0].label_set == ("Arts, Culture",)


def test_no_multi_label_keeps_label_fields_whole(multi_dir) -> None:
    splits = load_splits(multi_dir, multi_label=False)
    assert splits.label_sep is None
    assert any("," in e.label for e in splits.train)


def write_split_files(root: Path, rows: list[tuple[str, list[str]]], line) -> Path:
    """train (the first 40 rows) and valid (the rest) written by ``line(text, labels)``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, part in {"train": rows[:40], "valid": rows[40:]}.items():
        (root / f"{name}.txt").write_text("".join(line(t, ls) + "\n" for t, ls in part), encoding="utf-8")
    return root


def assert_split_into_labels(splits, separator: str) -> None:
    assert splits.label_sep == separator and sorted(splits.labels) == sorted(CLASS_WORDS)
    assert any("multi-label data detected" in note and repr(separator) in note for note in splits.notes)
    for examples in (splits.train, splits.valid):  # valid read with the separator found on train
        assert {len(e.label_set) for e in examples} == {1, 2}
        assert all(set(e.label_set) <= set(CLASS_WORDS) for e in examples)


def test_a_csv_label_field_with_several_labels(tmp_path) -> None:
    import csv
    import io

    rows = multi_label_examples(60, 3)
    root = tmp_path / "csv"
    root.mkdir()
    for name, part in {"train": rows[:40], "valid": rows[40:]}.items():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerows([["text", "label"], *([t, ",".join(ls)] for t, ls in part)])
        (root / f"{name}.csv").write_text(buffer.getvalue(), encoding="utf-8")
    assert '"' in (root / "train.csv").read_text()  # the joined labels are quoted CSV cells
    splits = load_splits(root)
    assert splits.format == "csv"
    assert_split_into_labels(splits, ",")
    assert splits.train[0].text == rows[0][0] and list(splits.train[0].label_set) == rows[0][1]
    given = read_data_file(root / "valid.csv", DataConfig(label_sep=","))
    assert [list(e.label_set) for e in given] == [ls for _, ls in rows[40:]]


@pytest.mark.parametrize("separator", ["|", "#"])
def test_pipe_and_hash_separators_are_detected_without_being_given(tmp_path, separator) -> None:
    rows = multi_label_examples(60, 4)
    root = write_split_files(tmp_path / "data", rows, lambda t, ls: f"{t}\t{separator.join(ls)}")
    assert detect_separator(read_data_file(root / "train.txt"))[0] == separator
    splits = load_splits(root)
    assert splits.format == "tsv"
    assert_split_into_labels(splits, separator)


def test_label_first_tsv_with_several_labels(tmp_path) -> None:
    rows = multi_label_examples(60, 5)
    root = write_split_files(tmp_path / "data", rows, lambda t, ls: f"{','.join(ls)}\t{t}")
    splits = load_splits(root)
    assert splits.format == "tsv-label-first"
    assert_split_into_labels(splits, ",")
    assert [(e.text, list(e.label_set)) for e in splits.valid] == rows[40:]


def test_an_undetected_separator_is_kept_whole_and_the_note_says_how_to_split(tmp_path) -> None:
    rows = multi_label_examples(60, 6)
    root = write_split_files(tmp_path / "data", rows, lambda t, ls: f"{t}\t{';'.join(ls)}")
    splits = load_splits(root)
    assert splits.label_sep is None and any(";" in label for label in splits.labels)  # whole labels
    hint = next(note for note in splits.notes if "not detected" in note)
    assert "--label-sep ';'" in hint and "kept whole" in hint
    given = load_splits(root, label_sep=";")
    assert given.label_sep == ";" and sorted(given.labels) == sorted(CLASS_WORDS)
    assert not any("not detected" in note for note in given.notes)
    plain = write_split_files(
        tmp_path / "plain", [(t, [y]) for t, y in make_examples(20, 0)], lambda t, ls: f"{t}\t{ls[0]}"
    )
    assert not any("not detected" in note for note in load_splits(plain).notes)  # one label each


def test_fasttext_lines_with_several_labels(tmp_path) -> None:
    path = tmp_path / "train.ft"
    path.write_text("__label__joy __label__surprise what a gift\n__label__anger no way\n", encoding="utf-8")
    examples = read_data_file(path)
    assert examples[0].label_set == ("joy", "surprise") and examples[0].text == "what a gift"
    assert examples[1].label_set == ("anger",) and examples[1].labels is None


def test_jsonl_label_lists(tmp_path) -> None:
    path = tmp_path / "train.jsonl"
    rows = [{"text": "what a gift", "labels": ["joy", "surprise", "joy"]}, {"text": "no", "labels": "anger"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    examples = read_data_file(path)
    assert examples[0].label_set == ("joy", "surprise")  # duplicates dropped, order kept
    assert examples[1].label_set == ("anger",)


def test_in_memory_label_lists_and_a_refused_mix(multi_dir) -> None:
    rows = multi_label_examples(60, 3)
    classifier = textcls.TextClassifier(**TINY).fit(rows[:45], rows[45:], progress=False)
    assert classifier.config.model.multi_label is True
    assert any("multi-label" in note for note in classifier.train_result.extra["notes"])
    with pytest.raises(ConfigError, match="carry several labels"):
        textcls.TextClassifier(**{**TINY, "multi_label": False}).fit(rows[:45], rows[45:], progress=False)


# ------------------------------------------------------------------------------------- the loss
def test_multi_label_loss_is_binary_cross_entropy_with_balanced_pos_weight() -> None:
    gold = [(0,), (0, 1), (2,), (0,)]
    loss_fn = make_loss(TrainConfig(class_weight="balanced"), gold, 3, multi_label=True)
    # label 0: 3 positives / 1 negative -> 1/3, raised to 1; label 1: 3 / 1 -> 3; label 2: 3 / 1 -> 3
    np.testing.assert_allclose(loss_fn.pos_weight.numpy(), [1.0, 3.0, 3.0])
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, -2.0], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    targets = loss_fn.targets(gold)
    assert targets.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=torch.tensor([1.0, 3.0, 3.0])
    )
    torch.testing.assert_close(loss_fn(logits, targets), expected)
    plain = make_loss(TrainConfig(), gold, 3, multi_label=True)
    assert plain.pos_weight is None
    help_text = TrainConfig.model_fields["class_weight"].description
    assert "clipped to [1, 100]" in help_text and "never weighted down" in help_text  # --help says so


def test_the_readme_results_match_the_goemotions_table_of_benchmarks() -> None:
    root = Path(__file__).resolve().parents[1]
    benchmarks = (root / "BENCHMARKS.md").read_text(encoding="utf-8")
    table = benchmarks[benchmarks.index("### GoEmotions (`multilabel`") :].split("\n\n")[1]
    macro = {row.split("|")[1].strip(): row.split("|")[2].strip() for row in table.splitlines()[2:]}
    readme = (root / "README.md").read_text(encoding="utf-8")
    results = readme[readme.index("Results (`make bench-multilabel`") :].split("\n\n")[0]
    for model in ("linear", "cnn", "fastText ova (threshold tuned on valid)", "minilm-l6 (4 epochs)"):
        assert re.search(rf"(?<![\d.]){re.escape(macro[model])}(?!\d)", results), (model, macro[model])


# ------------------------------------------------------------------------------ fitted decisions
def test_the_best_f1_threshold_of_a_hand_made_case() -> None:
    # positives 0.9, 0.6; negatives 0.7, 0.2, 0.1: cutting at 0.6 catches both positives and one
    # negative (P 2/3, R 1, F1 0.8), better than at 0.9 (F1 2/3) or 0.7 (F1 0.5); the threshold
    # sits midway between 0.6 and the next lower score, 0.2
    scores = np.array([0.9, 0.7, 0.6, 0.2, 0.1])
    targets = np.array([1, 0, 1, 0, 0])
    threshold, f1 = best_f1_threshold(scores, targets)
    assert threshold == pytest.approx(0.4) and f1 == pytest.approx(0.8)


def test_rare_labels_take_the_global_threshold() -> None:
    rng = np.random.default_rng(0)
    targets = np.zeros((200, 2), np.float32)
    targets[:100, 0] = 1  # label 0: 100 positives, separable at 0.3
    targets[:2, 1] = 1  # label 1: 2 positives, fewer than min_positives
    probabilities = np.where(
        targets > 0, rng.uniform(0.35, 1.0, targets.shape), rng.uniform(0, 0.25, targets.shape)
    )
    thresholds, global_threshold, stats = tune_thresholds(probabilities, targets, min_positives=5)
    assert 0.25 < thresholds[0] < 0.35
    assert thresholds[1] == global_threshold
    assert stats["labels_with_own_threshold"] == 1 and stats["labels_with_global_threshold"] == 1


def test_temperature_scaling_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 4))
    scaled = np.exp(logits / 2.0)
    probabilities = scaled / scaled.sum(1, keepdims=True)
    gold = np.array([rng.choice(4, p=p) for p in probabilities])
    assert fit_temperature(logits, gold) == pytest.approx(2.0, rel=0.05)
    # multi-label: Platt scaling recovers each label's temperature and bias
    z = rng.normal(0, 4, (20000, 2))
    true_bias = np.array([0.0, -1.5])
    chance = 1 / (1 + np.exp(-(z / np.array([0.5, 3.0]) + true_bias)))
    targets = (rng.uniform(size=z.shape) < chance).astype(float)
    temperatures, biases = fit_label_platt(z, targets)
    assert temperatures == pytest.approx([0.5, 3.0], rel=0.08)
    assert biases == pytest.approx(true_bias.tolist(), abs=0.1)


def test_a_label_the_logits_say_nothing_about_scores_its_base_rate() -> None:
    """A temperature alone would send such a label to 0.5 (T at its bound); with a bias it is
    calibrated: its probability is the share of positives, applied by the model's Decision."""
    rng = np.random.default_rng(3)
    logits = np.column_stack([rng.normal(0, 3, 4000), rng.normal(0, 3, 4000)])
    targets = np.column_stack([logits[:, 0] > 0, rng.uniform(size=4000) < 0.1]).astype(float)
    targets[:20, 0] = 1 - targets[:20, 0]  # a few errors: not separated without error
    temperatures, biases = fit_label_platt(logits, targets)
    assert temperatures[1] > 100  # the uninformative logit is switched off ...
    model = ModelConfig(labels=["a", "b"], multi_label=True)
    model.decision.temperature, model.decision.bias = temperatures, biases
    probabilities = Decision(model).probabilities(logits)
    assert np.abs(probabilities[:, 1] - 0.1).max() < 0.02  # ... and the base rate remains
    assert probabilities[:, 1].mean() == pytest.approx(targets[:, 1].mean(), abs=0.01)
    ranked = probabilities[np.argsort(logits[:, 0]), 0]  # the informative label keeps its ranking
    assert (np.diff(ranked) >= 0).all() and ranked[-1] > 0.9 > 0.1 > ranked[0]
    with pytest.raises(ConfigError, match=r"decision\.bias"):
        model.decision.bias = [0.0]
        Decision(model)


def test_expected_calibration_error_by_hand() -> None:
    # confidences 0.9 (right), 0.75 (wrong), 0.62 and 0.65 (right), in 15 bins of width 1/15:
    # bin 13 holds 0.9 (gap 0.1), bin 11 holds 0.75 (gap 0.75), bin 9 holds 0.62 and 0.65 (mean
    # 0.635, accuracy 1: gap 0.365); ECE = (0.1 + 0.75 + 2 * 0.365) / 4 = 0.395
    probabilities = np.array([[0.9, 0.1], [0.75, 0.25], [0.38, 0.62], [0.65, 0.35]])
    gold = np.array([0, 1, 1, 0])
    assert expected_calibration_error(probabilities, gold) == pytest.approx(0.395)
    # multi-label: per label, the probability against the share of positives, then the mean
    label_probabilities = np.array([[0.9, 0.1], [0.9, 0.3]])
    targets = np.array([[1, 0], [0, 0]])
    # label 0: one bin, mean 0.9 vs 0.5 positives: 0.4; label 1: 0.1 and 0.3 in two bins: 0.2
    assert label_ece(label_probabilities, targets) == pytest.approx((0.4 + 0.2) / 2)


def test_the_top_label_map_moves_the_top_probability_and_keeps_the_ranking() -> None:
    xs, ys = np.array([0.5, 1.0]), np.array([0.5, 0.8])  # 0.9 -> 0.74; 0.6 -> 0.56
    mapped = remap_top(np.array([[0.9, 0.06, 0.04], [0.1, 0.6, 0.3], [1.0, 0.0, 0.0]]), xs, ys)
    np.testing.assert_allclose(mapped[0], [0.74, 0.156, 0.104], atol=1e-6)  # the rest 0.26 as 6 : 4
    np.testing.assert_allclose(mapped[1], [0.11, 0.56, 0.33], atol=1e-6)  # the rest 0.44 as 1 : 3
    np.testing.assert_allclose(mapped[2], [0.8, 0.1, 0.1], atol=1e-6)  # nothing to share: equal parts
    np.testing.assert_allclose(mapped.sum(1), 1.0, atol=1e-6)
    # a map that would sink the top label under the runner-up stops just above a tie
    sunk = remap_top(np.array([[0.55, 0.45], [0.3, 0.7]]), np.array([0.0, 1.0]), np.array([0.2, 0.2]))
    np.testing.assert_allclose(sunk, [[0.5, 0.5], [0.5, 0.5]], atol=2e-6)
    assert sunk[0, 0] > sunk[0, 1] and sunk[1, 1] > sunk[1, 0]


def top_label_case(n: int, seed: int, step: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two-class probabilities whose top probability c is right with probability c (calibrated),
    or (``step``) 0.7 below 0.9 and 0.99 above: a shape no temperature fits."""
    rng = np.random.default_rng(seed)
    top = rng.uniform(0.5, 1.0, n)
    chance = np.where(top < 0.9, 0.7, 0.99) if step else top
    right = rng.uniform(size=n) < chance
    probabilities = np.stack([top, 1 - top], 1)
    return probabilities, np.where(right, 0, 1)


def test_auto_keeps_the_top_label_map_only_when_it_helps_out_of_fold() -> None:
    probabilities, gold = top_label_case(4000, 0, step=True)
    knots, stats = choose_confidence_map("auto", probabilities, gold)
    assert knots and stats["top_label"] == "isotonic"
    held_out, held_gold = top_label_case(4000, 1, step=True)
    before = expected_calibration_error(held_out, held_gold)
    after = expected_calibration_error(remap_top(held_out, *map(np.asarray, knots)), held_gold)
    assert before > 0.05 and after < before / 3  # on texts it never saw
    calibrated, calibrated_gold = top_label_case(4000, 2, step=False)
    knots, stats = choose_confidence_map("auto", calibrated, calibrated_gold)
    assert knots == [] and stats["top_label"].startswith("none")
    few = TOP_LABEL_MIN_EXAMPLES - 1
    assert choose_confidence_map("auto", probabilities[:few], gold[:few])[0] == []
    assert choose_confidence_map("isotonic", probabilities[:few], gold[:few])[0]  # asked for: fitted
    assert choose_confidence_map("none", probabilities, gold) == ([], {})


def test_abstention_threshold_meets_the_target_recall() -> None:
    confidence = np.array([0.2, 0.3, 0.4, 0.5, 0.95, 0.9, 0.6, 0.45])
    out_of_scope = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    threshold = abstention_threshold(confidence, out_of_scope, 0.75)
    caught = (confidence[out_of_scope] < threshold).mean()
    assert caught == 0.75 and 0.4 < threshold <= 0.45  # the lowest threshold that does it
    with pytest.raises(ConfigError, match="out-of-scope examples"):
        abstention_threshold(confidence, np.zeros(8, bool), 0.9)


def test_a_decision_names_an_abstention_plainly() -> None:
    config = ModelConfig(labels=["music", "sports"])
    config.decision.abstain_below = 0.7
    decision = Decision(config)
    answers = decision.answers(np.array([[0.9, 0.1], [0.55, 0.45]]), top_k=2)
    assert answers[0] == [{"label": "music", "score": 0.9}, {"label": "sports", "score": pytest.approx(0.1)}]
    assert answers[1][0] == {"label": "oos", "score": 0.55, "out_of_scope": True, "abstained": True}
    assert answers[1][1]["label"] == "music" and len(answers[1]) == 2
    assert decision.answers(np.array([[0.55, 0.45]]), threshold=0.5)[0][0]["label"] == "music"


# ------------------------------------------------------------------- one answer on every backend
def test_multi_label_model_saves_its_thresholds_and_temperatures(multi_model) -> None:
    config = json.loads((multi_model / "config.json").read_text())["model"]
    assert config["multi_label"] is True
    assert len(config["decision"]["thresholds"]) == len(config["labels"]) == 3
    assert len(config["decision"]["temperature"]) == 3
    result = json.loads((multi_model / "train_result.json").read_text())
    assert result["calibration"]["ece_after"] <= result["calibration"]["ece_before"] + 1e-9


@pytest.mark.parametrize("backend", ["torch-int8", "onnx", "onnx-int8", "numpy"])
def test_every_backend_answers_multi_label_as_torch_does(multi_model, backend) -> None:
    texts = [t for t, _ in multi_label_examples(40, 9)]
    reference = textcls.load(multi_model)
    other = textcls.load(multi_model, backend=backend)
    tolerance = 0.05 if "int8" in backend else 1e-4
    np.testing.assert_allclose(other.predict_proba(texts), reference.predict_proba(texts), atol=tolerance)
    expected = [[a["label"] for a in row] for row in reference.predict(texts)]
    got = [[a["label"] for a in row] for row in other.predict(texts)]
    agree = np.mean([e == g for e, g in zip(expected, got, strict=True)])
    assert agree >= (0.9 if "int8" in backend else 1.0)


def test_multi_label_predictions_are_every_label_above_its_threshold(multi_model) -> None:
    classifier = textcls.load(multi_model)
    both = "song album guitar goal match team"
    answers = classifier.predict([both, "song album guitar jazz"])
    assert {a["label"] for a in answers[0]} == {"music", "sports"}
    assert [a["label"] for a in answers[1]] == ["music"]
    assert len(classifier.predict([both], top_k=1)[0]) == 1
    assert len(classifier.predict(["song album"], threshold=0.0)[0]) == 3  # it replaces every threshold
    probabilities = classifier.predict_proba([both])[0]
    assert probabilities.sum() > 1.5  # independent per label, not a softmax


def test_multi_label_evaluation_reports_the_multi_label_measures(multi_model, multi_dir, tmp_path) -> None:
    report = textcls.load(multi_model).evaluate(multi_dir / "test.txt", tmp_path / "eval", latency=False)
    assert report["multi_label"] is True
    for key in ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy"):
        assert 0.0 <= report[key] <= 1.0
    assert report["micro_f1"] > 0.8 and report["hamming_loss"] < 0.15
    assert set(report["per_class"]) == {"music", "sports", "weather"}
    pair = report["co_occurrence"][0]
    assert pair["gold"] > 0 and len(pair["labels"]) == 2
    markdown = (tmp_path / "eval" / "report.md").read_text()
    assert "Label co-occurrence" in markdown and "hamming loss" in markdown
    assert (tmp_path / "eval" / "reliability.png").stat().st_size > 0
    rows = (tmp_path / "eval" / "predictions.tsv").read_text().splitlines()
    assert len(rows) == 61 and any("," in row.split("\t")[2] for row in rows[1:])


def test_retraining_over_an_exported_multi_label_directory(multi_model, multi_dir, tmp_path) -> None:
    import shutil

    copy = tmp_path / "again"
    shutil.copytree(multi_model, copy)
    assert (copy / "model.onnx").exists()
    classifier = textcls.TextClassifier(**{**MEAN, "epochs": 2, "calibrate": False})
    classifier.fit(multi_dir, out_dir=copy, progress=False)
    assert not (copy / "model.onnx").exists()  # the old export never serves the new weights
    saved = json.loads((copy / "config.json").read_text())["model"]["decision"]
    assert saved["temperature"] == []  # this run did not calibrate: nothing of the last one kept


def test_the_linear_model_trains_multi_label(multi_dir, tmp_path) -> None:
    classifier = textcls.TextClassifier(model="linear", tensorboard=False)
    classifier.fit(multi_dir, out_dir=tmp_path / "linear", progress=False)
    assert classifier.train_result.extra["fit"]["multi_label"] == "one-vs-rest"
    report = classifier.evaluate(multi_dir / "test.txt", latency=False)
    assert report["micro_f1"] > 0.9
    numpy_answers = textcls.load(tmp_path / "linear", backend="numpy").predict(["goal match team song album"])
    assert {a["label"] for a in numpy_answers[0]} == {"music", "sports"}


ONE_EPOCH = {"epochs": 1, "batch_size": 16, "lr": 3e-2, "patience": 0, "tensorboard": False, "cpu": True}
RANDOM_16 = {"vectors": "random", "vectors_dim": 16}
MULTI_LABEL_MODELS = {
    "lstm": {"model": "lstm", **RANDOM_16, "encoder_params": SMALL_ENCODER_PARAMS["lstm"]},
    "densenet-cnn": {
        "model": "densenet-cnn",
        **RANDOM_16,
        "encoder_params": SMALL_ENCODER_PARAMS["densenet-cnn"],
    },
    "gnb": {"model": "gnb", **RANDOM_16, "encoder_params": {}},
    "fasttext": {"model": "fasttext", **RANDOM_16, "ngram_buckets": 1000},
    "bert": {"encoder": "cls", "lr": 3e-3},  # a tiny random BERT backbone (tiny_backbones.build)
}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    from tiny_backbones import build

    return build("bert", tmp_path_factory.mktemp("tiny-bert") / "bert")


@pytest.mark.parametrize("kind", list(MULTI_LABEL_MODELS))
def test_other_encoders_train_multi_label_and_answer_with_their_saved_thresholds(
    kind, tmp_path, request
) -> None:
    from textcls.model import read_model_config

    options = {**ONE_EPOCH, **MULTI_LABEL_MODELS[kind], "multi_label": True}
    if kind == "bert":
        options["model"] = str(request.getfixturevalue("tiny_bert"))
    rows = multi_label_examples(160, 5)
    out = tmp_path / kind
    trained = textcls.TextClassifier(**options).fit(rows[:120], rows[120:], out_dir=out, progress=False)
    model = read_model_config(out).model
    assert model.multi_label is True and model.labels == sorted(CLASS_WORDS)
    thresholds = np.asarray(model.decision.thresholds, np.float32)  # compared as Decision does
    assert len(thresholds) == 3 and np.all((thresholds > 0) & (thresholds < 1))
    assert len(model.decision.temperature) == 3  # one per label
    texts = [t for t, _ in multi_label_examples(20, 6)]
    loaded = textcls.load(out)
    probabilities, answers = loaded.predict_proba(texts), loaded.predict(texts)
    assert probabilities.shape == (20, 3) and np.isfinite(probabilities).all()
    for row, answer in zip(probabilities, answers, strict=True):  # every label at its threshold, best first
        chosen = [j for j in np.argsort(-row, kind="stable") if row[j] >= thresholds[j]]
        assert [a["label"] for a in answer] == [model.labels[j] for j in chosen]
    assert [[a["label"] for a in row] for row in trained.predict(texts)] == [
        [a["label"] for a in row] for row in answers
    ]
    assert all(len(row) == 3 for row in loaded.predict(texts, threshold=0.0))


def test_a_top_label_map_is_saved_applied_by_every_backend_and_cleared_on_retraining(tmp_path) -> None:
    from textcls.inference.export import export_model

    rng = random.Random(3)
    noisy = [(t, rng.choice(list(CLASS_WORDS)) if rng.random() < 0.2 else y) for t, y in make_examples(40, 7)]
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text("".join(f"{t}\t{y}\n" for t, y in noisy), encoding="utf-8")
    valid.write_text("".join(f"{t}\t{y}\n" for t, y in make_examples(20, 8)), encoding="utf-8")
    out = tmp_path / "model"
    options = {**MEAN, "epochs": 4, "top_label": "isotonic"}
    textcls.TextClassifier(**options).fit(train, valid, out_dir=out, progress=False)
    decision = json.loads((out / "config.json").read_text())["model"]["decision"]
    xs, ys = decision["confidence_map"]
    assert len(xs) == len(ys) >= 1 and ys == sorted(ys)
    calibration = json.loads((out / "train_result.json").read_text())["calibration"]
    assert calibration["top_label"] == "isotonic" and "ece_after_temperature" in calibration
    texts = [t for t, _ in make_examples(5, 9)] + ["song goal rain", "qzx plok"]
    reference = textcls.load(out)
    export_model(out)
    for backend in ("onnx", "numpy"):
        other = textcls.load(out, backend=backend).predict_proba(texts)
        np.testing.assert_allclose(other, reference.predict_proba(texts), atol=1e-4)
    top = reference.predict_proba(texts).max(1)
    assert np.all((top >= min(ys) - 1e-6) & (top <= max(ys) + 1e-6))  # the map's range, not softmax's
    report = reference.evaluate(valid, tmp_path / "eval", latency=False)
    assert "temperature alone" in (tmp_path / "eval" / "report.md").read_text()
    assert report["calibration"]["ece_after_temperature"] >= 0.0
    textcls.TextClassifier(**{**options, "top_label": "none"}).fit(train, valid, out_dir=out, progress=False)
    assert json.loads((out / "config.json").read_text())["model"]["decision"]["confidence_map"] == []


# ----------------------------------------------------------------------------------- out of scope
@pytest.fixture(scope="module")
def oos_model(tmp_path_factory) -> Path:
    """Three synthetic classes; validation and test add out-of-scope inputs labelled 'oos': words
    never seen in training, and texts mixing one word of every class."""
    root = tmp_path_factory.mktemp("oos")
    rng = random.Random(5)

    def out_of_scope(n: int) -> list[tuple[str, str]]:
        rows = [(" ".join(rng.choices(GIBBERISH, k=rng.randint(3, 6))), "oos") for _ in range(n)]
        for _ in range(n):
            words = [rng.choice(words) for words in CLASS_WORDS.values()]
            rng.shuffle(words)
            rows.append((" ".join(words), "oos"))
        return rows

    splits = {
        "train": make_examples(30, 0),
        "valid": make_examples(8, 1) + out_of_scope(5),
        "test": make_examples(8, 2) + out_of_scope(5),
    }
    for name, rows in splits.items():
        (root / f"{name}.txt").write_text("".join(f"{t}\t{l}\n" for t, l in rows), encoding="utf-8")
    out = root / "model"
    options = {"epochs": 10, "lr": 3e-2, "metric": "loss", "oos_target_recall": 0.9, "extra_vocab": 0}
    classifier = textcls.TextClassifier(**{**MEAN, **options})
    classifier.fit(root / "train.txt", root / "valid.txt", out_dir=out, progress=False)
    return out


def test_abstention_is_fitted_for_the_target_recall_and_answers_nonsense(oos_model) -> None:
    config = json.loads((oos_model / "config.json").read_text())["model"]["decision"]
    assert 0.0 < config["abstain_below"] <= 1.0 and config["oos_target_recall"] == 0.9
    classifier = textcls.load(oos_model)
    nonsense = classifier.predict(["ftang plok zzub qzx"])[0]
    assert nonsense["label"] == "oos" and nonsense["out_of_scope"] is True and nonsense["abstained"] is True
    assert classifier.predict(["song album guitar band"])[0]["label"] == "music"


def test_out_of_scope_evaluation_follows_clinc150(oos_model) -> None:
    test = oos_model.parent / "test.txt"
    report = textcls.load(oos_model).evaluate(test, latency=False)
    oos = report["out_of_scope"]
    assert oos["out_of_scope_examples"] == 10 and oos["in_scope_examples"] == 24
    assert oos["oos_recall"] >= 0.9 and oos["in_scope_accuracy"] >= 0.9
    assert oos["auroc"] > 0.9 and not oos["trained_class"]
    assert report["accuracy"] >= 0.9  # an abstention on an out-of-scope input counts as right


@pytest.mark.parametrize("backend", ["onnx", "numpy"])
def test_every_backend_abstains_alike(oos_model, backend) -> None:
    from textcls.inference.export import export_model

    if not (oos_model / "model.onnx").exists():
        export_model(oos_model)
    texts = ["ftang plok zzub", "song album guitar", "rain snow cold", "song goal rain"]
    expected = textcls.load(oos_model).predict(texts)
    got = textcls.load(oos_model, backend=backend).predict(texts)
    assert [a["label"] for a in got] == [a["label"] for a in expected]
    assert [a.get("out_of_scope", False) for a in got] == [True, False, False, True]


def test_target_recall_without_out_of_scope_validation_fails_before_training(tmp_path) -> None:
    rows = make_examples(20, 0)
    with pytest.raises(ConfigError, match="needs out-of-scope examples"):
        textcls.TextClassifier(**{**TINY, "oos_target_recall": 0.9}).fit(rows[:50], rows[50:], progress=False)


def test_a_trained_out_of_scope_class(tmp_path) -> None:
    rng = random.Random(0)
    rows = make_examples(20, 0) + [(" ".join(rng.choices(GIBBERISH, k=4)), "oos") for _ in range(20)]
    classifier = textcls.TextClassifier(**{**TINY, "epochs": 8, "lr": 3e-2}).fit(rows, progress=False)
    answer = classifier.predict(["plok zzub wibl snarf"])[0]
    assert answer["label"] == "oos" and answer["out_of_scope"] is True and "abstained" not in answer
    report = classifier.evaluate(rows, latency=False)
    assert report["out_of_scope"]["trained_class"] is True and report["out_of_scope"]["oos_recall"] > 0.8


# ------------------------------------------------------------------------------------- bench
def test_bench_rows_show_the_multi_label_and_out_of_scope_measures(multi_model, multi_dir, oos_model) -> None:
    from textcls.inference.bench import OOS_MEASURES, markdown_table, run_bench

    bench = {"backends": ("torch",), "threads": (1,)}
    multi = run_bench([multi_model], multi_dir / "test.txt", **bench)[0]
    report = textcls.load(multi_model).evaluate(multi_dir / "test.txt", latency=False)
    assert multi["multi_label"] is True
    assert multi["accuracy"] == multi["subset_accuracy"] == pytest.approx(report["subset_accuracy"] * 100)
    assert multi["micro_f1"] == pytest.approx(report["micro_f1"] * 100) and multi["micro_f1"] > 80
    assert "oos_recall" not in multi  # a multi-label answer is never out of scope
    test = oos_model.parent / "test.txt"
    scoped = run_bench([oos_model], test, **bench)[0]
    oos = textcls.load(oos_model).evaluate(test, latency=False)["out_of_scope"]
    for key in ("in_scope_accuracy", "oos_precision", "oos_recall", "oos_f1"):
        assert scoped[key] == pytest.approx(oos[key] * 100), key
    assert scoped["oos_recall"] >= 90 and scoped["oos_auroc"] == pytest.approx(oos["auroc"])
    assert "multi_label" not in scoped and "micro_f1" not in scoped

    table = markdown_table([multi, scoped]).splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[3:10] == ["accuracy", "macro-F1", "micro-F1", "in-scope acc.", "OOS P", "OOS R", "OOS F1"]
    cells = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in table[2:4]
    }
    assert cells["mean"][3] == f"{multi['accuracy']:.2f} (subset)"  # not passed off as accuracy
    assert cells["mean"][5] == f"{multi['micro_f1']:.2f}" and cells["mean"][6:10] == ["–"] * 4
    assert cells["model"][3] == f"{scoped['accuracy']:.2f}" and cells["model"][5] == "–"
    assert cells["model"][8] == f"{scoped['oos_recall']:.2f}"
    assert "accuracy is subset accuracy" in markdown_table([multi])
    plain = {k: v for k, v in scoped.items() if k not in (*OOS_MEASURES, "oos_auroc")}  # no OOS
    assert "OOS" not in markdown_table([plain]) and "micro-F1" not in markdown_table([plain])


# --------------------------------------------------------------------------- CLI and the server
def test_torchserve_answers_keep_the_mapping_and_add_the_json_flags() -> None:
    from textcls.serve.app import torchserve_answer

    config = ModelConfig(labels=["music", "oos", "sports"])
    config.decision.abstain_below = 0.6
    decision = Decision(config)
    probabilities = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.45, 0.1, 0.45]], np.float32)
    answers = decision.answers(probabilities, top_k=2)
    shown = [torchserve_answer(row) for row in answers]
    assert shown[0] == {"music": pytest.approx(0.7), "oos": pytest.approx(0.2)}  # no flag in scope
    assert shown[1] == {"oos": pytest.approx(0.7), "music": pytest.approx(0.2), "out_of_scope": True}
    assert shown[2] == {  # abstained: the top in-scope score under the out-of-scope label
        "oos": pytest.approx(0.45),
        "music": pytest.approx(0.45),
        "out_of_scope": True,
        "abstained": True,
    }
    # a label named like a flag: an in-scope score is a number, the flag is always a boolean
    clash = Decision(ModelConfig(labels=["out_of_scope", "music"]))
    row = clash.answers(np.array([[0.8, 0.2]], np.float32), top_k=2)[0]
    assert torchserve_answer(row)["out_of_scope"] == pytest.approx(0.8)
    assert torchserve_answer(row)["out_of_scope"] is not True
    assert torchserve_answer([]) == {}  # a multi-label answer with no label above its threshold


def test_cli_predict_shows_several_labels_and_takes_a_threshold(multi_model) -> None:
    command = [
        sys.executable,
        "-m",
        "textcls",
        "predict",
        str(multi_model),
        "song album goal match",
        "--json",
    ]
    shown = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    assert {p["label"] for p in shown["predictions"]} == {"music", "sports"}
    every = subprocess.run([*command, "--threshold", "0"], capture_output=True, text=True, check=True)
    assert len(json.loads(every.stdout)["predictions"]) == 3


CLI_MEAN = [
    *("--model", "mean", "--vectors", "random", "--vectors-dim", "16", "--batch-size", "16"),
    *("--lr", "0.03", "--metric", "loss", "--patience", "0"),
    *("--no-progress", "--no-tensorboard", "--cpu"),
]


def write_splits(root: Path, splits: dict[str, list[tuple[str, str]]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        (root / f"{name}.txt").write_text("".join(f"{t}\t{l}\n" for t, l in rows), encoding="utf-8")
    return root


def cli_output(capsys, *argv: str) -> str:
    """What ``textcls ARGV`` prints on stdout (run in this process)."""
    from textcls.cli import main

    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def cli_train(capsys, data: Path, out: Path, *flags: str) -> str:
    return cli_output(capsys, "train", "--data", str(data), "--out", str(out), *flags, *CLI_MEAN)


def cli_answer(capsys, model: Path, text: str, *flags: str) -> dict:
    """The first answer ``textcls predict MODEL TEXT --json`` prints."""
    return json.loads(cli_output(capsys, "predict", str(model), text, "--json", *flags))["predictions"][0]


def cli_report(capsys, model: Path, data: Path, out: Path, *flags: str) -> dict:
    command = ("evaluate", str(model), "--data", str(data), "--no-latency", "--json", "--out", str(out))
    return json.loads(cli_output(capsys, *command, *flags))


def gibberish(count: int, label: str, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(" ".join(rng.choices(GIBBERISH, k=rng.randint(3, 5))), label) for _ in range(count)]


def test_cli_abstain_below_is_saved_and_applied_by_the_loaded_model(tmp_path, capsys) -> None:
    data = write_splits(tmp_path / "data", {"train": make_examples(20, 0), "valid": make_examples(6, 1)})
    out = tmp_path / "model"
    cli_train(capsys, data, out, "--epochs", "8", "--abstain-below", "0.99")
    saved = json.loads((out / "config.json").read_text())["model"]["decision"]
    assert saved["abstain_below"] == 0.99 and saved["oos_target_recall"] is None
    assert textcls.load(out).predictor.decider().abstain_below == pytest.approx(0.99)  # read back
    answer = cli_answer(capsys, out, "qzx plok zzub")
    assert answer == {"label": "oos", "score": answer["score"], "out_of_scope": True, "abstained": True}
    assert answer["score"] < 0.99
    assert cli_output(capsys, "predict", str(out), "qzx plok zzub").startswith("oos (out of scope) ")
    kept = cli_answer(capsys, out, "song album guitar band", "--threshold", "0")  # replaces 0.99
    assert kept == {"label": "music", "score": kept["score"]}


def test_cli_a_custom_oos_label_as_a_trained_class_and_for_abstention(tmp_path, capsys) -> None:
    name = "none_of_these"
    trained = write_splits(
        tmp_path / "trained",
        {
            "train": make_examples(20, 0) + gibberish(20, name, 0),
            "valid": make_examples(6, 1) + gibberish(6, name, 1),
            "test": make_examples(6, 2) + gibberish(6, name, 2),
        },
    )
    out = tmp_path / "trained-model"
    printed = cli_train(capsys, trained, out, "--epochs", "10", "--oos-label", name)
    assert "in-scope accuracy " in printed and "out-of-scope recall " in printed  # the test split
    config = json.loads((out / "config.json").read_text())["model"]
    assert config["decision"]["oos_label"] == name and name in config["labels"]
    answer = cli_answer(capsys, out, "plok zzub wibl snarf")
    assert answer["label"] == name and answer["out_of_scope"] is True and "abstained" not in answer
    oos = cli_report(capsys, out, trained / "valid.txt", tmp_path / "e1")["out_of_scope"]
    assert oos["label"] == name and oos["trained_class"] is True
    assert oos["out_of_scope_examples"] == 6 and oos["oos_recall"] >= 0.8

    # the same name, never trained: validation examples with it set the abstention threshold
    unseen = write_splits(
        tmp_path / "unseen",
        {"train": make_examples(20, 0), "valid": make_examples(6, 1) + gibberish(6, name, 1)},
    )
    out = tmp_path / "abstaining-model"
    flags = ("--epochs", "10", "--oos-label", name, "--oos-target-recall", "0.9", "--extra-vocab", "0")
    cli_train(capsys, unseen, out, *flags)
    config = json.loads((out / "config.json").read_text())["model"]
    assert name not in config["labels"] and config["decision"]["abstain_below"] is not None
    answer = cli_answer(capsys, out, "plok zzub wibl snarf")
    assert answer["label"] == name and answer["out_of_scope"] is True and answer["abstained"] is True
    report = cli_report(capsys, out, unseen / "valid.txt", tmp_path / "e2")
    assert report["out_of_scope"]["label"] == name and report["out_of_scope"]["oos_recall"] >= 0.9
    assert report["unseen"] == {}  # the out-of-scope label is expected, not a label never seen


def test_cli_evaluate_threshold_on_a_multi_label_model(multi_model, multi_dir, tmp_path, capsys) -> None:
    test = multi_dir / "test.txt"

    def report(*flags: str) -> dict:
        return cli_report(capsys, multi_model, test, tmp_path / "eval", *flags)

    tuned, every = report(), report("--threshold", "0")
    assert every["labels_per_example"]["predicted"] == 3 and every["without_prediction"] == 0
    assert every["subset_accuracy"] == 0.0  # no test text carries all three labels
    assert all(row["recall"] == 1.0 for row in every["per_class"].values())
    assert tuned["micro_f1"] > every["micro_f1"] and tuned["labels_per_example"]["predicted"] < 2
    middle = report("--threshold", "0.3")
    expected = textcls.load(multi_model).evaluate(test, latency=False, threshold=0.3)
    for key in ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss"):
        assert middle[key] == pytest.approx(expected[key]), key


def test_cli_multi_label_flag_end_to_end(tmp_path, capsys) -> None:
    # every training text carries two labels, so no label stands alone and ',' is not detected:
    # only --multi-label splits 'music,sports'
    rng = random.Random(4)
    names = sorted(CLASS_WORDS)

    def pairs(count: int) -> list[tuple[str, str]]:
        rows = []
        for _ in range(count):
            chosen = sorted(rng.sample(names, 2))
            words = [w for label in chosen for w in rng.choices(CLASS_WORDS[label], k=rng.randint(2, 4))]
            rng.shuffle(words)
            rows.append((" ".join(words), ",".join(chosen)))
        return rows

    data = write_splits(tmp_path / "data", {"train": pairs(150), "valid": pairs(45), "test": pairs(30)})
    assert load_splits(data).label_sep is None  # not detected
    out = tmp_path / "model"
    printed = cli_train(capsys, data, out, "--epochs", "12", "--multi-label")
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["multi_label"] is True and config["data"]["label_sep"] == ","
    assert config["model"]["labels"] == names  # split, not 'music,sports' as one class
    assert len(config["model"]["decision"]["thresholds"]) == 3
    assert "subset accuracy " in printed and "micro F1 " in printed  # the test set, named as such
    shown = json.loads(cli_output(capsys, "predict", str(out), "song album guitar goal match team", "--json"))
    assert {p["label"] for p in shown["predictions"]} == {"music", "sports"}
    report = cli_report(capsys, out, data / "test.txt", tmp_path / "eval")
    assert report["multi_label"] is True and report["micro_f1"] > 0.8 and report["unseen"] == {}


def test_server_answers_several_labels_and_abstentions(multi_model, oos_model) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from textcls.serve.app import ServeSettings, create_app

    settings = ServeSettings(
        models={"multi": str(multi_model), "scoped": str(oos_model)},
        model_store=str(multi_model.parent.parent),
        max_delay_ms=1.0,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        body = client.post(
            "/predictions/multi", json={"texts": ["song album goal match", "rain snow"]}
        ).json()
        assert {p["label"] for p in body["predictions"][0]} == {"music", "sports"}
        assert [p["label"] for p in body["predictions"][1]] == ["weather"]
        torchserve = client.post("/predictions/multi", data={"data": "song album goal match"}).json()
        assert set(torchserve) == {"music", "sports"}  # TorchServe style: {label: probability}
        listed = client.post("/predictions/multi", json={"text": "song album goal match"}).json()
        assert torchserve == {p["label"]: p["score"] for p in listed["predictions"][0]}  # no flags
        every = client.post("/predictions/multi", json={"text": "song album", "threshold": 0}).json()
        assert len(every["predictions"][0]) == 3
        answer = client.post("/predictions/scoped", json={"text": "ftang plok zzub"}).json()
        assert answer["predictions"][0][0] == {
            "label": "oos",
            "score": pytest.approx(answer["predictions"][0][0]["score"]),
            "out_of_scope": True,
            "abstained": True,
        }
        # TorchServe style names the abstention too: the same flags beside {label: probability}
        plain = client.post("/predictions/scoped", data={"data": "ftang plok zzub"}).json()
        first = answer["predictions"][0][0]
        assert next(iter(plain)) == "oos" and plain["oos"] == pytest.approx(first["score"])
        assert plain["out_of_scope"] is True and plain["abstained"] is True
        # top_k 5 of 3 labels: the out-of-scope entry, then the best two in-scope labels
        assert len(plain) == 5 and set(plain) - {"oos", "out_of_scope", "abstained"} < set(CLASS_WORDS)
        scores = [v for k, v in plain.items() if k not in ("out_of_scope", "abstained")]
        assert all(isinstance(v, float) for v in scores) and scores == sorted(scores, reverse=True)
        in_scope = client.post("/predictions/scoped", content=b"song album guitar band").json()
        assert next(iter(in_scope)) == "music" and "out_of_scope" not in in_scope
        bad = client.post("/predictions/scoped", json={"text": "song", "threshold": "high"})
        assert bad.status_code == 422 and set(bad.json()) == {"code", "type", "message"}


def test_the_validation_split_is_read_back_with_the_training_data_options(tmp_path: Path) -> None:
    """Export's accuracy gate and auto's paired test re-read the validation split: with the label
    separator, bad-line rule and multi-label setting training used, the same examples come back."""
    from textcls.inference.export import resolve_validation

    data = write_multi(tmp_path / "train.txt", multi_label_examples(120, 21), separator=";")
    with data.open("a", encoding="utf-8") as f:
        f.write("a line without its label column\n")  # a bad line: skipped
    classifier = textcls.TextClassifier(
        **{**MEAN, "epochs": 1, "multi_label": True, "label_sep": ";", "on_bad_lines": "skip"}
    )
    classifier.fit(str(data), out_dir=tmp_path / "m", progress=False)
    expected = load_splits(
        data, options=classifier.config.data, seed=classifier.config.train.seed, multi_label=True
    ).valid
    examples = resolve_validation(tmp_path / "m")
    assert examples == expected and len(examples) > 10
    assert any(len(e.label_set) == 2 for e in examples)
    assert all(";" not in label for e in examples for label in e.label_set)
