"""Tokens per second of ``--tokenizer kiwi`` (Korean morphemes, kiwipiepy) against the regex
tokenizer, on the first N lines of a Korean training file (a batch, as training reads it; and
text by text, as a single prediction does). Prints one line per tokenizer; writes nothing.

    .venv/bin/python benchmarks/bench_kiwi.py --lines 20000
    .venv/bin/python benchmarks/bench_kiwi.py --data korean_hate_speech --lines 7896 --pos-tags
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED_DATA


def read_texts(path: Path, lines: int) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            texts.append(line.rstrip("\n").rsplit("\t", 1)[0])
            if len(texts) == lines:
                break
    return texts


def measure(name: str, tokenizer, texts: list[str], single: int) -> None:
    started = time.perf_counter()
    tokens = sum(map(len, tokenizer.tokenize_batch(texts)))
    seconds = time.perf_counter() - started
    sample = texts[:single]
    started = time.perf_counter()
    for text in sample:
        tokenizer.tokenize(text)
    one_by_one = (time.perf_counter() - started) / max(1, len(sample))
    print(
        f"{name:>6}: {len(texts):,} texts, {tokens:,} tokens in {seconds:.2f} s = {tokens / seconds:,.0f} "
        f"tokens/s ({len(texts) / seconds:,.0f} texts/s); one text at a time {one_by_one * 1000:.3f} ms/text"
    )


def main() -> None:
    from textcls.config import TokenizerConfig
    from textcls.data.kiwi import shared_kiwi, workers
    from textcls.data.tokenizer import make_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="nsmc_like", help="a folder of the shared data (default nsmc_like)")
    parser.add_argument("--lines", type=int, default=20000, help="lines of train.txt (default 20000)")
    parser.add_argument("--single", type=int, default=500, help="texts timed one at a time (default 500)")
    parser.add_argument("--pos-tags", action="store_true", help="kiwi: tokens as form/TAG")
    args = parser.parse_args()

    texts = read_texts(SHARED_DATA / args.data / "train.txt", args.lines)
    started = time.perf_counter()
    shared_kiwi()
    print(f"kiwi loaded in {time.perf_counter() - started:.1f} s; {workers()} analysis threads")
    measure("regex", make_tokenizer(TokenizerConfig()), texts, args.single)
    kiwi = make_tokenizer(TokenizerConfig(engine="kiwi", pos_tags=args.pos_tags))
    measure("kiwi", kiwi, texts, args.single)


if __name__ == "__main__":
    main()
