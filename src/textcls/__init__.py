"""textcls: text classification from word vectors to transformers, trained, evaluated and served.

    >>> import textcls
    >>> clf = textcls.TextClassifier(model="cnn", vectors="glove-6b-50d")  # doctest: +SKIP
    >>> clf.fit("data/snips").predict(["play some jazz"])  # doctest: +SKIP

Heavy modules (torch, scikit-learn, ...) are imported on first use, so ``import textcls`` is fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["TextClassifier", "__version__", "load"]

if TYPE_CHECKING:
    from textcls.api import TextClassifier, load


def __getattr__(name: str) -> Any:
    if name in ("TextClassifier", "load"):
        from textcls import api

        return getattr(api, name)
    raise AttributeError(f"module 'textcls' has no attribute {name!r}")
