"""Turning texts into padded batches of named tensors, with little wasted padding."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from textcls.config import TokenizerConfig
from textcls.data.tokenizer import RegexTokenizer, Vocab


class WordFeaturizer:
    """Text → token ids for the word models; the part of a model that reads raw text."""

    def __init__(self, config: TokenizerConfig, vocab: Vocab) -> None:
        self.config = config
        self.tokenizer = RegexTokenizer(config)
        self.vocab = vocab

    def encode(self, texts: Sequence[str | tuple[str, str]]) -> list[list[int]]:
        tokenize, encode, limit = self.tokenizer.tokenize, self.vocab.encode, self.config.max_length
        return [encode(tokenize(join_pair(text)), limit) for text in texts]

    def count_long(self, texts: Sequence[str | tuple[str, str]]) -> int:
        limit = self.config.max_length
        return sum(len(self.tokenizer.tokenize(join_pair(text))) > limit for text in texts)

    def truncation(self, texts: Sequence[str | tuple[str, str]]) -> dict[str, int]:
        """How many texts ``max_length`` cuts and how many of their tokens it drops."""
        lengths = [len(self.tokenizer.tokenize(join_pair(text))) for text in texts]
        return truncation_stats(lengths, [min(n, self.config.max_length) for n in lengths])

    @staticmethod
    def length(item: Sequence[int]) -> int:
        return len(item)

    @staticmethod
    def collate(items: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        return collate(items)

    @staticmethod
    def collate_numpy(items: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        return collate_numpy(items)


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
    """Word models read a sentence pair as one text."""
    return text if isinstance(text, str) else " ".join(text)


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
