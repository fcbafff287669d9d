"""The network: embedder → encoder → head, built from a ``ModelConfig`` alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from textcls.config import ClassifierConfig, ModelConfig
from textcls.data.tokenizer import Vocab
from textcls.embeddings.word import WordEmbedder
from textcls.errors import ConfigError, ModelLoadError
from textcls.registry import ENCODERS

CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, LABELS_FILE = (
    "config.json",
    "model.safetensors",
    "vocab.txt",
    "labels.json",
)


class ClassificationHead(nn.Module):
    """Dropout + linear layer → ``logits``. Softmax is applied by the loss / predictor."""

    def __init__(self, input_dim: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(input_dim, num_labels)

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features["logits"] = self.linear(self.dropout(features["sentence_embedding"]))
        return features


class TextClassificationModel(nn.Module):
    """Passes one dict of named tensors through its components; returns it with ``logits``."""

    def __init__(
        self, config: ModelConfig, vocab_size: int, dim: int, weights: np.ndarray | None = None
    ) -> None:
        super().__init__()
        if len(config.labels) < 2:
            raise ConfigError(f"need at least two labels to classify, got {config.labels}")
        self.config = config
        num_labels = len(config.labels)
        self.embedder = WordEmbedder(
            vocab_size, dim, config.embedding.trainable, config.embedding.dropout, weights
        )
        encoder_class = ENCODERS.get(config.encoder.name)
        try:
            self.encoder = encoder_class(dim, num_labels, **config.encoder.params)
        except TypeError as error:
            raise ConfigError(f"encoder '{config.encoder.name}': bad parameters: {error}") from None
        self.head = (
            nn.Identity()
            if self.encoder.produces_logits
            else ClassificationHead(self.encoder.output_dim, num_labels, config.head_dropout)
        )

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features = dict(features)
        return self.head(self.encoder(self.embedder(features)))

    @property
    def dim(self) -> int:
        return self.embedder.output_dim


def save_model(
    directory: str | Path, model: TextClassificationModel, vocab: Vocab, config: ClassifierConfig
) -> None:
    """Write config.json, model.safetensors, vocab.txt and labels.json (no pickles)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config.save(directory / CONFIG_FILE)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {"vocab_size": str(len(vocab)), "dim": str(model.dim), "format": "textcls"}
    _atomic(directory / WEIGHTS_FILE, lambda p: save_file(state, str(p), metadata=metadata))
    vocab.save(directory / VOCAB_FILE)
    labels = config.model.labels
    (directory / LABELS_FILE).write_text(
        json.dumps({"labels": labels, "label2id": {l: i for i, l in enumerate(labels)}}, indent=2) + "\n",
        encoding="utf-8",
    )


def load_model(directory: str | Path) -> tuple[TextClassificationModel, Vocab, ClassifierConfig]:
    """Rebuild a model from its directory: config + safetensors weights + vocabulary."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(f"model directory not found: {directory}")
    for name in (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE):
        if not (directory / name).is_file():
            hint = " (pickled .bin/.pt weights are never loaded)" if name == WEIGHTS_FILE else ""
            raise ModelLoadError(f"{directory}: missing {name}{hint}")
    config = ClassifierConfig.load(directory / CONFIG_FILE)
    vocab = Vocab.load(directory / VOCAB_FILE)
    with safe_open(str(directory / WEIGHTS_FILE), framework="pt") as handle:
        dim = int(handle.metadata()["dim"])
    model = TextClassificationModel(config.model, len(vocab), dim)
    try:
        missing, unexpected = model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=False)
    except RuntimeError as error:  # shapes differ from what config.json describes
        raise ModelLoadError(f"{directory}: weights do not match config.json: {error}") from None
    if missing or unexpected:
        raise ModelLoadError(
            f"{directory}: weights do not match config.json (missing {missing}, unexpected {unexpected})"
        )
    model.eval()
    return model, vocab, config


def _atomic(path: Path, write) -> None:
    """Write through a temporary file and rename, so a crash never leaves a half-written file."""
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    temporary.replace(path)
