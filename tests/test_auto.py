"""``--model auto``: the ladder within a time budget and limits, a leaderboard, a normal winner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import textcls
from textcls.auto import Candidate, parse_budget, train_auto
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
    others = [r["valid"] for r in board["rows"] if r["status"] == "ok"]
    assert all(winner["valid"] >= v for v in others)
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
