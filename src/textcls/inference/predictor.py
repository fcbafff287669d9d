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
from textcls.decision import Decision, softmax  # noqa: F401  (softmax: the name users import)
from textcls.errors import ConfigError

Prediction = dict[str, Any]


class Predictor(ABC):
    """Base class of every backend: a backend computes logits; the model's ``Decision`` (from its
    config: calibration, multi-label thresholds, out of scope) turns them into answers."""

    backend: str = "?"
    labels: list[str]
    decision: Decision | None = None  # set by the backend from the model's config
    golden: dict[str, Any] | None = None  # load_predictor's golden-input check (textcls.integrity)

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

    def decider(self) -> Decision:
        """The model's decision rule (a backend without one decides by plain softmax)."""
        if self.decision is None:
            from textcls.config import ModelConfig

            self.decision = Decision(ModelConfig(labels=list(self.labels)))
        return self.decision

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        """Calibrated probabilities [len(texts), labels]: softmax rows, or one sigmoid per label
        for a multi-label model."""
        return self.decider().probabilities(self.logits(texts, batch_size))

    def predict(
        self,
        texts: Sequence[TextInput],
        top_k: int | None = None,
        batch_size: int = 64,
        threshold: float | None = None,
    ) -> list[Prediction] | list[list[Prediction]]:
        """One label per text: one ``{"label", "score"}`` per text (``top_k`` > 1: a ranked list);
        an out-of-scope answer names the out-of-scope label with ``"out_of_scope": true``, and
        ``threshold`` replaces the model's abstention threshold. Multi-label: a list per text of
        every label at or above its threshold (``threshold`` replaces them), at most ``top_k``."""
        if isinstance(texts, str):
            raise TypeError("predict takes a list of texts; wrap a single text in a list")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"top_k must be at least 1, got {top_k}")
        decision = self.decider()
        answers = decision.answers(self.predict_proba(texts, batch_size), top_k, threshold)
        if decision.multi_label or (top_k or 1) > 1:
            return answers
        return [ranked[0] for ranked in answers]

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

    if model.training:  # eval() sets every module: 1.16x on the SNIPS CNN at batch 1 (idle)
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
        self,
        model: Any,
        featurizer: Any,
        labels: list[str],
        device: str = "cpu",
        backend: str = "torch",
        decision: Decision | None = None,
    ) -> None:
        import torch

        self.model = model.to(device).eval()
        self.featurizer = featurizer
        self.labels = labels
        self.device = torch.device(device)
        self.backend = backend
        config = getattr(model, "config", None)  # a TextClassificationModel's ModelConfig
        if decision is None and hasattr(config, "decision") and list(config.labels) == list(labels):
            decision = Decision(config)
        self.decision = decision

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

    ``threads`` sets the intra-op threads of torch and of ONNX Runtime. The directory's files are
    checked against its manifest first, and the backend must give its golden inputs the saved
    scores (``textcls.integrity``): a changed file or a broken backend is a ModelLoadError.

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
    from textcls.integrity import golden_check, verify_manifest
    from textcls.model import WEIGHTS_FILE

    opener = BACKENDS.get(backend)
    # an ONNX deployment may leave the PyTorch weights out
    verify_manifest(directory, optional=[WEIGHTS_FILE] if backend.startswith("onnx") else [])
    predictor = opener(directory, threads=threads)
    predictor.golden = golden_check(predictor, directory, backend)
    return predictor


def torch_backend(directory: str | Path, threads: int | None = None) -> TorchPredictor:
    from textcls.model import load_model

    model, featurizer, config = load_model(directory, verify=False)  # load_predictor verified it
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

    model, featurizer, config = load_model(directory, verify=False)  # load_predictor verified it
    return TorchPredictor(quantize_torch(model.cpu()), featurizer, config.model.labels, backend="torch-int8")
