"""Sentence-embedding cluster features (--cluster-features K): centroids fitted on train, saved and
reused, deterministic for a seed, cached embeddings, the same cluster ids through every backend,
both modes (concat, add), with and without named fields."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import textcls
from conftest import TINY, make_examples
from textcls.embeddings.clusters import CLUSTERS_FILE, SentenceEmbedder
from textcls.errors import ConfigError
from textcls.inference.predictor import load_predictor

TEXTS = [t for t, _ in make_examples(10, 5)]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from tiny_backbones import build

    return str(
        build("bert", tmp_path_factory.mktemp("embedder") / "bert", [t for t, _ in make_examples(30, 0)])
    )


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLS_CACHE", str(tmp_path / "cache"))


def fit(tmp_path, embedder, name="m", **overrides):
    settings = {**TINY, "epochs": 6, "lr": 3e-2, "cluster_features": 4, "cluster_embedder": embedder}
    settings.update(overrides)
    textcls.TextClassifier(**settings).fit(
        make_examples(30, 0), make_examples(8, 1), out_dir=tmp_path / name, progress=False
    )
    return tmp_path / name


def centroids(directory):
    from safetensors.numpy import load_file

    return load_file(str(directory / CLUSTERS_FILE))["centroids"]


def test_centroids_are_saved_reused_and_deterministic(tmp_path, embedder) -> None:
    first = fit(tmp_path, embedder, "a")
    second = fit(tmp_path, embedder, "b")
    assert centroids(first).shape == (4, 32)  # K x the embedder's hidden size
    np.testing.assert_array_equal(centroids(first), centroids(second))  # same seed, same clusters
    third = fit(tmp_path, embedder, "c", seed=7)
    assert not np.allclose(np.sort(centroids(first), 0), np.sort(centroids(third), 0))
    config = json.loads((first / "config.json").read_text())["model"]
    assert config["cluster_features"] == 4 and config["cluster_mode"] == "concat"
    result = json.loads((first / "train_result.json").read_text())
    assert sum(result["clusters"]["sizes"]) == 90  # every training text has a cluster


def test_cluster_ids_come_from_the_saved_centroids(tmp_path, embedder) -> None:
    directory = fit(tmp_path, embedder)
    predictor = load_predictor(directory)
    embedded = SentenceEmbedder.shared(embedder).embed(TEXTS)
    expected = ((embedded[:, None, :] - centroids(directory)[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(predictor.featurizer.cluster_ids(TEXTS), expected)
    assert len(set(expected.tolist())) > 1


def test_the_cluster_input_changes_the_logits(tmp_path, embedder) -> None:
    model = load_predictor(fit(tmp_path, embedder)).model
    featurizer = load_predictor(tmp_path / "m").featurizer
    batch = featurizer.collate(featurizer.encode(TEXTS[:4]))
    with torch.no_grad():
        before = model(batch)["logits"]
        batch["cluster_ids"] = (batch["cluster_ids"] + 1) % 4
        after = model(batch)["logits"]
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("mode", ["concat", "add"])
def test_every_backend_sees_the_same_clusters(tmp_path, embedder, mode) -> None:
    from textcls.inference.export import export_model

    directory = fit(tmp_path, embedder, cluster_mode=mode)
    export_model(directory)
    torch_predictor = load_predictor(directory)
    onnx_predictor = load_predictor(directory, backend="onnx")
    np.testing.assert_array_equal(
        onnx_predictor.featurizer.cluster_ids(TEXTS), torch_predictor.featurizer.cluster_ids(TEXTS)
    )
    assert np.abs(onnx_predictor.logits(TEXTS) - torch_predictor.logits(TEXTS)).max() < 1e-4
    labels = [p["label"] for p in torch_predictor.predict(TEXTS)]
    gold = [label for _, label in make_examples(10, 5)]
    assert np.mean([p == g for p, g in zip(labels, gold, strict=True)]) >= 0.9


@pytest.mark.parametrize("mode", ["concat", "add"])
def test_fasttext_with_clusters_on_numpy(tmp_path, embedder, mode) -> None:
    directory = fit(tmp_path, embedder, model="fasttext", encoder_params={}, lr=1.0, cluster_mode=mode)
    torch_logits = load_predictor(directory).logits(TEXTS)
    numpy_logits = load_predictor(directory, backend="numpy").logits(TEXTS)
    assert np.abs(numpy_logits - torch_logits).max() < 1e-4


def test_clusters_with_two_fields(tmp_path, embedder) -> None:
    from test_fields import field_examples, write_fields

    data = write_fields(tmp_path / "data")
    settings = {
        **TINY,
        "epochs": 6,
        "lr": 3e-2,
        "cluster_features": 3,
        "cluster_embedder": embedder,
        "text_columns": ["title", "body"],
        "fields": ["title", "body"],
    }
    textcls.TextClassifier(**settings).fit(data, out_dir=tmp_path / "f", progress=False)
    predictor = load_predictor(tmp_path / "f")
    inputs = [{"title": t, "body": b} for t, b, _ in field_examples(10, 4)]
    assert predictor.featurizer.cluster_ids(inputs).shape == (10,)
    assert len(predictor.predict(inputs)) == 10


def test_training_embeddings_are_cached(tmp_path, embedder, monkeypatch) -> None:
    from textcls.embeddings import clusters

    monkeypatch.setattr(clusters, "CACHE_MIN_TEXTS", 50)
    fit(tmp_path, embedder, "first")
    cached = list((tmp_path / "cache" / "sentence-embeddings").glob("*.safetensors"))
    assert cached  # the 90 training texts
    calls = []
    original = SentenceEmbedder._embed
    monkeypatch.setattr(
        SentenceEmbedder,
        "_embed",
        lambda self, texts, p: calls.append(len(texts)) or original(self, texts, p),
    )
    fit(tmp_path, embedder, "second")
    assert 90 not in calls  # the training set came from the cache
    np.testing.assert_array_equal(centroids(tmp_path / "first"), centroids(tmp_path / "second"))


def test_clusters_are_refused_where_they_cannot_work(tmp_path, embedder) -> None:
    with pytest.raises(ConfigError, match="cluster features are for word models"):
        fit(tmp_path, embedder, model="linear", encoder_params={})
    with pytest.raises(ConfigError, match="at least 2 clusters"):
        fit(tmp_path, embedder, cluster_features=1)


def test_cli_cluster_flags(tmp_path, embedder) -> None:
    from conftest import write_tsv
    from textcls import cli

    data = tmp_path / "d"
    data.mkdir()
    write_tsv(data / "train.txt", make_examples(20, 0))
    write_tsv(data / "valid.txt", make_examples(5, 1))
    args = [
        "train",
        "--data",
        str(data),
        "--vectors",
        "random",
        "--vectors-dim",
        "8",
        "--epochs",
        "1",
        "--no-tensorboard",
        "--cluster-features",
        "3",
        "--cluster-mode",
        "add",
        "--cluster-embedder",
        embedder,
        "--out",
        str(tmp_path / "out"),
    ]
    assert cli.main(args) == 0
    assert centroids(tmp_path / "out").shape[0] == 3
