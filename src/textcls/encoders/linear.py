"""A linear classifier over TF-IDF-weighted n-grams: the TF-IDF + linear SVM baseline as a model
of ours (same registry, model directory, Predictor, export and server as every other model).

The featurizer hands over a bag of n-gram ids with their counts (``token_weights``); this layer
computes the sublinear tf-idf vector (1 + log tf, times idf, L2-normalised, as scikit-learn's
``TfidfVectorizer(sublinear_tf=True)``) and its linear scores. Nothing is truncated: every
n-gram of a document counts. Training is closed-form: scikit-learn fits the weights
(``LinearSVC``, squared hinge, or ``LogisticRegression``), the regularisation C is chosen on the
validation split, and one temperature fitted by NLL on the validation scores calibrates them.
What is saved and served are plain tensors: the weights, the bias, the idf and the temperature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from textcls.encoders.base import Encoder, Features
from textcls.errors import ConfigError

C_GRID = (0.1, 0.3, 1.0, 3.0)


class LinearEncoder(Encoder):
    produces_logits = True
    reads_ids = True  # token ids and counts straight from the featurizer; no word vectors

    def __init__(
        self,
        input_dim: int,
        num_labels: int,
        loss: str = "squared_hinge",
        C: float | None = None,  # scikit-learn's name
        sublinear_tf: bool = True,
    ) -> None:
        super().__init__(input_dim, num_labels)
        if loss not in ("squared_hinge", "log"):
            raise ConfigError(f"linear: loss must be squared_hinge or log, got {loss!r}")
        self.loss, self.C, self.sublinear_tf = loss, C, sublinear_tf
        self.output_dim = num_labels
        self.weight = nn.Embedding(input_dim, num_labels)  # one row of class weights per n-gram
        nn.init.zeros_(self.weight.weight)
        self.bias = nn.Parameter(torch.zeros(num_labels))
        self.register_buffer("idf", torch.zeros(input_dim))
        self.register_buffer("temperature", torch.ones(()))

    def forward(self, features: Features) -> Features:
        ids, counts = features["input_ids"], features["token_weights"]
        mask = features["attention_mask"].to(counts.dtype)
        tf = (1 + torch.log(counts.clamp(min=1.0))) if self.sublinear_tf else counts
        x = tf * mask * self.idf[ids]
        x = x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
        scores = (x.unsqueeze(-1) * self.weight(ids)).sum(1) + self.bias
        features["logits"] = scores / self.temperature
        return features

    # ------------------------------------------------------------------------------- fitting
    def tfidf(self, encoded: Sequence[tuple[list[int], list[int]]]) -> Any:
        """The L2-normalised tf-idf matrix (scipy CSR) of encoded bags, with this layer's idf."""
        from sklearn.preprocessing import normalize

        matrix = self._counts(encoded)
        if self.sublinear_tf:
            matrix.data = 1 + np.log(matrix.data)
        matrix = matrix.multiply(self.idf.numpy()[np.newaxis, :]).tocsr()
        return normalize(matrix)

    def _counts(self, encoded: Sequence[tuple[list[int], list[int]]]) -> Any:
        from scipy.sparse import csr_matrix

        indptr = np.cumsum([0, *(len(ids) for ids, _ in encoded)])
        indices = np.fromiter((i for ids, _ in encoded for i in ids), dtype=np.int64, count=indptr[-1])
        data = np.fromiter((c for _, counts in encoded for c in counts), dtype=np.float64, count=indptr[-1])
        return csr_matrix((data, indices, indptr), shape=(len(encoded), self.input_dim))

    def fit_closed_form(
        self,
        train: tuple[Sequence[Any], Sequence[int]],
        valid: tuple[Sequence[Any], Sequence[int]],
        seed: int = 42,
    ) -> dict[str, Any]:
        """Fit idf on train, the weights with scikit-learn (C from the grid by validation accuracy
        unless set), then the temperature on validation. Returns what was chosen."""
        counts = self._counts(train[0])
        n = counts.shape[0]
        df = np.bincount(counts.indices, minlength=self.input_dim)
        idf = np.log((1 + n) / (1 + df)) + 1  # scikit-learn's smooth idf
        idf[df == 0] = 0.0  # padding, unknown and never-seen ids carry nothing
        self.idf.copy_(torch.from_numpy(idf.astype(np.float32)))
        x_train, x_valid = self.tfidf(train[0]), self.tfidf(valid[0])
        if train[1] and isinstance(train[1][0], tuple):  # multi-label: one binary classifier per label
            return self._fit_multi_label(x_train, x_valid, train[1], valid[1], seed, int((df > 0).sum()))
        y_train, y_valid = np.asarray(train[1]), np.asarray(valid[1])
        labelled = y_train >= 0
        x_train, y_train = x_train[labelled], y_train[labelled]
        grid = (self.C,) if self.C is not None else C_GRID
        scores: dict[float, float] = {}
        best: tuple[float, float, Any] | None = None
        for c in grid:
            model = self._classifier(c, seed).fit(x_train, y_train)
            accuracy = float((self._scores(model, x_valid).argmax(1) == y_valid).mean())
            scores[c] = accuracy
            # the best validation accuracy; ties go to the C nearest 1 (scikit-learn's default)
            key = (accuracy, -abs(math.log(c)))
            if best is None or key > best[:2]:
                best = (*key, (c, model))
        c, model = best[2]
        weights, bias = self._as_logits(model)
        self.weight.weight.data.copy_(torch.from_numpy(weights.T.astype(np.float32)))
        self.bias.data.copy_(torch.from_numpy(bias.astype(np.float32)))
        from textcls.decision import fit_temperature

        known = y_valid < self.num_labels
        temperature = fit_temperature(self._scores(model, x_valid)[known], y_valid[known])
        self.temperature.fill_(temperature)
        return {
            "C": c,
            "valid_accuracy_by_C": scores,
            "temperature": temperature,
            "loss": self.loss,
            "features": int((df > 0).sum()),
        }

    def _fit_multi_label(
        self, x_train: Any, x_valid: Any, y_train: Any, y_valid: Any, seed: int, features: int
    ) -> dict[str, Any]:
        """One-vs-rest: a binary classifier per label (its score is the label's logit; a label
        always or never present in train gets a constant), C from the grid by validation
        micro-F1 at score 0. Calibration and thresholds follow (textcls.decision)."""
        from sklearn.metrics import f1_score

        from textcls.decision import multi_hot

        targets = multi_hot(y_train, self.num_labels).astype(np.int64)
        gold = multi_hot(y_valid, self.num_labels)
        grid = (self.C,) if self.C is not None else C_GRID
        scores: dict[float, float] = {}
        best: tuple[float, float, Any] | None = None
        for c in grid:
            weights, bias = np.zeros((self.num_labels, self.input_dim)), np.zeros(self.num_labels)
            for j in range(self.num_labels):
                column = targets[:, j]
                if column.min() == column.max():  # nothing to separate: a constant score
                    bias[j] = 10.0 if column[0] else -10.0
                    continue
                model = self._classifier(c, seed).fit(x_train, column)
                weights[j], bias[j] = np.asarray(model.coef_)[0], float(np.asarray(model.intercept_)[0])
            predicted = (np.asarray(x_valid @ weights.T) + bias > 0).astype(np.float32)
            micro = float(f1_score(gold, predicted, average="micro", zero_division=0))
            scores[c] = micro
            key = (micro, -abs(math.log(c)))
            if best is None or key > best[:2]:
                best = (*key, (c, weights, bias))
        c, weights, bias = best[2]
        self.weight.weight.data.copy_(torch.from_numpy(weights.T.astype(np.float32)))
        self.bias.data.copy_(torch.from_numpy(bias.astype(np.float32)))
        self.temperature.fill_(1.0)  # per-label Platt scaling is fitted after (textcls.decision)
        return {
            "C": c,
            "valid_micro_f1_by_C": scores,
            "loss": self.loss,
            "features": features,
            "multi_label": "one-vs-rest",
        }

    def _classifier(self, c: float, seed: int) -> Any:
        if self.loss == "log":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=c, max_iter=2000)
        from sklearn.svm import LinearSVC

        return LinearSVC(C=c, random_state=seed)

    def _as_logits(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        """Class weights [C, V] and bias [C]. scikit-learn keeps one row for two classes: the score
        z of class 1 becomes logits (-z/2, z/2), whose softmax is sigmoid(z)."""
        coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
        present = list(model.classes_)
        weights = np.zeros((self.num_labels, self.input_dim))
        bias = np.full(self.num_labels, -1e4)  # a class absent from train is never predicted
        if coef.shape[0] == 1:
            (a, b) = present
            weights[a], weights[b] = -coef[0] / 2, coef[0] / 2
            bias[a], bias[b] = -intercept[0] / 2, intercept[0] / 2
        else:
            for row, label in enumerate(present):
                weights[label], bias[label] = coef[row], intercept[row]
        return weights, bias

    def _scores(self, model: Any, x: Any) -> np.ndarray:
        weights, bias = self._as_logits(model)
        return np.asarray(x @ weights.T) + bias
