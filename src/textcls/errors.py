"""Errors that say what went wrong, where, and what to do about it."""

from __future__ import annotations

from pathlib import Path


class TextClsError(Exception):
    """Base class of every error textcls raises on purpose."""


class DataError(TextClsError, ValueError):
    """Bad input data: names the file, the line (1-based) and what to do.

    >>> str(DataError("empty label", path="train.txt", line=3, hint="put the label after a TAB"))
    'train.txt:3: empty label (put the label after a TAB)'
    """

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        text = f"{where}{self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(TextClsError, ValueError):
    """A configuration value that cannot work (unknown name, bad range, missing file)."""


class InputError(TextClsError, ValueError):
    """A prediction input the model cannot read: a missing or unexpected field, a wrong type."""


class ModelLoadError(TextClsError):
    """A model directory that cannot be loaded (missing file, wrong format, pickled weights)."""


class MissingDependencyError(TextClsError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(f"{feature} needs the '{package}' package: pip install 'textcls[{extra}]'")


class ExportError(TextClsError):
    """An export that failed its check: the exported graph disagrees with PyTorch."""


class AccuracyGateError(TextClsError):
    """A quantized model lost more accuracy on the validation split than ``--max-drop`` allows."""
