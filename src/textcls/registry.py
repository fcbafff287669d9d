"""The one place that maps config names to classes.

Entries are ``"module:attribute"`` strings imported on first use, so ``import textcls`` stays light
and a new component is one new file plus one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from textcls.errors import ConfigError


class Registry:
    """A name → lazily imported object table with helpful errors.

    >>> ENCODERS.names()[:2]
    ['cnn', 'densenet-cnn']
    """

    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self._entries = dict(entries)
        self._loaded: dict[str, Any] = {}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def register(self, name: str, target: str) -> None:
        """Add an entry (``"package.module:Class"``); plugins can call this."""
        self._entries[name] = target
        self._loaded.pop(name, None)

    def get(self, name: str) -> Any:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}")
        if name not in self._loaded:
            module_name, attribute = self._entries[name].split(":")
            self._loaded[name] = getattr(importlib.import_module(module_name), attribute)
        return self._loaded[name]


ENCODERS = Registry(
    "encoder",
    {
        "mean": "textcls.encoders.mean:MeanEncoder",
        "gnb": "textcls.encoders.gnb:GaussianNBEncoder",
        "cnn": "textcls.encoders.cnn:CNNEncoder",
        "densenet-cnn": "textcls.encoders.densenet:DenseNetCNNEncoder",
        "densenet-dsa": "textcls.encoders.densenet:DenseNetDSAEncoder",
        "lstm": "textcls.encoders.lstm:BiLSTMEncoder",
        "linear": "textcls.encoders.linear:LinearEncoder",
        "cls": "textcls.encoders.cls:CLSEncoder",
    },
)

# Word-vector sources: name -> loader class (see embeddings/vectors.py). Paths are handled there.
VECTORS = Registry(
    "vectors",
    {
        "glove-6b-50d": "textcls.embeddings.vectors:PackagedGloVe",
        "spacy-md-300d": "textcls.embeddings.vectors:SpacyVectors",
        "random": "textcls.embeddings.vectors:RandomVectors",
    },
)

# Transformer backbones shipped as Python packages: name -> function returning the directory.
BACKBONES = Registry("backbone", {"minilm-l6": "textcls.embeddings.transformer:minilm_l6"})

# Presets: what `--model NAME` means. Word-model presets are an encoder over the default vectors;
# a transformer preset is a backbone with the `cls` head and fine-tuning defaults (which a config
# file or explicit options override).
DEFAULT_VECTORS = "glove-6b-50d"
DEFAULT_MODEL = "cnn"
# Fine-tuning defaults: the pretrained weights at 5e-5, the new head at 1e-3 (it starts from
# nothing), and as many passes as reach 1,500 optimizer steps (3 to 10 epochs): a 5k-example,
# 50-class set gets 10 epochs, SST-2 3 (BENCHMARKS.md, "Transformer defaults").
TRANSFORMER_TRAIN_DEFAULTS = {
    "lr": 1e-3,
    "backbone_lr": 5e-5,
    "batch_size": 32,
    "epochs": 10,
    "target_steps": 1500,
    "patience": 2,
    "warmup_ratio": 0.1,
}
# The bottom of the ladder. A preset may set any part of the model config ("model") and training
# defaults ("train"); a config file and explicit options override both.
LINEAR_PRESET = {
    "encoder": "linear",
    # words and word bigrams as vocabulary entries, counted; documents are never cut
    "model": {
        "tokenizer": {"word_ngrams": 2, "char_ngrams": "auto", "bag": True, "max_length": 1_000_000},
        "head_dropout": 0.0,
    },
}
FASTTEXT_PRESET = {
    "encoder": "mean",
    "vectors": DEFAULT_VECTORS,
    # Joulin et al. 2017: the mean of word and hashed word-bigram embeddings, then a linear layer,
    # trained as fastText is: plain SGD on sparse rows with a linearly decaying learning rate
    "model": {
        "tokenizer": {
            "word_ngrams": 2,
            "char_ngrams": "auto",  # 2,3 for Korean (and unspaced scripts), none for English
            "ngram_buckets": 100_000,
            "max_length": 1_000_000,
        },
        "embedding": {"sparse": True, "oov_init": "uniform"},  # fastText's initialisation
        "head_dropout": 0.0,
    },
    "train": {
        "epochs": 20,
        "patience": 3,
        "optimizer": "sgd",
        "lr": 5.0,
        "batch_size": 16,
        "weight_decay": 0.0,
        "grad_clip": 0.0,
        "warmup_ratio": 0.0,
    },
}
PRESETS: dict[str, dict] = {
    **{
        name: {"encoder": name, "vectors": DEFAULT_VECTORS}
        for name in ENCODERS.names()
        if name not in ("cls", "linear")
    },
    "linear": LINEAR_PRESET,
    "fasttext": FASTTEXT_PRESET,
    **{
        name: {"encoder": "cls", "backbone": name, "train": TRANSFORMER_TRAIN_DEFAULTS}
        for name in BACKBONES.names()
    },
}

# Inference backends: name -> factory(model_directory, threads=None) -> Predictor.
BACKENDS = Registry(
    "backend",
    {
        "torch": "textcls.inference.predictor:torch_backend",
        "torch-int8": "textcls.inference.predictor:torch_int8_backend",
        "onnx": "textcls.inference.onnx:onnx_backend",
        "onnx-int8": "textcls.inference.onnx:onnx_int8_backend",
        "numpy": "textcls.inference.bag:numpy_backend",  # bag-of-n-gram models only
    },
)
