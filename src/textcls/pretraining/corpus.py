"""Unlabeled text for pretraining: one text a line, or the text column(s) of a labelled file."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from textcls.errors import DataError

log = logging.getLogger(__name__)


def read_texts(
    paths: Sequence[str | Path], format: str = "auto", text_columns: Sequence[str] | None = None
) -> list[str]:
    """Every non-empty text of the files, in order. A file of plain lines is read as one text a
    line; a labelled file (TSV text<TAB>label, CSV, JSONL, fastText) gives its text column(s),
    labels dropped, through the same reader as training (so errors name the file and line)."""
    from textcls.data.batching import join_pair
    from textcls.data.formats import read_examples

    texts: list[str] = []
    for path in paths:
        examples = read_examples(path, format, text_columns=text_columns, require_labels=False)
        found = [join_pair(e.as_input()).strip() for e in examples]
        kept = [t for t in found if t]
        labelled = sum(e.label is not None for e in examples)
        log.info(
            "%s: %d texts%s%s",
            path,
            len(kept),
            f" ({labelled} labels dropped)" if labelled else "",
            f", {len(found) - len(kept)} empty skipped" if len(found) > len(kept) else "",
        )
        texts += kept
    if not texts:
        raise DataError("no text to pretrain on", path=paths[0] if paths else None, hint="one text a line")
    return texts
