"""Turning texts into padded batches of named tensors, with little wasted padding."""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import torch

from textcls.config import TokenizerConfig
from textcls.data.fields import field_inputs
from textcls.data.tokenizer import Vocab, make_tokenizer
from textcls.errors import ConfigError

CHAR_CACHE_WORDS = 200_000  # words whose character n-gram rows a featurizer keeps


class WordFeaturizer:
    """Text → token ids for the word models; the part of a model that reads raw text.

    The tokens are the words, then (``word_ngrams`` > 1) the word n-grams and (``char_ngrams``)
    the character n-grams inside word boundaries. N-grams are vocabulary entries, or with
    ``ngram_buckets`` hashed (crc32, stable across processes) into rows after the vocabulary, as
    fastText does. ``max_length`` caps the words; n-grams come from the kept words. With ``bag``
    each distinct id appears once and ``token_weights`` holds its count (a linear model's input).
    """

    def __init__(self, config: TokenizerConfig, vocab: Vocab, fields: Sequence[str] | None = None) -> None:
        if not isinstance(config.max_length, int):
            raise ConfigError("max_length 'auto' is resolved by training; a saved model has a number")
        if config.char_ngrams == "auto":
            raise ConfigError("char_ngrams 'auto' is resolved by training; a saved model has MIN,MAX or none")
        self.config = config
        self.tokenizer = make_tokenizer(config)
        self.vocab = vocab
        self.fields = list(fields or [])
        self._word_hashes = None  # fastText's n-gram hashing: each vocabulary word's crc32, once
        if config.ngram_buckets and config.ngram_hash == "words" and config.word_ngrams > 1:
            self._word_hashes = np.array([zlib.crc32(t.encode("utf-8")) for t in vocab.tokens], np.uint64)
        self._char_rows: dict[str, list[int]] = {}  # each word's character n-gram rows, once
        self._char_rows_filled = False
        names = ["input_ids", "attention_mask"] + (["token_weights"] if config.bag else [])
        self.parts = split_fields(self.fields, config.bag)
        self.input_names = [name + suffix for suffix in part_suffixes(self.parts) for name in names]

    def words(self, text: str | tuple[str, str]) -> list[str]:
        return self.words_batch([text])[0]

    def words_batch(self, texts: Sequence[Any]) -> list[list[str]]:
        """Each text's words, its fields' words one after the other."""
        return [[w for part in parts for w in part] for parts in self.part_words(texts)]

    def part_words(self, texts: Sequence[Any]) -> list[list[list[str]]]:
        """Each text's words per part the encoder reads apart (one part, or one per field)."""
        return field_words(self.tokenizer, texts, self.fields, self.config.bag)

    def features(self, words: Sequence[str]) -> list[str]:
        """The n-gram tokens of (already cut) ``words``, words excluded."""
        return self._word_grams(words) + [g for word in words for g in self._word_char_ngrams(word)]

    def _word_grams(self, words: Sequence[str]) -> list[str]:
        grams = [f"{a} {b}" for a, b in pairwise(words)] if self.config.word_ngrams > 1 else []
        for n in range(3, self.config.word_ngrams + 1):
            grams += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        return grams

    def _word_char_ngrams(self, word: str) -> list[str]:
        if not self.config.char_ngrams:
            return []
        low, high = self.config.char_ngrams
        padded = f" {word} "
        return [padded[i : i + n] for n in range(low, high + 1) for i in range(len(padded) - n + 1)]

    def _char_ngram_rows(self, words: Sequence[str]) -> list[int]:
        """The rows of the words' character n-grams, word by word: hashed buckets, or vocabulary
        entries (unseen ones dropped). Each word's are computed once and kept (up to
        :data:`CHAR_CACHE_WORDS` words): at batch size 1 they are most of the cost. With buckets the
        vocabulary is words only, and the first call computes them all, as fastText does on load."""
        cache, rows = self._char_rows, []
        if not self._char_rows_filled and self.config.ngram_buckets:
            self._char_rows_filled = True
            self._char_ngram_rows(self.vocab.tokens[2 : CHAR_CACHE_WORDS + 2])  # after <pad>, <unk>
        for word in words:
            found = cache.get(word)
            if found is None:
                grams = self._word_char_ngrams(word)
                if self.config.ngram_buckets:
                    size, buckets = len(self.vocab), self.config.ngram_buckets
                    found = [size + zlib.crc32(g.encode()) % buckets for g in grams]
                else:
                    found = [i for i in map(self.vocab.index.get, grams) if i is not None]
                if len(cache) < CHAR_CACHE_WORDS:
                    cache[word] = found
            rows += found
        return rows

    def _hashed_word_ngrams(self, words: Sequence[str], ids: list[int]) -> list[int]:
        """Rows of the word n-grams by fastText's hashing: h = h * 116049371 + h(next word)
        (uint64, wrapping), then modulo the buckets; words outside the vocabulary hash by text."""
        count = len(words)
        if count < 2:
            return []
        hashes = self._word_hashes.take(np.asarray(ids, dtype=np.intp))
        for j, i in enumerate(ids):
            if i == 1:  # unknown: its own text, not <unk>'s
                hashes[j] = zlib.crc32(words[j].encode("utf-8"))
        rows: list[int] = []
        prime = np.uint64(116049371)
        for n in range(2, self.config.word_ngrams + 1):
            if count < n:
                break
            acc = hashes[: count - n + 1].copy()
            for k in range(1, n):
                acc = acc * prime + hashes[k : count - n + 1 + k]
            rows += (acc % np.uint64(self.config.ngram_buckets) + np.uint64(len(self.vocab))).tolist()
        return rows

    def tokens(self, text: str | tuple[str, str]) -> list[str]:
        """Every token string of a text as the vocabulary sees it (for building it)."""
        words = self.words(text)[: self.config.max_length]
        return words + ([] if self.config.ngram_buckets else self.features(words))

    def encode(self, texts: Sequence[Any]) -> list[Any]:
        """One item per text: its ids (or bag), or with fields read apart a tuple of one per field."""
        per_text = self.part_words(texts)
        if self.parts == 1:
            return self._encode_words([parts[0] for parts in per_text])
        columns = [self._encode_words([parts[k] for parts in per_text]) for k in range(self.parts)]
        return list(zip(*columns, strict=True))

    def _encode_words(self, word_lists: Sequence[list[str]]) -> list[Any]:
        limit, lookup = self.config.max_length, self.vocab.index.get
        hashed, buckets, size = bool(self.config.ngram_buckets), self.config.ngram_buckets, len(self.vocab)
        crc32 = zlib.crc32
        plain = self.config.word_ngrams == 1 and not self.config.char_ngrams
        encoded: list[Any] = []
        for all_words in word_lists:
            words = all_words[:limit]
            ids = [lookup(word, 1) for word in words]
            if not plain and self._word_hashes is not None:
                ids += self._hashed_word_ngrams(words, ids)
            elif not plain:
                grams = self._word_grams(words)
                if hashed:
                    ids += [size + crc32(g.encode()) % buckets for g in grams]
                else:
                    ids += [i for i in map(lookup, grams) if i is not None]  # unseen n-grams: dropped
            if self.config.char_ngrams:
                ids += self._char_ngram_rows(words)
            if self.config.bag:
                counts = Counter(i for i in ids if i != 1) or Counter([1])
                encoded.append((list(counts), list(counts.values())))
            else:
                encoded.append(ids or [1])  # an empty text still gets one (unknown) token
        return encoded

    def count_long(self, texts: Sequence[Any]) -> int:
        limit = self.config.max_length
        return sum(any(len(words) > limit for words in parts) for parts in self.part_words(texts))

    def truncation(self, texts: Sequence[Any]) -> dict[str, int]:
        """How many texts ``max_length`` (per field read apart) cuts and how many tokens it drops."""
        limit = self.config.max_length
        per_text = [[len(words) for words in parts] for parts in self.part_words(texts)]
        return truncation_stats([sum(n) for n in per_text], [sum(min(k, limit) for k in n) for n in per_text])

    def length(self, item: Any) -> int:
        if self.parts > 1:
            return max(self._length(part) for part in item)
        return self._length(item)

    def _length(self, item: Any) -> int:
        return len(item[0]) if self.config.bag else len(item)

    def collate(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(array) for name, array in self.collate_numpy(items).items()}

    def collate_numpy(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        if self.parts == 1:
            return self._collate_part(items)
        batch: dict[str, np.ndarray] = {}
        for k, suffix in enumerate(part_suffixes(self.parts)):
            batch.update({name + suffix: a for name, a in self._collate_part([i[k] for i in items]).items()})
        return batch

    def _collate_part(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        if not self.config.bag:
            return collate_numpy(items)
        batch = collate_numpy([ids for ids, _ in items])
        weights = np.zeros(batch["input_ids"].shape, dtype=np.float32)
        for row, (_, counts) in enumerate(items):
            weights[row, : len(counts)] = counts
        batch["token_weights"] = weights
        return batch


def truncation_stats(total: Sequence[int], kept: Sequence[int]) -> dict[str, int]:
    """Tokens per text before and after cutting → texts cut, tokens dropped (the report's figures)."""
    dropped = [t - k for t, k in zip(total, kept, strict=True)]
    return {
        "texts": len(dropped),
        "cut": sum(d > 0 for d in dropped),
        "tokens_total": int(sum(total)),
        "tokens_dropped": int(sum(dropped)),
        "max_dropped": int(max(dropped, default=0)),
    }


def describe_truncation(stats: dict[str, int]) -> str:
    """'12 of 500 texts cut: 3,401 of 90,112 tokens dropped (3.8 %, at most 2,016 from one)'."""
    share = 100 * stats["tokens_dropped"] / max(1, stats["tokens_total"])
    return (
        f"{stats['cut']} of {stats['texts']} texts cut: {stats['tokens_dropped']:,} of "
        f"{stats['tokens_total']:,} tokens dropped ({share:.1f} %, at most {stats['max_dropped']:,} from one)"
    )


def join_pair(text: str | tuple[str, str]) -> str:
    """Word models read an unnamed sentence pair as one text."""
    return text if isinstance(text, str) else " ".join(text)


def split_fields(fields: Sequence[str] | None, bag: bool) -> int:
    """How many parts a word encoder reads apart: one per field when there are two fields,
    except for a bag of n-grams (a linear model), where each field's n-grams are features of
    their own in one bag (the same as concatenating per-field feature vectors)."""
    return len(fields) if fields and len(fields) > 1 and not bag else 1


def part_suffixes(parts: int) -> list[str]:
    """Names of the batch tensors of each part: ``input_ids``, then ``input_ids__1``, ..."""
    return [""] + [f"__{k}" for k in range(1, parts)]


FIELD_MARK = "\u241f"  # ␟ (unit separator): a bag model's second-field tokens are FIELD_MARK + word


def field_words(
    tokenizer: Any, texts: Sequence[Any], fields: Sequence[str] | None, bag: bool
) -> list[list[list[str]]]:
    """Each text's words per part (see :func:`split_fields`): the one entry point from raw
    inputs (strings, pairs, field mappings) to the words a word model reads."""
    inputs = field_inputs(texts, fields)
    if not fields or len(fields) < 2:
        return [[words] for words in tokenizer.tokenize_batch([join_pair(t) for t in inputs])]
    first = tokenizer.tokenize_batch([t[0] for t in inputs])
    second = tokenizer.tokenize_batch([t[1] for t in inputs])
    if bag:
        return [[a + [FIELD_MARK + w for w in b]] for a, b in zip(first, second, strict=True)]
    return [[a, b] for a, b in zip(first, second, strict=True)]


def collate_numpy(sequences: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """Pad id lists to the longest one: ``input_ids`` (int64) and ``attention_mask`` (bool) [B, T]."""
    length = max(len(s) for s in sequences)
    input_ids = np.zeros((len(sequences), length), dtype=np.int64)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = ids
    return {"input_ids": input_ids, "attention_mask": input_ids != 0}


def collate(sequences: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """:func:`collate_numpy` as torch tensors."""
    return {name: torch.from_numpy(array) for name, array in collate_numpy(sequences).items()}


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, pool_factor: int = 50
) -> list[list[int]]:
    """Shuffled batches of indices whose members have similar lengths.

    Indices are shuffled, cut into pools of ``pool_factor`` batches, sorted by length inside each
    pool and cut into batches; the batch order is shuffled again. Deterministic for a seed.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * pool_factor
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Batches for inference: sorted by length so padding is minimal (callers restore order)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
