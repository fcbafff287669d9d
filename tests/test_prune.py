"""Unstructured pruning (``textcls prune``): schedules, masks, rewinding, plain sparse weights
that survive reload and export, every model kind, the CLI end to end."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import textcls
from textcls.cli import main
from textcls.compress.prune import _rewind, apply_level, prunable, prune_model, schedule, sparsity
from textcls.errors import ConfigError
from textcls.model import load_model, plain_state_dict

FAST = {"tensorboard": False, "cpu": True}
WORD = {"vectors": "random", "vectors_dim": 16, "lr": 0.01, **FAST}
TEXTS = ["rain and snow tomorrow", "goal in the match", "a guitar song", ""]


@pytest.fixture(scope="module")
def cnn_dir(synthetic_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prune") / "cnn"
    classifier = textcls.TextClassifier(model="cnn", epochs=4, save_init=True, rewind_at="epoch:1", **WORD)
    classifier.fit(str(synthetic_dir), out_dir=out, progress=False)
    return out


def test_schedules_prune_a_share_of_the_survivors_until_the_target() -> None:
    levels = schedule(0.89, rate=0.2)
    assert len(levels) == 10 and levels[-1] == 0.89
    np.testing.assert_allclose(levels[:9], [1 - 0.8**k for k in range(1, 10)])
    assert schedule(0.36, rate=0.2) == pytest.approx([0.2, 0.36])
    np.testing.assert_allclose(schedule(0.875, rounds=3), [0.5, 0.75, 0.875])
    for bad in ({"target": 1.0}, {"target": 0.5, "rate": 0.0}, {"target": 0.5, "rounds": 0}):
        with pytest.raises(ConfigError):
            schedule(**{"rate": 0.2, **bad})


def _two_layers() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 5))
    with torch.no_grad():
        model[1].weight.mul_(10)  # the second layer's weights are larger: global pruning spares it
    return model


def test_global_and_local_amounts() -> None:
    local = _two_layers()
    targets = prunable(local, ("linear",))
    assert [q for q, _, _ in targets] == ["0.weight", "1.weight"]
    apply_level(targets, 0.5, 0.0, "magnitude", "local")
    report = sparsity(local, ["0.weight", "1.weight"])
    assert report["layers"] == {"0.weight": 0.5, "1.weight": 0.5}
    shared = _two_layers()
    apply_level(prunable(shared, ("linear",)), 0.5, 0.0, "magnitude", "global")
    report = sparsity(shared, ["0.weight", "1.weight"])
    assert report["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert report["layers"]["0.weight"] > 0.6 and report["layers"]["1.weight"] < 0.1
    # a second round prunes a share of the survivors: 0.5 → 0.75 overall, the old zeros kept
    before = plain_state_dict(shared)["0.weight"] == 0
    apply_level(prunable(shared, ("linear",)), 0.75, 0.5, "random", "global")
    after = plain_state_dict(shared)["0.weight"] == 0
    assert bool(after[before].all())
    assert sparsity(shared, ["0.weight", "1.weight"])["sparsity"] == pytest.approx(0.75, abs=1e-3)


def test_rewinding_restores_exactly_the_saved_weights_under_the_mask() -> None:
    model = _two_layers()
    init = {k: v.clone() for k, v in plain_state_dict(model).items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # "training"
    apply_level(prunable(model, ("linear",)), 0.6, 0.0, "magnitude", "global")
    mask = plain_state_dict(model)["0.weight"] != 0
    _rewind(model, init)
    state = plain_state_dict(model)
    assert torch.equal(state["0.weight"][mask], init["0.weight"][mask])
    assert bool((state["0.weight"][~mask] == 0).all())
    assert torch.equal(state["0.bias"], init["0.bias"])  # unpruned parameters are rewound too
    # the masked weights get no gradient: a training step keeps the zeros where they are
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 20)).sum().backward()
    optimizer.step()
    assert torch.equal(plain_state_dict(model)["0.weight"] != 0, mask)


def test_training_keeps_its_rewind_points_and_a_retrain_drops_stale_ones(
    synthetic_dir: Path, cnn_dir: Path, tmp_path: Path
) -> None:
    init, rewind = (
        load_file(str(cnn_dir / "init.safetensors")),
        load_file(str(cnn_dir / "rewind.safetensors")),
    )
    final = load_file(str(cnn_dir / "model.safetensors"))
    name = "encoder.conv.convs.0.weight"
    assert not torch.equal(init[name], final[name]) and not torch.equal(init[name], rewind[name])
    # step:0 is the initial state, saved as the rewind point
    out = tmp_path / "again"
    classifier = textcls.TextClassifier(model="cnn", epochs=1, save_init=True, rewind_at="step:0", **WORD)
    classifier.fit(str(synthetic_dir), out_dir=out, progress=False)
    a, b = load_file(str(out / "init.safetensors")), load_file(str(out / "rewind.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # training again into the same directory without them removes the old ones (they belong to another model)
    textcls.TextClassifier(model="cnn", epochs=1, **WORD).fit(str(synthetic_dir), out_dir=out, progress=False)
    assert not (out / "init.safetensors").exists() and not (out / "rewind.safetensors").exists()


def onnx_initializers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_lottery_ticket_rounds_save_plain_sparse_weights_that_every_backend_keeps(
    cnn_dir: Path, tmp_path: Path
) -> None:
    from textcls.inference.export import export_model

    out = tmp_path / "pruned"
    report = prune_model(
        cnn_dir, out, methods=["ticket", "random"], target=0.6, rate=0.4, epochs=2, progress=False
    )
    ticket = report["methods"]["ticket"]
    assert [r["target"] for r in ticket["rounds"]] == pytest.approx([0.4, 0.6])
    assert ticket["saved"]["sparsity"] == pytest.approx(0.6, abs=1e-3)  # measured after reload
    assert ticket["zipped_mb"] < ticket["dense_zipped_mb"]
    saved = load_file(str(out / "ticket" / "model.safetensors"))
    assert not any(k.endswith(("_orig", "_mask")) for k in saved)
    # the survivors started from init: the ticket and the random control differ only there
    random_saved = load_file(str(out / "random" / "model.safetensors"))
    assert not torch.equal(saved["encoder.conv.convs.0.weight"], random_saved["encoder.conv.convs.0.weight"])
    # reload, predict, export: the zeros stay zeros everywhere
    model, _, _ = load_model(out / "ticket")
    names = list(ticket["saved"]["layers"])
    assert sparsity(model, names)["layers"] == ticket["saved"]["layers"]
    pruned = {name: saved[name].numpy() == 0 for name in names}  # the zeros of every pruned weight
    export_model(out / "ticket")
    fp32 = onnx_initializers(out / "ticket" / "model.onnx")
    for name, zeros in pruned.items():  # torch.onnx keeps the CNN's weights as model.NAME, same layout
        np.testing.assert_array_equal(fp32[f"model.{name}"] == 0, zeros, err_msg=name)
    export_model(out / "ticket", quantize="int8", force=True)
    int8 = onnx_initializers(out / "ticket" / "model.int8.onnx")
    quantized = 0
    for name, zeros in pruned.items():
        if f"model.{name}" in int8:  # left in float (the convolutions): the same zeros
            np.testing.assert_array_equal(int8[f"model.{name}"] == 0, zeros, err_msg=name)
            continue
        # quantized (the linear head, stored transposed): 0 is exactly the zero point after
        # dequantization ((q - zero_point) * scale). Every pruned position must hold it; a small
        # surviving weight may round to it as well, so the int8 zeros are a superset, not equal.
        stem = next(k for k in (f"model.{name}", f"model.{name}_Transposed") if f"{k}_quantized" in int8)
        at_zero = int8[f"{stem}_quantized"] == int8[f"{stem}_zero_point"]
        assert bool((at_zero.T if stem.endswith("_Transposed") else at_zero)[zeros].all()), name
        quantized += 1
    assert quantized  # the check above ran on a quantized weight too
    torch_scores = textcls.load(out / "ticket").predict_proba(TEXTS)
    np.testing.assert_allclose(
        textcls.load(out / "ticket", backend="onnx").predict_proba(TEXTS), torch_scores, atol=1e-5
    )
    written = json.loads((out / "prune.json").read_text())
    assert set(written["methods"]) == {"ticket", "random"}
    assert (out / "prune.png").read_bytes()[:4] == b"\x89PNG"
    assert "| ticket | 2 | 60.0% |" in (out / "prune.md").read_text()


def test_the_server_answers_a_pruned_model_as_the_torch_predictor(cnn_dir: Path, tmp_path: Path) -> None:
    from conftest import served_scores

    report = prune_model(
        cnn_dir, tmp_path / "p", methods=["finetune"], target=0.6, rounds=1, epochs=1, progress=False
    )
    assert report["methods"]["finetune"]["saved"]["sparsity"] == pytest.approx(0.6, abs=1e-3)
    pruned = textcls.load(tmp_path / "p" / "finetune")  # the torch predictor
    texts = ["song album guitar band", "goal match team score", "rain storm cold wind"]
    expected, scores = pruned.predict(texts), pruned.predict_proba(texts)
    assert len({p["label"] for p in expected}) > 1  # not one answer for everything
    for text, prediction, row in zip(texts, expected, scores, strict=True):
        served = served_scores(tmp_path / "p" / "finetune", "torch", text)
        assert max(served, key=served.get) == prediction["label"]
        assert [served[label] for label in pruned.labels] == pytest.approx(row.tolist(), abs=1e-5)


def test_every_model_kind_prunes(synthetic_dir: Path, tmp_path: Path) -> None:
    from tiny_backbones import build

    lstm = tmp_path / "lstm"
    textcls.TextClassifier(model="lstm", epochs=2, save_init=True, **WORD).fit(
        str(synthetic_dir), out_dir=lstm, progress=False
    )
    report = prune_model(lstm, tmp_path / "p-lstm", target=0.5, rounds=1, epochs=1, progress=False)
    layers = report["methods"]["ticket"]["saved"]["layers"]
    assert any("weight_hh_l0" in name for name in layers)  # the recurrent weights are pruned too
    assert report["methods"]["ticket"]["saved"]["sparsity"] == pytest.approx(0.5, abs=1e-3)

    fast = tmp_path / "fasttext"
    textcls.TextClassifier(
        model="fasttext", vectors="random", vectors_dim=8, epochs=2, save_init=True, **FAST
    ).fit(str(synthetic_dir), out_dir=fast, progress=False)
    report = prune_model(
        fast,
        tmp_path / "p-ft",
        target=0.5,
        rounds=1,
        epochs=1,
        params=["linear", "embedding"],
        progress=False,
    )
    assert report["methods"]["ticket"]["saved"]["sparsity"] == pytest.approx(0.5, abs=1e-3)

    linear = tmp_path / "linear"
    textcls.TextClassifier(model="linear", **FAST).fit(str(synthetic_dir), out_dir=linear, progress=False)
    with pytest.raises(ConfigError, match="closed form"):
        prune_model(linear, tmp_path / "p-linear", target=0.5, progress=False)
    report = prune_model(
        linear, tmp_path / "p-linear", methods=["finetune"], target=0.5, rounds=1, progress=False
    )
    assert report["retrain_epochs"] is None
    assert report["methods"]["finetune"]["saved"]["layers"] == {
        "encoder.weight.weight": pytest.approx(0.5, abs=1e-3)
    }
    scores = textcls.load(tmp_path / "p-linear" / "finetune", backend="numpy").predict_proba(TEXTS)
    np.testing.assert_allclose(
        scores, textcls.load(tmp_path / "p-linear" / "finetune").predict_proba(TEXTS), atol=1e-5
    )

    backbone = build("bert", tmp_path / "bert")
    bert = tmp_path / "bert-model"
    textcls.TextClassifier(model=str(backbone), encoder="cls", epochs=1, save_init=True, **FAST).fit(
        str(synthetic_dir), out_dir=bert, progress=False
    )
    report = prune_model(bert, tmp_path / "p-bert", target=0.5, rounds=1, epochs=1, progress=False)
    saved = report["methods"]["ticket"]["saved"]
    assert saved["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert any("attention" in name for name in saved["layers"])
    # the backbone's own task head (new, random weights) stays dense unless named (Chen et al. 2020)
    assert not any("classifier" in name for name in saved["layers"])
    assert any(name.endswith("pooler.dense.weight") for name in saved["layers"])
    model = load_model(bert)[0]
    heads = [name for name, _, _ in prunable(model, ["linear", "classifier"]) if "classifier" in name]
    assert heads == ["embedder.model.classifier.weight"]
    assert [name for name, _, _ in prunable(model, ["classifier"])] == heads
    from transformers import AutoModelForSequenceClassification

    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "p-bert" / "ticket")
    query = hf.bert.encoder.layer[0].attention.self.query.weight
    assert 0.2 < float((query == 0).float().mean()) < 0.9  # the plain zeros, not re-initialised weights


@pytest.mark.parametrize("architecture", ["distilbert", "albert", "roberta", "bart", "electra"])
def test_a_hugging_face_models_own_head_is_all_it_holds_outside_its_base_model(
    architecture: str, tmp_path: Path
) -> None:
    """DistilBERT's pre_classifier, RoBERTa's and ELECTRA's classifier.dense / out_proj, BART's
    classification_head: ``classifier`` names exactly them, the default exactly the base model."""
    from transformers import AutoModelForSequenceClassification

    from textcls.embeddings.transformer import NativeClassifier
    from tiny_backbones import build

    hf = AutoModelForSequenceClassification.from_pretrained(build(architecture, tmp_path / "b"), num_labels=3)
    model = nn.Module()
    model.embedder = NativeClassifier(hf)
    base = hf.base_model_prefix + "."
    expected = sorted(
        f"embedder.model.{name}.weight"
        for name, module in hf.named_modules()
        if isinstance(module, nn.Linear) and not name.startswith(base)
    )
    assert expected and sorted(name for name, _, _ in prunable(model, ["classifier"])) == expected
    default = [name for name, _, _ in prunable(model)]
    assert default and all(name.startswith(f"embedder.model.{base}") for name in default)


def test_an_encoder_of_ours_over_a_backbone_is_classifier_like_the_backbones_own_head(
    synthetic_dir: Path, tmp_path: Path
) -> None:
    """Over a backbone's hidden states, the cnn encoder and the head are new weights too: dense
    unless ``classifier`` is named; the backbone's own layers are what a ticket prunes."""
    from tiny_backbones import build

    backbone = build("bert", tmp_path / "bert")
    model_dir = tmp_path / "bert-cnn"
    textcls.TextClassifier(model=str(backbone), encoder="cnn", epochs=1, save_init=True, **FAST).fit(
        str(synthetic_dir), out_dir=model_dir, progress=False
    )
    model = load_model(model_dir)[0]
    ours = [name for name, _, _ in prunable(model, ["classifier"])]
    assert ours and all(name.startswith(("encoder.", "head.")) for name in ours)
    assert any(".convs." in name for name in ours) and any(name.startswith("head.") for name in ours)
    default = [name for name, _, _ in prunable(model)]
    assert default and all(name.startswith("embedder.backbone.") for name in default)
    assert sorted(name for name, _, _ in prunable(model, ["linear", "conv", "classifier"])) == sorted(
        default + ours
    )
    report = prune_model(model_dir, tmp_path / "p", target=0.5, rounds=1, epochs=1, progress=False)
    layers = report["methods"]["ticket"]["saved"]["layers"]
    assert layers and all(name.startswith("embedder.backbone.") for name in layers)
    assert report["methods"]["ticket"]["saved"]["sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_rewinding_needs_its_saved_point(synthetic_dir: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    textcls.TextClassifier(model="cnn", epochs=1, **WORD).fit(
        str(synthetic_dir), out_dir=plain, progress=False
    )
    with pytest.raises(ConfigError, match="--save-init"):
        prune_model(plain, tmp_path / "p", methods=["ticket"], progress=False)
    with pytest.raises(ConfigError, match="--rewind-at"):
        prune_model(plain, tmp_path / "p", methods=["late"], progress=False)
    with pytest.raises(ConfigError, match="choose from"):
        prune_model(plain, tmp_path / "p", methods=["lottery"], progress=False)
    report = prune_model(
        plain, tmp_path / "p", methods=["finetune"], target=0.3, rounds=1, epochs=1, progress=False
    )
    assert report["methods"]["finetune"]["saved"]["sparsity"] == pytest.approx(0.3, abs=1e-3)


def test_cli_prunes_end_to_end(cnn_dir: Path, synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    args = ["prune", str(cnn_dir), "--out", str(out), "--methods", "late,oneshot", "--sparsity", "0.5"]
    args += ["--rounds", "2", "--epochs", "1", "--scope", "local", "--track", "tensorboard", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| late | 2 | 50.0% |" in printed and "| oneshot | 1 |" in printed
    report = json.loads((out / "prune.json").read_text())
    assert report["scope"] == "local" and report["data"]["data"] == str(
        synthetic_dir.resolve()
    )  # as recorded
    for layer, value in report["methods"]["late"]["saved"]["layers"].items():
        assert value == pytest.approx(0.5, abs=0.02), layer  # local: every layer at the target
    assert textcls.load(out / "oneshot").predict(["goal in the match"])[0]["label"]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))  # every round's metrics, tracked
    assert main(["prune", str(cnn_dir), "--out", str(out), "--params", "attention", "--no-progress"]) == 2
    assert "--params attention" in capsys.readouterr().err


def test_cli_structured_pruning_end_to_end(synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    from tiny_backbones import LAYERS, build

    backbone = build("bert", tmp_path / "bert")
    model = tmp_path / "bert-model"
    textcls.TextClassifier(model=str(backbone), encoder="cls", epochs=1, **FAST).fit(
        str(synthetic_dir), out_dir=model, progress=False
    )
    out = tmp_path / "structured"
    args = ["prune", str(model), "--out", str(out), "--heads-per-layer", "1", "--ffn-dim", "16"]
    assert main([*args, "--epochs", "1", "--batch-size", "8", "--track", "tensorboard", "--no-progress"]) == 0
    assert "heads kept" in capsys.readouterr().out
    # tracked like training: the fine-tuning's scalars and the report's numbers, in out/tensorboard
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}
    report = json.loads((out / "prune.json").read_text())
    assert "valid/accuracy" in scalars
    for stage in ("before", "pruned", "fine_tuned"):
        for split in ("valid", "test"):
            key = f"prune/accuracy/{stage}/{split}"
            assert scalars[key] == pytest.approx(report["accuracy"][stage][split]), key
    for key in ("parameters", "heads", "ffn_neurons", "latency_p50_ms"):
        for when in ("before", "after"):
            assert scalars[f"prune/{key}/{when}"] == pytest.approx(report[key][when], rel=1e-6), key
    assert scalars["prune/heads/after"] == LAYERS and scalars["prune/ffn_neurons/after"] == LAYERS * 16
    config = json.loads((out / "config.json").read_text())
    assert config["intermediate_size"] == 16  # uniform FFN: the Hugging Face config says it
    assert all(
        len(removed) == 1 for removed in config["textcls"]["model"]["backbone"]["pruned_heads"].values()
    )
    scores = textcls.load(out).predict_proba(TEXTS)
    assert scores.shape == (len(TEXTS), 3) and np.allclose(scores.sum(1), 1, atol=1e-5)
    # both forms of one kind are refused with a clear message
    assert main([*args, "--heads-fraction", "0.5", "--no-progress"]) == 2
    assert "heads" in capsys.readouterr().err


def test_prune_help_states_every_method_and_the_structured_defaults(capsys, monkeypatch) -> None:
    from textcls.compress.prune import METHODS
    from textcls.compress.structured import DEFAULT_EPOCHS

    monkeypatch.setenv("COLUMNS", "400")  # one help line per option: no word broken at a hyphen
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    text = capsys.readouterr().out
    assert f"structured: fine-tuning epochs (default {DEFAULT_EPOCHS};" in text
    assert all(method in text for method in METHODS)


def record_fits(monkeypatch) -> list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """Every retraining of prune, as (plain weights handed to the training loop, plain weights after it)."""
    import textcls.training.fit as fitting

    fits = []
    real = fitting.fit

    def recording(*args, start, **kwargs):
        handed = {k: v.clone() for k, v in plain_state_dict(start[0]).items()}
        result = real(*args, start=start, **kwargs)
        fits.append((handed, {k: v.clone() for k, v in plain_state_dict(start[0]).items()}))
        return result

    monkeypatch.setattr(fitting, "fit", recording)
    return fits


def test_the_readme_cli_summary_of_prune_names_every_option_and_method() -> None:
    import re

    from textcls.cli import build_parser
    from textcls.compress.prune import METHODS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (summary,) = re.findall(r"`textcls prune DIR --out OUT.*?are described above\.", readme, re.DOTALL)
    (commands,) = [a for a in build_parser()._actions if a.dest == "command"]
    options = {o for a in commands.choices["prune"]._actions for o in a.option_strings} - {"-h", "--help"}
    assert {o for o in options if o not in summary} == set()
    assert [m for m in METHODS if m not in summary] == []


def test_each_method_retrains_from_what_it_promises(cnn_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """What every round hands the training loop: the ticket's survivors are the initial weights,
    late rewinding's the epoch-1 weights, the random control holds the ticket's own masks with
    other values, and one-shot prunes each level from the dense model."""
    init = load_file(str(cnn_dir / "init.safetensors"))
    early = load_file(str(cnn_dir / "rewind.safetensors"))
    fits = record_fits(monkeypatch)
    methods = ["ticket", "random", "late", "oneshot"]
    prune_model(cnn_dir, tmp_path / "p", methods=methods, target=0.6, rounds=2, epochs=1, progress=False)
    seen = [handed for handed, _ in fits]
    ticket, random, late, oneshot = (seen[i : i + 2] for i in range(0, 8, 2))
    name = "encoder.conv.convs.0.weight"
    for level, (t, r, l, o) in enumerate(zip(ticket, random, late, oneshot, strict=True), start=1):
        alive = t[name] != 0
        assert torch.equal(t[name][alive], init[name][alive])  # rewound to init
        assert torch.equal(t["head.linear.bias"], init["head.linear.bias"])
        assert torch.equal(r[name] != 0, alive)  # the ticket's mask ...
        assert not torch.equal(r[name][alive], init[name][alive])  # ... with other values
        assert torch.equal(l[name][l[name] != 0], early[name][l[name] != 0])  # rewound to epoch 1
        weights = [k for k in o if k.endswith("weight") and not k.startswith("embedder")]
        zeros = sum(int((o[k] == 0).sum()) for k in weights) / sum(o[k].numel() for k in weights)
        assert zeros == pytest.approx([0.0, 1 - 0.4**0.5, 0.6][level], abs=0.005)  # each level at once
        assert torch.equal(o[name][o[name] != 0], init[name][o[name] != 0])


def test_fine_tuning_methods_keep_the_trained_weights_and_hold_the_masks(
    cnn_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    """finetune: every round prunes the previous round's retrained weights further (its zeros kept, its
    survivors carried over); oneshot-finetune: each level pruned at once from the dense trained weights.
    Neither rewinds, and retraining never revives a pruned weight."""
    dense = load_file(str(cnn_dir / "model.safetensors"))
    names = [q for q, _, _ in prunable(load_model(cnn_dir)[0])]
    fits = record_fits(monkeypatch)
    report = prune_model(
        cnn_dir, tmp_path / "p", methods=["finetune", "oneshot-finetune"], target=0.6, rounds=3, epochs=1,
        progress=False,
    )  # fmt: skip
    levels = schedule(0.6, rounds=3)
    finetune, oneshot = fits[:3], fits[3:]
    assert len(oneshot) == 3

    def zeros(state: dict[str, torch.Tensor]) -> float:
        return sum(int((state[n] == 0).sum()) for n in names) / sum(state[n].numel() for n in names)

    for method, rounds in (("finetune", finetune), ("oneshot-finetune", oneshot)):
        for level, (handed, trained) in zip(levels, rounds, strict=True):
            assert zeros(handed) == pytest.approx(level, abs=0.002), method  # the schedule, level by level
            for name in names:  # the pruned weights stay exactly zero through retraining
                assert bool((trained[name][handed[name] == 0] == 0).all()), (method, name)
        rows = report["methods"][method]["rounds"]
        assert [r["sparsity"] for r in rows] == pytest.approx(levels, abs=0.002)
    assert report["methods"]["finetune"]["saved"]["sparsity"] == pytest.approx(0.6, abs=1e-3)
    name = "encoder.conv.convs.0.weight"
    assert not torch.equal(finetune[0][1][name], finetune[0][0][name])  # retraining changed the survivors
    first = finetune[0][0][name] != 0
    assert torch.equal(finetune[0][0][name][first], dense[name][first])  # round 1: the dense trained weights
    for (_, trained), (handed, _) in pairwise(finetune):  # round k+1 starts from round k's weights
        for name in names:
            alive = handed[name] != 0
            assert bool((handed[name][trained[name] == 0] == 0).all()), name  # the old zeros kept
            assert torch.equal(handed[name][alive], trained[name][alive]), name  # the survivors carried over
    for handed, _ in oneshot:  # every level from the dense trained model, survivors kept (no rewind)
        for name in names:
            alive = handed[name] != 0
            assert torch.equal(handed[name][alive], dense[name][alive]), name


def test_rounds_are_tracked_in_mlflow_with_the_training_options_given(cnn_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="pip install 'textcls[track]'")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'tracking.db'}"
    args = ["prune", str(cnn_dir), "--out", str(tmp_path / "p"), "--methods", "finetune", "--sparsity", "0.6"]
    args += ["--rounds", "2", "--epochs", "1", "--lr", "0.005", "--track", "mlflow", "--no-progress"]
    assert main([*args, "--tracking-uri", uri, "--experiment", "prune"]) == 0
    report = json.loads((tmp_path / "p" / "prune.json").read_text())
    rows = report["methods"]["finetune"]["rounds"]
    assert report["retrain_epochs"] == 1 and [r["epochs"] for r in rows] == [1, 1]  # lr= kept --epochs
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("prune").experiment_id])
    assert run.info.run_name == f"prune-{cnn_dir.name}" and run.info.status == "FINISHED"
    assert run.data.params["scores"] == "magnitude" and run.data.params["target"] == "0.6"
    for metric in ("sparsity", "valid_accuracy", "test_accuracy"):
        history = client.get_metric_history(run.info.run_id, f"finetune/{metric}")
        assert [(m.step, m.value) for m in history] == [
            (row["round"], pytest.approx(row[metric])) for row in rows
        ], metric


def test_prune_refuses_to_write_over_its_model_or_a_foreign_one(cnn_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is the model being pruned"):
        prune_model(cnn_dir, cnn_dir, progress=False)
    import shutil

    earlier = tmp_path / "runs" / "finetune"  # re-pruning an earlier output into the same OUT
    shutil.copytree(cnn_dir, earlier)
    with pytest.raises(ConfigError, match="is the model being pruned"):
        prune_model(earlier, tmp_path / "runs", methods=["finetune"], progress=False)
    assert (earlier / "model.safetensors").read_bytes() == (cnn_dir / "model.safetensors").read_bytes()
    foreign = tmp_path / "out" / "ticket"
    foreign.mkdir(parents=True)
    (foreign / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="did not write"):
        prune_model(cnn_dir, tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="with ticket"):
        prune_model(cnn_dir, tmp_path / "other", methods=["random"], progress=False)
    with pytest.raises(ConfigError, match="at least one epoch"):
        prune_model(cnn_dir, tmp_path / "other", epochs=0, progress=False)


def test_the_cli_refuses_options_of_the_other_pruning_mode(cnn_dir: Path, tmp_path: Path, capsys) -> None:
    args = ["prune", str(cnn_dir), "--out", str(tmp_path / "x"), "--no-progress"]
    assert main([*args, "--heads-per-layer", "2", "--methods", "late"]) == 2
    assert "--methods: unstructured pruning options" in capsys.readouterr().err
    assert main([*args, "--distill"]) == 2
    assert "--distill: structured pruning options" in capsys.readouterr().err


def test_a_rewind_point_never_reached_is_said(synthetic_dir: Path, tmp_path: Path, caplog) -> None:
    import logging

    caplog.set_level(logging.WARNING)
    textcls.TextClassifier(model="cnn", epochs=1, rewind_at="epoch:5", **WORD).fit(
        str(synthetic_dir), out_dir=tmp_path / "m", progress=False
    )
    assert "--rewind-at epoch:5 was never reached" in caplog.text
    assert not (tmp_path / "m" / "rewind.safetensors").exists()
