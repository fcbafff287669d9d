"""``--model auto``: the ladder within a time budget and limits, a leaderboard, a normal winner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import textcls
from textcls.auto import Candidate, Outcomes, choose, paired_p_value, parse_budget, train_auto
from textcls.cli import main
from textcls.errors import ConfigError, TextClsError

FAST = {"tensorboard": False, "cpu": True}
WORD = {"vectors": "random", "vectors_dim": 8}
LADDER = (
    Candidate("linear", "linear", "numpy", 1),
    Candidate("mean", "mean", "onnx", 2, overrides={**WORD, "epochs": 2}),
    Candidate("cnn", "cnn", "onnx", 10_000, overrides={**WORD, "epochs": 2}),
)


def test_budget_parsing() -> None:
    assert [parse_budget(v) for v in ("90s", "10m", "1h", "45", 30)] == [90, 600, 3600, 45, 30]
    with pytest.raises(ConfigError, match="10m"):
        parse_budget("ten minutes")


def test_the_ladder_respects_a_small_budget_and_writes_its_leaderboard(
    synthetic_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "auto"
    board = train_auto(synthetic_dir, out, time_budget=120, candidates=LADDER, **FAST)
    statuses = {r["candidate"]: r["status"] for r in board["rows"]}
    assert statuses["cnn"].startswith("skipped: needs ~")  # 10,000 × what linear took
    assert {statuses["linear"], statuses["mean"]} <= {"ok", "winner"}
    assert board["seconds"] < 120
    saved = json.loads((out / "auto.json").read_text())
    assert saved["winner"] == board["winner"] and "| cnn | skipped" in (out / "auto.md").read_text()
    assert (out / "auto.png").read_bytes()[:4] == b"\x89PNG"
    winner = next(r for r in board["rows"] if r["status"] == "winner")
    trained = [r for r in board["rows"] if r["status"] in ("ok", "winner")]
    best = max(r["valid"] for r in trained)
    # the best validation metric wins, unless a cheaper candidate is within noise of it (and says so)
    assert winner["valid"] == best or winner["p_best_not_better"] >= 0.05
    for cheaper in trained[: trained.index(winner)]:  # every cheaper one lost beyond noise
        assert cheaper.get("p_best_not_better", 1.0) < 0.05
    # the winner is a normal model directory that predicts as its candidate does, on every backend
    texts = ["rain and snow", "goal match", "guitar song"]
    candidate = textcls.load(out / "candidates" / winner["candidate"])
    reloaded = textcls.load(out)
    np.testing.assert_array_equal(reloaded.predict_proba(texts), candidate.predict_proba(texts))
    served = textcls.load(out, backend=winner["backend"])
    np.testing.assert_allclose(served.predict_proba(texts), candidate.predict_proba(texts), atol=1e-5)


def test_a_latency_cap_skips_a_slow_candidate(synthetic_dir: Path, tmp_path: Path) -> None:
    def fake_latency(predictor, texts) -> float:  # the linear model pretends to be slow
        return 5.0 if predictor.backend == "numpy" else 0.01

    board = train_auto(
        synthetic_dir, tmp_path / "auto", time_budget=600, candidates=LADDER[:2],
        max_latency_ms=1.0, measure_latency=fake_latency, **FAST,
    )  # fmt: skip
    statuses = {r["candidate"]: r["status"] for r in board["rows"]}
    assert statuses["linear"].startswith("over latency (5.000 > 1 ms)")
    assert statuses["mean"] == "winner" and board["winner"] == "mean"


def test_a_rung_slower_than_one_over_the_latency_cap_is_skipped_untrained(
    synthetic_dir: Path, tmp_path: Path
) -> None:
    ladder = (
        LADDER[0],
        Candidate("mean", "mean", "onnx", 2, overrides={**WORD, "epochs": 1}, slower_than="linear"),
        Candidate("cnn", "cnn", "onnx", 3, overrides={**WORD, "epochs": 1}, slower_than="mean"),
    )
    with pytest.raises(TextClsError, match="no candidate met the limits"):
        train_auto(
            synthetic_dir, tmp_path / "auto", time_budget=600, candidates=ladder,
            max_latency_ms=1.0, measure_latency=lambda predictor, texts: 5.0, **FAST,
        )  # fmt: skip
    board = json.loads((tmp_path / "auto" / "auto.json").read_text())
    statuses = {r["candidate"]: r["status"] for r in board["rows"]}
    assert statuses["linear"].startswith("over latency")
    assert statuses["mean"] == (
        "skipped: at least as slow at batch 1 as linear, and linear (5.000 ms) was over "
        "the 1 ms latency limit"
    )
    assert statuses["cnn"].startswith("skipped: at least as slow at batch 1 as mean, and linear (5.000 ms)")
    assert not (tmp_path / "auto" / "candidates" / "mean").exists()
    # without a cap nothing is skipped for speed
    board = train_auto(synthetic_dir, tmp_path / "free", time_budget=600, candidates=ladder[:2], **FAST)
    assert {r["status"] for r in board["rows"]} == {"ok", "winner"}


def test_candidates_train_under_the_time_left_and_say_when_it_cut_them(
    synthetic_dir: Path, tmp_path: Path
) -> None:
    slow = Candidate(
        "cnn", "cnn", "onnx", 1, overrides={**WORD, "epochs": 400, "patience": 0, "batch_size": 2}
    )
    board = train_auto(synthetic_dir, tmp_path / "auto", time_budget=8, candidates=(slow,), **FAST)
    row = board["rows"][0]
    assert row["status"] == "winner" and "stopped by the time left" in row["note"]
    config = json.loads((tmp_path / "auto" / "candidates" / "cnn" / "config.json").read_text())
    assert 0 < config["train"]["time_limit"] <= 8
    assert len(json.loads((tmp_path / "auto" / "train_result.json").read_text())["history"]) < 400


def test_no_candidate_fits_is_a_clear_error(synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "auto"
    args = ["train", "--data", str(synthetic_dir), "--model", "auto", "--out", str(out)]
    args += ["--max-size-mb", "0.000001", "--time-budget", "60s", "--no-progress", "--no-tensorboard"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "no candidate met the limits" in captured.err and "over size" in captured.out
    assert (out / "auto.md").is_file() and not (out / "config.json").exists()


def test_other_work_in_out_survives_and_a_foreign_model_is_refused(
    synthetic_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "auto"
    (out / "other-model").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    train_auto(synthetic_dir, out, time_budget=60, candidates=LADDER[:1], **FAST)
    train_auto(synthetic_dir, out, time_budget=60, candidates=LADDER[:1], **FAST)  # again, over itself
    assert (out / "notes.txt").read_text() == "mine" and (out / "other-model").is_dir()
    foreign = tmp_path / "foreign"
    textcls.TextClassifier(model="linear", **FAST).fit(synthetic_dir, out_dir=foreign, progress=False)
    with pytest.raises(TextClsError, match="not written by --model auto"):
        train_auto(synthetic_dir, foreign, time_budget=60, candidates=LADDER[:1], **FAST)


# ------------------------------------------------- what the user has in OUT, failures, the probe
def test_a_user_folder_under_candidates_or_a_foreign_model_file_is_refused_and_kept(
    synthetic_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "auto"
    mine = out / "candidates" / "linear" / "mine.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("my notes")
    with pytest.raises(ConfigError, match="candidates/linear"):
        train_auto(synthetic_dir, out, time_budget=60, candidates=LADDER[:1], **FAST)
    assert mine.read_text() == "my notes"
    other = tmp_path / "other"
    other.mkdir()
    (other / "labels.json").write_text('["mine"]')  # part of a model auto never wrote
    with pytest.raises(ConfigError, match=r"labels\.json"):
        train_auto(synthetic_dir, other, time_budget=60, candidates=LADDER[:1], **FAST)
    assert (other / "labels.json").read_text() == '["mine"]'
    # a second run over auto's own candidates is fine, and keeps the user's folder beside them
    (out / "candidates" / "notes").mkdir()
    mine.unlink()
    mine.parent.rmdir()
    train_auto(synthetic_dir, out, time_budget=60, candidates=LADDER[:1], **FAST)
    train_auto(synthetic_dir, out, time_budget=60, candidates=LADDER[:1], **FAST)
    assert (out / "candidates" / "notes").is_dir() and (out / "candidates" / "linear").is_dir()


def test_without_a_test_split_latency_is_measured_on_the_validation_texts(
    synthetic_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "valid"):
        (data / f"{split}.txt").write_text((synthetic_dir / f"{split}.txt").read_text())
    seen: list[list] = []

    def recording(predictor, texts) -> float:
        seen.append(list(texts))
        return 0.5

    train_auto(
        data, tmp_path / "auto", time_budget=60, candidates=LADDER[:1], measure_latency=recording, **FAST
    )
    valid_texts = [line.split("\t")[0] for line in (data / "valid.txt").read_text().splitlines()]
    assert sorted(seen[0]) == sorted(valid_texts)


def test_a_rejected_int8_model_is_served_on_onnx_not_forced(
    synthetic_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import textcls.inference.export as export

    real = export.export_model
    monkeypatch.setattr(export, "export_model", lambda d, **kw: real(d, **{**kw, "max_drop": -101}))
    out = tmp_path / "auto"
    candidate = Candidate("mean", "mean", "onnx-int8", 1, overrides={**WORD, "epochs": 2})
    board = train_auto(synthetic_dir, out, time_budget=120, candidates=[candidate], **FAST)
    (row,) = board["rows"]
    assert row["status"] == "winner" and row["backend"] == board["backend"] == "onnx"
    assert "served on onnx: int8 model rejected" in row["note"]
    assert not (out / "model.int8.onnx").exists()
    texts = ["rain and snow", "goal match"]
    np.testing.assert_allclose(
        textcls.load(out, backend="onnx").predict_proba(texts),
        textcls.load(out / "candidates" / "mean").predict_proba(texts),
        atol=1e-5,
    )


def test_an_unexpected_error_in_one_candidate_is_a_failed_row(
    synthetic_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import textcls.inference.export as export

    real = export.export_model

    def breaks_for_mean(directory, **kw):
        if Path(directory).name == "mean":
            raise RuntimeError("the exporter crashed")
        return real(directory, **kw)

    monkeypatch.setattr(export, "export_model", breaks_for_mean)
    board = train_auto(synthetic_dir, tmp_path / "auto", time_budget=120, candidates=LADDER[:2], **FAST)
    statuses = {r["candidate"]: r["status"] for r in board["rows"]}
    assert statuses == {"linear": "winner", "mean": "failed: RuntimeError: the exporter crashed"}
    assert "| mean | failed: RuntimeError" in (tmp_path / "auto" / "auto.md").read_text()


def test_a_probed_candidate_trains_for_the_epochs_that_fit_or_is_skipped_with_its_need(
    synthetic_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    """The probe's timing decides (not the cost factor): 100 s an epoch + 10 s for the rest in a
    250 s budget → 2 of 3 epochs; 1000 s an epoch → skipped, saying what it needs."""
    import textcls.auto as auto

    per_epoch = {"mean": 100.0, "huge": 1000.0}
    monkeypatch.setattr(
        auto,
        "_probe",
        lambda c, *a: (per_epoch[c.name], 10.0, 3, f"probe: {per_epoch[c.name]:.0f} s an epoch"),
    )
    ladder = [
        Candidate("mean", "mean", "onnx", 10**9, probe=True, overrides={**WORD, "patience": 0}),
        Candidate("huge", "mean", "onnx", 1, probe=True, overrides=WORD),
    ]
    board = train_auto(synthetic_dir, tmp_path / "auto", time_budget=250, candidates=ladder, **FAST)
    mean, huge = board["rows"]
    assert mean["status"] == "winner" and "trained for 2 of 3 epochs" in mean["note"]
    trained = json.loads((tmp_path / "auto" / "candidates" / "mean" / "train_result.json").read_text())
    assert len(trained["history"]) == 2
    assert huge["status"].startswith("skipped: needs ~50.2 min, ") and huge["status"].endswith(" left")


def test_no_probe_starts_with_too_little_time_left(synthetic_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import textcls.auto as auto

    def never(*args):
        raise AssertionError("probed with too little time left")

    monkeypatch.setattr(auto, "_probe", never)
    monkeypatch.setattr(auto, "PROBE_MIN_SECONDS", 10_000.0)
    ladder = [LADDER[0], Candidate("big", "mean", "onnx", 1, probe=True, overrides=WORD)]
    board = train_auto(synthetic_dir, tmp_path / "auto", time_budget=600, candidates=ladder, **FAST)
    assert (
        board["rows"][1]["status"].startswith("skipped: ")
        and "too little to time it" in board["rows"][1]["status"]
    )
    assert board["winner"] == "linear"


def test_fitting_epochs() -> None:
    from textcls.auto import fitting_epochs

    assert fitting_epochs(60, 30, 3, 1000) == 3  # never more than planned
    assert fitting_epochs(60, 30, 3, 150) == 2
    assert fitting_epochs(60, 30, 3, 89) is None  # not even one epoch after the rest


def test_a_tiny_transformer_is_probed_then_trained_and_served_on_onnx_int8(
    synthetic_dir: Path, tmp_path: Path
) -> None:
    from tiny_backbones import build

    backbone = build("bert", tmp_path / "tiny-bert")
    options = {"epochs": 2, "batch_size": 16, "lr": 5e-3, "target_steps": None, "patience": 0}
    # a cost factor that alone would skip it (10^7 × linear's time): the probe's timing decides
    candidate = Candidate("tiny-bert", str(backbone), "onnx-int8", 10**7, probe=True, overrides=options)
    board = train_auto(
        synthetic_dir, tmp_path / "auto", time_budget=300, candidates=[LADDER[0], candidate], **FAST
    )
    row = board["rows"][1]
    assert row["status"] in ("ok", "winner") and row["note"].startswith("probe: 48 examples trained in")
    assert row["backend"] == "onnx-int8" or "served on onnx: int8 model rejected" in row["note"]


def test_the_command_line_passes_valid_and_test_files(
    synthetic_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import textcls.auto as auto

    real = auto.train_auto
    monkeypatch.setattr(auto, "train_auto", lambda *a, **kw: real(*a, **{**kw, "candidates": LADDER[:1]}))
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text((synthetic_dir / "train.txt").read_text())
    out = tmp_path / "auto"
    args = ["train", "--data", str(data), "--model", "auto", "--out", str(out), "--no-progress"]
    args += ["--valid", str(synthetic_dir / "valid.txt"), "--test", str(synthetic_dir / "test.txt")]
    assert main(args) == 0
    (row,) = json.loads((out / "auto.json").read_text())["rows"]
    assert "test_accuracy" in row
    trained = json.loads((out / "train_result.json").read_text())
    assert trained["data"]["valid"] == str((synthetic_dir / "valid.txt").resolve())
    capsys.readouterr()
    plain = ["train", "--data", str(data), "--out", str(tmp_path / "plain"), "--time-budget", "1m"]
    assert main(plain) == 2
    assert "--time-budget: only with --model auto" in capsys.readouterr().err
    assert main([*plain[:-2], "--pick", "best"]) == 2
    assert "--pick: only with --model auto" in capsys.readouterr().err


def _row(name: str, valid: float, metric: str = "accuracy") -> dict:
    return {"candidate": name, "status": "ok", "metric": metric, "valid": valid}


def _outcomes(gold: list[str], wrong: set[int]) -> Outcomes:
    """Answers that are right except at the indices in ``wrong``."""
    other = {"a": "b", "b": "a"}
    return Outcomes(tuple(gold), tuple(other[g] if i in wrong else g for i, g in enumerate(gold)))


def test_a_costlier_candidate_wins_only_beyond_validation_noise() -> None:
    gold = ["a", "b"] * 150  # 300 validation examples
    cheap = _outcomes(gold, {0, 1, 2, 3, 4, 5})  # 98.0 %
    slightly = _outcomes(gold, {0, 1, 2})  # 99.0 %: three examples better
    clearly = _outcomes(gold, set(range(0, 300, 2)) - set(range(0, 60, 2)))  # 60 %
    rows = [_row("linear", 0.98), _row("cnn", 0.99)]
    winner, note = choose(rows, {"linear": cheap, "cnn": slightly})
    assert winner is rows[0] and winner["p_best_not_better"] == 0.125 and note is None  # 1/2³
    assert "cnn leads by 1.00 points on its served validation answers, within noise" in winner["note"]
    # --pick best: the best validation metric, however small its lead
    rows = [_row("linear", 0.98), _row("cnn", 0.99)]
    assert choose(rows, {"linear": cheap, "cnn": slightly}, None) == (rows[1], None)
    # a clear lead is kept: the cheap one is beaten beyond noise, and says so
    rows = [_row("linear", 0.60), _row("cnn", 0.98)]
    winner, note = choose(rows, {"linear": clearly, "cnn": cheap})
    assert winner is rows[1] and rows[0]["p_best_not_better"] < 0.05 and note is None
    assert rows[0]["note"].startswith("cnn better beyond noise (p = 0.000")
    # one over a limit is never chosen; one whose answers are unknown is not compared, and the
    # leaderboard says the best won untested
    rows = [_row("linear", 0.98), _row("mean", 0.985), _row("cnn", 0.99)]
    rows[0]["status"] = "over latency (5.000 > 1 ms)"
    winner, note = choose(rows, {"linear": cheap, "cnn": slightly})
    assert winner is rows[2] and "p_best_not_better" not in rows[1]
    assert note == (
        "mean not tested against cnn for noise (no paired test of accuracy on their validation "
        "answers): the best validation metric wins"
    )
    assert choose([{**_row("linear", 0.9), "status": "failed: x"}], {}) == (None, None)


def test_the_paired_test_is_mcnemars_for_accuracy_and_declines_what_it_cannot_pair() -> None:
    from scipy.stats import binomtest  # the exact one-sided binomial tail, as a check

    from textcls.auto import _macro_f1_rows
    from textcls.metrics import macro_f1

    gold = tuple("ab" * 100)
    other = {"a": "b", "b": "a"}
    # the best is right and the other wrong on 7 examples, the reverse on 1, both right elsewhere
    best = Outcomes(gold, tuple(other[g] if i == 10 else g for i, g in enumerate(gold)))
    worse = Outcomes(gold, tuple(other[g] if i < 7 else g for i, g in enumerate(gold)))
    exact = binomtest(7, 8, alternative="greater").pvalue  # 9/256
    assert paired_p_value(best, worse, "accuracy") == pytest.approx(exact) == 9 / 256
    assert paired_p_value(worse, best, "accuracy") > 0.9
    # macro-F1 of many prediction rows at once equals the metric's own definition, row by row
    rng = np.random.default_rng(1)
    labels, rows = rng.integers(0, 4, 200), rng.integers(0, 5, (3, 200))  # label 4: predicted only
    expected = [macro_f1(labels.tolist(), row.tolist()) for row in rows]
    np.testing.assert_allclose(_macro_f1_rows(labels, rows, 5), expected)
    texts = tuple(str(v) for v in labels)
    good, bad = Outcomes(texts, texts), Outcomes(texts, tuple(str(v) for v in rows[0]))
    assert paired_p_value(good, bad, "macro_f1") < 0.01
    assert paired_p_value(good, Outcomes(texts[1:], texts[1:]), "accuracy") is None  # other examples
    assert paired_p_value(good, bad, "loss") is None
    several = Outcomes((("a", "b"), ("a",)), (("a", "b"), ()))
    assert paired_p_value(several, several, "macro_f1") is None
    assert paired_p_value(several, several, "accuracy") == 1.0  # equal: never better


def test_pick_is_checked_and_reaches_the_leaderboard(synthetic_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pick must be one of cheapest, best"):
        train_auto(synthetic_dir, tmp_path / "x", candidates=LADDER[:1], pick="fastest", **FAST)
    board = train_auto(synthetic_dir, tmp_path / "auto", candidates=LADDER[:1], pick="best", **FAST)
    assert board["pick"] == "best"
    assert "(the best validation metric)" in (tmp_path / "auto" / "auto.md").read_text()
