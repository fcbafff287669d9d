"""Inference backends: ONNX export of every encoder kind, int8 (PyTorch and ONNX) against the
fp32 PyTorch model, the int8 accuracy gate and its failure path, threads, sorted batching, the
bench outputs and the export / predict / evaluate command lines."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import textcls
from conftest import SMALL_ENCODER_PARAMS, TINY, make_examples, write_tsv
from textcls.cli import main
from textcls.errors import AccuracyGateError, ConfigError, ExportError, ModelLoadError
from textcls.inference.bench import markdown_table, pareto_front, run_bench
from textcls.inference.export import resolve_validation
from textcls.inference.onnx import INT8_FILE, ONNX_FILE, OnnxPredictor, aggregate_windows
from textcls.inference.predictor import TorchPredictor, load_predictor, sorted_logits
from tiny_backbones import ARCHITECTURES, build

ONNX_BACKENDS = ("onnx", "onnx-int8")
ALL_BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALWAYS_FAILS = -101.0  # accuracies lie in [0, 100]: every drop is > -101 points, so the gate fails

# Word models: tiny, but trained enough (8 epochs at a high rate) to separate the synthetic classes.
WORD = {**TINY, "epochs": 8, "lr": 3e-2}

# Transformers: the tiny random backbones of tests/tiny_backbones.py, a few fast epochs.
TRANSFORMER = {"epochs": 8, "batch_size": 16, "lr": 5e-3, "tensorboard": False, "patience": 0}
T_TRAIN = make_examples(20, seed=1)
T_VALID = make_examples(6, seed=2)
LONG_TRAIN = [(f"{text} " * 6, label) for text, label in T_TRAIN]
LONG_VALID = [(f"{text} " * 6, label) for text, label in T_VALID]
CHUNK = {"max_length": 16, "long_docs": "chunk", "stride": 4}


def texts_of(examples) -> list[str]:
    return [text for text, _ in examples]


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def probabilities(directory: Path, texts, backends=ALL_BACKENDS) -> dict[str, np.ndarray]:
    return {backend: load_predictor(directory, backend).predict_proba(texts) for backend in backends}


def copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def graph_ops(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def onnx_input_names(directory: Path, backend: str = "onnx") -> list[str]:
    predictor = load_predictor(directory, backend)
    assert isinstance(predictor, OnnxPredictor)
    return predictor.input_names


def mixed_texts(examples, seed: int = 0) -> list[str]:
    """Short, long, empty and unknown-word texts, shuffled: batches mix very different lengths."""
    texts = [*texts_of(examples), "song", "", "zzz qqq", "rain " * 40, " ".join(texts_of(examples))]
    random.Random(seed).shuffle(texts)
    return texts


# -------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def word_models(tmp_path_factory, synthetic_splits, synthetic_dir):
    """encoder → (directory exported to model.onnx + model.int8.onnx, the export record);
    each model is trained (on in-memory examples) and exported once, on first use."""
    from textcls.inference.export import export_model

    root = tmp_path_factory.mktemp("word-models")
    cache: dict[str, tuple[Path, dict]] = {}

    def get(encoder: str) -> tuple[Path, dict]:
        if encoder not in cache:
            classifier = textcls.TextClassifier(
                **{**WORD, "encoder": encoder, "encoder_params": SMALL_ENCODER_PARAMS[encoder]}
            )
            classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)
            directory = root / encoder
            classifier.save(directory)
            record = export_model(directory, quantize="int8", valid=synthetic_dir / "valid.txt")
            cache[encoder] = (directory, record)
        return cache[encoder]

    return get


@pytest.fixture(scope="module")
def cnn_classifier(synthetic_splits) -> textcls.TextClassifier:
    """A trained CNN (from in-memory examples: no validation split recorded)."""
    classifier = textcls.TextClassifier(**{**WORD, "encoder_params": SMALL_ENCODER_PARAMS["cnn"]})
    return classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)


@pytest.fixture
def plain_dir(cnn_classifier, tmp_path) -> Path:
    """A fresh, never exported model directory of ``cnn_classifier``."""
    cnn_classifier.save(tmp_path / "plain-cnn")
    return tmp_path / "plain-cnn"


@pytest.fixture
def exported_dir(word_models, tmp_path) -> Path:
    """A private copy of the exported CNN (model.onnx, model.int8.onnx, export.json)."""
    return copy_model(word_models("cnn")[0], tmp_path / "exported-cnn")


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    """arch → tiny Hugging Face model directory, built on first use."""
    root = tmp_path_factory.mktemp("inference-backbones")
    cache: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in cache:
            cache[arch] = build(arch, root / arch, texts_of(T_TRAIN))
        return cache[arch]

    return get


@pytest.fixture(scope="module")
def transformer_models(tmp_path_factory, backbones):
    """(arch, encoder, chunk aggregate or None) → (directory exported with int8, record)."""
    from textcls.inference.export import export_model

    root = tmp_path_factory.mktemp("transformer-models")
    cache: dict[tuple, tuple[Path, dict]] = {}

    def get(arch: str, encoder: str = "cls", aggregate: str | None = None) -> tuple[Path, dict]:
        key = (arch, encoder, aggregate)
        if key not in cache:
            options = dict(TRANSFORMER)
            train, valid = T_TRAIN, T_VALID
            if encoder == "cnn":
                options["encoder_params"] = {"num_filters": 8}
            if aggregate is not None:
                options.update(CHUNK, aggregate=aggregate)
                train, valid = LONG_TRAIN, LONG_VALID
            classifier = textcls.TextClassifier(model=str(backbones(arch)), encoder=encoder, **options)
            classifier.fit(train, valid, progress=False)
            directory = root / "-".join(str(part) for part in key)
            classifier.save(directory)
            valid_file = write_tsv(root / f"{directory.name}.valid.txt", valid)
            cache[key] = (directory, export_model(directory, quantize="int8", valid=valid_file))
        return cache[key]

    return get


# ------------------------------------------------------------------ word models, every encoder
@pytest.mark.parametrize("encoder", list(SMALL_ENCODER_PARAMS))
def test_word_model_backends_agree_with_torch(word_models, synthetic_splits, encoder) -> None:
    directory, record = word_models(encoder)
    test = synthetic_splits["test"]
    texts = texts_of(test)
    results = probabilities(directory, texts)
    reference = results["torch"]
    labels = json.loads((directory / "labels.json").read_text())["labels"]
    gold = np.asarray([labels.index(label) for _, label in test])
    # the data is trivially separable: the reference model is good, so label checks mean something
    assert (reference.argmax(1) == gold).mean() >= 0.8
    # fp32 ONNX: the same labels, the same probabilities
    np.testing.assert_array_equal(results["onnx"].argmax(1), reference.argmax(1))
    np.testing.assert_allclose(results["onnx"], reference, atol=1e-4)
    # int8 (both runtimes): nearly always the same labels
    assert agreement(results["torch-int8"], reference) >= 0.9
    assert agreement(results["onnx-int8"], reference) >= 0.9
    for backend in ALL_BACKENDS:
        assert results[backend].shape == (len(texts), 3)
        np.testing.assert_allclose(results[backend].sum(1), 1.0, rtol=1e-5)

    # what was written and recorded
    assert (directory / ONNX_FILE).is_file() and (directory / INT8_FILE).is_file()
    assert json.loads((directory / "export.json").read_text()) == record
    assert record["onnx"]["file"] == ONNX_FILE and record["onnx-int8"]["file"] == INT8_FILE
    assert record["onnx"]["max_abs_diff"] <= 1e-3
    assert record["onnx"]["label_agreement"] == 100.0
    assert record["onnx"]["size_mb"] > 0 and record["onnx-int8"]["size_mb"] > 0
    assert "fused" not in record["onnx"]  # the transformer optimizer is for transformers only
    gate = record["onnx-int8"]["gate"]
    assert gate["passed"] is True and gate["forced"] is False
    assert gate["valid_examples"] == len(synthetic_splits["valid"])
    assert gate["max_drop"] == 1.0
    assert gate["drop"] == pytest.approx(gate["torch_accuracy"] - gate["int8_accuracy"])
    assert gate["drop"] <= gate["max_drop"]
    # the int8 files really are quantized
    assert "DequantizeLinear" in graph_ops(directory / INT8_FILE)
    assert not {"DequantizeLinear", "MatMulInteger"} & graph_ops(directory / ONNX_FILE)
    if encoder not in ("gnb", "linear"):  # Gaussian NB and linear have no Linear / LSTM layer to quantize
        quantized = load_predictor(directory, "torch-int8").model
        assert any("quantized" in type(module).__module__ for module in quantized.modules())
    counts = ["token_weights"] if encoder == "linear" else []  # a bag of n-gram ids and their counts
    assert onnx_input_names(directory) == ["input_ids", "attention_mask", *counts]


def test_backends_report_their_names(word_models) -> None:
    directory, _ = word_models("cnn")
    for backend in ALL_BACKENDS:
        predictor = load_predictor(directory, backend)
        assert predictor.backend == backend
        assert predictor.labels == ["music", "sports", "weather"]
    assert isinstance(load_predictor(directory, "torch-int8"), TorchPredictor)
    assert isinstance(load_predictor(directory, "onnx-int8"), OnnxPredictor)


def test_onnx_predict_ranks_like_torch(word_models, synthetic_splits) -> None:
    directory, _ = word_models("lstm")
    texts = texts_of(synthetic_splits["test"])[:6]
    torch_ranked = load_predictor(directory, "torch").predict(texts, top_k=3)
    onnx_ranked = load_predictor(directory, "onnx").predict(texts, top_k=3)
    for ours, theirs in zip(onnx_ranked, torch_ranked, strict=True):
        assert [p["label"] for p in ours] == [p["label"] for p in theirs]
        np.testing.assert_allclose([p["score"] for p in ours], [p["score"] for p in theirs], atol=1e-4)
    assert load_predictor(directory, "onnx").predict([]) == []
    assert load_predictor(directory, "onnx").predict_proba([]).shape == (0, 3)


# ------------------------------------------------------------------------------- transformers
def assert_backends_agree(directory: Path, texts: list[str], record: dict) -> None:
    """fp32 ONNX gives torch's labels and probabilities; int8 backends agree on 90% of labels."""
    results = probabilities(directory, texts)
    reference = results["torch"]
    np.testing.assert_array_equal(results["onnx"].argmax(1), reference.argmax(1))
    np.testing.assert_allclose(results["onnx"], reference, atol=1e-4)
    assert agreement(results["torch-int8"], reference) >= 0.9
    assert agreement(results["onnx-int8"], reference) >= 0.9
    assert record["onnx"]["max_abs_diff"] <= 1e-3


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_transformer_cls_export_matches_torch(transformer_models, arch) -> None:
    directory, record = transformer_models(arch, "cls")
    texts = texts_of(T_VALID)
    assert_backends_agree(directory, texts, record)
    assert record["onnx"]["label_agreement"] == 100.0
    assert record["onnx-int8"]["gate"]["passed"] is True
    assert json.loads((directory / "export.json").read_text()) == record
    # token_type_ids is a graph input exactly when the tokenizer produces it
    has_types = arch in ("bert", "albert", "electra")
    assert ("token_type_ids" in onnx_input_names(directory)) == has_types
    assert ("token_type_ids" in onnx_input_names(directory, "onnx-int8")) == has_types


def test_bert_cls_is_fused_by_the_transformer_optimizer(transformer_models) -> None:
    directory, record = transformer_models("bert", "cls")
    fused = record["onnx"]["fused"]
    assert isinstance(fused, dict)
    assert fused.get("Attention", 0) >= 1 and fused.get("SkipLayerNormalization", 0) >= 1
    assert record["onnx"]["max_abs_diff"] <= 1e-3
    assert "unfused_max_abs_diff" in record["onnx"]
    assert {"Attention", "SkipLayerNormalization"} <= graph_ops(directory / ONNX_FILE)  # the fused file


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_word_encoder_over_hidden_states_exports(transformer_models, arch) -> None:
    directory, record = transformer_models(arch, "cnn")
    assert json.loads((directory / "config.json").read_text())["model"]["encoder"]["name"] == "cnn"
    texts = texts_of(T_VALID)
    assert_backends_agree(directory, texts, record)
    assert ("token_type_ids" in onnx_input_names(directory)) == (arch == "bert")


@pytest.mark.parametrize("aggregate", ["mean", "max"])
def test_chunked_long_documents_aggregate_in_numpy_like_torch(transformer_models, aggregate) -> None:
    directory, record = transformer_models("bert", "mean", aggregate)
    assert record["onnx"]["max_abs_diff"] <= 1e-3
    # long documents (several windows), short ones (one window) and one very long one, shuffled
    texts = [*texts_of(LONG_VALID[:6]), *texts_of(T_VALID[:6]), " ".join(texts_of(T_VALID))]
    random.Random(1).shuffle(texts)
    torch_predictor = load_predictor(directory, "torch")
    onnx_predictor = load_predictor(directory, "onnx")
    assert isinstance(onnx_predictor, OnnxPredictor) and onnx_predictor.aggregate == aggregate
    windows = [len(w) for w in onnx_predictor.featurizer.encode(texts)]
    assert max(windows) > 2 and min(windows) == 1
    reference = torch_predictor.logits(texts)
    for batch_size in (64, 3, 1):
        logits = onnx_predictor.logits(texts, batch_size)
        np.testing.assert_array_equal(logits.argmax(1), reference.argmax(1))
        np.testing.assert_allclose(logits, reference, atol=1e-4)
    assert onnx_predictor.count_long(texts) == torch_predictor.count_long(texts) == 7
    int8 = load_predictor(directory, "onnx-int8").logits(texts)
    assert agreement(int8, reference) >= 0.9


def test_numpy_window_aggregation_matches_torch() -> None:
    from textcls.embeddings.transformer import aggregate_windows as torch_aggregate

    logits = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, -1.0], [-2.0, -4.0]], dtype=np.float32)
    doc_index = np.array([0, 0, 1, 2])
    np.testing.assert_allclose(
        aggregate_windows(logits, doc_index, "mean"), [[2.0, 1.0], [5.0, -1.0], [-2.0, -4.0]]
    )
    np.testing.assert_allclose(
        aggregate_windows(logits, doc_index, "max"), [[3.0, 2.0], [5.0, -1.0], [-2.0, -4.0]]
    )
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, 3)).astype(np.float32)
    doc_index = np.sort(np.concatenate([np.arange(5), rng.integers(0, 5, size=7)]))
    for how in ("mean", "max"):
        ours = aggregate_windows(logits, doc_index, how)
        assert ours.dtype == np.float32 and ours.shape == (5, 3)
        theirs = torch_aggregate(torch.from_numpy(logits), torch.from_numpy(doc_index), how).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_no_optimize_keeps_the_traced_graph(transformer_models, tmp_path, capsys) -> None:
    directory = copy_model(transformer_models("bert", "cls")[0], tmp_path / "bert")
    assert main(["export", str(directory), "--no-optimize", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert "fused" not in record["onnx"] and record["onnx"]["max_abs_diff"] <= 1e-3
    assert "Attention" not in graph_ops(directory / ONNX_FILE)
    texts = texts_of(T_VALID)
    np.testing.assert_allclose(
        load_predictor(directory, "onnx").predict_proba(texts),
        load_predictor(directory, "torch").predict_proba(texts),
        atol=1e-4,
    )


# ------------------------------------------------------------------------------ the int8 gate
def test_failing_gate_raises_and_removes_the_int8_model(exported_dir, synthetic_dir) -> None:
    from textcls.inference.export import export_model

    assert (exported_dir / INT8_FILE).is_file()  # from the earlier, passing export
    with pytest.raises(AccuracyGateError, match=r"int8 model rejected.*--max-drop -101") as caught:
        export_model(exported_dir, quantize="int8", valid=synthetic_dir / "valid.txt", max_drop=ALWAYS_FAILS)
    assert INT8_FILE in str(caught.value) and "--force" in str(caught.value)
    assert not (exported_dir / INT8_FILE).exists()
    assert not list(exported_dir.glob("*.tmp"))
    record = json.loads((exported_dir / "export.json").read_text())
    assert "onnx-int8" not in record  # the earlier, passing entry is gone with its file
    assert record["onnx"]["max_abs_diff"] <= 1e-3 and (exported_dir / ONNX_FILE).is_file()
    with pytest.raises(ModelLoadError):
        load_predictor(exported_dir, "onnx-int8")


def test_forced_gate_keeps_the_int8_model_and_says_so(plain_dir, synthetic_dir, synthetic_splits) -> None:
    from textcls.inference.export import export_model

    record = export_model(
        plain_dir, quantize="int8", valid=synthetic_dir / "valid.txt", max_drop=ALWAYS_FAILS, force=True
    )
    gate = record["onnx-int8"]["gate"]
    assert gate["passed"] is False and gate["forced"] is True and gate["max_drop"] == ALWAYS_FAILS
    assert gate["valid_examples"] == len(synthetic_splits["valid"])
    assert (plain_dir / INT8_FILE).is_file()
    assert json.loads((plain_dir / "export.json").read_text()) == record
    predictor = load_predictor(plain_dir, "onnx-int8")
    assert predictor.predict_proba(["guitar song"]).shape == (1, 3)


def test_failing_gate_on_the_command_line(plain_dir, synthetic_dir, capsys) -> None:
    valid = str(synthetic_dir / "valid.txt")
    code = main(["export", str(plain_dir), "--quantize", "int8", "--valid", valid, "--max-drop", "-101"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: int8 model rejected" in err and "--max-drop -101" in err
    assert not (plain_dir / INT8_FILE).exists()
    assert (plain_dir / ONNX_FILE).is_file()

    code = main(
        ["export", str(plain_dir), "--quantize", "int8", "--valid", valid, "--max-drop=-101", "--force"]
    )
    out = capsys.readouterr().out
    assert code == 0 and (plain_dir / INT8_FILE).is_file()
    assert "gate FAILED (kept: --force)" in out


def test_passing_gate_on_the_command_line(plain_dir, synthetic_dir, capsys) -> None:
    valid = str(synthetic_dir / "valid.txt")
    assert main(["export", str(plain_dir), "--quantize", "int8", "--valid", valid]) == 0
    out = capsys.readouterr().out
    assert f"{plain_dir}/{ONNX_FILE}" in out and "max abs diff vs PyTorch" in out
    assert f"{plain_dir}/{INT8_FILE}" in out and "gate passed" in out


# ------------------------------------------------------------------------------ validation data
def test_quantize_without_validation_data_is_a_config_error(plain_dir, capsys) -> None:
    from textcls.inference.export import export_model

    assert resolve_validation(plain_dir) is None  # trained from in-memory examples
    with pytest.raises(ConfigError, match="--valid"):
        export_model(plain_dir, quantize="int8")
    assert not (plain_dir / ONNX_FILE).exists() and not (plain_dir / INT8_FILE).exists()
    assert main(["export", str(plain_dir), "--quantize", "int8"]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="int8"):
        export_model(plain_dir, quantize="int4")


def test_validation_split_recorded_at_training_is_found(synthetic_dir, synthetic_splits, tmp_path) -> None:
    from textcls.inference.export import export_model

    classifier = textcls.TextClassifier(**{**TINY, "epochs": 1})
    classifier.fit(str(synthetic_dir), progress=False)
    directory = tmp_path / "model"
    classifier.save(directory)
    recorded = json.loads((directory / "train_result.json").read_text())["data"]
    assert Path(recorded["data"]) == synthetic_dir.resolve()
    found = resolve_validation(directory)
    assert found is not None
    assert [(e.text, e.label) for e in found] == synthetic_splits["valid"]
    # an explicit file wins over the recorded split
    other = write_tsv(tmp_path / "other.txt", synthetic_splits["test"][:5])
    assert [(e.text, e.label) for e in resolve_validation(directory, other)] == synthetic_splits["test"][:5]
    # and the gate runs on the recorded split without --valid
    record = export_model(directory, quantize="int8", max_drop=100.0)
    assert record["onnx-int8"]["gate"]["valid_examples"] == len(synthetic_splits["valid"])


def test_carved_validation_split_is_carved_again(tmp_path) -> None:
    examples = make_examples(20, seed=7)
    train_file = write_tsv(tmp_path / "all.txt", examples)
    classifier = textcls.TextClassifier(**{**TINY, "epochs": 1})
    classifier.fit(str(train_file), progress=False)
    directory = tmp_path / "model"
    classifier.save(directory)
    found = resolve_validation(directory)
    assert found is not None
    assert len(found) == classifier.train_result.extra["valid_examples"] < len(examples)
    assert {(e.text, e.label) for e in found} <= set(examples)


def test_moved_training_data_means_no_recorded_split(tmp_path, synthetic_splits) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "valid"):
        write_tsv(data / f"{split}.txt", synthetic_splits[split])
    classifier = textcls.TextClassifier(**{**TINY, "epochs": 1})
    classifier.fit(str(data), progress=False)
    classifier.save(tmp_path / "model")
    assert resolve_validation(tmp_path / "model") is not None
    shutil.rmtree(data)
    assert resolve_validation(tmp_path / "model") is None


# ---------------------------------------------------------------------- missing files, failures
@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_missing_onnx_file_names_the_export_command(plain_dir, backend, capsys) -> None:
    from textcls.cli import build_parser

    with pytest.raises(ModelLoadError, match="textcls export") as caught:
        load_predictor(plain_dir, backend)
    message = str(caught.value)
    assert {"onnx": ONNX_FILE, "onnx-int8": INT8_FILE}[backend] in message
    # the suggested command is one the CLI accepts, with --quantize int8 for the int8 backend
    command = message.split("'")[1].split()
    assert command[:3] == ["textcls", "export", str(plain_dir)]
    args = build_parser().parse_args(command[1:])
    assert args.quantize == ("int8" if backend == "onnx-int8" else None)
    assert main(["predict", str(plain_dir), "song", "--backend", backend]) == 2
    assert "textcls export" in capsys.readouterr().err


def test_impossible_tolerance_fails_before_writing(plain_dir) -> None:
    from textcls.inference.export import export_model

    with pytest.raises(ExportError, match="disagrees with PyTorch"):
        export_model(plain_dir, tolerance=-1.0)
    assert not (plain_dir / ONNX_FILE).exists()
    assert not (plain_dir / "export.json").exists()
    assert not list(plain_dir.glob("*.tmp"))


def test_impossible_tolerance_leaves_an_earlier_export_untouched(exported_dir) -> None:
    from textcls.inference.export import export_model

    before = {name: (exported_dir / name).read_bytes() for name in (ONNX_FILE, INT8_FILE, "export.json")}
    with pytest.raises(ExportError):
        export_model(exported_dir, tolerance=-1.0)
    assert {name: (exported_dir / name).read_bytes() for name in before} == before


def test_impossible_tolerance_rejects_the_fused_transformer_too(transformer_models, tmp_path) -> None:
    from textcls.inference.export import export_model

    directory = tmp_path / "bert"
    shutil.copytree(transformer_models("bert", "cls")[0], directory, ignore=shutil.ignore_patterns("*.onnx"))
    with pytest.raises(ExportError):
        export_model(directory, tolerance=-1.0)
    assert not (directory / ONNX_FILE).exists()


# ------------------------------------------------------------------------------------ threads
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_threads_reach_the_backend(word_models, backend) -> None:
    directory, _ = word_models("cnn")
    predictor = load_predictor(directory, backend, threads=1)
    assert predictor.threads == 1
    if isinstance(predictor, OnnxPredictor):
        assert predictor.session.get_session_options().intra_op_num_threads == 1
    for bad in (0, -2):
        with pytest.raises(ConfigError, match="threads"):
            load_predictor(directory, backend, threads=bad)


def test_onnx_default_threads_is_every_usable_core(word_models) -> None:
    import os

    predictor = load_predictor(word_models("cnn")[0], "onnx")
    assert predictor.threads == len(os.sched_getaffinity(0))
    assert predictor.session.get_session_options().intra_op_num_threads == 0  # ONNX Runtime decides


# ---------------------------------------------------------------------------- sorted batching
def test_sorted_logits_restores_the_input_order() -> None:
    items = [[0] * n for n in (5, 1, 3, 3, 8, 2, 1)]
    seen: list[list[int]] = []

    def run_batch(batch):
        seen.append([len(item) for item in batch])
        return np.asarray([[len(item), -len(item)] for item in batch], dtype=np.float32)

    out = sorted_logits(items, len, 2, run_batch)
    np.testing.assert_array_equal(out[:, 0], [5, 1, 3, 3, 8, 2, 1])
    np.testing.assert_array_equal(out[:, 1], [-5, -1, -3, -3, -8, -2, -1])
    assert seen == [[1, 1], [2, 3], [3, 5], [8]]  # shortest first, little padding per batch


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_batched_predictions_equal_one_by_one(word_models, synthetic_splits, backend) -> None:
    directory, _ = word_models("lstm")  # packed sequences: the most length-sensitive encoder
    texts = mixed_texts(synthetic_splits["test"][:10])
    predictor = load_predictor(directory, backend)
    single = np.concatenate([predictor.logits([text], 1) for text in texts])
    batched = predictor.logits(texts, batch_size=2)
    if backend.endswith("int8"):
        # dynamic quantization scales activations per batch: batch mates move logits a little
        np.testing.assert_allclose(batched, single, atol=2e-2)
        assert agreement(batched, single) >= 0.9
    else:
        np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-5)
        assert [p["label"] for p in predictor.predict(texts, batch_size=2)] == [
            predictor.labels[i] for i in single.argmax(1)
        ]


@pytest.mark.parametrize("encoder", ["cnn", "densenet-dsa", "gnb"])
def test_onnx_handles_any_length_in_one_batch(word_models, synthetic_splits, encoder) -> None:
    directory, _ = word_models(encoder)
    texts = mixed_texts(synthetic_splits["test"], seed=3)
    reference = load_predictor(directory, "torch").logits(texts)
    for batch_size in (2, 64):
        np.testing.assert_allclose(
            load_predictor(directory, "onnx").logits(texts, batch_size), reference, atol=1e-4
        )


# ------------------------------------------------------------------------------------- bench
def test_pareto_front_of_hand_made_rows() -> None:
    rows = [
        {"p50_ms": 1.0, "accuracy": 90.0},  # 0: front
        {"p50_ms": 2.0, "accuracy": 95.0},  # 1: front (most accurate)
        {"p50_ms": 3.0, "accuracy": 94.0},  # 2: slower and less accurate than 1
        {"p50_ms": 1.0, "accuracy": 90.0},  # 3: a tie with 0: neither beats the other
        {"p50_ms": 1.0, "accuracy": 85.0},  # 4: as fast as 0, less accurate
        {"p50_ms": 0.5, "accuracy": 80.0},  # 5: front (fastest)
        {"p50_ms": 2.0, "accuracy": 90.0},  # 6: as accurate as 0, slower
    ]
    assert pareto_front(rows) == {0, 1, 3, 5}
    assert pareto_front([]) == set()
    assert pareto_front(rows[2:3]) == {0}


ROW_TYPES = {
    "model": str,
    "backend": str,
    "threads": int,
    "accuracy": float,
    "macro_f1": float,
    "p50_ms": float,
    "p95_ms": float,
    "throughput_per_s": float,
    "load_s": float,
    "size_mb": float,
}


def test_bench_rows_and_outputs(word_models, cnn_classifier, synthetic_dir, tmp_path) -> None:
    exported = copy_model(word_models("cnn")[0], tmp_path / "exported")
    cnn_classifier.save(tmp_path / "plain")
    plain = tmp_path / "plain"
    data = synthetic_dir / "test.txt"
    out = tmp_path / "reports" / "bench.md"
    rows = run_bench([exported, plain], data, backends=("torch", "torch-int8", "onnx"), threads=(1,), out=out)
    assert [(r["model"], r["backend"]) for r in rows] == [
        ("exported", "torch"),
        ("exported", "torch-int8"),
        ("exported", "onnx"),
        ("plain", "torch"),
        ("plain", "torch-int8"),
    ]
    for row in rows:
        for key, kind in ROW_TYPES.items():
            assert isinstance(row[key], kind), (key, row[key])
        assert row["threads"] == 1
        assert 0 <= row["accuracy"] <= 100 and 0 <= row["macro_f1"] <= 100
        assert 0 < row["p50_ms"] <= row["p95_ms"]
        assert row["throughput_per_s"] > 0 and row["load_s"] >= 0 and row["size_mb"] > 0
        assert row["examples"] == 24
    by_backend = {(r["model"], r["backend"]): r for r in rows}
    # exact labels: fp32 ONNX scores what PyTorch scores
    assert by_backend["exported", "onnx"]["accuracy"] == by_backend["exported", "torch"]["accuracy"]
    assert by_backend["exported", "torch"]["accuracy"] >= 80  # trivially separable data
    onnx_size = (exported / ONNX_FILE).stat().st_size / 1e6
    assert by_backend["exported", "onnx"]["size_mb"] == pytest.approx(onnx_size)
    front = pareto_front(rows)
    assert front and {i for i, r in enumerate(rows) if r.get("pareto")} == front
    assert all(rows[i]["pareto"] is True for i in front)

    # Markdown: a title, the table (header, separator, one line per row), the skipped list
    markdown = out.read_text(encoding="utf-8")
    assert markdown.startswith(f"# textcls bench on {data}")
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert table[0].startswith("| model | backend | threads | accuracy | macro-F1 | p50 ms")
    assert set(table[1]) <= set("|-: ")
    assert len(table) == 2 + len(rows)
    assert markdown_table(rows) in markdown
    assert sum("★" in line for line in table[2:]) == len(front)
    assert "Skipped:" in markdown and "- plain × onnx: not exported" in markdown
    assert "![accuracy vs latency](bench.png)" in markdown

    saved = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert saved == {
        "source": str(data),
        "rows": rows,
        "skipped": ["plain × onnx: not exported (textcls export)"],
    }
    assert out.with_suffix(".png").read_bytes()[:8] == PNG_SIGNATURE
    assert not (plain / ONNX_FILE).exists()  # without export=True nothing is exported


def test_bench_exports_on_request_and_notes_failed_exports(plain_dir, synthetic_dir, tmp_path) -> None:
    rows = run_bench(
        [plain_dir],
        synthetic_dir / "test.txt",
        backends=("onnx", "onnx-int8"),
        threads=(1,),
        export=True,
        out=tmp_path / "bench.md",
    )
    assert [r["backend"] for r in rows] == ["onnx"]
    assert (plain_dir / ONNX_FILE).is_file() and not (plain_dir / INT8_FILE).exists()
    skipped = json.loads((tmp_path / "bench.json").read_text())["skipped"]
    # no validation split recorded for this model: the int8 gate cannot run, so no int8 row
    assert len(skipped) == 1 and skipped[0].startswith(f"{plain_dir.name} × onnx-int8: export failed")


def test_bench_on_the_command_line(exported_dir, synthetic_dir, tmp_path, capsys) -> None:
    out = tmp_path / "b" / "bench.md"
    code = main(
        [
            "bench",
            str(exported_dir),
            "--data",
            str(synthetic_dir / "test.txt"),
            "--backends",
            "torch,onnx-int8",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| exported-cnn | onnx-int8 | 1 |" in printed and "| exported-cnn | torch | 1 |" in printed
    assert out.is_file() and out.with_suffix(".png").is_file()
    assert [r["backend"] for r in json.loads(out.with_suffix(".json").read_text())["rows"]] == [
        "torch",
        "onnx-int8",
    ]
    assert (
        main(["bench", str(exported_dir), "--data", str(synthetic_dir / "test.txt"), "--backends", "tpu"])
        == 2
    )


# --------------------------------------------------------------------------------- the CLI
def test_export_json_prints_the_record(plain_dir, synthetic_dir, capsys) -> None:
    valid = str(synthetic_dir / "valid.txt")
    assert main(["export", str(plain_dir), "--quantize", "int8", "--valid", valid, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((plain_dir / "export.json").read_text())
    assert set(printed) >= {"onnx", "onnx-int8"}
    assert printed["onnx-int8"]["gate"]["valid_examples"] == 24
    for key in ("max_abs_diff", "label_agreement", "size_mb"):
        assert isinstance(printed["onnx"][key], float) and isinstance(printed["onnx-int8"][key], float)
    gate_keys = {"torch_accuracy", "int8_accuracy", "drop", "max_drop", "passed", "forced", "valid_examples"}
    assert set(printed["onnx-int8"]["gate"]) == gate_keys


def test_predict_with_the_int8_onnx_backend(exported_dir, capsys) -> None:
    text = "guitar song jazz melody"
    assert main(["predict", str(exported_dir), text, "--backend", "onnx-int8"]) == 0
    line = capsys.readouterr().out.strip()
    label, score = line.split("\t")[0].split()
    assert line.endswith(f"\t{text}")
    assert label == load_predictor(exported_dir, "torch").predict([text])[0]["label"] == "music"
    assert 1 / 3 < float(score) <= 1.0
    assert main(["predict", str(exported_dir), text, "--backend", "onnx", "--json", "--top-k", "2"]) == 0
    ranked = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["label"] for p in ranked][:1] == ["music"] and len(ranked) == 2
    assert ranked[0]["score"] >= ranked[1]["score"]


def test_predict_accepts_options_before_the_texts(exported_dir, capsys) -> None:
    """The documented form (README, ``textcls predict DIR --backend onnx-int8 "text"``): an option
    between the model directory and the texts."""
    text = "guitar song jazz melody"
    try:
        code = main(["predict", str(exported_dir), "--backend", "onnx-int8", text])
    except SystemExit as exit:  # argparse: "unrecognized arguments: guitar song jazz melody"
        code = f"argparse exit {exit.code}"
    assert code == 0, f"the documented predict command line is rejected ({code})"
    assert capsys.readouterr().out.split()[0] == "music"


def test_evaluate_with_torch_int8_and_one_thread(exported_dir, synthetic_dir, tmp_path, capsys) -> None:
    data = str(synthetic_dir / "test.txt")
    args = ["evaluate", str(exported_dir), "--data", data, "--threads", "1", "--no-latency", "--json"]
    assert main([*args, "--backend", "torch-int8", "--out", str(tmp_path / "int8")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "torch-int8" and "latency" not in report and report["n"] == 24
    assert (tmp_path / "int8" / "report.json").is_file()
    assert main([*args, "--backend", "torch", "--out", str(tmp_path / "fp32")]) == 0
    reference = json.loads(capsys.readouterr().out)
    assert abs(report["accuracy"] - reference["accuracy"]) <= 0.1  # at most 2 of 24 labels differ
    assert main([*args, "--backend", "torch-int8", "--threads", "0"]) == 2
    assert "threads must be at least 1" in capsys.readouterr().err


# ----------------------------------------------------------- exports are bound to their weights
@pytest.fixture(scope="module")
def other_cnn(tmp_path_factory, synthetic_splits) -> Path:
    """Another CNN on the same data (another seed: other weights), exported to fp32 ONNX."""
    from textcls.inference.export import export_model

    classifier = textcls.TextClassifier(**{**WORD, "seed": 7, "encoder_params": SMALL_ENCODER_PARAMS["cnn"]})
    classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)
    directory = tmp_path_factory.mktemp("other") / "other-cnn"
    classifier.save(directory)
    export_model(directory)
    return directory


def replace_weights(directory: Path, source: Path) -> None:
    """Put another model's files into ``directory`` behind textcls's back (copied by hand, or
    written by an older textcls), its manifest included: the export files stay."""
    for name in (
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "labels.json",
        "golden.json",
        "manifest.json",
    ):
        shutil.copyfile(source / name, directory / name)


def test_retraining_over_an_exported_directory_removes_the_export(exported_dir, synthetic_splits) -> None:
    """``train --out DIR`` over an exported DIR with another seed: the onnx backends must not
    serve the old graph (before the fix they agreed with the new weights on a third of labels)."""
    texts = texts_of(synthetic_splits["test"])
    old = load_predictor(exported_dir, "onnx").logits(texts)
    classifier = textcls.TextClassifier(**{**WORD, "seed": 7, "encoder_params": SMALL_ENCODER_PARAMS["cnn"]})
    classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], out_dir=exported_dir, progress=False)
    new = load_predictor(exported_dir, "torch").logits(texts)
    assert np.abs(new - old).max() > 0.1  # the retrained model really is another model
    for backend in ONNX_BACKENDS:
        with pytest.raises(ModelLoadError, match="textcls export"):
            load_predictor(exported_dir, backend)
    assert not {ONNX_FILE, INT8_FILE, "export.json"} & {p.name for p in exported_dir.iterdir()}
    # exported again, the graph is the new model's
    from textcls.inference.export import export_model

    export_model(exported_dir)
    np.testing.assert_allclose(load_predictor(exported_dir, "onnx").logits(texts), new, atol=1e-4)


def test_save_over_an_exported_directory_removes_the_export(exported_dir, cnn_classifier) -> None:
    cnn_classifier.save(exported_dir)  # TextClassifier.save → save_model, as training does
    assert not (exported_dir / ONNX_FILE).exists() and not (exported_dir / INT8_FILE).exists()
    assert not (exported_dir / "export.json").exists()
    assert (exported_dir / "model.safetensors").is_file()


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_an_export_of_other_weights_is_refused(
    exported_dir, other_cnn, synthetic_dir, backend, capsys
) -> None:
    replace_weights(exported_dir, other_cnn)
    command = f"textcls export {exported_dir} --format onnx" + (
        " --quantize int8" if backend != "onnx" else ""
    )
    with pytest.raises(ModelLoadError) as caught:
        load_predictor(exported_dir, backend)
    message = str(caught.value)
    name = {"onnx": ONNX_FILE, "onnx-int8": INT8_FILE}[backend]
    assert f"{name} was exported from other weights" in message and f"run '{command}' again" in message
    # evaluate and predict refuse it with the same message (exit status 2), never the old answers
    data = str(synthetic_dir / "test.txt")
    assert main(["evaluate", str(exported_dir), "--data", data, "--backend", backend, "--no-latency"]) == 2
    assert "was exported from other weights" in capsys.readouterr().err
    assert main(["predict", str(exported_dir), "song", "--backend", backend]) == 2
    assert "was exported from other weights" in capsys.readouterr().err


def test_a_graph_copied_from_another_model_is_refused(exported_dir, plain_dir, other_cnn) -> None:
    # export.json is this directory's (its weights match), but model.onnx is another model's
    shutil.copyfile(other_cnn / ONNX_FILE, exported_dir / ONNX_FILE)
    with pytest.raises(ModelLoadError, match=r"model\.onnx is not the file its export wrote"):
        load_predictor(exported_dir, "onnx")
    load_predictor(exported_dir, "onnx-int8")  # the int8 file still is what the export wrote
    # no export record at all: nothing binds the graph to these weights
    shutil.copyfile(other_cnn / ONNX_FILE, plain_dir / ONNX_FILE)
    with pytest.raises(ModelLoadError, match=r"model\.onnx is not recorded in export\.json"):
        load_predictor(plain_dir, "onnx")
    # another model's graph with its export.json
    shutil.copyfile(other_cnn / "export.json", plain_dir / "export.json")
    with pytest.raises(ModelLoadError, match=r"model\.onnx was exported from other weights"):
        load_predictor(plain_dir, "onnx")


def test_an_export_record_without_a_weights_digest_is_refused(exported_dir, synthetic_dir, tmp_path) -> None:
    """export.json written before exports were bound to weights: refused, and bench --export
    exports it again."""
    from textcls.model import weights_digest

    record = json.loads((exported_dir / "export.json").read_text())
    for backend in ONNX_BACKENDS:
        del record[backend]["weights_digest"], record[backend]["sha256"]
    (exported_dir / "export.json").write_text(json.dumps(record))
    for backend in ONNX_BACKENDS:
        with pytest.raises(ModelLoadError, match=r"records no weights digest .* older textcls"):
            load_predictor(exported_dir, backend)
    data = synthetic_dir / "test.txt"
    rows = run_bench([exported_dir], data, backends=("onnx",), threads=(1,), out=tmp_path / "a.md")
    assert rows == []
    [skipped] = json.loads((tmp_path / "a.json").read_text())["skipped"]
    assert skipped.startswith("exported-cnn × onnx: ") and "older textcls" in skipped
    rows = run_bench([exported_dir], data, backends=("onnx",), threads=(1,), export=True)
    assert [r["backend"] for r in rows] == ["onnx"]
    assert json.loads((exported_dir / "export.json").read_text())["onnx"]["weights_digest"] == weights_digest(
        exported_dir
    )


def test_bench_export_exports_a_stale_export_again(exported_dir, other_cnn, synthetic_dir, tmp_path) -> None:
    replace_weights(exported_dir, other_cnn)
    data = synthetic_dir / "test.txt"
    # without --export: refused and listed as skipped, with the reason
    rows = run_bench([exported_dir], data, backends=("torch", "onnx"), threads=(1,), out=tmp_path / "a.md")
    assert [r["backend"] for r in rows] == ["torch"]
    [skipped] = json.loads((tmp_path / "a.json").read_text())["skipped"]
    assert "model.onnx was exported from other weights" in skipped
    # with --export: exported again from the weights now in the directory, then benched
    rows = run_bench([exported_dir], data, backends=("torch", "onnx"), threads=(1,), export=True)
    by_backend = {r["backend"]: r for r in rows}
    assert by_backend["onnx"]["accuracy"] == by_backend["torch"]["accuracy"]
    texts = texts_of(make_examples(5, 11))
    np.testing.assert_allclose(
        load_predictor(exported_dir, "onnx").logits(texts),
        load_predictor(other_cnn, "torch").logits(texts),
        atol=1e-4,
    )
    # the stale int8 file (not asked for, no validation split to gate it again) went with its entry
    assert not (exported_dir / INT8_FILE).exists()
    assert "onnx-int8" not in json.loads((exported_dir / "export.json").read_text())


def test_export_drops_a_stale_int8_file_it_does_not_rewrite(exported_dir, other_cnn) -> None:
    from textcls.inference.export import export_model

    replace_weights(exported_dir, other_cnn)
    record = export_model(exported_dir)  # fp32 only
    assert set(record) >= {"onnx"} and "onnx-int8" not in record
    assert not (exported_dir / INT8_FILE).exists()
    load_predictor(exported_dir, "onnx")


def test_the_server_reports_a_stale_export_as_failed(exported_dir, other_cnn) -> None:
    pytest.importorskip("fastapi", reason="pip install 'textcls[serve]'")
    from fastapi.testclient import TestClient

    from textcls.serve.app import ServeSettings, create_app

    replace_weights(exported_dir, other_cnn)
    settings = ServeSettings(
        models={"stale": str(exported_dir)}, backend="onnx", model_store=str(exported_dir.parent), token="t"
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        [info] = client.get("/models/stale", headers={"Authorization": "Bearer t"}).json()
        assert info["status"] == "FAILED" and "exported from other weights" in info["error"]
        answer = client.post("/predictions/stale", json={"text": "guitar song"})
        assert answer.status_code == 503


def test_export_record_binds_each_file_to_the_weights(word_models) -> None:
    from textcls.inference.onnx import file_sha256
    from textcls.model import weights_digest

    directory, record = word_models("cnn")
    for backend, name in (("onnx", ONNX_FILE), ("onnx-int8", INT8_FILE)):
        assert record[backend]["weights_digest"] == weights_digest(directory)
        assert record[backend]["sha256"] == file_sha256(directory / name)


# ------------------------------------------------------- the int8 gate on a model int8 really breaks
OUTLIER = 1e4  # one head weight per class, 10^4 times the others


@pytest.fixture(scope="module")
def fragile_model(tmp_path_factory, synthetic_splits) -> Path:
    """A bag-of-vectors model that int8 really breaks, as outlier weights do: one embedding
    dimension is zero for every word, and the head gives it a weight of 10^4 for every class. In
    fp32 the outlier multiplies zeros and changes nothing; quantized per output channel, it sets
    each column's scale (10^4 / 63), so every real weight rounds to 0 and the int8 logits are the
    bias alone: one class for every text."""
    classifier = textcls.TextClassifier(**{**WORD, "encoder": "mean", "encoder_params": {}})
    classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)
    model = classifier.predictor.model
    with torch.no_grad():
        model.embedder.embedding.weight[:, 0] = 0.0
        model.head.linear.weight[:, 0] = OUTLIER
    directory = tmp_path_factory.mktemp("fragile") / "fragile"
    classifier.save(directory)
    return directory


def measured_accuracy(directory: Path, backend: str, examples) -> float:
    """Accuracy (points) of a backend of ``directory`` on ``examples``, measured here."""
    predicted = [p["label"] for p in load_predictor(directory, backend).predict(texts_of(examples))]
    return 100 * float(np.mean([p == gold for p, (_, gold) in zip(predicted, examples, strict=True)]))


def test_gate_refuses_an_int8_model_that_lost_accuracy(
    fragile_model, synthetic_dir, synthetic_splits, tmp_path
) -> None:
    """With the real --max-drop (1.0): refused, the file removed, the fp32 export kept. A gate that
    compared PyTorch with itself would pass this model."""
    from textcls.inference.export import export_model

    directory = copy_model(fragile_model, tmp_path / "fragile")
    valid = synthetic_splits["valid"]
    assert measured_accuracy(directory, "torch", valid) >= 90  # the fp32 model is fine
    with pytest.raises(AccuracyGateError, match=r"int8 model rejected.*--max-drop 1\b") as caught:
        export_model(directory, quantize="int8", valid=synthetic_dir / "valid.txt")
    assert "in PyTorch, a drop of" in str(caught.value)
    assert not (directory / INT8_FILE).exists() and not list(directory.glob("*.tmp"))
    record = json.loads((directory / "export.json").read_text())
    assert "onnx-int8" not in record and record["onnx"]["max_abs_diff"] <= 1e-3
    np.testing.assert_allclose(  # the outlier is harmless in fp32: ONNX still matches PyTorch
        load_predictor(directory, "onnx").logits(texts_of(valid)),
        load_predictor(directory, "torch").logits(texts_of(valid)),
        atol=1e-3,
    )
    with pytest.raises(ModelLoadError):
        load_predictor(directory, "onnx-int8")


def test_gate_figures_are_the_accuracies_of_the_files(
    fragile_model, synthetic_dir, synthetic_splits, tmp_path
) -> None:
    """--force keeps the failing int8 file; the gate's recorded accuracies are what running the
    int8 file and PyTorch on the validation split measure."""
    from textcls.inference.export import export_model

    directory = copy_model(fragile_model, tmp_path / "fragile")
    record = export_model(directory, quantize="int8", valid=synthetic_dir / "valid.txt", force=True)
    gate = record["onnx-int8"]["gate"]
    assert gate["passed"] is False and gate["forced"] is True and gate["max_drop"] == 1.0
    valid = synthetic_splits["valid"]
    int8 = measured_accuracy(directory, "onnx-int8", valid)
    assert gate["int8_accuracy"] == pytest.approx(int8)
    assert gate["torch_accuracy"] == pytest.approx(measured_accuracy(directory, "torch", valid))
    assert int8 <= 50 and gate["drop"] >= 40  # int8 really broke it: the gate saw that
    assert record["onnx-int8"]["label_agreement"] <= 50


def test_recorded_int8_accuracy_is_measured_on_a_passing_model_too(word_models, synthetic_splits) -> None:
    directory, record = word_models("lstm")
    gate = record["onnx-int8"]["gate"]
    valid = synthetic_splits["valid"]
    assert gate["int8_accuracy"] == pytest.approx(measured_accuracy(directory, "onnx-int8", valid))
    assert gate["torch_accuracy"] == pytest.approx(measured_accuracy(directory, "torch", valid))


def test_gate_on_the_command_line_with_the_default_max_drop(
    fragile_model, synthetic_dir, tmp_path, capsys
) -> None:
    directory = copy_model(fragile_model, tmp_path / "fragile")
    valid = str(synthetic_dir / "valid.txt")
    assert main(["export", str(directory), "--quantize", "int8", "--valid", valid]) == 2
    err = capsys.readouterr().err
    assert "error: int8 model rejected" in err and "--max-drop 1 " in err
    assert not (directory / INT8_FILE).exists() and (directory / ONNX_FILE).is_file()
    assert main(["export", str(directory), "--quantize", "int8", "--valid", valid, "--force"]) == 0
    assert "gate FAILED (kept: --force)" in capsys.readouterr().out
    assert (directory / INT8_FILE).is_file()
    assert load_predictor(directory, "onnx-int8").predict_proba(["guitar song"]).shape == (1, 3)


def test_an_onnx_only_directory_checks_the_file_itself(exported_dir, other_cnn, synthetic_splits) -> None:
    """Without model.safetensors (a deployment of the graph alone) there are no weights to compare:
    the file must still be the one its export wrote."""
    texts = texts_of(synthetic_splits["test"][:5])
    expected = load_predictor(exported_dir, "onnx").logits(texts)
    (exported_dir / "model.safetensors").unlink()
    np.testing.assert_array_equal(load_predictor(exported_dir, "onnx").logits(texts), expected)
    shutil.copyfile(other_cnn / ONNX_FILE, exported_dir / ONNX_FILE)
    with pytest.raises(ModelLoadError, match=r"model\.onnx is not the file its export wrote"):
        load_predictor(exported_dir, "onnx")
