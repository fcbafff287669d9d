"""Sentence-embedding cluster features: the k-means cluster of each text's sentence embedding as
one more model input (``--cluster-features K``).

Training embeds every training text with a sentence-embedding model (the packaged MiniLM-L6 with
mean pooling and L2 normalisation, the sentence-transformers recipe; or any local Hugging Face
encoder directory), fits k-means (scikit-learn) on train only and saves the centroids in the
model directory (``clusters.safetensors``). The word model then reads the cluster id next to the
tokens: ``concat`` joins a learned cluster embedding to the sentence representation before the
head, ``add`` adds it to every token embedding at the first layer.

The cluster id is computed by the featurizer (:class:`ClusterFeaturizer`), so every backend
(torch, ONNX Runtime, numpy) sees the same ids: the embedder runs in PyTorch in front of any
backend. Embeddings of large batches (the training set) are cached on disk by content hash
(``$TEXTCLS_CACHE``, default ``~/.cache/textcls``), so a second run does not embed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textcls.errors import ConfigError, ModelLoadError

log = logging.getLogger(__name__)

CLUSTERS_FILE = "clusters.safetensors"
CACHE_MIN_TEXTS = 256  # smaller batches (prediction) are embedded, not cached
_EMBEDDERS: dict[tuple[str, int], SentenceEmbedder] = {}


def cache_root() -> Path:
    return Path(os.environ.get("TEXTCLS_CACHE") or Path.home() / ".cache" / "textcls")


class SentenceEmbedder:
    """Mean-pooled, L2-normalised last hidden states of a Hugging Face encoder."""

    def __init__(self, name_or_path: str, max_length: int = 256, batch_size: int = 64) -> None:
        from textcls.embeddings.transformer import import_transformers, resolve_backbone

        transformers = import_transformers()
        self.path = resolve_backbone(name_or_path)
        self.name, self.max_length, self.batch_size = name_or_path, max_length, batch_size
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.model = transformers.AutoModel.from_pretrained(self.path).eval()
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions:  # some position tables are short (and RoBERTa's starts at 2)
            self.max_length = min(max_length, positions - 2)
        self.digest = _weights_digest(self.path)
        self.dim = int(self.model.config.hidden_size)

    @classmethod
    def shared(cls, name_or_path: str, max_length: int = 256) -> SentenceEmbedder:
        """One embedder per (model, max_length) per process."""
        key = (str(name_or_path), max_length)
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = cls(name_or_path, max_length)
        return _EMBEDDERS[key]

    def embed(self, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
        """[len(texts), dim] float32; large batches come from (and go to) the disk cache."""
        if len(texts) >= CACHE_MIN_TEXTS:
            key = self._key(texts)
            path = cache_root() / "sentence-embeddings" / f"{key}.safetensors"
            if path.is_file():
                from safetensors.numpy import load_file

                log.info("sentence embeddings of %d texts reused from the cache (%s)", len(texts), path)
                return load_file(str(path))["embeddings"]
            embeddings = self._embed(texts, progress)
            _save_atomic(
                path, {"embeddings": embeddings}, {"model": str(self.name), "texts": str(len(texts))}
            )
            return embeddings
        return self._embed(texts, False)

    def _key(self, texts: Sequence[str]) -> str:
        digest = hashlib.sha256(f"{self.digest}\0{self.max_length}\0".encode())
        for text in texts:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
        return digest.hexdigest()

    def _embed(self, texts: Sequence[str], progress: bool | None) -> np.ndarray:
        from textcls.progress import ProgressBar

        out = np.zeros((len(texts), self.dim), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        show = progress if progress is not None else len(texts) >= 1000 and sys.stderr.isatty()
        with torch.inference_mode(), ProgressBar(bool(show), "sentence embeddings", len(batches)) as advance:
            for batch in batches:
                encoded = self.tokenizer(
                    [texts[i] for i in batch],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                hidden = self.model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[batch] = pooled.float().numpy()
                advance()
        return out


def embedding_text(text: Any) -> str:
    """What the sentence embedder reads: the text, or a pair's two fields joined (title first)."""
    return text if isinstance(text, str) else " ".join(text)


def fit_centroids(embeddings: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means (scikit-learn, 10 initialisations, fixed seed) on the training embeddings."""
    from sklearn.cluster import KMeans

    if k < 2:
        raise ConfigError(f"cluster_features must be at least 2 clusters (or 0: off), got {k}")
    if len(embeddings) < k:
        raise ConfigError(f"{k} clusters need at least {k} training texts, got {len(embeddings)}")
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(embeddings.astype(np.float64))
    return kmeans.cluster_centers_.astype(np.float32)


def nearest(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid (Euclidean, as KMeans.predict) of each embedding: int64 ids."""
    distances = -2.0 * embeddings @ centroids.T + (centroids * centroids).sum(1)[None, :]
    return distances.argmin(axis=1).astype(np.int64)


class ClusterFeaturizer:
    """A word featurizer plus each text's cluster id (``cluster_ids`` [B] in the batch).

    Items are ``(item, cluster_id)``; everything else is the wrapped featurizer's."""

    def __init__(self, base: Any, centroids: np.ndarray, embedder: str, max_length: int = 256) -> None:
        self.base = base
        self.centroids = np.asarray(centroids, np.float32)
        self.embedder_name, self.embedder_max_length = embedder, max_length
        self.input_names = [*base.input_names, "cluster_ids"]

    def __getattr__(self, name: str) -> Any:  # vocab, config, fields, parts, tokenizer, ...
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    @property
    def embedder(self) -> SentenceEmbedder:
        return SentenceEmbedder.shared(self.embedder_name, self.embedder_max_length)

    def cluster_ids(self, texts: Sequence[Any]) -> np.ndarray:
        from textcls.data.fields import field_inputs

        inputs = [embedding_text(t) for t in field_inputs(texts, self.base.fields)]
        return nearest(self.embedder.embed(inputs), self.centroids)

    def encode(self, texts: Sequence[Any]) -> list[Any]:
        items = self.base.encode(texts)
        return list(zip(items, self.cluster_ids(texts).tolist(), strict=True))

    def length(self, item: Any) -> int:
        return self.base.length(item[0])

    def collate_numpy(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        batch = self.base.collate_numpy([item for item, _ in items])
        batch["cluster_ids"] = np.asarray([cluster for _, cluster in items], dtype=np.int64)
        return batch

    def collate(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(array) for name, array in self.collate_numpy(items).items()}

    def save(self, directory: Path) -> None:
        metadata = {
            "embedder": str(self.embedder_name),
            "embedder_digest": self.embedder.digest,
            "max_length": str(self.embedder_max_length),
        }
        _save_atomic(directory / CLUSTERS_FILE, {"centroids": self.centroids}, metadata)


def build_cluster_featurizer(
    base: Any, texts: Sequence[Any], config: Any, seed: int
) -> tuple[ClusterFeaturizer, dict]:
    """Embed the training texts, fit k-means on them, wrap ``base``. Returns what was done."""
    from textcls.data.fields import field_inputs

    embedder = SentenceEmbedder.shared(config.cluster_embedder)
    inputs = [embedding_text(t) for t in field_inputs(texts, base.fields)]
    embeddings = embedder.embed(inputs)
    centroids = fit_centroids(embeddings, config.cluster_features, seed)
    sizes = np.bincount(nearest(embeddings, centroids), minlength=len(centroids))
    log.info(
        "cluster features: %d k-means clusters of %s sentence embeddings (sizes %d..%d)",
        len(centroids),
        config.cluster_embedder,
        sizes.min(),
        sizes.max(),
    )
    stats = {"clusters": len(centroids), "embedder": str(config.cluster_embedder), "sizes": sizes.tolist()}
    return ClusterFeaturizer(base, centroids, config.cluster_embedder), stats


def load_cluster_featurizer(base: Any, directory: Path, config: Any) -> ClusterFeaturizer:
    from safetensors import safe_open

    path = directory / CLUSTERS_FILE
    if not path.is_file():
        raise ModelLoadError(f"{directory}: missing {CLUSTERS_FILE} (the model reads cluster features)")
    with safe_open(str(path), framework="np") as handle:
        centroids, metadata = handle.get_tensor("centroids"), handle.metadata() or {}
    featurizer = ClusterFeaturizer(
        base,
        centroids,
        metadata.get("embedder", config.cluster_embedder),
        int(metadata.get("max_length", 256)),
    )
    if len(centroids) != config.cluster_features:
        raise ModelLoadError(
            f"{path}: {len(centroids)} centroids, config.json says {config.cluster_features}"
        )
    return featurizer


def _weights_digest(path: Path) -> str:
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        digest.update(str(file.stat().st_size).encode())
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    if not files:
        digest.update(json.dumps(str(path)).encode())
    return digest.hexdigest()


def _save_atomic(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    from textcls.integrity import write_safetensors

    write_safetensors(path, {k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata)
