"""Configuration, the TextClassifier API and model directories: save, load, predict, resume."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import textcls
from conftest import CLASS_WORDS, SMALL_ENCODER_PARAMS, TINY
from textcls.api import TextClassifier, build_config
from textcls.config import ClassifierConfig, read_config_file
from textcls.errors import ConfigError, DataError, ModelLoadError
from textcls.registry import ENCODERS, PRESETS

MODEL_FILES = {"config.json", "model.safetensors", "vocab.txt", "labels.json"}
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def tiny(**changes) -> TextClassifier:
    return TextClassifier(**{**TINY, **changes})


def texts_of(examples) -> list[str]:
    return [text for text, _ in examples]


# ---------------------------------------------------------------------------- config files


def test_config_json_round_trip(tmp_path: Path) -> None:
    config = ClassifierConfig.from_dict(
        {
            "data": {"format": "tsv", "valid_fraction": 0.2},
            "model": {
                "tokenizer": {"lowercase": False, "max_length": 32},
                "embedding": {"vectors": "random", "dim": 24, "extra_vocab": 0},
                "encoder": {"name": "lstm", "params": {"hidden_size": 16, "pooling": "mean"}},
                "labels": ["a", "b"],
            },
            "train": {"epochs": 2, "lr": 0.005, "class_weight": "balanced", "schedule": "cosine"},
        }
    )
    config.save(tmp_path / "config.json")
    loaded = ClassifierConfig.load(tmp_path / "config.json")
    assert loaded == config
    assert loaded.model.encoder.params == {"hidden_size": 16, "pooling": "mean"}
    assert json.loads((tmp_path / "config.json").read_text())["train"]["lr"] == 0.005
    assert ClassifierConfig.load(tmp_path / "config.json") != ClassifierConfig()


def test_yaml_config_file(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(
        "model:\n  encoder:\n    name: lstm\n    params: {hidden_size: 8}\n"
        "  embedding:\n    vectors: random\n    dim: 12\n"
        "train:\n  epochs: 7\n  batch_size: 17\n",
        encoding="utf-8",
    )
    config = ClassifierConfig.load(path)
    assert config.model.encoder.name == "lstm"
    assert config.model.encoder.params == {"hidden_size": 8}
    assert config.model.embedding.dim == 12
    assert (config.train.epochs, config.train.batch_size) == (7, 17)
    assert config.train.lr == ClassifierConfig().train.lr  # untouched values keep defaults
    assert read_config_file(path)["train"] == {"epochs": 7, "batch_size": 17}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("train:\n  epochz: 3\n", "epochz"),  # unknown key
        ("surprise: 1\n", "surprise"),  # unknown top-level key
        ("train:\n  epochs: 0\n", "epochs"),  # out of range
        ("train:\n  lr: -1\n", "lr"),
        ("train:\n  schedule: exponential\n", "schedule"),  # not a choice
        ("train:\n  epochs: many\n", "epochs"),  # wrong type
        ("- just\n- a list\n", "mapping"),
        ("train: [unclosed\n", "YAML"),
    ],
)
def test_bad_config_file_is_config_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as info:
        ClassifierConfig.load(path)
    assert str(path) in str(info.value)


def test_bad_json_and_missing_config(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text('{"train": {', encoding="utf-8")
    with pytest.raises(ConfigError, match="JSON"):
        ClassifierConfig.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        ClassifierConfig.load(tmp_path / "absent.yaml")


# ---------------------------------------------------------------------------- build_config


def test_build_config_precedence(tmp_path: Path) -> None:
    path = tmp_path / "base.yaml"
    path.write_text(
        "model:\n  encoder: {name: lstm}\n  embedding: {vectors: random, dim: 20}\n"
        "train: {epochs: 7, batch_size: 17}\n",
        encoding="utf-8",
    )
    # the file alone
    config = build_config(config=path)
    assert (config.model.encoder.name, config.model.embedding.vectors) == ("lstm", "random")
    assert (config.train.epochs, config.train.batch_size) == (7, 17)
    # a preset beats the file; what the preset does not set comes from the file
    config = build_config(model="mean", config=path)
    assert config.model.encoder.name == "mean"
    assert config.model.embedding.vectors == PRESETS["mean"]["vectors"]
    assert (config.train.epochs, config.model.embedding.dim) == (7, 20)
    # explicit arguments beat both
    config = build_config(model="mean", encoder="gnb", vectors="random", config=path, epochs=3)
    assert (config.model.encoder.name, config.model.embedding.vectors) == ("gnb", "random")
    assert (config.train.epochs, config.train.batch_size) == (3, 17)
    # None means "not given"
    assert build_config(config=path, epochs=None).train.epochs == 7


def test_build_config_accepts_dict_and_config_objects() -> None:
    base = {"train": {"epochs": 4}, "model": {"encoder": {"name": "lstm"}}}
    assert build_config(config=base).train.epochs == 4
    as_object = ClassifierConfig.from_dict(base)
    assert build_config(config=as_object, lr=0.5).train.lr == 0.5
    assert build_config(config=as_object).model.encoder.name == "lstm"


def test_classifier_config_file_decides_encoder_unless_model_given(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  encoder: {name: lstm}\n", encoding="utf-8")
    assert TextClassifier(config=path).config.model.encoder.name == "lstm"
    assert TextClassifier(model="mean", config=path).config.model.encoder.name == "mean"


def test_overrides_land_in_the_right_place() -> None:
    config = build_config(
        model="cnn",
        max_length=9,
        lowercase=False,
        min_count=2,
        trainable_vectors=False,
        extra_vocab=5,
        vectors_dim=11,
        head_dropout=0.1,
        encoder_params={"num_filters": 3},
        format="tsv",
        valid_fraction=0.25,
        seed=7,
        label_smoothing=0.2,
    )
    assert config.model.tokenizer.max_length == 9 and config.model.tokenizer.lowercase is False
    assert config.model.embedding.min_count == 2 and config.model.embedding.trainable is False
    assert config.model.embedding.extra_vocab == 5 and config.model.embedding.dim == 11
    assert config.model.head_dropout == 0.1
    assert config.model.encoder.params == {"num_filters": 3}
    assert config.data.format == "tsv" and config.data.valid_fraction == 0.25
    assert config.train.seed == 7 and config.train.label_smoothing == 0.2


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(ConfigError) as info:
        build_config(model="transformer-xxl")
    assert "transformer-xxl" in str(info.value)
    for name in PRESETS:
        assert name in str(info.value)


def test_unknown_encoder_lists_choices() -> None:
    with pytest.raises(ConfigError) as info:
        TextClassifier(encoder="resnet")
    assert "resnet" in str(info.value)
    for name in ENCODERS.names():
        assert name in str(info.value)


def test_unknown_option_and_bad_values() -> None:
    with pytest.raises(ConfigError, match="epoch"):
        build_config(epoch=3)  # typo of epochs
    with pytest.raises(ConfigError, match="batch_size"):
        build_config(batch_size=0)
    with pytest.raises(ConfigError, match="metric"):
        build_config(metric="auc")


def test_unknown_vectors_fail_at_fit(synthetic_splits) -> None:
    classifier = tiny(vectors="no-such-vectors")
    with pytest.raises(ConfigError, match="no-such-vectors"):
        classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)


def test_bad_encoder_params_are_config_errors(synthetic_splits) -> None:
    classifier = tiny(encoder_params={"num_filterz": 3})
    with pytest.raises(ConfigError, match="num_filterz"):
        classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)


def test_untrained_classifier_refuses_to_predict() -> None:
    with pytest.raises(ConfigError, match="not trained"):
        tiny().predict(["hello"])


# ---------------------------------------------------------------------------- a trained model


@pytest.fixture(scope="module")
def trained(synthetic_splits) -> TextClassifier:
    return tiny().fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)


def test_tiny_model_learns(trained, synthetic_splits) -> None:
    report = trained.evaluate(synthetic_splits["test"], latency=False)
    assert report["accuracy"] >= 0.9
    assert trained.labels == sorted(CLASS_WORDS)
    history = trained.train_result.history
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_save_load_round_trip(trained, synthetic_splits, tmp_path: Path) -> None:
    trained.save(tmp_path / "model")
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert files >= MODEL_FILES
    assert not [p for p in (tmp_path / "model").rglob("*") if p.suffix in PICKLE_SUFFIXES]

    loaded = textcls.load(tmp_path / "model")
    texts = [*texts_of(synthetic_splits["test"]), "", "an unseen word", "!!!"]
    assert loaded.labels == trained.labels
    np.testing.assert_array_equal(loaded.predict_proba(texts), trained.predict_proba(texts))
    assert loaded.predict(texts, top_k=2) == trained.predict(texts, top_k=2)
    assert loaded.config.model == trained.config.model

    labels = json.loads((tmp_path / "model" / "labels.json").read_text())
    assert labels["labels"] == trained.labels
    assert labels["label2id"] == {label: i for i, label in enumerate(trained.labels)}
    train_result = json.loads((tmp_path / "model" / "train_result.json").read_text())
    assert len(train_result["history"]) == 3


def test_load_without_weights_is_model_load_error(trained, tmp_path: Path) -> None:
    directory = tmp_path / "model"
    trained.save(directory)
    (directory / "model.safetensors").rename(directory / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"model\.safetensors"):
        textcls.load(directory)


def test_load_missing_vocab_or_directory(trained, tmp_path: Path) -> None:
    directory = tmp_path / "model"
    trained.save(directory)
    (directory / "vocab.txt").unlink()
    with pytest.raises(ModelLoadError, match=r"vocab\.txt"):
        textcls.load(directory)
    from textcls.model import load_model

    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "encoder",
    [
        {"name": "gnb", "params": {}},  # other parameter names
        {"name": "cnn", "params": {"num_filters": 5, "kernel_sizes": [2, 3]}},  # other shapes
    ],
    ids=["other-names", "other-shapes"],
)
def test_load_weights_not_matching_config(trained, tmp_path: Path, encoder: dict) -> None:
    directory = tmp_path / "model"
    trained.save(directory)
    config = json.loads((directory / "config.json").read_text())
    config["model"]["encoder"] = encoder
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"config\.json: changed"):
        textcls.load(directory)  # the manifest refuses the edited config first
    (directory / "manifest.json").unlink()  # a directory saved before manifests existed
    with pytest.raises(ModelLoadError, match="do not match"):
        textcls.load(directory)


def test_predict_top_k(trained, synthetic_splits) -> None:
    texts = texts_of(synthetic_splits["test"])[:5]
    probabilities = trained.predict_proba(texts)
    assert probabilities.shape == (5, 3)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    for k in (2, 3):
        ranked = trained.predict(texts, top_k=k)
        assert len(ranked) == 5
        for row, predictions in zip(probabilities, ranked):
            assert len(predictions) == k
            scores = [p["score"] for p in predictions]
            assert scores == sorted(scores, reverse=True)
            assert sum(scores) <= 1.0 + 1e-6
            assert len({p["label"] for p in predictions}) == k
            for p in predictions:
                assert p["score"] == pytest.approx(row[trained.labels.index(p["label"])])
    # top-1 is the first of the ranking and the argmax of the probabilities
    top1 = trained.predict(texts)
    assert [p["label"] for p in top1] == [r[0]["label"] for r in trained.predict(texts, top_k=3)]
    assert [p["label"] for p in top1] == [trained.labels[i] for i in probabilities.argmax(1)]
    # more than the number of labels: all of them
    assert len(trained.predict(texts[:1], top_k=10)[0]) == 3
    with pytest.raises(ConfigError):
        trained.predict(texts, top_k=0)


def test_predict_order_independent_of_batching(trained, synthetic_splits) -> None:
    texts = texts_of(synthetic_splits["test"])
    whole = trained.predict_proba(texts, batch_size=64)
    np.testing.assert_allclose(trained.predict_proba(texts, batch_size=3), whole, atol=1e-6)
    np.testing.assert_allclose(trained.predict_proba(texts[::-1])[::-1], whole, atol=1e-6)
    assert trained.predict_proba([]).shape == (0, 3)


def test_predict_a_string_is_type_error(trained) -> None:
    with pytest.raises(TypeError, match="list"):
        trained.predict("play some jazz")


def test_fit_from_a_data_directory(synthetic_dir: Path, synthetic_splits) -> None:
    classifier = tiny(epochs=1).fit(synthetic_dir, progress=False)
    assert classifier.train_result.extra["train_examples"] == len(synthetic_splits["train"])
    assert classifier.train_result.extra["valid_examples"] == len(synthetic_splits["valid"])
    report = classifier.evaluate(synthetic_dir / "test.txt", latency=False)
    assert report["n"] == len(synthetic_splits["test"])


def test_fit_carves_validation_when_missing(synthetic_splits) -> None:
    classifier = tiny(epochs=1, valid_fraction=0.2).fit(synthetic_splits["train"], progress=False)
    extra = classifier.train_result.extra
    assert extra["valid_examples"] == 18 and extra["train_examples"] == 72
    assert any("carved" in note for note in classifier.notes)


def test_fit_with_strict_labels_rejects_unknown_validation_labels(synthetic_splits) -> None:
    valid = [*synthetic_splits["valid"], ("snow and goals", "mystery")]
    with pytest.raises(DataError, match="mystery"):
        tiny(strict_labels=True).fit(synthetic_splits["train"], valid, progress=False)


def test_fit_counts_unknown_validation_labels_as_errors(synthetic_splits) -> None:
    known = synthetic_splits["valid"]
    valid = [*known, *[("snow and goals", "mystery")] * 4]
    classifier = tiny(epochs=2).fit(synthetic_splits["train"], valid, progress=False)
    extra = classifier.train_result.extra
    assert extra["valid_examples"] == len(known) + 4
    assert extra["valid_unseen_labels"] == {"mystery": 4}
    assert any("never seen in training: 'mystery' (4 examples" in n for n in classifier.notes)
    for epoch in classifier.train_result.history:  # the 4 can never be right
        assert epoch["accuracy"] <= len(known) / len(valid) + 1e-9
        assert np.isfinite(epoch["loss"])


def test_fit_on_six_examples_of_three_classes() -> None:
    data = [("rain today", "weather"), ("snow now", "weather"), ("play jazz", "music")]
    data += [("a song", "music"), ("goal scored", "sports"), ("the match", "sports")]
    classifier = tiny(epochs=1).fit(data, progress=False)
    assert classifier.train_result.extra["valid_examples"] == 1
    assert classifier.train_result.extra["train_examples"] == 5
    assert set(classifier.labels) == {"music", "sports", "weather"}


def test_fit_with_one_example_per_class_says_what_to_do() -> None:
    with pytest.raises(DataError, match="too few training examples"):
        tiny().fit([("a", "x"), ("b", "y")], progress=False)


def test_empty_texts_train_and_predict(synthetic_splits) -> None:
    train = [*synthetic_splits["train"], ("", "music"), ("", "sports"), ("!!!", "weather")]
    classifier = tiny(epochs=1).fit(train, synthetic_splits["valid"], progress=False)
    assert classifier.train_result.extra["empty_texts"] == {"train": 2, "valid": 0}
    predictions = classifier.predict(["", "   ", "rain and snow"])
    assert len(predictions) == 3 and all(p["label"] in classifier.labels for p in predictions)
    probabilities = classifier.predict_proba(["", "​"])
    assert np.allclose(probabilities.sum(1), 1.0) and np.isfinite(probabilities).all()


def test_fit_needs_two_labels() -> None:
    with pytest.raises(ConfigError, match="label"):
        tiny().fit([("a", "x"), ("b", "x")], [("c", "x")], progress=False)


# ---------------------------------------------------------------------------- determinism


def test_same_seed_same_model_other_seed_other_model(synthetic_splits) -> None:
    train, valid = synthetic_splits["train"], synthetic_splits["valid"]
    texts = texts_of(synthetic_splits["test"])

    def probabilities(seed: int) -> np.ndarray:
        return tiny(epochs=2, seed=seed).fit(train, valid, progress=False).predict_proba(texts)

    first = probabilities(1)
    np.testing.assert_array_equal(first, probabilities(1))
    assert not np.allclose(first, probabilities(2), atol=1e-4)


# ---------------------------------------------------------------------------- resume


def test_resume_continues_training(synthetic_splits, tmp_path: Path) -> None:
    train, valid = synthetic_splits["train"], synthetic_splits["valid"]
    out = tmp_path / "run"
    # metric "loss" keeps improving here, so the best (= final) model moves in epochs 3-4
    first = tiny(epochs=2, metric="loss").fit(train, valid, out_dir=out, progress=False)
    assert {p.name for p in out.iterdir()} >= MODEL_FILES
    assert (out / "checkpoint").is_dir()
    assert not [p for p in out.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    saved = json.loads((out / "train_result.json").read_text())
    assert [h["epoch"] for h in saved["history"]] == [1, 2]

    resumed = tiny(epochs=4, metric="loss").fit(train, valid, out_dir=out, resume=True, progress=False)
    history = resumed.train_result.history
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[:2] == first.train_result.history
    assert resumed.train_result.best_epoch > 2
    assert history[3]["loss"] < history[1]["loss"]
    saved = json.loads((out / "train_result.json").read_text())
    assert [h["epoch"] for h in saved["history"]] == [1, 2, 3, 4]
    # the resumed run really trained epochs 3-4: the weights differ from the 2-epoch model
    texts = texts_of(synthetic_splits["test"])
    assert not np.allclose(resumed.predict_proba(texts), first.predict_proba(texts), atol=1e-4)
    # and the model directory holds a loadable result
    loaded = textcls.load(out)
    np.testing.assert_array_equal(loaded.predict_proba(texts), resumed.predict_proba(texts))


def test_resume_with_nothing_to_resume_trains_from_scratch(synthetic_splits, tmp_path) -> None:
    train, valid = synthetic_splits["train"], synthetic_splits["valid"]
    resumed = tiny(epochs=2).fit(train, valid, out_dir=tmp_path / "new", resume=True, progress=False)
    fresh = tiny(epochs=2).fit(train, valid, progress=False)
    assert resumed.train_result.history[0]["loss"] == fresh.train_result.history[0]["loss"]


def test_resume_with_a_different_model_config_is_refused(synthetic_splits, tmp_path) -> None:
    train, valid = synthetic_splits["train"], synthetic_splits["valid"]
    tiny(epochs=1).fit(train, valid, out_dir=tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="resume"):
        tiny(epochs=2, vectors_dim=8).fit(train, valid, out_dir=tmp_path / "run", resume=True, progress=False)


# ---------------------------------------------------------------------------- loss options


def test_class_weight_and_label_smoothing_change_the_loss(synthetic_splits) -> None:
    # imbalanced training data, so balanced weights differ from uniform ones
    train = [e for e in synthetic_splits["train"] if e[1] != "weather"]
    train += [e for e in synthetic_splits["train"] if e[1] == "weather"][:5]
    valid = synthetic_splits["valid"]

    def first_epoch(**options) -> dict:
        result = tiny(epochs=1, **options).fit(train, valid, progress=False).train_result
        assert np.isfinite(result.history[0]["train_loss"])
        return result.history[0]

    plain = first_epoch()
    weighted = first_epoch(class_weight="balanced")
    smoothed = first_epoch(label_smoothing=0.2)
    assert weighted["train_loss"] != plain["train_loss"]
    assert smoothed["train_loss"] != plain["train_loss"]


def test_balanced_class_weights() -> None:
    from textcls.training.loop import class_weights

    weights = class_weights([0, 0, 0, 1], num_labels=3)
    np.testing.assert_allclose(weights.numpy(), [4 / (3 * 3), 4 / (3 * 1), 1.0], rtol=1e-6)


def test_copy_of_model_directory_loads_anywhere(trained, tmp_path: Path) -> None:
    trained.save(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    texts = ["goal match", "rain snow"]
    np.testing.assert_array_equal(
        textcls.load(tmp_path / "b").predict_proba(texts), trained.predict_proba(texts)
    )


def test_interrupted_run_resumes_to_the_same_result(synthetic_splits, tmp_path, monkeypatch) -> None:
    """Stopping after epoch 2 and resuming gives exactly the uninterrupted 4-epoch run."""
    import textcls.training.loop as loop

    train, valid = synthetic_splits["train"], synthetic_splits["valid"]
    texts = texts_of(synthetic_splits["test"])
    options = {"epochs": 4, "metric": "loss"}
    straight = tiny(**options).fit(train, valid, progress=False)

    original, calls = loop.validation_metrics, []

    def crash_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "validation_metrics", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        tiny(**options).fit(train, valid, out_dir=tmp_path / "run", progress=False)
    monkeypatch.setattr(loop, "validation_metrics", original)

    resumed = tiny(**options).fit(train, valid, out_dir=tmp_path / "run", resume=True, progress=False)

    def without_time(history: list[dict]) -> list[dict]:
        return [
            {k: v for k, v in record.items() if k not in ("seconds", "train_seconds")} for record in history
        ]

    assert without_time(resumed.train_result.history) == without_time(straight.train_result.history)
    np.testing.assert_array_equal(resumed.predict_proba(texts), straight.predict_proba(texts))


def test_early_stopping(synthetic_splits) -> None:
    # a learning rate too small to change the predictions: accuracy never improves after epoch 1
    classifier = tiny(epochs=6, lr=1e-12, patience=2, metric="accuracy")
    result = classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)
    result = result.train_result
    assert result.stopped_early
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.best_epoch == 1


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_schedules(schedule: str) -> None:
    import torch

    from textcls.training.schedule import make_schedule

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_schedule(optimizer, schedule, total_steps=10, warmup_ratio=0.2)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] < rates[1] < rates[2]  # warm-up over 2 steps, then the peak
    assert rates[2] == pytest.approx(1.0)
    after = rates[2:]
    if schedule == "constant":
        assert after == pytest.approx([1.0] * 8)
    else:
        assert all(a >= b for a, b in itertools.pairwise(after)) and after[-1] < 0.2


@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_every_encoder_trains_saves_and_loads(encoder, synthetic_splits, tmp_path) -> None:
    classifier = tiny(
        model="cnn",
        encoder=encoder,
        vectors="random",
        epochs=2,
        encoder_params=SMALL_ENCODER_PARAMS.get(encoder, {}),
    )
    classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)
    assert classifier.config.model.encoder.name == encoder
    texts = texts_of(synthetic_splits["test"])
    probabilities = classifier.predict_proba(texts)
    assert probabilities.shape == (len(texts), 3) and np.isfinite(probabilities).all()
    classifier.save(tmp_path / encoder)
    loaded = textcls.load(tmp_path / encoder)
    np.testing.assert_array_equal(loaded.predict_proba(texts), probabilities)


def test_frozen_vectors_stay_and_padding_row_stays_zero(synthetic_splits) -> None:
    from textcls.embeddings.vectors import RandomVectors, build_matrix

    train, valid = synthetic_splits["train"], synthetic_splits["valid"]
    frozen = tiny(epochs=2, trainable_vectors=False, seed=5).fit(train, valid, progress=False)
    tuned = tiny(epochs=2, seed=5).fit(train, valid, progress=False)
    vocab = frozen.predictor.featurizer.vocab
    assert vocab.tokens == tuned.predictor.featurizer.vocab.tokens
    initial, _ = build_matrix(vocab.tokens, RandomVectors(16), seed=5)
    frozen_weights = frozen.predictor.model.embedder.embedding.weight.detach().numpy()
    tuned_weights = tuned.predictor.model.embedder.embedding.weight.detach().numpy()
    np.testing.assert_array_equal(frozen_weights, initial)
    assert not np.allclose(tuned_weights[2:], initial[2:])
    np.testing.assert_array_equal(tuned_weights[0], np.zeros(16))


def test_pretrained_vectors_file_feeds_the_embedding(synthetic_splits, tmp_path) -> None:
    words = sorted({w for ws in CLASS_WORDS.values() for w in ws})
    rng = np.random.default_rng(0)
    table = {w: np.round(rng.normal(size=4), 3).astype(np.float32) for w in ["zebra", "yak", *words]}
    path = tmp_path / "tiny.vectors.txt"
    path.write_text("".join(f"{w} {' '.join(f'{v:.3f}' for v in vec)}\n" for w, vec in table.items()))
    classifier = tiny(vectors=str(path), vectors_dim=None, trainable_vectors=False, extra_vocab=2, epochs=1)
    classifier.fit(synthetic_splits["train"], synthetic_splits["valid"], progress=False)
    vocab = classifier.predictor.featurizer.vocab
    weights = classifier.predictor.model.embedder.embedding.weight.detach().numpy()
    assert weights.shape[1] == 4
    # the two most frequent file words join the vocabulary although unseen in training
    assert "zebra" in vocab and "yak" in vocab
    for word in ["zebra", "goal", "rain"]:
        np.testing.assert_array_equal(weights[vocab.index[word]], table[word])
    assert classifier.train_result.extra["vocabulary"]["train_words_with_vector"] == len(words)
