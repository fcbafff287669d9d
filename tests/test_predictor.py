"""The Predictor interface every backend shares: probabilities, top-k ranking, input order, batch
sizes, the eager PyTorch backends and load_predictor — on small fakes, and one tiny trained CNN for
the backends that open a model directory."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from scipy.special import softmax as reference_softmax

from conftest import CLASS_WORDS, TINY
from textcls.errors import ConfigError
from textcls.inference.predictor import Predictor, TorchPredictor, load_predictor, softmax, sorted_logits


class FixedPredictor(Predictor):
    """Returns the logits it was given, one row per text (cycled); records each call's batch size."""

    backend = "fixed"

    def __init__(self, labels: list[str], rows: list[list[float]]) -> None:
        self.labels = labels
        self.rows = np.asarray(rows, np.float32)
        self.batch_sizes: list[int] = []

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        self.batch_sizes.append(batch_size)
        return self.rows[np.arange(len(texts)) % len(self.rows)].reshape(len(texts), len(self.labels))


class LetterFeaturizer:
    """Text → one id per letter (a=1, b=2, c=3), batches padded with 0 like the word models."""

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [[ord(c) - 96 for c in text] for text in texts]

    @staticmethod
    def length(item: Sequence[int]) -> int:
        return len(item)

    @staticmethod
    def collate(items: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        ids = torch.zeros(len(items), max(map(len, items)), dtype=torch.long)
        for row, item in enumerate(items):
            ids[row, : len(item)] = torch.tensor(item)
        return {"input_ids": ids, "attention_mask": ids != 0}

    def count_long(self, texts: Sequence[str]) -> int:
        return sum(len(text) > 3 for text in texts)

    def truncation(self, texts: Sequence[str]) -> dict[str, int]:
        return {"texts": len(texts), "cut": self.count_long(texts)}


class LetterCounter(torch.nn.Module):
    """logits[i, j]: how often letter j occurs in text i (padding ignored)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.batches.append(len(batch["input_ids"]))
        one_hot = torch.nn.functional.one_hot(batch["input_ids"], 4)[..., 1:]
        return {"logits": (one_hot * batch["attention_mask"][..., None]).sum(1).double()}


def letter_counts(texts: Sequence[str]) -> np.ndarray:
    return np.asarray([[text.count(letter) for letter in "abc"] for text in texts], np.float32)


# ---------------------------------------------------------------------------------- softmax
def test_softmax_gives_each_row_its_probabilities_even_for_extreme_logits() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 999.0], [-5.0, 0.0, 5.0], [-900.0, -901.0, -950.0]])
    probabilities = softmax(logits.astype(np.float32))
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities, reference_softmax(logits, axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


# ---------------------------------------------------------------------------------- predict
def test_predict_returns_the_best_label_and_its_probability_per_text() -> None:
    predictor = FixedPredictor(["alarm", "music", "weather"], [[0.0, 3.0, 1.0], [2.0, -1.0, 0.0]])
    predictions = predictor.predict(["first", "second", "third"])
    probabilities = reference_softmax(predictor.rows, axis=1)
    assert [p["label"] for p in predictions] == ["music", "alarm", "music"]
    assert [p["score"] for p in predictions] == pytest.approx(
        [probabilities[0, 1], probabilities[1, 0], probabilities[0, 1]], rel=1e-6
    )
    assert all(isinstance(p["score"], float) for p in predictions)


def test_top_k_ranks_labels_by_probability_and_stops_at_the_label_count() -> None:
    predictor = FixedPredictor(["alarm", "music", "weather"], [[0.0, 3.0, 1.0], [2.0, -1.0, 0.0]])
    ranked = predictor.predict(["first", "second"], top_k=2)
    assert [[p["label"] for p in row] for row in ranked] == [["music", "weather"], ["alarm", "weather"]]
    assert all(row[0]["score"] > row[1]["score"] for row in ranked)
    everything = predictor.predict(["first"], top_k=10)
    assert [p["label"] for p in everything[0]] == ["music", "weather", "alarm"]
    assert sum(p["score"] for p in everything[0]) == pytest.approx(1.0)


def test_tied_labels_rank_in_label_order() -> None:
    """Ties (equal scores) are common for untrained or saturated models: the ranking must not
    depend on the sort algorithm, so the earlier label wins, for any number of labels."""
    labels = [f"label{i:02d}" for i in range(40)]
    rows = [[1.0 if i % 3 == 0 else 0.0 for i in range(40)]]
    ranked = FixedPredictor(labels, rows).predict(["text"], top_k=40)[0]
    expected = [i for i in range(40) if i % 3 == 0] + [i for i in range(40) if i % 3]
    assert [p["label"] for p in ranked] == [labels[i] for i in expected]
    assert FixedPredictor(["a", "b"], [[2.0, 2.0]]).predict(["x"])[0]["label"] == "a"


def test_predict_refuses_a_bare_string_and_a_top_k_below_one() -> None:
    predictor = FixedPredictor(["a", "b"], [[0.0, 1.0]])
    with pytest.raises(TypeError, match="list of texts"):
        predictor.predict("one text")
    for top_k in (0, -1):
        with pytest.raises(ConfigError, match="top_k must be at least 1"):
            predictor.predict(["x"], top_k=top_k)
    assert predictor.predict([]) == [] and predictor.predict([], top_k=2) == []


def test_the_callers_batch_size_reaches_the_backend() -> None:
    predictor = FixedPredictor(["a", "b"], [[0.0, 1.0]])
    predictor.predict_proba(["x", "y"], batch_size=3)
    predictor.predict(["x"], batch_size=5)
    predictor.predict(["x"], top_k=2, batch_size=1)
    assert predictor.batch_sizes == [3, 5, 1]


def test_truncation_comes_from_the_featurizer_when_the_backend_has_one() -> None:
    predictor = FixedPredictor(["a", "b"], [[0.0, 1.0]])
    assert predictor.truncation(["abcd"]) is None and predictor.count_long(["abcd"]) is None
    predictor.featurizer = LetterFeaturizer()
    assert predictor.truncation(["abcd", "ab", "abcabc"]) == {"texts": 3, "cut": 2}


# ---------------------------------------------------------------------------- sorted batches
def test_sorted_logits_of_one_item_and_of_none() -> None:
    calls: list[list] = []

    def run_batch(items):
        calls.append(items)
        return np.asarray([[len(item), 1.0] for item in items], dtype=np.float64)

    one = sorted_logits([[1, 2, 3]], len, 8, run_batch)
    assert one.dtype == np.float32 and one.tolist() == [[3.0, 1.0]]
    many = sorted_logits([[1, 2, 3], [1]], len, 8, run_batch)
    assert many.dtype == np.float32 and many.tolist() == [[3.0, 1.0], [1.0, 1.0]]
    assert calls == [[[1, 2, 3]], [[1], [1, 2, 3]]]
    none = sorted_logits([], len, 8, run_batch)
    assert none.shape[0] == 0 and none.dtype == np.float32
    assert len(calls) == 2  # nothing to run for no items


def test_sorted_logits_never_runs_more_than_batch_size_items_at_once() -> None:
    sizes: list[int] = []

    def run_batch(items):
        sizes.append(len(items))
        return np.zeros((len(items), 2))

    sorted_logits([[1], [1, 2]], len, 1, run_batch)
    sorted_logits([[1]] * 5, len, 2, run_batch)
    assert sizes == [1, 1, 2, 2, 1]


# ------------------------------------------------------------------------------ TorchPredictor
def test_torch_predictor_scores_every_text_in_input_order() -> None:
    model = LetterCounter()
    predictor = TorchPredictor(model, LetterFeaturizer(), ["a", "b", "c"])
    assert predictor.backend == "torch" and predictor.device == torch.device("cpu")
    assert predictor.model is model and not model.training
    texts = ["abcab", "c", "bb", "aaaa", "cab", "b"]
    logits = predictor.logits(texts, batch_size=2)
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(logits, letter_counts(texts))
    assert model.batches == [2, 2, 2]
    np.testing.assert_array_equal(predictor.logits(["cab"]), letter_counts(["cab"]))
    assert [p["label"] for p in predictor.predict(texts)] == ["a", "c", "b", "a", "a", "b"]
    assert predictor.count_long(texts) == 2  # the featurizer's answer


def test_torch_predictor_turns_a_model_left_training_to_eval_and_leaves_an_eval_one_alone() -> None:
    class Dropping(LetterCounter):
        def __init__(self) -> None:
            super().__init__()
            self.drop, self.modes = torch.nn.Dropout(0.9), []

        def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            self.modes.append(self.training)
            return {"logits": self.drop(super().forward(batch)["logits"])}

    model = Dropping()
    predictor = TorchPredictor(model, LetterFeaturizer(), ["a", "b", "c"])
    model.train()  # e.g. a caller that trained it further
    np.testing.assert_array_equal(predictor.logits(["abcab"]), letter_counts(["abcab"]))  # no dropout
    assert model.modes == [False] and not model.drop.training
    calls = []
    model.eval = lambda: calls.append(1)  # type: ignore[method-assign]
    predictor.logits(["c"])
    assert calls == []  # already in eval mode: not walked again on every call


def test_torch_predictor_of_no_texts_has_one_column_per_label() -> None:
    predictor = TorchPredictor(LetterCounter(), LetterFeaturizer(), ["a", "b", "c"], backend="torch-int8")
    logits = predictor.logits([])
    assert logits.shape == (0, 3) and logits.dtype == np.float32
    assert predictor.predict_proba([]).shape == (0, 3)
    assert predictor.backend == "torch-int8"


# ------------------------------------------------------------------------------ model directories
@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_splits):
    """A tiny trained CNN, saved: (directory, the classifier, test texts)."""
    from textcls.api import TextClassifier

    classifier = TextClassifier(**{**TINY, "epochs": 2})
    classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)
    directory = tmp_path_factory.mktemp("predictor") / "cnn"
    classifier.save(directory)
    return directory, classifier, [text for text, _ in synthetic_splits["test"]]


def test_load_predictor_opens_the_torch_backend_by_default(trained) -> None:
    directory, classifier, texts = trained
    predictor = load_predictor(directory)
    assert isinstance(predictor, TorchPredictor) and predictor.backend == "torch"
    assert predictor.labels == classifier.labels and sorted(predictor.labels) == sorted(CLASS_WORDS)
    np.testing.assert_allclose(predictor.logits(texts), classifier.predictor.logits(texts), atol=1e-6)
    assert predictor.count_long(texts) == 0 and predictor.count_long([" ".join(["song"] * 500)]) == 1


def test_the_torch_int8_backend_is_quantized_and_still_agrees(trained) -> None:
    directory, _, texts = trained
    fp32 = load_predictor(directory, "torch").logits(texts)
    predictor = load_predictor(directory, backend="torch-int8")
    assert isinstance(predictor, TorchPredictor) and predictor.backend == "torch-int8"
    assert predictor.labels == load_predictor(directory).labels
    int8 = predictor.logits(texts)
    assert not np.array_equal(int8, fp32)  # really int8 arithmetic, not the fp32 model renamed
    assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.9


def test_load_predictor_threads(trained) -> None:
    directory, _, _ = trained
    for threads in (0, -2):
        with pytest.raises(ConfigError, match="threads must be at least 1"):
            load_predictor(directory, threads=threads)
    previous = torch.get_num_threads()
    try:
        assert load_predictor(directory, threads=1).threads == 1
        load_predictor(directory, threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


# ------------------------------------------------------------------------- the int8 accuracy gate
# export_model's gate compares the PyTorch and the int8 ONNX accuracy on the validation split.


def test_gate_accuracy_counts_a_label_the_model_never_saw_as_wrong() -> None:
    from textcls.config import ModelConfig
    from textcls.data.formats import Example
    from textcls.decision import Decision
    from textcls.inference.export import accuracy

    labels = Decision(ModelConfig(labels=["music", "sports", "weather"]))
    logits = np.array([[3, 0, 0], [0, 3, 0], [0, 3, 0], [0, 0, 3]], np.float32)
    gold = ["music", "sports", "flight", "weather"]  # "flight": not a label of the model
    examples = [Example(f"text {i}", label, line=i + 1) for i, label in enumerate(gold)]
    assert accuracy(logits, labels, examples) == pytest.approx(75.0)  # points, over all four


@pytest.fixture
def gate_model(trained, tmp_path, synthetic_splits):
    """A private copy of the trained CNN and its validation file, for exports."""
    import shutil

    from conftest import write_tsv

    pytest.importorskip("onnxruntime")
    directory = shutil.copytree(trained[0], tmp_path / "cnn")
    return directory, write_tsv(tmp_path / "valid.txt", synthetic_splits["valid"])


def test_gate_a_drop_of_exactly_max_drop_passes(gate_model) -> None:
    from textcls.errors import AccuracyGateError
    from textcls.inference.export import export_model
    from textcls.inference.onnx import INT8_FILE

    directory, valid = gate_model
    drop = export_model(directory, quantize="int8", valid=valid)["onnx-int8"]["gate"]["drop"]
    gate = export_model(directory, quantize="int8", valid=valid, max_drop=drop)["onnx-int8"]["gate"]
    assert gate["drop"] == drop and gate["passed"] is True and gate["forced"] is False
    assert (directory / INT8_FILE).is_file()
    with pytest.raises(AccuracyGateError):  # just below the measured drop: refused
        export_model(directory, quantize="int8", valid=valid, max_drop=drop - 0.01)
    assert not (directory / INT8_FILE).exists()


def test_gate_force_on_a_passing_model_is_not_recorded_as_forced(gate_model, caplog) -> None:
    import logging

    from textcls.inference.export import export_model

    directory, valid = gate_model
    with caplog.at_level(logging.INFO, logger="textcls.inference.export"):
        gate = export_model(directory, quantize="int8", valid=valid, force=True)["onnx-int8"]["gate"]
    assert gate["passed"] is True and gate["forced"] is False
    assert "(gate passed)" in caplog.text and "FAILED" not in caplog.text


def test_gate_a_forced_failure_is_logged_as_such(gate_model, caplog) -> None:
    import logging

    from textcls.inference.export import export_model

    directory, valid = gate_model
    with caplog.at_level(logging.INFO, logger="textcls.inference.export"):
        record = export_model(directory, quantize="int8", valid=valid, max_drop=-101.0, force=True)
    assert record["onnx-int8"]["gate"]["passed"] is False and record["onnx-int8"]["gate"]["forced"] is True
    assert "(gate FAILED, kept because of --force)" in caplog.text and "(gate passed)" not in caplog.text


def test_load_predictor_threads_reach_the_onnx_backend(gate_model) -> None:
    from textcls.inference.export import export_model

    directory, valid = gate_model
    export_model(directory, valid=valid)
    predictor = load_predictor(directory, "onnx", threads=1)
    assert predictor.backend == "onnx" and predictor.threads == 1
    assert predictor.session.get_session_options().intra_op_num_threads == 1
