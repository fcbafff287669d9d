"""Every shipped config under configs/ trains: each file is read as a user would (``--config``),
trained for one epoch on a small SNIPS subset, saved, reloaded and used to predict. A new file
under configs/ is picked up by the glob; search spaces (configs/search/) are run in test_search.py."""

from __future__ import annotations

from pathlib import Path

import pytest

import textcls
from textcls.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_shipped_configs() -> None:
    assert len(CONFIGS) >= 3


@pytest.fixture(scope="module")
def snips_subset(snips_dir: Path, tmp_path_factory) -> Path:
    """60 training lines (several intents), 30 validation lines, 30 test lines."""
    root = tmp_path_factory.mktemp("snips-subset")
    for split, n in (("train", 60), ("valid", 30), ("test", 30)):
        lines = (snips_dir / f"{split}.txt").read_text(encoding="utf-8").splitlines(keepends=True)
        (root / f"{split}.txt").write_text("".join(lines[:: max(1, len(lines) // n)][:n]), encoding="utf-8")
    return root


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_shipped_config_trains_saves_and_predicts(config: Path, snips_subset: Path, tmp_path: Path) -> None:
    from textcls.config import read_config_file

    shipped = read_config_file(config)
    vectors = shipped.get("model", {}).get("embedding", {}).get("vectors", "glove-6b-50d")
    if vectors.startswith("spacy"):
        pytest.importorskip("spacy", reason="pip install 'textcls[spacy]'")
    out = tmp_path / "model"
    # the file as shipped, one epoch and a small vocabulary extension so the test stays short
    args = ["train", "--data", str(snips_subset), "--config", str(config), "--out", str(out)]
    args += ["--epochs", "1", "--extra-vocab", "200", "--no-progress", "--no-tensorboard", "--cpu"]
    assert main(args) == 0
    classifier = textcls.load(out)
    saved = classifier.config
    assert saved.model.encoder.name == shipped["model"]["encoder"]["name"]
    assert saved.model.encoder.params == shipped["model"]["encoder"].get("params", {})
    assert saved.model.embedding.vectors == vectors
    for key, value in shipped.get("train", {}).items():
        if key != "epochs":
            assert getattr(saved.train, key) == value, key
    predictions = classifier.predict(["play some jazz", "will it rain tomorrow"])
    assert all(p["label"] in classifier.labels for p in predictions)
    assert (out / "eval" / "test" / "report.json").is_file()  # the test split was evaluated
