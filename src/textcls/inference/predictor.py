"""The ``Predictor`` interface: raw texts in, label scores out, whatever runs underneath.

evaluate, predict, bench and serve use only this interface. Tokenization belongs to the predictor,
so a backend never needs the training code.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textcls.data.fields import TextInput  # a text, a sentence pair, or {field: text}
from textcls.errors import ConfigError

Prediction = dict[str, Any]


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

    @property
    def fields(self) -> list[str]:
        """The named text fields the model reads ([]: one unnamed text)."""
        return list(getattr(getattr(self, "featurizer", None), "fields", []) or [])

    def count_long(self, texts: Sequence[TextInput]) -> int | None:
        """How many texts exceed the model's max_length (None when a backend cannot tell)."""
        return None

    def truncation(self, texts: Sequence[TextInput]) -> dict[str, int] | None:
        """Texts the model cuts and tokens it drops (``max_length``, ``max_chunks``); None when a
        backend cannot tell."""
        featurizer = getattr(self, "featurizer", None)
        return featurizer.truncation(texts) if hasattr(featurizer, "truncation") else None

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


def sorted_logits(encoded: Sequence[Any], length: Any, batch_size: int, run_batch: Any) -> np.ndarray:
    """Run ``run_batch(items) -> logits`` over length-sorted batches (little padding); the rows
    come back in input order."""
    from textcls.data.batching import sorted_batches

    if len(encoded) == 1:  # batch size 1: nothing to sort
        return np.asarray(run_batch(list(encoded)), dtype=np.float32)
    out: np.ndarray | None = None
    for indices in sorted_batches([length(item) for item in encoded], batch_size):
        logits = run_batch([encoded[i] for i in indices])
        if out is None:
            out = np.zeros((len(encoded), logits.shape[1]), np.float32)
        out[indices] = logits
    return out if out is not None else np.zeros((0, 0), np.float32)


def predict_logits(
    model: Any, featurizer: Any, encoded: Sequence[Any], batch_size: int, device: Any
) -> np.ndarray:
    """Logits in input order, computed over length-sorted batches."""
    import torch

    model.eval()

    def run(items: list[Any]) -> np.ndarray:
        batch = {k: v.to(device) for k, v in featurizer.collate(items).items()}
        return model(batch)["logits"].float().cpu().numpy()

    with torch.inference_mode():
        return sorted_logits(encoded, featurizer.length, batch_size, run)


class TorchPredictor(Predictor):
    """Eager PyTorch on CPU or GPU (``torch-int8``: the same with dynamically quantized layers)."""

    backend = "torch"

    def __init__(
        self, model: Any, featurizer: Any, labels: list[str], device: str = "cpu", backend: str = "torch"
    ) -> None:
        import torch

        self.model = model.to(device).eval()
        self.featurizer = featurizer
        self.labels = labels
        self.device = torch.device(device)
        self.backend = backend

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
    """Open a model directory with the chosen backend (see ``BACKENDS`` in the registry).

    ``threads`` sets the intra-op threads of torch and of ONNX Runtime.

    >>> predictor = load_predictor("runs/snips-cnn", backend="onnx-int8", threads=2)  # doctest: +SKIP
    >>> predictor.predict(["play some jazz"])  # doctest: +SKIP
    [{'label': 'PlayMusic', 'score': 0.99}]
    """
    from textcls.registry import BACKENDS

    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    if threads:
        import torch

        torch.set_num_threads(threads)
    return BACKENDS.get(backend)(directory, threads=threads)


def torch_backend(directory: str | Path, threads: int | None = None) -> TorchPredictor:
    from textcls.model import load_model

    model, featurizer, config = load_model(directory)
    return TorchPredictor(model, featurizer, config.model.labels)


def quantize_torch(model: Any) -> Any:
    """Dynamic int8 quantization of every Linear and LSTM layer (weights int8, activations
    quantized on the fly); embeddings and convolutions stay fp32."""
    import torch
    from torch import nn

    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear, nn.LSTM}, dtype=torch.qint8)


def torch_int8_backend(directory: str | Path, threads: int | None = None) -> TorchPredictor:
    from textcls.model import load_model

    model, featurizer, config = load_model(directory)
    return TorchPredictor(quantize_torch(model.cpu()), featurizer, config.model.labels, backend="torch-int8")
