"""Shared fixtures: a tiny synthetic data set, the real SNIPS copy and small training settings."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

SNIPS = Path(__file__).resolve().parents[1] / "data" / "snips"

# Three classes whose words never overlap: any working classifier separates them.
CLASS_WORDS = {
    "music": ["song", "album", "guitar", "band", "playlist", "jazz", "singer", "concert", "melody", "drum"],
    "sports": ["goal", "match", "team", "score", "player", "coach", "league", "ball", "win", "stadium"],
    "weather": ["rain", "sunny", "cloud", "storm", "wind", "forecast", "snow", "cold", "warm", "temperature"],
}
SPLIT_SIZES = {"train": 30, "valid": 8, "test": 8}  # examples per class and split

# Keyword arguments for a tiny, fast TextClassifier (random 16-d vectors, 8 filters, CPU).
TINY = {
    "model": "cnn",
    "vectors": "random",
    "vectors_dim": 16,
    "epochs": 3,
    "batch_size": 16,
    "lr": 1e-2,
    "patience": 0,
    "tensorboard": False,
    "cpu": True,
    "encoder_params": {"num_filters": 8, "kernel_sizes": [2, 3]},
}


# Small encoder settings per word encoder, so every kind trains in well under a second.
SMALL_ENCODER_PARAMS = {
    "cnn": {"num_filters": 8, "kernel_sizes": [2, 3]},
    "densenet-cnn": {"first_filters": 8, "growth": 4, "depth": 2, "last_filters": 8},
    "densenet-dsa": {
        "first_filters": 8,
        "growth": 4,
        "depth": 2,
        "last_filters": 8,
        "num_heads": 2,
        "head_dim": 4,
    },
    "lstm": {"hidden_size": 8},
    "gnb": {},
    "mean": {},
    "linear": {},
}


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models run fastest single-threaded, and the tests must not fight for shared cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_examples(per_class: int, seed: int) -> list[tuple[str, str]]:
    """``per_class`` (text, label) pairs per class, texts of 3-8 words of the class vocabulary."""
    rng = random.Random(seed)
    examples = [
        (" ".join(rng.choices(words, k=rng.randint(3, 8))), label)
        for label, words in CLASS_WORDS.items()
        for _ in range(per_class)
    ]
    rng.shuffle(examples)
    return examples


def write_tsv(path: Path, examples: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{text}\t{label}\n" for text, label in examples), encoding="utf-8")
    return path


def served_scores(directory: Path, backend: str, text: str) -> dict[str, float]:
    """label → score for ``text`` from the model server (``textcls.serve``) serving ``directory``."""
    pytest.importorskip("fastapi", reason="pip install 'textcls[serve]'")
    from fastapi.testclient import TestClient

    from textcls.serve.app import ServeSettings, create_app

    settings = ServeSettings(
        models={"pruned": str(directory)}, model_store=str(directory.parent), backend=backend
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        response = client.post("/predictions/pruned", data={"data": text})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="session")
def synthetic_splits() -> dict[str, list[tuple[str, str]]]:
    """{"train", "valid", "test"} → (text, label) pairs (90 / 24 / 24 examples, 3 classes)."""
    return {split: make_examples(n, seed) for seed, (split, n) in enumerate(SPLIT_SIZES.items())}


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory, synthetic_splits) -> Path:
    """A data directory with train.txt / valid.txt / test.txt (text<TAB>label)."""
    root = tmp_path_factory.mktemp("synthetic")
    for split, examples in synthetic_splits.items():
        write_tsv(root / f"{split}.txt", examples)
    return root


@pytest.fixture(scope="session")
def snips_dir() -> Path:
    """The real SNIPS copy (train / valid / test .txt, text<TAB>label)."""
    if not (SNIPS / "train.txt").is_file():
        pytest.skip(f"SNIPS data not found at {SNIPS}")
    return SNIPS
