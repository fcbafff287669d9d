"""Several labels in one label field (multi-label data): splitting on a separator, and finding
the separator of a training file when none is given.

JSON label lists and fastText lines with several ``__label__`` already carry their labels (the
readers set ``Example.labels``); a TSV or CSV label field such as ``joy,surprise`` or
``flight#airfare`` is split here, with the separator given (``--label-sep``) or detected.
"""

from __future__ import annotations

import string
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
    counts = _label_counts(examples)
    for separator in SEPARATORS:
        found = _joined_by(counts, separator)
        if found is not None:
            share, parts, alone = found
            note = (
                f"multi-label data detected: {share:.1%} of the training labels join several labels "
                f"with {separator!r} ({parts} distinct parts, {alone} of them also labels alone); "
                f"--label-sep sets the separator, --no-multi-label keeps label fields whole"
            )
            return separator, note
    return None, None


def undetected_separator_hint(examples: Sequence[Example]) -> str | None:
    """A note when label fields look joined by a punctuation mark that is not detected (``;``,
    ``/``, ...) by the same rule as :func:`detect_separator`: they stay whole labels, and the note
    says which ``--label-sep`` would split them. None otherwise."""
    counts = _label_counts(examples)
    for mark in string.punctuation:
        found = None if mark in SEPARATORS else _joined_by(counts, mark)
        if found is not None:
            share, parts, _ = found
            example = next(label for label in counts if mark in label)
            return (
                f"{share:.1%} of the training labels (e.g. {example!r}) join labels that also occur "
                f"alone with {mark!r}, which is not detected (only {', '.join(map(repr, SEPARATORS))} "
                f"are): they are kept whole, as classes of their own; --label-sep {mark!r} makes "
                f"them several labels ({parts} distinct parts)"
            )
    return None


def _label_counts(examples: Sequence[Example]) -> Counter[str]:
    return Counter(e.label for e in examples if e.labels is None and e.label is not None)


def _joined_by(counts: Counter[str], separator: str) -> tuple[float, int, int] | None:
    """(share of the examples, distinct parts, parts also labels alone) when label fields hold
    ``separator`` and at least :data:`MIN_ALONE` of their parts are labels alone; else None."""
    joined = [label for label in counts if separator in label]
    if not joined:
        return None
    parts = {p.strip() for label in joined for p in label.split(separator)} - {""}
    alone = sum(1 for p in parts if p in counts)
    if not parts or alone < MIN_ALONE * len(parts):
        return None
    return sum(counts[label] for label in joined) / max(1, sum(counts.values())), len(parts), alone


def is_multi_label(examples: Sequence[Example]) -> bool:
    """Whether any example carries several labels."""
    return any(len(e.label_set) > 1 for e in examples)
