"""Named text fields: what one model input is, whatever the caller hands over.

A model trained with ``--fields title,body`` reads two named fields; one trained with ``--fields
body`` reads that field alone; a model without fields reads one text (or an unnamed sentence
pair). Callers may give a mapping with the field names (the HTTP API, JSON lines, ``predict
--field``), a tuple in field order, or a plain string for a one-field model. Every featurizer
turns them into the model's own input here, so every backend checks fields the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from textcls.errors import InputError

TextInput = str | tuple[str, str] | Mapping[str, str]


def field_inputs(texts: Sequence[Any], fields: Sequence[str] | None) -> list[str | tuple[str, str]]:
    """``texts`` as the model reads them: a string per text (one field or none), a
    ``(first, second)`` tuple per text (two fields, or an unnamed pair). Raises InputError naming
    the text and the field when one is missing, unexpected or not a string."""
    fields = list(fields or [])
    if len(fields) < 2 and all(type(text) is str for text in texts):  # the common case, checked fast
        return list(texts)
    return [_one(i, text, fields) for i, text in enumerate(texts)]


def describe(fields: Sequence[str]) -> str:
    """'{"title": "...", "body": "..."}': the shape a request must have."""
    return "{" + ", ".join(f'"{name}": "..."' for name in fields) + "}"


def _one(index: int, text: Any, fields: list[str]) -> str | tuple[str, str]:
    if isinstance(text, Mapping):
        if not fields:
            raise InputError(
                f"text {index}: this model reads one unnamed text, not fields "
                f"({', '.join(map(str, text))}): send the text as a string"
            )
        missing = [name for name in fields if name not in text]
        extra = [str(name) for name in text if name not in fields]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing field(s) {', '.join(missing)}")
            if extra:
                parts.append(f"unexpected field(s) {', '.join(extra)}")
            raise InputError(f"text {index}: {'; '.join(parts)} (this model reads {describe(fields)})")
        values = [text[name] for name in fields]
        for name, value in zip(fields, values, strict=True):
            if not isinstance(value, str):
                raise InputError(f"text {index}: field {name!r} is {type(value).__name__}, not a string")
        return values[0] if len(values) == 1 else (values[0], values[1])
    if isinstance(text, str):
        if len(fields) > 1:
            raise InputError(
                f"text {index}: this model reads the fields {', '.join(fields)}: send {describe(fields)}"
            )
        return text
    if isinstance(text, (tuple, list)) and len(text) == 2 and len(fields) != 1:
        if not all(isinstance(value, str) for value in text):
            raise InputError(f"text {index}: a pair must hold two strings")
        return (text[0], text[1])
    expected = describe(fields) if fields else "a string"
    raise InputError(f"text {index} is {type(text).__name__}; this model reads {expected}")
