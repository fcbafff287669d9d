"""Metric loggers. TensorBoard is the default; more backends plug in behind ``MetricLogger``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class MetricLogger:
    """Does nothing; the interface every logger implements."""

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardLogger(MetricLogger):
    def __init__(self, log_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_params(self, params: dict[str, Any]) -> None:
        text = "\n".join(f"    {k}: {v}" for k, v in sorted(_flatten(params).items()))
        self.writer.add_text("config", text)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


def make_logger(kind: str | None, log_dir: Path | None) -> MetricLogger:
    if not kind or log_dir is None:
        return MetricLogger()
    try:
        return TensorBoardLogger(log_dir)
    except ImportError:
        import logging

        logging.getLogger(__name__).warning("tensorboard is not installed; not logging scalars")
        return MetricLogger()


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
