"""Word tokenization and vocabulary for the word-vector models."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import regex

from textcls.config import TokenizerConfig
from textcls.errors import ModelLoadError

PAD, UNK = "<pad>", "<unk>"


class RegexTokenizer:
    """A fast regular-expression tokenizer.

    >>> RegexTokenizer(TokenizerConfig()).tokenize("Play Miles Davis' jazz, now!")
    ['play', 'miles', 'davis', "'", 'jazz', ',', 'now', '!']
    """

    def __init__(self, config: TokenizerConfig) -> None:
        self.config = config
        self._findall = regex.compile(config.pattern).findall
        self._ascii_findall = _ascii_fast_path(config.pattern) or self._findall
        self._normalize = config.normalize if config.normalize != "none" else None

    def tokenize(self, text: str) -> list[str]:
        if text.isascii():  # most English text: the standard library's faster engine agrees here
            return self._ascii_findall(text.lower() if self.config.lowercase else text)
        if self._normalize:
            text = unicodedata.normalize(self._normalize, text)
        if self.config.lowercase:
            text = text.lower()
        return self._findall(text)

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Many texts at once (an analyser that batches, such as Kiwi, is faster this way)."""
        return [self.tokenize(text) for text in texts]


def make_tokenizer(config: TokenizerConfig) -> RegexTokenizer:
    """The word tokenizer ``config.engine`` names: ``regex`` (the pattern) or ``kiwi`` (Korean
    morphemes). Every tokenizer has ``tokenize(text)`` and ``tokenize_batch(texts)``."""
    if config.engine == "kiwi":
        from textcls.data.kiwi import KiwiTokenizer

        return KiwiTokenizer(config)
    return RegexTokenizer(config)


def _ascii_fast_path(pattern: str):
    """The pattern compiled by ``re`` for ASCII-only text, where a grapheme cluster (``\\X``) is
    one character and ``\\w`` means the same in both engines; None if ``re`` cannot compile it."""
    import re

    try:
        return re.compile(pattern.replace(r"\X", "(?s:.)")).findall
    except re.error:
        return None


class Vocab:
    """Token ↔ id. Id 0 is padding, id 1 the unknown token."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if list(tokens[:2]) != [PAD, UNK]:
            tokens = [PAD, UNK, *[t for t in tokens if t not in (PAD, UNK)]]
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Iterable[str], max_length: int) -> list[int]:
        get = self.index.get
        ids = [get(token, 1) for token in tokens][:max_length]
        return ids or [1]  # an all-punctuation-free empty text still gets one (unknown) token

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], min_count: int = 1, extra: Sequence[str] = ()
    ) -> Vocab:
        """Training tokens seen ``min_count`` times, by frequency, then ``extra`` words."""
        counts = Counter(token for tokens in token_lists for token in tokens)
        words = [w for w, c in sorted(counts.items(), key=lambda x: (-x[1], x[0])) if c >= min_count]
        seen = {PAD, UNK, *words}
        for word in extra:
            if word not in seen:
                seen.add(word)
                words.append(word)
        return cls([PAD, UNK, *(w for w in words if w not in (PAD, UNK))])

    def save(self, path: str | Path) -> None:
        Path(path).write_text("\n".join(self.tokens) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"vocabulary file missing: {path}")
        tokens = path.read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        return cls(tokens)


def length_stats(lengths: Sequence[int], max_length: int) -> dict[str, float]:
    """Token-length statistics of a data set, and how many texts ``max_length`` cuts."""
    array = np.asarray(lengths)
    return {
        "mean": float(array.mean()),
        "p50": float(np.percentile(array, 50)),
        "p95": float(np.percentile(array, 95)),
        "max": int(array.max()),
        "truncated": int((array > max_length).sum()),
    }
