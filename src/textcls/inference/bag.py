"""The ``numpy`` backend: bag-of-n-gram models (``fasttext``, ``mean``, ``linear``) computed in a few
NumPy operations on the saved weights, with no torch and no ONNX Runtime at prediction time.

Their networks are an embedding lookup, a (weighted) mean and one matrix product, so at batch
size 1 the fixed cost of a framework call dominates; this backend removes it. It reads
``model.safetensors`` as it is (the weights every other backend reads) and gives the same scores
as the ``torch`` backend (tests check it). Other models are refused with a clear message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from textcls.errors import ModelLoadError
from textcls.inference.predictor import Predictor, TextInput

BAG_ENCODERS = ("mean", "linear")


class BagPredictor(Predictor):
    backend = "numpy"

    def __init__(self, directory: str | Path) -> None:
        from safetensors.numpy import load_file

        from textcls.model import WEIGHTS_FILE, load_featurizer, read_model_config

        directory = Path(directory)
        config = read_model_config(directory)
        encoder = config.model.encoder.name
        if config.model.backbone is not None or encoder not in BAG_ENCODERS:
            raise ModelLoadError(
                f"{directory}: the numpy backend runs bag-of-n-gram models ({', '.join(BAG_ENCODERS)} "
                f"encoders: --model fasttext, mean, linear); this one is '{encoder}': use torch or onnx"
            )
        self.featurizer = load_featurizer(directory, config)
        self.labels = list(config.model.labels)
        from textcls.decision import Decision

        self.decision = Decision(config.model)
        self.linear = encoder == "linear"
        weights = load_file(str(directory / WEIGHTS_FILE))
        if self.linear:
            self.rows = weights["encoder.weight.weight"]  # [V, C]
            self.bias = weights["encoder.bias"]
            self.idf = weights["encoder.idf"]
            self.scale = 1.0 / float(weights["encoder.temperature"])
            self.sublinear = bool(config.model.encoder.params.get("sublinear_tf", True))
        else:  # mean of the embeddings, then the head's linear layer: fold the head into the rows
            embeddings = weights["embedder.embedding.weight"]
            head, dim = weights["head.linear.weight"], embeddings.shape[1]
            self.parts = self.featurizer.parts  # two fields read apart: one slice of the head each
            self.part_rows = [
                (embeddings @ head[:, k * dim : (k + 1) * dim].T).astype(np.float32)  # [V, C]
                for k in range(self.parts)
            ]
            self.rows = self.part_rows[0]
            self.bias = weights["head.linear.bias"]
        self.cluster_rows = None  # --cluster-features: each cluster's share of the logits [K, C]
        if config.model.cluster_features:
            table = weights["clusters.weight"]
            if config.model.cluster_mode == "add":  # mean(E[ids] + c) = mean(E[ids]) + c, per field
                slices = sum(head[:, k * dim : (k + 1) * dim] for k in range(self.parts))
            else:  # concatenated after the fields' means: the last columns of the head
                slices = head[:, self.parts * dim :]
            self.cluster_rows = (table @ slices.T).astype(np.float32)

    def logits(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        out = np.empty((len(texts), len(self.labels)), np.float32)
        rows, bias = self.rows, self.bias
        encoded = self.featurizer.encode(texts)
        if self.cluster_rows is not None:
            clusters = [cluster for _, cluster in encoded]
            encoded = [item for item, _ in encoded]
        for i, item in enumerate(encoded):
            # (np.take on an intp array: a few microseconds; fancy indexing with a list: three times that)
            if self.linear:
                ids, counts = np.array(item[0], dtype=np.intp), np.array(item[1], dtype=np.float32)
                tf = 1 + np.log(counts) if self.sublinear else counts
                x = tf * self.idf.take(ids)
                norm = float(np.sqrt(x @ x))
                out[i] = ((x / max(norm, 1e-12)) @ rows.take(ids, 0) + bias) * self.scale
            elif self.parts == 1:
                # mean pooling is linear, so mean(E[ids]) @ W.T == mean((E @ W.T)[ids])
                ids = np.array(item, dtype=np.intp)
                out[i] = rows.take(ids, 0).sum(axis=0) * (1.0 / len(ids)) + bias
            else:  # concatenated means: each field's mean through its slice of the head
                out[i] = bias + sum(
                    part.take(np.array(ids, dtype=np.intp), 0).sum(axis=0) * (1.0 / len(ids))
                    for part, ids in zip(self.part_rows, item, strict=True)
                )
        if self.cluster_rows is not None:
            out += self.cluster_rows.take(np.asarray(clusters, dtype=np.intp), 0)
        return out

    def count_long(self, texts: Sequence[TextInput]) -> int:
        return self.featurizer.count_long(texts)

    @property
    def threads(self) -> int:
        return 1


def numpy_backend(directory: str | Path, threads: int | None = None) -> BagPredictor:
    return BagPredictor(directory)
