"""The network: embedder → encoder → head, built from a ``ModelConfig`` alone.

Word models and transformers share this class: the embedder is word vectors or a Hugging Face
backbone, and an encoder with ``native_head`` (``cls`` over a transformer) hands the whole job to
the backbone's own sequence-classification head so the saved directory is a standard
``AutoModelForSequenceClassification`` one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textcls.config import ClassifierConfig, ModelConfig
from textcls.errors import ConfigError, ModelLoadError
from textcls.registry import ENCODERS

CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, LABELS_FILE = (
    "config.json",
    "model.safetensors",
    "vocab.txt",
    "labels.json",
)
BACKBONE_DIR = "backbone"  # HF config + tokenizer of a transformer under a non-native head


class ClassificationHead(nn.Module):
    """Dropout + linear layer → ``logits``. Softmax is applied by the loss / predictor."""

    def __init__(self, input_dim: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(input_dim, num_labels)

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features["logits"] = self.linear(self.dropout(features["sentence_embedding"]))
        return features


def uses_native_head(config: ModelConfig) -> bool:
    return config.backbone is not None and getattr(ENCODERS.get(config.encoder.name), "native_head", False)


class TextClassificationModel(nn.Module):
    """Passes one dict of named tensors through its components; returns it with ``logits``.

    Word models need ``vocab_size`` and ``dim`` (and initial ``weights``); transformer models
    need the loaded ``backbone`` module.
    """

    def __init__(
        self,
        config: ModelConfig,
        vocab_size: int = 0,
        dim: int = 0,
        weights: np.ndarray | None = None,
        backbone: nn.Module | None = None,
        fields: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if len(config.labels) < 2:
            raise ConfigError(f"need at least two labels to classify, got {config.labels}")
        self.config = config
        self.parts = 1  # word models reading two fields apart: 2 (see below)
        self.clusters: nn.Embedding | None = None  # --cluster-features (see below)
        num_labels = len(config.labels)
        if config.backbone is not None and backbone is None:
            raise ConfigError("a transformer model needs its backbone module")
        if uses_native_head(config):
            from textcls.embeddings.transformer import NativeClassifier

            if config.backbone.layer_mix:
                raise ConfigError(
                    "--layer-mix feeds a head the mix of every layer: use --encoder mean, cnn or "
                    "densenet-cnn (cls is the backbone's own head on its last layer)"
                )

            self.embedder, self.encoder, self.head = NativeClassifier(backbone), nn.Identity(), nn.Identity()
            return
        encoder_class = ENCODERS.get(config.encoder.name)
        input_dim = vocab_size  # an encoder that reads ids (linear) sees one input per vocabulary row
        if backbone is not None:
            from textcls.embeddings.transformer import TransformerEmbedder

            self.embedder = TransformerEmbedder(backbone, config.backbone.layer_mix, config.gamma)
            input_dim = self.embedder.output_dim
        elif getattr(encoder_class, "reads_ids", False):
            self.embedder = nn.Identity()
        elif config.bilm is not None:  # --embedder bilm:DIR: the ELMo mix of a pretrained biLM
            from textcls.embeddings.bilm import BiLMEmbedder

            embedding = config.embedding
            self.embedder = BiLMEmbedder(
                config.bilm,
                vocab_size,
                config.gamma,
                embedding.freeze_bilm,
                embedding.dropout,
                embedding.bilm_word_dim,
            )
            input_dim = dim = self.embedder.output_dim
        else:
            from textcls.embeddings.word import WordEmbedder

            rows = vocab_size + config.tokenizer.ngram_buckets  # hashed n-grams follow the words
            embedding = config.embedding
            self.embedder = WordEmbedder(
                rows, dim, embedding.trainable, embedding.dropout, weights, sparse=embedding.sparse
            )
            input_dim = self.embedder.output_dim
        # word models reading two fields apart: each through the encoder, then concatenated
        if backbone is None:
            from textcls.data.batching import split_fields

            self.parts = split_fields(fields, config.tokenizer.bag)
        separate = self.parts > 1 and config.field_weights == "separate"
        try:
            encoders = [
                encoder_class(input_dim, num_labels, **config.encoder.params)
                for _ in range(self.parts if separate else 1)
            ]
        except TypeError as error:
            raise ConfigError(f"encoder '{config.encoder.name}': bad parameters: {error}") from None
        self.encoder = encoders[0] if len(encoders) == 1 else nn.ModuleList(encoders)
        if self.parts > 1 and encoders[0].produces_logits:
            raise ConfigError(
                f"encoder '{config.encoder.name}' cannot read two fields apart; use one field or "
                "an encoder with a sentence representation (cnn, lstm, mean, densenet-cnn)"
            )
        head_dim = encoders[0].output_dim * self.parts
        if config.cluster_features:  # one learned vector per k-means cluster
            if (
                backbone is not None
                or encoders[0].produces_logits
                or getattr(encoder_class, "reads_ids", False)
            ):
                raise ConfigError(
                    "cluster features are for word models with a sentence representation (cnn, "
                    "lstm, mean/fasttext, densenet-cnn), not transformers, linear or gnb"
                )
            width = dim if config.cluster_mode == "add" else config.cluster_dim
            self.clusters = nn.Embedding(config.cluster_features, width)
            if config.cluster_mode == "add":  # at the scale of the word vectors it is added to
                scale = float(np.std(weights)) if weights is not None else 0.1
                nn.init.normal_(self.clusters.weight, std=scale or 0.1)
            else:
                head_dim += width
        self.head = (
            nn.Identity()
            if encoders[0].produces_logits
            else ClassificationHead(head_dim, num_labels, config.head_dropout)
        )

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.parts > 1 or self.clusters is not None:
            return self.head(self._encode_parts(dict(features)))
        features = self.head(self.encoder(self.embedder(dict(features))))
        if "doc_index" in features:  # long documents split into windows: one row per document
            from textcls.embeddings.transformer import aggregate_windows

            how = self.config.backbone.aggregate if self.config.backbone else "mean"
            features["logits"] = aggregate_windows(features["logits"], features["doc_index"], how)
        return features

    def _encode_parts(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each field's tensors (``input_ids``, ``input_ids__1``, ...) through the embedder and its
        encoder (shared or its own); their sentence representations concatenated."""
        from textcls.data.batching import part_suffixes

        cluster = self.clusters(features["cluster_ids"]) if self.clusters is not None else None
        add = cluster is not None and self.config.cluster_mode == "add"
        pooled = []
        for k, suffix in enumerate(part_suffixes(self.parts)):
            part = {name: features[name + suffix] for name in ("input_ids", "attention_mask")}
            encoder = self.encoder[k] if isinstance(self.encoder, nn.ModuleList) else self.encoder
            part = self.embedder(part)
            if add:  # mode 5: the cluster vector added to every token embedding
                part["token_embeddings"] = part["token_embeddings"] + cluster.unsqueeze(1)
            pooled.append(encoder(part)["sentence_embedding"])
        if cluster is not None and not add:  # mode 4: joined to the sentence representation
            pooled.append(cluster)
        features["sentence_embedding"] = torch.cat(pooled, dim=-1) if len(pooled) > 1 else pooled[0]
        return features

    @property
    def dim(self) -> int:
        return int(getattr(self.embedder, "output_dim", 0))

    def backbone_parameter_names(self) -> set[str]:
        """Names of the pretrained transformer's parameters (they get ``backbone_lr``)."""
        if self.config.backbone is None:
            return set()
        from textcls.embeddings.transformer import NativeClassifier

        prefix = "embedder.backbone."
        if isinstance(self.embedder, NativeClassifier):
            prefix = f"embedder.model.{self.embedder.model.base_model_prefix}."
        return {name for name, _ in self.named_parameters() if name.startswith(prefix)}


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with pruning folded in: a ``torch.nn.utils.prune`` re-parametrisation
    (``NAME_orig`` × ``NAME_mask``) becomes the plain ``NAME`` with its zeros, so a model saved
    while its masks are held (pruning, retraining) loads as any other (``weight_orig`` keys would be
    unknown to the architecture; ``from_pretrained`` silently re-initialises such weights)."""
    state = model.state_dict()
    for key in [k for k in state if k.endswith("_orig")]:
        base = key.removesuffix("_orig")
        if base + "_mask" in state:
            state[base] = state.pop(key) * state.pop(base + "_mask")
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def save_model(
    directory: str | Path,
    model: TextClassificationModel,
    featurizer: Any,
    config: ClassifierConfig,
    golden: Sequence[Any] | None = None,
) -> None:
    """Write the model directory (no pickles), every file through ``.saving/`` and one atomic
    rename, then ``golden.json`` and ``manifest.json`` (textcls.integrity).

    Word models: config.json, model.safetensors, vocab.txt, labels.json. Transformer + ``cls``: a
    standard Hugging Face directory (our config under the ``textcls`` key of its config.json).
    Other transformer heads: our files plus ``backbone/`` (HF config and tokenizer). ``golden``:
    inputs whose answers the directory pins (validation texts); default: the ones it pinned before.
    """
    from textcls.integrity import golden_inputs, read_golden, staged_save, write_golden_and_manifest

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # exports of the weights being replaced would serve the old model (textcls.inference.onnx)
    for stale in ("model.onnx", "model.int8.onnx", "export.json"):
        (directory / stale).unlink(missing_ok=True)
    if golden is None:
        previous = read_golden(directory) if (directory / "golden.json").is_file() else None
        golden = previous["inputs"][:4] if previous else []
    inputs = golden_inputs(golden, list(config.data.fields or []))

    def write(staging: Path) -> None:
        if uses_native_head(config.model):
            hf_model = model.embedder.model
            hf_model.config.textcls = json.loads(config.model_dump_json())
            hf_model.save_pretrained(staging, state_dict=plain_state_dict(hf_model))
            featurizer.tokenizer.save_pretrained(staging)
        else:
            from safetensors.torch import save_file

            config.save(staging / CONFIG_FILE)
            metadata = {"dim": str(model.dim), "format": "textcls"}
            if config.model.backbone is not None:
                model.embedder.backbone.config.save_pretrained(staging / BACKBONE_DIR)
                featurizer.tokenizer.save_pretrained(staging / BACKBONE_DIR)
            else:
                metadata["vocab_size"] = str(len(featurizer.vocab))
                featurizer.vocab.save(staging / VOCAB_FILE)
                if config.model.cluster_features:
                    featurizer.save(staging)  # clusters.safetensors: the k-means centroids
            save_file(plain_state_dict(model), str(staging / WEIGHTS_FILE), metadata=metadata)
        labels = config.model.labels
        (staging / LABELS_FILE).write_text(
            json.dumps({"labels": labels, "label2id": {l: i for i, l in enumerate(labels)}}, indent=2) + "\n",
            encoding="utf-8",
        )

    files = staged_save(directory, write)
    from textcls.inference.predictor import predict_logits

    device = next(model.parameters()).device
    encoded = featurizer.encode(inputs)
    logits = predict_logits(model, featurizer, encoded, 64, device) if inputs else np.zeros((0, 0))
    record = {
        "inputs": inputs,
        "logits": np.asarray(logits, dtype=np.float64).round(6).tolist(),
        "multi_label": bool(config.model.multi_label),
    }
    write_golden_and_manifest(directory, files, record)


def weights_digest(directory: str | Path) -> str:
    """sha256 (hex) of a model directory's ``model.safetensors``, read in 1 MiB chunks: what an
    export or a cache of the model's outputs is bound to.

    >>> weights_digest("runs/snips-cnn")  # doctest: +SKIP
    '3b1f...'
    """
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise ModelLoadError(f"{directory}: missing {WEIGHTS_FILE}")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_model_config(directory: str | Path) -> ClassifierConfig:
    """Our config from a model directory (plain, or inside a Hugging Face config.json)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        what = "is not a model directory (no config.json)" if Path(directory).is_dir() else "not found"
        raise ModelLoadError(f"model directory {directory} {what}: train one with 'textcls train'")
    data = json.loads(path.read_text(encoding="utf-8"))
    if "textcls" in data:
        return ClassifierConfig.from_dict(data["textcls"], source=str(path))
    return ClassifierConfig.from_dict(data, source=str(path))


def load_model(
    directory: str | Path, verify: bool = True
) -> tuple[TextClassificationModel, Any, ClassifierConfig]:
    """Rebuild (model, featurizer, config) from a model directory; weights never unpickled.
    ``verify``: check every file against ``manifest.json`` first (textcls.integrity)."""
    from textcls.integrity import verify_manifest

    directory = Path(directory)
    config = read_model_config(directory)
    if verify:
        verify_manifest(directory)
    if not (directory / WEIGHTS_FILE).is_file():
        raise ModelLoadError(
            f"{directory}: missing {WEIGHTS_FILE} (pickled .bin/.pt weights are never loaded)"
        )
    if config.model.backbone is not None:
        model, featurizer = _load_transformer(directory, config)
    else:
        model, featurizer = _load_word_model(directory, config)
    model.eval()
    return model, featurizer, config


def load_featurizer(directory: str | Path, config: ClassifierConfig | None = None) -> Any:
    """The part of a model that reads raw text (word tokenizer + vocabulary, or the Hugging Face
    tokenizer with the long-document policy); enough for any backend, no weights loaded."""
    directory = Path(directory)
    config = config or read_model_config(directory)
    if config.model.backbone is None:
        from textcls.data.batching import WordFeaturizer
        from textcls.data.tokenizer import Vocab

        if not (directory / VOCAB_FILE).is_file():
            raise ModelLoadError(f"{directory}: missing {VOCAB_FILE}")
        featurizer = WordFeaturizer(
            config.model.tokenizer, Vocab.load(directory / VOCAB_FILE), config.data.fields
        )
        if config.model.cluster_features:
            from textcls.embeddings.clusters import load_cluster_featurizer

            return load_cluster_featurizer(featurizer, directory, config.model)
        return featurizer
    from textcls.embeddings.transformer import TransformerFeaturizer, import_transformers

    source = directory if uses_native_head(config.model) else directory / BACKBONE_DIR
    tokenizer = import_transformers().AutoTokenizer.from_pretrained(source)
    return TransformerFeaturizer(
        tokenizer, config.model.tokenizer.max_length, config.model.backbone, config.data.fields
    )


def _load_word_model(directory: Path, config: ClassifierConfig) -> tuple[TextClassificationModel, Any]:
    from safetensors import safe_open

    featurizer = load_featurizer(directory, config)
    with safe_open(str(directory / WEIGHTS_FILE), framework="pt") as handle:
        dim = int(handle.metadata()["dim"])
    model = TextClassificationModel(config.model, len(featurizer.vocab), dim, fields=config.data.fields)
    _load_weights(model, directory)
    return model, featurizer


def _load_transformer(directory: Path, config: ClassifierConfig) -> tuple[TextClassificationModel, Any]:
    from textcls.embeddings.transformer import (
        apply_freeze,
        apply_structure,
        build_backbone_from_config,
        import_transformers,
    )

    transformers = import_transformers()
    featurizer = load_featurizer(directory, config)
    backbone = config.model.backbone
    if uses_native_head(config.model):
        if backbone.pruned_heads or backbone.ffn_dims:  # no HF config says so: rebuild, shrink, load
            hf_model = build_backbone_from_config(transformers.AutoConfig.from_pretrained(directory), True)
            apply_structure(hf_model, backbone)
            _load_weights(hf_model, directory)
        else:
            hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(directory)
        base = getattr(hf_model, hf_model.base_model_prefix)
        model = TextClassificationModel(config.model, backbone=hf_model)
    else:
        base = build_backbone_from_config(
            transformers.AutoConfig.from_pretrained(directory / BACKBONE_DIR), False
        )
        apply_structure(base, backbone)  # structured pruning (textcls.compress.structured)
        model = TextClassificationModel(config.model, backbone=base)
        _load_weights(model, directory)
    apply_freeze(base, config.model.backbone.freeze)  # so a resumed run trains what the first one did
    return model, featurizer


def _load_weights(model: nn.Module, directory: Path) -> None:
    from safetensors.torch import load_file

    try:
        missing, unexpected = model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=False)
    except RuntimeError as error:  # shapes differ from what config.json describes
        raise ModelLoadError(f"{directory}: weights do not match config.json: {error}") from None
    if missing or unexpected:
        raise ModelLoadError(
            f"{directory}: weights do not match config.json (missing {missing}, unexpected {unexpected})"
        )
