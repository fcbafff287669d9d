"""The ``Predictor`` interface: raw texts in, label scores out, whatever runs underneath.

evaluate, predict, bench and serve use only this interface. Tokenization belongs to the predictor,
so a backend never needs the training code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textcls.errors import ConfigError

Prediction = dict[str, Any]
TextInput = str | tuple[str, str]  # a text, or a sentence pair


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Predictor(ABC):
    """Base class of every backend."""

    backend: str = "?"
    labels: list[str]

    @abstractmethod
    def logits(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        """Raw scores [len(texts), num_labels], in input order."""

    def count_long(self, texts: Sequence[TextInput]) -> int | None:
        """How many texts exceed the model's max_length (None when a backend cannot tell)."""
        return None

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        return softmax(self.logits(texts, batch_size))

    def predict(
        self, texts: Sequence[TextInput], top_k: int = 1, batch_size: int = 64
    ) -> list[Prediction] | list[list[Prediction]]:
        """``top_k=1``: one ``{"label", "score"}`` per text; more: a ranked list per text."""
        if isinstance(texts, str):
            raise TypeError("predict takes a list of texts; wrap a single text in a list")
        if top_k < 1:
            raise ConfigError(f"top_k must be at least 1, got {top_k}")
        probabilities = self.predict_proba(texts, batch_size)
        k = min(top_k, len(self.labels))
        ranked = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        results = [
            [{"label": self.labels[j], "score": float(row[j])} for j in order]
            for row, order in zip(probabilities, ranked, strict=True)
        ]
        return [r[0] for r in results] if top_k == 1 else results

    @property
    def threads(self) -> int:
        import torch

        return torch.get_num_threads()


def predict_logits(
    model: Any, featurizer: Any, encoded: Sequence[Any], batch_size: int, device: Any
) -> np.ndarray:
    """Logits in input order, computed over length-sorted batches (little padding)."""
    import torch

    from textcls.data.batching import sorted_batches

    model.eval()
    out: np.ndarray | None = None
    with torch.inference_mode():
        for indices in sorted_batches([featurizer.length(item) for item in encoded], batch_size):
            batch = {k: v.to(device) for k, v in featurizer.collate([encoded[i] for i in indices]).items()}
            logits = model(batch)["logits"].float().cpu().numpy()
            if out is None:
                out = np.zeros((len(encoded), logits.shape[1]), np.float32)
            out[indices] = logits
    return out if out is not None else np.zeros((0, 0), np.float32)


class TorchPredictor(Predictor):
    """Eager PyTorch on CPU or GPU."""

    backend = "torch"

    def __init__(self, model: Any, featurizer: Any, labels: list[str], device: str = "cpu") -> None:
        import torch

        self.model = model.to(device).eval()
        self.featurizer = featurizer
        self.labels = labels
        self.device = torch.device(device)

    def logits(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return predict_logits(
            self.model, self.featurizer, self.featurizer.encode(texts), batch_size, self.device
        )

    def count_long(self, texts: Sequence[TextInput]) -> int:
        """How many texts are longer than the model's max_length (truncated, split or cut)."""
        return self.featurizer.count_long(texts)


def load_predictor(directory: str | Path, backend: str = "torch", threads: int | None = None) -> Predictor:
    """Open a model directory with the chosen backend.

    >>> predictor = load_predictor("runs/snips-cnn")  # doctest: +SKIP
    >>> predictor.predict(["play some jazz"])  # doctest: +SKIP
    [{'label': 'PlayMusic', 'score': 0.99}]
    """
    from textcls.registry import BACKENDS

    if threads:
        import torch

        torch.set_num_threads(threads)
    return BACKENDS.get(backend)(directory)


def torch_backend(directory: str | Path) -> TorchPredictor:
    from textcls.model import load_model

    model, featurizer, config = load_model(directory)
    return TorchPredictor(model, featurizer, config.model.labels)
