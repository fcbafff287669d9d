"""Structured pruning (heads and FFN neurons) of tiny random BERT / DistilBERT / ALBERT / RoBERTa /
ELECTRA: the pruned network equals the masked one, selection counts, the rebuild at load on both
model layouts, ONNX export, the Hugging Face round trip, scoring on train only, the ranking."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import textcls
from conftest import make_examples, served_scores
from textcls.compress import structured
from textcls.compress.structured import importance_scores, prune_model, select, structure
from textcls.config import BackboneConfig
from textcls.errors import ConfigError
from tiny_backbones import LAYERS, SIZES, byte_bpe_tokenizer, wordpiece_tokenizer

ARCHS = ["bert", "distilbert", "albert", "roberta", "electra"]
HEADS = 4  # hidden 32: four heads of 8
HEAD_KEYS = {"distilbert": "n_heads"}
TEXTS = [t for t, _ in make_examples(3, seed=5)] + ["rain " * 20]
FAST = {"epochs": 1, "batch_size": 16, "lr": 1e-3, "tensorboard": False, "patience": 0, "max_length": 24}


def build_tiny(arch: str, directory: Path) -> Path:
    """tiny_backbones.build with four attention heads (pruning needs some to choose from)."""
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    if arch == "roberta":
        tokenizer = byte_bpe_tokenizer(directory / "bpe", TEXTS)
        ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id}
        ids["eos_token_id"] = tokenizer.eos_token_id
    else:
        tokenizer, ids = wordpiece_tokenizer(), {}
        ids["pad_token_id"] = tokenizer.pad_token_id
    sizes = {**SIZES[arch], HEAD_KEYS.get(arch, "num_attention_heads"): HEADS}
    config = AutoConfig.for_model(
        arch, vocab_size=len(tokenizer), max_position_embeddings=130, **sizes, **ids
    )
    AutoModel.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pruning-backbones")
    return {arch: build_tiny(arch, root / arch) for arch in ARCHS}


def untrained(directory: Path, encoder: str) -> tuple[object, object, object]:
    """(model, featurizer, config) of a random classifier over a tiny backbone, as fit builds it."""
    from transformers import AutoTokenizer

    from textcls.api import build_config
    from textcls.embeddings.transformer import TransformerFeaturizer, load_backbone
    from textcls.model import TextClassificationModel, uses_native_head

    config = build_config(model=str(directory), encoder=encoder, max_length=24, tensorboard=False)
    config.model.labels = ["music", "sports", "weather"]
    backbone = load_backbone(config.model.backbone, config.model.labels, uses_native_head(config.model))
    torch.manual_seed(1)
    model = TextClassificationModel(config.model, backbone=backbone).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    return model, TransformerFeaturizer(tokenizer, 24, config.model.backbone), config


def logits(model, featurizer, texts=TEXTS) -> np.ndarray:
    from textcls.inference.predictor import TorchPredictor

    return TorchPredictor(model, featurizer, model.config.labels).logits(texts)


def masked(model, heads: list[list[int]], neurons: list[list[int]]) -> list:
    """Hooks on the unpruned model: removed heads' context outputs and removed FFN neurons' activations
    set to zero (Michel et al.'s head mask of zeros)."""
    _, layout, layers = structured._layers(model)
    hooks = []
    for layer, keep_heads, keep_neurons in zip(layers, heads, neurons, strict=True):
        head_mask = torch.zeros(HEADS)
        head_mask[keep_heads] = 1
        width = layer.get_submodule(layout.output).in_features
        neuron_mask = torch.zeros(width)
        neuron_mask[keep_neurons] = 1

        def on_heads(module, args, mask=head_mask):
            return ((args[0].unflatten(-1, (HEADS, -1)) * mask[:, None]).flatten(-2),)

        def on_neurons(module, args, mask=neuron_mask):
            return (args[0] * mask,)

        hooks.append(layer.get_submodule(layout.out).register_forward_pre_hook(on_heads))
        hooks.append(layer.get_submodule(layout.output).register_forward_pre_hook(on_neurons))
    return hooks


def some_selection(count: int, width: int) -> tuple[list[list[int]], list[list[int]]]:
    """Different heads and widths per layer (ALBERT's one shared layer gets the first)."""
    heads = [[0, 2], [3], [0, 1, 2, 3], [1, 2]][:count]
    rng = np.random.default_rng(0)
    neurons = [sorted(rng.choice(width, size=w, replace=False).tolist()) for w in (40, 7, 64, 1)][:count]
    return heads, neurons


def set_attention(model, implementation: str) -> None:
    hf = model.embedder.model if hasattr(model.embedder, "model") else model.embedder.backbone
    hf.set_attn_implementation(implementation)


# --------------------------------------------------------------- the pruned network is the masked one
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("encoder", ["cls", "mean"])
def test_pruned_model_equals_the_masked_model(backbones, arch, encoder) -> None:
    model, featurizer, _ = untrained(backbones[arch], encoder)
    layers = structure(model)
    assert len(layers) == (1 if arch == "albert" else LAYERS)
    heads, neurons = some_selection(len(layers), layers[0]["ffn"])
    reference = copy.deepcopy(model)
    hooks = masked(reference, heads, neurons)
    prune_model(model, heads, neurons)
    assert structure(model) == [{"heads": len(h), "ffn": len(n)} for h, n in zip(heads, neurons, strict=True)]
    _, layout, pruned_layers = structured._layers(model)
    for layer, kept in zip(pruned_layers, heads, strict=True):  # physically smaller matrices
        assert layer.get_submodule(layout.query).weight.shape == (8 * len(kept), 32)
        assert layer.get_submodule(layout.out).weight.shape == (32, 8 * len(kept))
    for implementation in ("eager", "sdpa"):
        set_attention(model, implementation)
        set_attention(reference, implementation)
        np.testing.assert_allclose(logits(model, featurizer), logits(reference, featurizer), atol=1e-5)
    for hook in hooks:
        hook.remove()
    assert np.abs(logits(model, featurizer) - logits(reference, featurizer)).max() > 1e-4  # it did prune
    backbone = model.config.backbone
    if arch != "albert":
        assert backbone.pruned_heads == {0: [1, 3], 1: [0, 1, 2], 3: [0, 3]}
        assert backbone.ffn_dims == [40, 7, 64, 1]
    else:  # one shared layer: its width is uniform, so the HF config says it
        assert backbone.pruned_heads == {0: [1, 3]} and backbone.ffn_dims == []


# ----------------------------------------------------------------------------- selection rules
def test_uniform_selection_keeps_the_best_n_of_every_layer() -> None:
    scores = [torch.tensor([0.1, 0.9, 0.5, 0.2]), torch.tensor([0.7, 0.1, 0.2, 0.6])]
    assert select(scores, per_layer=2) == [[1, 2], [0, 3]]
    assert select(scores, per_layer=1) == [[1], [0]]
    with pytest.raises(ConfigError):
        select(scores, per_layer=0)
    with pytest.raises(ConfigError):
        select(scores, per_layer=5)


def test_global_selection_removes_that_share_lowest_first_across_layers() -> None:
    scores = [torch.tensor([0.10, 0.90, 0.50, 0.20]), torch.tensor([0.70, 0.05, 0.30, 0.60])]
    kept = select(scores, fraction=0.5)
    assert sum(len(k) for k in kept) == 4
    assert kept == [[1, 2], [0, 3]]  # 0.05, 0.10, 0.20, 0.30 removed
    assert select(scores, fraction=0.25) == [[1, 2, 3], [0, 2, 3]]
    assert select(scores, fraction=0.0) == [[0, 1, 2, 3], [0, 1, 2, 3]]


def test_a_layer_never_loses_all_its_heads() -> None:
    # every unit of layer 1 scores below every unit of layer 0: a global cut wants all of layer 1
    scores = [torch.tensor([0.8, 0.9, 0.7, 0.6]), torch.tensor([0.01, 0.02, 0.03, 0.04])]
    kept = select(scores, fraction=0.5)
    assert kept == [[0, 1, 2], [3]]  # three of layer 1, then the lowest of layer 0
    assert all(len(k) >= 1 for k in select(scores, fraction=0.99))


def test_shrinking_refuses_to_empty_a_layer(backbones) -> None:
    from textcls.embeddings.transformer import apply_structure, build_backbone_from_config

    model, _, _ = untrained(backbones["bert"], "mean")
    heads = [[0], [], [0], [0]]
    with pytest.raises(ConfigError, match="1 to"):
        prune_model(model, heads)
    with pytest.raises(ConfigError):
        prune_model(copy.deepcopy(model), None, [[0], [], [0], [0]])
    fresh = build_backbone_from_config(model.embedder.backbone.config, False)
    with pytest.raises(ConfigError):
        apply_structure(fresh, BackboneConfig(name_or_path="x", pruned_heads={2: [0, 1, 2, 3]}))


# ------------------------------------------------------------------------ save, load, export, HF
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("encoder", ["cls", "mean"])
def test_pruned_model_saves_and_loads_with_the_same_logits(backbones, arch, encoder, tmp_path) -> None:
    from textcls.model import save_model

    model, featurizer, config = untrained(backbones[arch], encoder)
    heads, neurons = some_selection(len(structure(model)), 64)
    prune_model(model, heads, neurons)
    # pruned twice: the second cut's indices are the pruned model's, the config keeps original ones
    prune_model(model, [[len(h) - 1] for h in heads], None)  # the last head left
    if arch == "bert":
        assert model.config.backbone.pruned_heads == {0: [0, 1, 3], 1: [0, 1, 2], 2: [0, 1, 2], 3: [0, 1, 3]}
    expected = logits(model, featurizer)
    save_model(tmp_path / "pruned", model, featurizer, config)
    reloaded = textcls.load(tmp_path / "pruned")
    np.testing.assert_allclose(reloaded.predictor.logits(TEXTS), expected, atol=1e-6)
    assert structure(reloaded.predictor.model) == structure(model)


@pytest.mark.parametrize(
    ("arch", "encoder"),
    [("bert", "cls"), ("distilbert", "mean"), ("albert", "cls"), ("roberta", "mean"), ("electra", "cls")],
)
def test_onnx_export_of_a_pruned_model_matches_torch(backbones, arch, encoder, tmp_path) -> None:
    from textcls.inference.export import export_model
    from textcls.model import save_model

    model, featurizer, config = untrained(backbones[arch], encoder)
    prune_model(model, *some_selection(len(structure(model)), 64))
    save_model(tmp_path / "pruned", model, featurizer, config)
    record = export_model(tmp_path / "pruned")
    assert record["onnx"]["max_abs_diff"] < 1e-4
    onnx = textcls.load(tmp_path / "pruned", backend="onnx")
    np.testing.assert_allclose(onnx.predictor.logits(TEXTS), logits(model, featurizer), atol=1e-4)


def test_uniformly_head_pruned_bert_keeps_fused_attention_in_onnx(backbones, tmp_path) -> None:
    from textcls.inference.export import export_model
    from textcls.model import save_model

    model, featurizer, config = untrained(backbones["bert"], "cls")
    prune_model(model, [[0, 2]] * len(structure(model)))  # 2 of 4 heads in every layer
    save_model(tmp_path / "pruned", model, featurizer, config)
    record = export_model(tmp_path / "pruned")
    # the optimizer cannot detect heads on a pruned graph: without the pruned shape nothing fuses
    assert record["onnx"].get("fused", {}).get("Attention") == len(structure(model))
    assert record["onnx"]["max_abs_diff"] < 1e-4


def test_ffn_only_uniform_pruning_stays_a_hugging_face_directory(backbones, tmp_path) -> None:
    from transformers import AutoModelForSequenceClassification, pipeline

    from textcls.model import save_model

    model, featurizer, config = untrained(backbones["bert"], "cls")
    prune_model(model, None, select(importance_scores(model, featurizer, _examples(30))[1], per_layer=16))
    assert config.model.backbone.ffn_dims == [] and config.model.backbone.pruned_heads == {}
    save_model(tmp_path / "ffn16", model, featurizer, config)
    saved = json.loads((tmp_path / "ffn16" / "config.json").read_text())
    assert saved["intermediate_size"] == 16
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ffn16").eval()
    batch = featurizer.collate(featurizer.encode(TEXTS[:1]))
    with torch.no_grad():
        theirs = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.numpy()
    np.testing.assert_allclose(theirs, logits(model, featurizer, TEXTS[:1]), atol=1e-5)
    scores = pipeline("text-classification", model=str(tmp_path / "ffn16"), device=-1)(TEXTS[:2])
    assert [s["label"] for s in scores] == [
        p["label"] for p in textcls.load(tmp_path / "ffn16").predict(TEXTS[:2])
    ]


def test_hugging_face_refuses_a_head_pruned_directory_that_textcls_loads(backbones, tmp_path) -> None:
    """No HF config says "fewer heads of the same size": from_pretrained must fail loudly (never
    re-initialise the weights silently), and our rebuild at load handles it, after removed layers too."""
    from transformers import AutoModelForSequenceClassification

    from textcls.api import build_config
    from textcls.embeddings.transformer import load_backbone
    from textcls.model import TextClassificationModel, save_model

    _, featurizer, _ = untrained(backbones["electra"], "cls")
    config = build_config(
        model=str(backbones["electra"]), encoder="cls", remove_layers=[1], max_length=24, tensorboard=False
    )
    config.model.labels = ["music", "sports", "weather"]
    model = TextClassificationModel(
        config.model, backbone=load_backbone(config.model.backbone, config.model.labels, True)
    )
    assert len(structure(model)) == LAYERS - 1
    prune_model(model.eval(), [[0], [1, 2], [3]], None)
    save_model(tmp_path / "heads", model, featurizer, config)
    with pytest.raises(Exception, match="mismatched"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "heads")
    np.testing.assert_allclose(
        textcls.load(tmp_path / "heads").predictor.logits(TEXTS), logits(model, featurizer), atol=1e-6
    )


def test_a_pruned_config_cannot_train_a_fresh_backbone(backbones) -> None:
    from textcls.embeddings.transformer import load_backbone

    config = BackboneConfig(name_or_path=str(backbones["bert"]), pruned_heads={0: [1]})
    with pytest.raises(ConfigError, match="structured-pruned"):
        load_backbone(config, ["a", "b"], True)


# --------------------------------------------------------------------------------------- scoring
def _examples(per_class: int):
    from textcls.api import as_examples

    return as_examples(make_examples(per_class, seed=9))


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_a_head_whose_output_projection_is_zeroed_scores_lowest(backbones, arch) -> None:
    model, featurizer, _ = untrained(backbones[arch], "cls")
    _, layout, layers = structured._layers(model)
    target = layers[-1]
    with torch.no_grad():
        target.get_submodule(layout.out).weight[:, 8:16] = 0  # head 1 writes nothing
        target.get_submodule(layout.output).weight[:, 5] = 0  # FFN neuron 5 writes nothing
    heads, neurons = importance_scores(model, featurizer, _examples(4), batch_size=4)
    assert heads[-1].argmin().item() == 1 and heads[-1][1].item() == 0.0
    assert neurons[-1].argmin().item() == 5 and neurons[-1][5].item() == 0.0
    assert all(h.min() > 0 for h in heads[:-1])  # no other layer has a dead head
    for h in heads:  # L2-normalised per layer
        assert h.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert all(p.requires_grad for p in model.parameters())  # the weights are left trainable


@pytest.fixture(scope="module")
def trained(backbones, tmp_path_factory, synthetic_dir) -> dict[str, Path]:
    """A trained tiny classifier per layout, with its training data recorded."""
    root = tmp_path_factory.mktemp("trained")
    made = {}
    for arch, encoder in (("bert", "cls"), ("distilbert", "mean")):
        classifier = textcls.TextClassifier(model=str(backbones[arch]), encoder=encoder, **FAST)
        classifier.fit(synthetic_dir, out_dir=root / arch, progress=False)
        made[arch] = root / arch
    return made


def test_scores_are_computed_on_held_out_training_examples_only(
    trained, synthetic_splits, monkeypatch, tmp_path
):
    seen = []

    def recording(model, featurizer, examples, batch_size=32):
        seen.extend(e.text for e in examples)
        return importance_scores(model, featurizer, examples, batch_size)

    monkeypatch.setattr(structured, "importance_scores", recording)
    report = structured.prune_structured(
        trained["bert"], tmp_path / "out", heads_per_layer=2, epochs=0, progress=False
    )
    train = {t for t, _ in synthetic_splits["train"]}
    others = {t for split in ("valid", "test") for t, _ in synthetic_splits[split]} - train
    assert seen and set(seen) <= train and not set(seen) & others
    assert len(seen) == report["scoring"]["examples"] == round(0.1 * len(synthetic_splits["train"]))
    assert report["fine_tuning"]["examples"] == len(synthetic_splits["train"]) - len(seen)


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_prune_structured_fine_tunes_saves_reports_and_exports(trained, arch, tmp_path) -> None:
    from textcls.inference.export import export_model

    options = {"heads_per_layer": 2, "ffn_fraction": 0.5} if arch == "bert" else {"heads_fraction": 0.5}
    out = tmp_path / "pruned"
    report = structured.prune_structured(
        trained[arch], out, epochs=1, distill=arch == "distilbert", progress=False, **options
    )
    assert report["heads"] == {"before": 4 * LAYERS, "after": 2 * LAYERS}
    if arch == "bert":
        assert [r["heads_after"] for r in report["layers"]] == [2] * LAYERS
        assert report["ffn_neurons"]["after"] == 32 * LAYERS  # half of 4 x 64, spread over layers
    assert report["parameters"]["after"] < report["parameters"]["before"]
    assert set(report["accuracy"]) == {"before", "pruned", "fine_tuned"}
    assert set(report["accuracy"]["before"]) == {"valid", "test"}  # the data directory has a test file
    assert report["latency_p50_ms"]["before"] > 0 and report["latency_p50_ms"]["after"] > 0
    assert json.loads((out / "prune.json").read_text())["heads"] == report["heads"]
    assert "heads kept" in (out / "prune.md").read_text()
    assert (out / "prune.png").read_bytes()[:4] == b"\x89PNG"  # accuracy against latency
    saved = json.loads((out / "train_result.json").read_text())
    assert saved["data"]["data"] and saved["history"]  # the export gate finds the validation split
    reloaded = textcls.load(out)
    assert reloaded.predictor.model.config.backbone.pruned_heads
    accuracy = reloaded.evaluate(
        json.loads((trained[arch] / "train_result.json").read_text())["data"]["data"] + "/test.txt",
        latency=False,
    )["accuracy"]
    assert accuracy == pytest.approx(report["accuracy"]["fine_tuned"]["test"])
    record = export_model(out, quantize="int8", force=True)
    assert record["onnx"]["max_abs_diff"] < 1e-4 and (out / "model.int8.onnx").is_file()
    int8 = textcls.load(out, backend="onnx-int8")
    assert int8.predict_proba(TEXTS).shape == (len(TEXTS), 3)
    served_backend = "torch" if arch == "bert" else "onnx"
    served = served_scores(out, served_backend, TEXTS[0])
    expected = textcls.load(out, backend=served_backend).predict_proba(TEXTS[:1])[0]
    assert [served[label] for label in reloaded.labels] == pytest.approx(expected.tolist(), abs=1e-5)


def test_structured_pruning_is_tracked_in_the_fine_tuning_mlflow_run(trained, tmp_path) -> None:
    pytest.importorskip("mlflow", reason="pip install 'textcls[track]'")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = {"heads_per_layer": 2, "track": "mlflow", "tracking_uri": uri, "experiment": "prune"}
    client = MlflowClient(tracking_uri=uri)
    for epochs in (1, 0):  # with fine-tuning: its run; without: a run of its own
        out = tmp_path / f"pruned-{epochs}"
        report = structured.prune_structured(trained["bert"], out, epochs=epochs, progress=False, **options)
        (run,) = client.search_runs(
            [client.get_experiment_by_name("prune").experiment_id], f"attributes.run_name = '{out.name}'"
        )
        assert run.info.status == "FINISHED"
        expected = structured.report_metrics(report)
        assert {"prune/accuracy/before/test", "prune/parameters/after", "prune/latency_p50_ms/after"} <= set(
            expected
        )
        assert {k: run.data.metrics[k] for k in expected} == pytest.approx(expected)
        assert ("prune/accuracy/fine_tuned/valid" in expected) == (epochs > 0)
        assert ("valid/accuracy" in run.data.metrics) == (epochs > 0)  # the fine-tuning's epochs
        assert run.data.params["prune.heads_per_layer"] == "2"
        assert run.data.params["prune.epochs"] == str(epochs)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "prune")}
        assert {"prune/prune.json", "prune/prune.md", "prune/prune.png"} <= artifacts
