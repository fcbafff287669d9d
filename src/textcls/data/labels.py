"""Several labels in one label field (multi-label data): splitting on a separator, and finding
the separator of a training file when none is given.

JSON label lists and fastText lines with several ``__label__`` already carry their labels (the
readers set ``Example.labels``); a TSV or CSV label field such as ``joy,surprise`` or
``flight#airfare`` is split here, with the separator given (``--label-sep``) or detected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from textcls.data.formats import Example, with_labels

SEPARATORS = (",", "#", "|")
MIN_ALONE = 0.9  # share of the parts that must also be labels on their own


def split_labels(examples: Sequence[Example], separator: str) -> list[Example]:
    """Each example's label field split on ``separator`` (parts stripped, empty parts dropped);
    examples that already carry a label list are kept."""
    out = []
    for example in examples:
        if example.labels is None and example.label is not None:
            parts = [p.strip() for p in example.label.split(separator)]
            example = with_labels(example, [p for p in parts if p], separator)
        out.append(example)
    return out


def detect_separator(examples: Sequence[Example]) -> tuple[str | None, str | None]:
    """(separator, note) when the training labels join several labels: some label fields hold
    one of :data:`SEPARATORS`, and at least 90 % of the parts are also whole labels of other
    examples (``joy`` alone as well as in ``joy,surprise``). (None, None) otherwise."""
    counts = Counter(e.label for e in examples if e.labels is None and e.label is not None)
    for separator in SEPARATORS:
        joined = [label for label in counts if separator in label]
        if not joined:
            continue
        parts = {p.strip() for label in joined for p in label.split(separator)} - {""}
        alone = sum(1 for p in parts if p in counts)
        if parts and alone >= MIN_ALONE * len(parts):
            share = sum(counts[label] for label in joined) / max(1, sum(counts.values()))
            note = (
                f"multi-label data detected: {share:.1%} of the training labels join several labels "
                f"with {separator!r} ({len(parts)} distinct parts, {alone} of them also labels alone); "
                f"--label-sep sets the separator, --no-multi-label keeps label fields whole"
            )
            return separator, note
    return None, None


def is_multi_label(examples: Sequence[Example]) -> bool:
    """Whether any example carries several labels."""
    return any(len(e.label_set) > 1 for e in examples)
