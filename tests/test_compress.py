"""Augmentation (determinism, budget, labels, Korean morphology) and knowledge distillation (the
loss against hand-computed values, soft targets, end to end on a tiny teacher/student pair)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import textcls
from conftest import TINY, make_examples, write_tsv
from textcls.cli import main
from textcls.compress.augment import AugmentConfig, augment_file, augment_sentence, augment_texts, editable
from textcls.compress.distill import SOFT_INDEX, SOFT_TARGETS, distill, distillation_loss, read_unlabeled
from textcls.errors import ConfigError, DataError

SENTENCES = [
    "the movie was a wonderful surprise and the actors were great",
    "a dull , lifeless and far too long film",
    "i loved every minute of it",
    "not worth the price of the ticket",
    "great",
]


# ---------------------------------------------------------------------------------- augmentation
def test_augmentation_is_deterministic_for_a_seed_whatever_the_workers() -> None:
    config = AugmentConfig(n_per_example=6, seed=7)
    one = augment_texts(SENTENCES, config, workers=1)
    two = augment_texts(SENTENCES, AugmentConfig(n_per_example=6, seed=7), workers=2)
    assert one == two
    other = augment_texts(SENTENCES, AugmentConfig(n_per_example=6, seed=8), workers=1)
    assert other != one


def test_samples_respect_the_budget_and_are_new_and_non_empty() -> None:
    config = AugmentConfig(n_per_example=20, p_mask=0.5, p_pos=0.3, p_neighbor=0.2, p_ng=1.0, seed=1)
    results = augment_texts(SENTENCES, config)
    for source, samples in zip(SENTENCES, results, strict=True):
        tokens = source.split()
        assert len(samples) == len(set(samples))  # no duplicates
        assert source not in samples  # the source is written by the caller, once
        for sample in samples:
            words = sample.split()
            assert sample.strip() and len(words) == len(tokens)
            changed = sum(a != b for a, b in zip(tokens, words, strict=True))
            assert 1 <= changed <= len(tokens) // 2
            assert all(w == t for w, t in zip(words, tokens, strict=True) if not any(c.isalnum() for c in t))
    assert results[-1] == []  # one word: half of it is nothing to change


def test_every_operation_happens() -> None:
    tokens = [("the", "DT"), ("good", "JJ"), ("movie", "NN"), ("was", "VBD"), ("bad", "JJ"), ("today", "NN")]
    buckets = {"JJ": ["good", "bad", "fine"], "NN": ["movie", "film", "today"], "DT": ["the"], "VBD": ["was"]}
    neighbors = {"good": ["great"], "movie": ["picture"]}
    masked = augment_sentence(
        tokens,
        AugmentConfig(n_per_example=30, p_mask=1.0, p_pos=0, p_neighbor=0, p_ng=0),
        random.Random(0),
        buckets,
        neighbors,
    )
    assert all(s.count("[MASK]") == 3 for s in masked)  # every change is a mask, 3 = half of 6
    swapped = augment_sentence(
        tokens,
        AugmentConfig(n_per_example=30, p_mask=0, p_pos=1.0, p_neighbor=0, p_ng=0),
        random.Random(0),
        buckets,
        neighbors,
    )
    for sample in swapped:
        for (_, tag), word in zip(tokens, sample, strict=True):
            assert word in buckets[tag]  # the same part of speech
    near = augment_sentence(
        tokens,
        AugmentConfig(n_per_example=30, p_mask=0, p_pos=0, p_neighbor=1.0, p_ng=0),
        random.Random(0),
        buckets,
        neighbors,
    )
    assert {w for s in near for w in s} - {f for f, _ in tokens} == {"great", "picture"}
    grams = augment_sentence(
        tokens,
        AugmentConfig(n_per_example=30, p_mask=0, p_pos=0, p_neighbor=0, p_ng=1.0, max_ngram=3),
        random.Random(0),
        buckets,
        neighbors,
    )
    for sample in grams:
        masked_at = [i for i, w in enumerate(sample) if w == "[MASK]"]
        assert masked_at and masked_at == list(range(masked_at[0], masked_at[-1] + 1))  # contiguous


def test_augment_file_keeps_originals_and_labels(tmp_path) -> None:
    source = write_tsv(
        tmp_path / "train.txt", [(s, "pos" if i % 2 else "neg") for i, s in enumerate(SENTENCES)]
    )
    out = tmp_path / "aug.txt"
    counts = augment_file(source, out, AugmentConfig(n_per_example=3), preserve_label=True)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert counts["written"] == len(lines) and counts["sources"] == len(SENTENCES)
    pairs = [line.split("\t") for line in lines]
    assert all(len(p) == 2 and p[0].strip() for p in pairs)
    originals = [p for p in pairs if p[0] in SENTENCES]
    assert [p[0] for p in originals] == SENTENCES  # each original once, in order
    by_source: dict[str, str] = {}
    current = None
    for text, label in pairs:
        current = text if text in SENTENCES else current
        by_source.setdefault(current, label)
        assert label == by_source[current]  # samples carry their source's label
    unlabeled = augment_file(source, tmp_path / "u.txt", AugmentConfig(n_per_example=3))
    assert all("\t" not in line for line in (tmp_path / "u.txt").read_text().splitlines())
    assert unlabeled["written"] == counts["written"]


def test_korean_keeps_particles_and_endings() -> None:
    pytest.importorskip("kiwipiepy", reason="pip install kiwipiepy")
    from textcls.compress.augment import pos_buckets, tag_korean

    texts = ["이 영화 정말 재미있었어요", "배우들의 연기가 너무 어색했다", "돈이 아까운 영화입니다"]
    tagged = tag_korean(texts)
    config = AugmentConfig(n_per_example=20, p_mask=0.4, p_pos=0.4, p_neighbor=0.0, language="ko")
    buckets = pos_buckets(tagged)
    changed_any = False
    for tokens in tagged:
        fixed = [i for i, token in enumerate(tokens) if not editable(token, "ko")]
        assert fixed  # every sentence has particles or endings
        assert all(tokens[i][1][0] in "JESX" for i in fixed)
        for words in augment_sentence(tokens, config, random.Random(3), buckets, {}):
            assert [words[i] for i in fixed] == [tokens[i][0] for i in fixed]
            changed_any |= words != [form for form, _ in tokens]
    assert changed_any
    results = augment_texts(texts, config)  # re-joined into text by Kiwi, deterministic
    assert any(results) and all(s.strip() for samples in results for s in samples)
    assert augment_texts(texts, config) == results


def test_bad_probabilities_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        augment_texts(SENTENCES, AugmentConfig(p_mask=0.7, p_pos=0.5))
    with pytest.raises(ConfigError):
        augment_texts(SENTENCES, AugmentConfig(p_ng=1.5))


# ---------------------------------------------------------------------------------- distillation
def softmax(x: list[float], t: float) -> list[float]:
    e = [math.exp(v / t) for v in x]
    return [v / sum(e) for v in e]


def test_kd_loss_matches_a_hand_computed_example() -> None:
    student = [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]
    teacher = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    gold = [0, -1]  # the second example has no gold label
    t, alpha = 2.0, 0.3
    expected = []
    for s, te, g in zip(student, teacher, gold, strict=True):
        p_t, p_s = softmax(te, t), softmax(s, t)
        kl = sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_t, p_s, strict=True))
        ce = -math.log(softmax(s, 1.0)[g]) if g >= 0 else 0.0
        expected.append(alpha * t * t * kl + (1 - alpha) * ce)
    value = distillation_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(gold), t, alpha)
    assert value.item() == pytest.approx(sum(expected) / 2, rel=1e-6)
    mse = distillation_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(gold), t, alpha, "mse")
    hand = [
        sum((a - b) ** 2 for a, b in zip(s, te, strict=True)) / 3
        for s, te in zip(student, teacher, strict=True)
    ]
    ce0 = -math.log(softmax(student[0], 1.0)[0])
    assert mse.item() == pytest.approx((alpha * hand[0] + (1 - alpha) * ce0 + alpha * hand[1]) / 2, rel=1e-6)
    # alpha = 0 with every label known is plain cross-entropy
    plain = distillation_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor([0, 1]), t, 0.0)
    assert plain.item() == pytest.approx(
        torch.nn.functional.cross_entropy(torch.tensor(student), torch.tensor([0, 1])).item(), rel=1e-6
    )


def test_kd_gradient_pulls_the_student_towards_the_teacher() -> None:
    student = torch.zeros(1, 3, requires_grad=True)
    distillation_loss(student, torch.tensor([[3.0, 0.0, 0.0]]), torch.tensor([-1]), 2.0, 1.0).backward()
    assert student.grad[0, 0] < 0 < student.grad[0, 1]  # descending raises the teacher's class


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("distill")
    data = root / "data"
    data.mkdir()
    for split, (n, seed) in {"train": (20, 0), "valid": (8, 1), "test": (8, 2)}.items():
        write_tsv(data / f"{split}.txt", make_examples(n, seed))
    textcls.TextClassifier(**{**TINY, "epochs": 8, "lr": 3e-2}).fit(
        str(data), out_dir=root / "teacher", progress=False
    )
    unlabeled = root / "unlabeled.txt"
    unlabeled.write_text("".join(f"{t}\n" for t, _ in make_examples(15, 9)), encoding="utf-8")
    return {"root": root, "data": data, "teacher": root / "teacher", "unlabeled": unlabeled}


STUDENT = {k: v for k, v in TINY.items() if k != "model"}


def test_distill_end_to_end(pair) -> None:
    out = pair["root"] / "student"
    report = distill(
        pair["teacher"], pair["data"], out, student="cnn", unlabeled=pair["unlabeled"], **STUDENT
    )
    assert set(report["models"]) == {"teacher", "student alone", "distilled student"}
    for row in report["models"].values():
        assert {"accuracy", "macro_f1", "p50_ms", "size_mb"} <= set(row) and row["p50_ms"] > 0
    assert report["models"]["teacher"]["accuracy"] >= 80  # the separable toy data: a real teacher
    assert report["unlabeled_examples"] == 45 and report["kept_unlabeled"] == 45
    from safetensors.numpy import load_file

    logits = load_file(str(out / SOFT_TARGETS))["logits"]
    index = [json.loads(line) for line in (out / SOFT_INDEX).read_text().splitlines()]
    assert logits.shape == (60 + 45, 3) and len(index) == len(logits)
    assert sum(r["gold"] is None for r in index) == 45
    teacher = textcls.load(pair["teacher"])
    expected = teacher.predict_proba([r["text"] for r in index[:5]]).argmax(1)
    assert list(logits[:5].argmax(1)) == list(expected)
    student = textcls.load(out)  # a normal model directory
    assert student.labels == ["music", "sports", "weather"]
    assert (out / "baseline" / "model.safetensors").is_file()
    assert "distilled student" in (out / "distill_report.md").read_text()


def test_soft_targets_are_reused_and_entropy_filters(pair) -> None:
    out = pair["root"] / "filtered"
    distill(
        pair["teacher"],
        pair["data"],
        out,
        student="cnn",
        unlabeled=pair["unlabeled"],
        baseline=False,
        **STUDENT,
    )
    stamp = (out / SOFT_TARGETS).stat().st_mtime_ns
    report = distill(
        pair["teacher"], pair["data"], out, student="cnn", unlabeled=pair["unlabeled"], baseline=False,
        max_entropy=0.0, **STUDENT,
    )  # fmt: skip
    assert (out / SOFT_TARGETS).stat().st_mtime_ns == stamp  # the teacher did not run again
    assert report["kept_unlabeled"] == 0  # no teacher prediction has zero entropy
    assert "student alone" not in report["models"]


def test_students_share_one_teacher_scoring(pair, monkeypatch) -> None:
    from textcls.inference import predictor

    loads: list[str] = []
    real = predictor.load_predictor

    def counting(directory, *args, **kwargs):
        loads.append(str(directory))
        return real(directory, *args, **kwargs)

    monkeypatch.setattr(predictor, "load_predictor", counting)
    shared = pair["root"] / "soft"
    common = dict(unlabeled=pair["unlabeled"], baseline=False, soft_targets=shared, **STUDENT)
    distill(pair["teacher"], pair["data"], pair["root"] / "first", student="cnn", **common)
    assert (shared / SOFT_TARGETS).is_file() and not (pair["root"] / "first" / SOFT_TARGETS).exists()
    first = loads.count(str(pair["teacher"]))
    report = distill(pair["teacher"], pair["data"], pair["root"] / "second", student="cnn", **common)
    # the second student reads the shared soft targets: the teacher is loaded once less (no scoring)
    assert loads.count(str(pair["teacher"])) - first == first - 1
    assert report["kept_unlabeled"] == 45
    assert textcls.load(pair["root"] / "second").labels == ["music", "sports", "weather"]


def test_distill_errors(pair, tmp_path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("some text\tnot-a-label\n", encoding="utf-8")
    with pytest.raises(DataError, match="not one of the training labels"):
        read_unlabeled(bad, ["music"])
    with pytest.raises(ConfigError):
        distill(pair["teacher"], pair["data"], tmp_path / "x", student="cnn", alpha=1.5, **STUDENT)
    other = tmp_path / "other"
    other.mkdir()
    for split in ("train", "valid", "test"):
        write_tsv(
            other / f"{split}.txt",
            [(t, {"music": "a", "sports": "b", "weather": "c"}[l]) for t, l in make_examples(5, 3)],
        )
    with pytest.raises(ConfigError, match="labels"):
        distill(pair["teacher"], other, tmp_path / "y", student="cnn", **STUDENT)


def test_cli_augment_and_distill(pair, tmp_path, capsys) -> None:
    aug = tmp_path / "aug.txt"
    assert (
        main(
            [
                "augment",
                str(pair["data"] / "train.txt"),
                "--out",
                str(aug),
                "--n-per-example",
                "2",
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "lines" in capsys.readouterr().out and aug.is_file()
    code = main(
        ["distill", "--teacher", str(pair["teacher"]), "--data", str(pair["data"]), "--unlabeled", str(aug),
         "--student", "gnb", "--out", str(tmp_path / "s"), "--epochs", "2", "--no-baseline", "--no-progress",
         "--loss", "mse"]
    )  # fmt: skip
    assert code == 0 and "distilled student" in capsys.readouterr().out
    assert json.loads((tmp_path / "s" / "distill_report.json").read_text())["loss"] == "mse"
    np.testing.assert_array_equal(textcls.load(tmp_path / "s").labels, ["music", "sports", "weather"])


# ------------------------------------------------ soft-target cache: keyed on the teacher's weights
def train_teacher(data: Path, out: Path, seed: int, relabel: dict[str, str] | None = None) -> Path:
    """A tiny CNN teacher on ``data`` (labels mapped through ``relabel``: a teacher that is
    confidently wrong in a known way)."""
    train = [line.split("\t") for line in (data / "train.txt").read_text().splitlines()]
    valid = [line.split("\t") for line in (data / "valid.txt").read_text().splitlines()]
    relabel = relabel or {}
    classifier = textcls.TextClassifier(**{**TINY, "epochs": 8, "lr": 3e-2, "seed": seed})
    classifier.fit(
        [(t, relabel.get(l, l)) for t, l in train],
        [(t, relabel.get(l, l)) for t, l in valid],
        out_dir=out,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def other_teacher(pair) -> Path:
    """Another teacher on the same data (another seed): other weights, other logits."""
    return train_teacher(pair["data"], pair["root"] / "other-teacher", seed=7)


def cached_key(cache: Path) -> dict:
    from safetensors import safe_open

    from textcls.compress.distill import CACHE_KEY

    with safe_open(str(cache / SOFT_TARGETS), framework="np") as handle:
        return json.loads(handle.metadata()[CACHE_KEY])


def scoring_log(caplog) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.name == "textcls.compress.distill")


def test_a_replaced_teacher_is_scored_again(pair, other_teacher, tmp_path, caplog) -> None:
    """The teacher directory is overwritten with another trained model (same path, same texts):
    its soft targets must be the new model's, never the cached ones of the old weights."""
    import shutil

    from safetensors.numpy import load_file

    from textcls.model import weights_digest

    teacher, cache = tmp_path / "teacher", tmp_path / "soft"
    shutil.copytree(pair["teacher"], teacher)
    common = dict(student="cnn", baseline=False, soft_targets=cache, **STUDENT)
    caplog.set_level("INFO", logger="textcls.compress.distill")
    distill(teacher, pair["data"], tmp_path / "first", **common)
    before = load_file(str(cache / SOFT_TARGETS))["logits"]

    shutil.rmtree(teacher)
    shutil.copytree(other_teacher, teacher)
    caplog.clear()
    distill(teacher, pair["data"], tmp_path / "second", **common)
    after = load_file(str(cache / SOFT_TARGETS))["logits"]
    assert np.abs(after - before).max() > 0.1  # the old logits were not reused
    texts = [json.loads(line)["text"] for line in (tmp_path / "second" / SOFT_INDEX).read_text().splitlines()]
    np.testing.assert_allclose(after, textcls.load(other_teacher).predictor.logits(texts), atol=1e-5)
    assert "the teacher's weights changed" in scoring_log(caplog)
    assert "reusing" not in scoring_log(caplog)
    assert (
        cached_key(cache)["weights_digest"]
        == weights_digest(other_teacher)
        != weights_digest(pair["teacher"])
    )


def test_teacher_cache_reuses_only_the_same_weights_and_texts(pair, other_teacher, tmp_path, caplog) -> None:
    from textcls.compress.distill import teacher_logits
    from textcls.inference import predictor

    labels = ["music", "sports", "weather"]
    texts = [t for t, _ in make_examples(6, 11)]
    cache = tmp_path / "soft"
    caplog.set_level("INFO", logger="textcls.compress.distill")
    first = teacher_logits(pair["teacher"], texts, labels, cache=cache)
    np.testing.assert_allclose(first, textcls.load(pair["teacher"]).predictor.logits(texts), atol=1e-6)

    # same weights, same texts: read back, the teacher is not even loaded (also from another path)
    import shutil

    copy = shutil.copytree(pair["teacher"], tmp_path / "teacher-copy")
    loads: list[str] = []
    real = predictor.load_predictor

    def counting(directory, *args, **kwargs):
        loads.append(str(directory))
        return real(directory, *args, **kwargs)

    caplog.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(predictor, "load_predictor", counting)
        again = teacher_logits(copy, texts, labels, cache=cache)
    assert loads == [] and "reusing" in scoring_log(caplog)
    np.testing.assert_array_equal(again, first)

    # other texts: scored again
    caplog.clear()
    changed_texts = [*texts[:-1], "rain storm cold"]
    changed = teacher_logits(pair["teacher"], changed_texts, labels, cache=cache)
    assert "the texts or labels changed" in scoring_log(caplog)
    reference = textcls.load(pair["teacher"]).predictor.logits(changed_texts)
    np.testing.assert_allclose(changed, reference, atol=1e-6)
    assert np.abs(changed[-1] - first[-1]).max() > 1e-3  # the new text's row is not the old one's

    # another label order: the columns follow it, so the texts' digest differs too
    caplog.clear()
    reordered = teacher_logits(pair["teacher"], texts, labels[::-1], cache=cache)
    assert "the texts or labels changed" in scoring_log(caplog)
    np.testing.assert_allclose(reordered, first[:, ::-1], atol=1e-6)

    # other weights at the same path: scored again, the other model's logits
    caplog.clear()
    other = teacher_logits(other_teacher, texts, labels, cache=cache)
    assert "the teacher's weights changed" in scoring_log(caplog)
    assert np.abs(other - first).max() > 0.1

    # a cache written without a key (an older textcls) is never trusted
    from safetensors.numpy import save_file

    save_file({"logits": np.zeros((len(texts), 3), np.float32)}, str(cache / SOFT_TARGETS))
    caplog.clear()
    fresh = teacher_logits(pair["teacher"], texts, labels, cache=cache)
    assert "older textcls" in scoring_log(caplog)
    np.testing.assert_array_equal(fresh, first)


def test_teacher_backend_onnx_int8_scores_with_that_backend(pair, tmp_path) -> None:
    """``--teacher-backend onnx-int8``: the soft targets are the int8 graph's logits (they differ
    from PyTorch's), and the cache records the backend and the ONNX file it ran."""
    import shutil

    from safetensors.numpy import load_file

    from textcls.inference.export import export_model
    from textcls.inference.onnx import INT8_FILE, file_sha256
    from textcls.inference.predictor import load_predictor
    from textcls.model import weights_digest

    teacher = shutil.copytree(pair["teacher"], tmp_path / "teacher")
    export_model(teacher, quantize="int8", valid=pair["data"] / "valid.txt")
    out = tmp_path / "student"
    report = distill(
        teacher, pair["data"], out, student="cnn", unlabeled=pair["unlabeled"], baseline=False,
        teacher_backend="onnx-int8", **STUDENT,
    )  # fmt: skip
    assert report["teacher_backend"] == "onnx-int8"
    assert report["models"]["teacher"]["backend"] == "onnx-int8"
    key = cached_key(out)
    assert key["backend"] == "onnx-int8"
    assert key["onnx_sha256"] == file_sha256(teacher / INT8_FILE)
    assert key["weights_digest"] == weights_digest(teacher)
    assert json.loads((out / (SOFT_TARGETS + ".json")).read_text()) == key
    used = load_file(str(out / SOFT_TARGETS))["logits"]
    texts = [json.loads(line)["text"] for line in (out / SOFT_INDEX).read_text().splitlines()]
    int8 = load_predictor(teacher, "onnx-int8").logits(texts, 256)  # distill's batch size
    torch_logits = load_predictor(teacher, "torch").logits(texts, 256)
    np.testing.assert_allclose(used, int8, atol=1e-6)
    assert np.abs(used - torch_logits).max() > 1e-3  # so they are not PyTorch's


def test_distilled_student_is_accurate(pair, tmp_path) -> None:
    report = distill(
        pair["teacher"], pair["data"], tmp_path / "s", student="cnn", unlabeled=pair["unlabeled"],
        baseline=False, **{**STUDENT, "epochs": 8, "lr": 3e-2},
    )  # fmt: skip
    assert report["models"]["teacher"]["accuracy"] >= 90
    assert report["models"]["distilled student"]["accuracy"] >= 90


def test_alpha_one_follows_the_teacher_not_the_gold_labels(pair, tmp_path) -> None:
    """A teacher trained on permuted labels (music→sports→weather→music) and alpha=1: the student
    learns from the soft targets alone, so it predicts the teacher's labels; with the gold
    labels it would be right. The validation split carries the teacher's labels so that model
    selection does not pull towards gold."""
    shift = {"music": "sports", "sports": "weather", "weather": "music"}
    teacher = train_teacher(pair["data"], tmp_path / "permuted-teacher", seed=3, relabel=shift)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text((pair["data"] / "train.txt").read_text())
    valid = [line.split("\t") for line in (pair["data"] / "valid.txt").read_text().splitlines()]
    write_tsv(data / "valid.txt", [(t, shift[l]) for t, l in valid])
    test = make_examples(8, 2)
    options = {**STUDENT, "epochs": 8, "lr": 3e-2}
    distill(teacher, data, tmp_path / "s", student="cnn", alpha=1.0, baseline=False, **options)
    texts = [t for t, _ in test]
    teacher_labels = [p["label"] for p in textcls.load(teacher).predict(texts)]
    permuted_gold = [shift[gold] for _, gold in test]
    assert np.mean([a == b for a, b in zip(teacher_labels, permuted_gold, strict=True)]) >= 0.9
    student = [p["label"] for p in textcls.load(tmp_path / "s").predict(texts)]
    assert np.mean([s == t for s, t in zip(student, teacher_labels, strict=True)]) >= 0.9
    assert np.mean([s == gold for s, (_, gold) in zip(student, test, strict=True)]) <= 0.1


def test_transformer_student(pair, tmp_path) -> None:
    """A tiny random BERT (tests/tiny_backbones.py) as the student: a Hugging Face directory that
    learns the task from the teacher."""
    pytest.importorskip("transformers")
    from tiny_backbones import build

    backbone = build("bert", tmp_path / "bert", [t for t, _ in make_examples(20, 0)])
    out = tmp_path / "s"
    # a random tiny backbone learns at the head's rate (the presets' backbone_lr suits pretrained ones)
    options = {
        "epochs": 8,
        "batch_size": 16,
        "lr": 2e-3,
        "backbone_lr": 2e-3,
        "tensorboard": False,
        "patience": 0,
    }
    report = distill(
        pair["teacher"], pair["data"], out, student=str(backbone), unlabeled=pair["unlabeled"],
        baseline=False, **options,
    )  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["textcls"]["model"]["backbone"]["name_or_path"] == str(backbone)
    assert "id2label" in config and (out / "model.safetensors").is_file()
    student = textcls.load(out)
    assert student.labels == ["music", "sports", "weather"]
    assert report["models"]["distilled student"]["accuracy"] >= 90
