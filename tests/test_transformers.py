"""Transformer backbones on the same API: six architectures (tiny, random, built from configs),
layer removal, freezing, long documents, sentence pairs, the pipeline round trip, and one small
real fine-tuning of the packaged MiniLM-L6."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import textcls
from conftest import make_examples
from textcls.config import BackboneConfig
from textcls.data.formats import Example
from textcls.errors import ConfigError
from tiny_backbones import ARCHITECTURES, LAYERS, build

TRAIN = make_examples(20, seed=1)
VALID = make_examples(6, seed=2)
TEXTS = [text for text, _ in VALID]
FAST = {"epochs": 1, "batch_size": 16, "lr": 1e-3, "tensorboard": False, "patience": 0}


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backbones")
    return {arch: build(arch, root / arch, [t for t, _ in TRAIN]) for arch in ARCHITECTURES}


def layer_count(directory: Path) -> int:
    config = json.loads((directory / "config.json").read_text())
    if "textcls" not in config:
        config = json.loads((directory / "backbone" / "config.json").read_text())
    for key in ("num_hidden_layers", "n_layers", "encoder_layers"):
        if key in config:
            return config[key]
    raise AssertionError(f"no layer count in {config}")


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("encoder", ["cls", "mean"])
def test_train_save_reload_predict_identically_with_layers_removed(
    backbones, arch, encoder, tmp_path
) -> None:
    classifier = textcls.TextClassifier(
        model=str(backbones[arch]), encoder=encoder, remove_layers=[1, 2], **FAST
    )
    classifier.fit(TRAIN, VALID, progress=False)
    probabilities = classifier.predict_proba(TEXTS)
    assert probabilities.shape == (len(TEXTS), 3)
    classifier.save(tmp_path / "model")
    assert layer_count(tmp_path / "model") == LAYERS - 2
    assert not list((tmp_path / "model").glob("*.bin")) and not list((tmp_path / "model").glob("*.pt"))
    reloaded = textcls.load(tmp_path / "model")
    np.testing.assert_array_equal(reloaded.predict_proba(TEXTS), probabilities)
    assert reloaded.labels == ["music", "sports", "weather"]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_remove_layers_drops_the_layers_asked_for(backbones, arch) -> None:
    from textcls.embeddings.transformer import layer_list, load_backbone

    model = load_backbone(
        BackboneConfig(name_or_path=str(backbones[arch]), remove_layers=[0, 3]), None, False
    )
    assert model.config.num_hidden_layers == LAYERS - 2
    found = layer_list(model)
    if found is not None:  # ALBERT shares one layer group: only the count changes
        assert len(found[2]) == LAYERS - 2
    output = model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    assert output.last_hidden_state.shape[:2] == (1, 4)


def test_remove_layers_out_of_range_is_a_config_error(backbones) -> None:
    from textcls.embeddings.transformer import load_backbone

    with pytest.raises(ConfigError, match=r"0\.\.3"):
        load_backbone(BackboneConfig(name_or_path=str(backbones["bert"]), remove_layers=[7]), None, False)
    with pytest.raises(ConfigError, match="every layer"):
        load_backbone(
            BackboneConfig(name_or_path=str(backbones["bert"]), remove_layers=[0, 1, 2, 3]), None, False
        )


def test_word_model_options_do_not_apply_to_remove_layers_without_a_backbone() -> None:
    with pytest.raises(ConfigError, match="transformer"):
        textcls.TextClassifier(model="cnn", remove_layers=[1])


@pytest.mark.parametrize(
    ("mode", "trainable_layers"),
    [("none", 4), ("embeddings", 4), ("all-but-last-1", 1), ("feature-based", 0)],
)
def test_freeze_modes(backbones, mode, trainable_layers) -> None:
    from textcls.embeddings.transformer import layer_list, load_backbone

    model = load_backbone(BackboneConfig(name_or_path=str(backbones["bert"]), freeze=mode), None, False)
    layers = layer_list(model)[2]
    trainable = sum(any(p.requires_grad for p in layer.parameters()) for layer in layers)
    assert trainable == trainable_layers
    embeddings_trainable = any(p.requires_grad for n, p in model.named_parameters() if "embed" in n)
    assert embeddings_trainable == (mode == "none")


def test_backbone_gets_its_own_learning_rate(backbones) -> None:
    from textcls.training.loop import _param_groups

    classifier = textcls.TextClassifier(model=str(backbones["bert"]), encoder="cnn", **FAST)
    classifier.fit(TRAIN, VALID, progress=False)
    model = classifier.predictor.model
    groups = _param_groups(model, 0.01, lr=1e-3, backbone_lr=2e-5)
    backbone = model.backbone_parameter_names()
    by_id = {id(p): name for name, p in model.named_parameters()}
    for group in groups:
        names = {by_id[id(p)] for p in group["params"]}
        expected = 2e-5 if names <= backbone else 1e-3
        assert names <= backbone or not names & backbone
        assert group["lr"] == expected
    assert any(g["lr"] == 2e-5 for g in groups) and any(g["lr"] == 1e-3 for g in groups)


def test_token_type_ids_come_from_the_tokenizer(backbones) -> None:
    from transformers import AutoTokenizer

    from textcls.embeddings.transformer import TransformerFeaturizer

    config = BackboneConfig(name_or_path="x")
    bert = TransformerFeaturizer(AutoTokenizer.from_pretrained(backbones["bert"]), 32, config)
    roberta = TransformerFeaturizer(AutoTokenizer.from_pretrained(backbones["roberta"]), 32, config)
    assert bert.use_token_types and not roberta.use_token_types
    pair = bert.collate(bert.encode([("play jazz", "by miles davis")]))
    assert pair["token_type_ids"].sum() > 0  # the second segment is type 1
    assert "token_type_ids" not in roberta.collate(roberta.encode(["play jazz"]))


def test_sentence_pairs_train_and_predict(backbones) -> None:
    pairs = [Example(text=t, text_pair=t.split()[0], label=label) for t, label in TRAIN]
    classifier = textcls.TextClassifier(model=str(backbones["bert"]), encoder="cls", **FAST)
    classifier.fit(pairs, [Example(text=t, text_pair="x", label=label) for t, label in VALID], progress=False)
    probabilities = classifier.predict_proba([("rain storm", "rain"), ("goal match", "goal")])
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("encoder", ["cls", "mean"])
def test_sentence_pairs_read_the_second_text(backbones, encoder) -> None:
    # the first text is the same for every example: only the second one can tell them apart
    noise = "tell me about this"
    pairs = [Example(text=noise, text_pair=t, label=label) for t, label in TRAIN]
    classifier = textcls.TextClassifier(model=str(backbones["bert"]), encoder=encoder, **FAST)
    classifier.fit(
        pairs, [Example(text=noise, text_pair=t, label=label) for t, label in VALID], progress=False
    )
    first, second = classifier.predictor.logits([(noise, "rain storm snow"), (noise, "goal match team")])
    assert np.abs(first - second).max() > 1e-6  # a model that dropped text_pair scores both alike
    encoded = classifier.predictor.featurizer.encode([(noise, "rain storm snow")])[0][0]["input_ids"]
    assert len(encoded) > len(classifier.predictor.featurizer.encode([noise])[0][0]["input_ids"])


# ------------------------------------------------------------------------------ long documents
def featurizer(backbones, mode: str, max_length: int = 12, stride: int = 2, max_chunks: int = 16):
    from transformers import AutoTokenizer

    from textcls.embeddings.transformer import TransformerFeaturizer

    tokenizer = AutoTokenizer.from_pretrained(backbones["bert"])
    config = BackboneConfig(name_or_path="x", long_docs=mode, stride=stride, max_chunks=max_chunks)
    return TransformerFeaturizer(tokenizer, max_length, config)


LONG = " ".join(f"w{i}" for i in range(40))  # many word pieces


def test_truncate_keeps_one_window_and_counts_long_inputs(backbones) -> None:
    f = featurizer(backbones, "truncate")
    encoded = f.encode([LONG, "short text"])
    assert [len(windows) for windows in encoded] == [1, 1]
    assert len(encoded[0][0]["input_ids"]) == 12
    assert f.count_long([LONG, "short text", LONG]) == 2


def test_chunk_windows_overlap_and_cover_the_text(backbones) -> None:
    f = featurizer(backbones, "chunk", stride=2)
    windows = f.encode([LONG])[0]
    content = f.tokenizer(LONG, add_special_tokens=False)["input_ids"]
    assert len(windows) > 1
    body = [w["input_ids"][1:-1] for w in windows]  # [CLS] ... [SEP]
    assert all(len(w["input_ids"]) <= 12 for w in windows)
    assert body[0][-2:] == body[1][:2]  # stride tokens shared with the next window
    assert body[0][0] == content[0] and body[-1][-1] == content[-1]


def test_chunk_mode_reports_what_max_chunks_cuts(backbones) -> None:
    content = len(featurizer(backbones, "chunk").tokenizer(LONG, add_special_tokens=False)["input_ids"])
    # windows of 10 content tokens advancing by 8 (stride 2): all of the text fits in enough chunks
    whole = featurizer(backbones, "chunk", stride=2)
    assert whole.truncation([LONG, "short"]) == {
        "texts": 2,
        "cut": 0,
        "tokens_total": content + 1,
        "tokens_dropped": 0,
        "max_dropped": 0,
    }
    capped = featurizer(backbones, "chunk", stride=2, max_chunks=2)
    assert len(capped.encode([LONG])[0]) == 2
    stats = capped.truncation([LONG, "short"])
    assert stats["cut"] == 1 and stats["tokens_dropped"] == content - (10 + 8)  # two windows kept
    truncated = featurizer(backbones, "truncate").truncation([LONG])
    assert truncated["cut"] == 1 and truncated["tokens_dropped"] == content - 10


def test_max_chunks_is_an_option_and_cuts_are_reported_in_training(backbones) -> None:
    train = [(f"{LONG} {t}", label) for t, label in TRAIN]
    classifier = textcls.TextClassifier(
        model=str(backbones["bert"]),
        encoder="mean",
        max_length=12,
        long_docs="chunk",
        stride=2,
        max_chunks=2,
        **FAST,
    )
    assert classifier.config.model.backbone.max_chunks == 2
    classifier.fit(train, [(f"{LONG} {t}", label) for t, label in VALID], progress=False)
    stats = classifier.train_result.extra["truncation"]
    assert stats["cut"] == len(train) and stats["tokens_dropped"] > 0
    report = classifier.evaluate([(f"{LONG} rain", "weather")], latency=False)
    assert report["truncation"]["cut"] == 1


def test_head_tail_keeps_the_start_and_the_end(backbones) -> None:
    f = featurizer(backbones, "head-tail")
    ids = f.encode([LONG])[0][0]["input_ids"]
    content = f.tokenizer(LONG, add_special_tokens=False)["input_ids"]
    assert len(ids) == 12
    head, tail = ids[1:3], ids[3:-1]  # budget 10: head 2, tail 8
    assert head == content[:2] and tail == content[-8:]
    assert ids[0] == f.tokenizer.cls_token_id and ids[-1] == f.tokenizer.sep_token_id


def test_window_logits_aggregate_per_document() -> None:
    from textcls.embeddings.transformer import aggregate_windows

    logits = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, -1.0]])
    doc_index = torch.tensor([0, 0, 1])
    torch.testing.assert_close(
        aggregate_windows(logits, doc_index, "mean"), torch.tensor([[2.0, 1.0], [5.0, -1.0]])
    )
    torch.testing.assert_close(
        aggregate_windows(logits, doc_index, "max"), torch.tensor([[3.0, 2.0], [5.0, -1.0]])
    )


def test_chunked_model_predicts_the_mean_of_its_window_logits(backbones, tmp_path) -> None:
    long_train = [(f"{text} " * 6, label) for text, label in TRAIN]
    classifier = textcls.TextClassifier(
        model=str(backbones["bert"]), encoder="mean", max_length=16, long_docs="chunk", stride=4, **FAST
    )
    classifier.fit(long_train, [(f"{t} " * 6, lab) for t, lab in VALID], progress=False)
    predictor = classifier.predictor
    document = f"{TEXTS[0]} " * 6
    windows = predictor.featurizer.encode([document])[0]
    assert len(windows) > 1
    with torch.no_grad():
        per_window = predictor.model(predictor.featurizer.collate([[w] for w in windows]))["logits"]
    np.testing.assert_allclose(
        predictor.logits([document])[0], per_window.mean(0).numpy(), rtol=1e-5, atol=1e-6
    )
    report = classifier.evaluate([(f"{t} " * 6, lab) for t, lab in VALID], tmp_path / "eval", latency=False)
    assert report["longer_than_max_length"] == len(VALID)
    assert "longer than max_length" in (tmp_path / "eval" / "report.md").read_text()


# ---------------------------------------------------------------------------- pipeline round trip
def test_cls_model_loads_in_transformers_pipeline_with_our_labels(backbones, tmp_path) -> None:
    from transformers import pipeline

    classifier = textcls.TextClassifier(model=str(backbones["bert"]), encoder="cls", **FAST)
    classifier.fit(TRAIN, VALID, progress=False)
    classifier.save(tmp_path / "model")
    hf = pipeline("text-classification", model=str(tmp_path / "model"), device=-1)
    ours = classifier.predict(TEXTS)
    theirs = hf(TEXTS)
    assert [p["label"] for p in theirs] == [p["label"] for p in ours]
    # the pipeline knows nothing of our temperature: its scores are the raw softmax of our logits
    raw = classifier.predictor.decider().probabilities(classifier.predictor.logits(TEXTS), calibrated=False)
    np.testing.assert_allclose([p["score"] for p in theirs], raw.max(1), rtol=1e-4)


def test_cnn_head_saves_in_our_format_with_the_backbone_config(backbones, tmp_path) -> None:
    classifier = textcls.TextClassifier(model=str(backbones["roberta"]), encoder="cnn", **FAST)
    classifier.fit(TRAIN, VALID, progress=False)
    classifier.save(tmp_path / "model")
    assert (tmp_path / "model" / "backbone" / "config.json").is_file()
    assert json.loads((tmp_path / "model" / "config.json").read_text())["model"]["encoder"]["name"] == "cnn"


# ---------------------------------------------------------------------------- the real MiniLM-L6
def test_minilm_l6_fine_tunes_on_a_snips_subset(snips_dir, tmp_path) -> None:
    from textcls.data import read_examples

    wanted = {"PlayMusic", "GetWeather", "BookRestaurant"}
    examples = [e for e in read_examples(snips_dir / "train.txt") if e.label in wanted]
    train, test = examples[:240], examples[-90:]
    classifier = textcls.TextClassifier(
        model="minilm-l6", epochs=1, batch_size=16, lr=1e-4, max_length=32, tensorboard=False
    )
    classifier.fit(train, test, progress=False)
    report = classifier.evaluate(test, latency=False)
    assert report["accuracy"] >= 0.7  # chance is 1/3; a handful of steps is enough for MiniLM
    classifier.save(tmp_path / "minilm")
    np.testing.assert_array_equal(
        textcls.load(tmp_path / "minilm").predict_proba(["play jazz"]),
        classifier.predict_proba(["play jazz"]),
    )


def test_bert_checkpoint_without_pooler_weights_trains_with_cls(backbones, tmp_path) -> None:
    """SpanBERT-style checkpoints ship no pooler: the head still trains, saves and reloads."""
    from safetensors import safe_open
    from transformers import AutoTokenizer, BertModel

    source = tmp_path / "no-pooler"
    BertModel.from_pretrained(backbones["bert"], add_pooling_layer=False).save_pretrained(source)
    AutoTokenizer.from_pretrained(backbones["bert"]).save_pretrained(source)
    with safe_open(str(source / "model.safetensors"), framework="pt") as handle:
        assert not any("pooler" in key for key in handle.keys())  # noqa: SIM118 (not a dict)
    classifier = textcls.TextClassifier(model=str(source), encoder="cls", **FAST)
    classifier.fit(TRAIN, VALID, progress=False)
    classifier.save(tmp_path / "model")
    np.testing.assert_array_equal(
        textcls.load(tmp_path / "model").predict_proba(TEXTS), classifier.predict_proba(TEXTS)
    )


@pytest.mark.parametrize("grad_accum", [1, 3])
def test_gradient_accumulation_takes_fewer_optimizer_steps(backbones, grad_accum) -> None:
    classifier = textcls.TextClassifier(
        model=str(backbones["distilbert"]), encoder="mean", grad_accum=grad_accum, **FAST
    )
    classifier.fit(TRAIN, VALID, progress=False)
    batches = -(-len(TRAIN) // FAST["batch_size"])  # 60 examples, batch 16: 4 batches
    assert classifier.train_result.steps == -(-batches // grad_accum)


def test_sentence_pairs_are_truncated_and_counted_and_never_mixed(backbones) -> None:
    f = featurizer(backbones, "chunk")
    encoded = f.encode([(LONG, "short"), ("a b", "c d")])
    assert [len(windows) for windows in encoded] == [1, 1]
    assert len(encoded[0][0]["input_ids"]) == 12 and f.last_long_count == 1
    with pytest.raises(ConfigError, match="mixes"):
        f.encode([("a", "b"), "c"])


def test_resumed_transformer_run_keeps_the_frozen_layers_frozen(backbones, tmp_path) -> None:
    options = {**FAST, "epochs": 1, "freeze": "all-but-last-1"}
    textcls.TextClassifier(model=str(backbones["bert"]), encoder="cls", **options).fit(
        TRAIN, VALID, out_dir=tmp_path / "run", progress=False
    )
    resumed = textcls.TextClassifier(model=str(backbones["bert"]), encoder="cls", **{**options, "epochs": 2})
    resumed.fit(TRAIN, VALID, out_dir=tmp_path / "run", resume=True, progress=False)
    assert [r["epoch"] for r in resumed.train_result.history] == [1, 2]
    model = resumed.predictor.model
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any("layer.0." in n for n in frozen) and not any("layer.3." in n for n in frozen)
    assert not any("classifier" in n for n in frozen)


@pytest.mark.parametrize("encoder", ["cnn", "densenet-cnn"])
def test_word_encoders_run_over_hidden_states(backbones, encoder, tmp_path) -> None:
    classifier = textcls.TextClassifier(
        model=str(backbones["electra"]),
        encoder=encoder,
        encoder_params={"cnn": {"num_filters": 8}, "densenet-cnn": {"first_filters": 8, "growth": 4}}[
            encoder
        ],
        **FAST,
    )
    classifier.fit(TRAIN, VALID, progress=False)
    encoder_module = classifier.predictor.model.encoder
    assert encoder_module.input_dim == 32  # the backbone's hidden size, not a word-vector size
    classifier.save(tmp_path / "model")
    np.testing.assert_array_equal(
        textcls.load(tmp_path / "model").predict_proba(TEXTS), classifier.predict_proba(TEXTS)
    )
