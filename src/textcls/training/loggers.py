"""Experiment tracking behind one small interface: TensorBoard (the default) or MLflow.

A logger takes parameters, per-step metrics, files (reports, plots, the model directory) and a
final status; ``run_ref`` names the run so later steps (evaluation, nested search trials) can
add to it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class MetricLogger:
    """Does nothing; the interface every logger implements."""

    run_ref: dict[str, str] | None = None  # enough to reopen the run (MLflow: uri and run id)

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        pass


class TensorBoardLogger(MetricLogger):
    def __init__(self, log_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_params(self, params: dict[str, Any]) -> None:
        text = "\n".join(f"    {k}: {v}" for k, v in sorted(_flatten(params).items()))
        self.writer.add_text("config", text)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def close(self, status: str = "FINISHED") -> None:
        self.writer.close()


def default_tracking_uri(out_dir: Path | None) -> str:
    """A SQLite file beside the model directories: ``runs/snips-cnn`` → ``runs/mlflow.db``."""
    folder = out_dir.resolve().parent if out_dir is not None else Path.cwd()
    return f"sqlite:///{folder / 'mlflow.db'}"


class MLflowLogger(MetricLogger):
    """One MLflow run (nested under ``parent_run_id`` when given), through ``MlflowClient`` so no
    global "active run" state leaks between runs."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str = "textcls",
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        client_class = import_mlflow_client()
        self.client = client_class(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            experiment_id = self.client.create_experiment(
                experiment, artifact_location=_artifact_root(tracking_uri)
            )
        else:
            experiment_id = found.experiment_id
        run_tags = dict(tags or {})
        if parent_run_id:
            run_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(experiment_id, run_name=run_name, tags=run_tags)
        self.run_id = run.info.run_id
        self.run_ref = {"tracking_uri": tracking_uri, "run_id": self.run_id, "experiment_id": experiment_id}

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = [Param(k, str(v)[:500]) for k, v in sorted(_flatten(params).items())]
        for start in range(0, len(flat), 100):  # the API takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=flat[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(_metric_name(k), float(v), now, step or 0) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=entries)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), folder)
        elif path.is_file():
            self.client.log_artifact(self.run_id, str(path), folder)

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


def reopen(run_ref: dict[str, str] | None) -> MetricLogger:
    """A logger that adds to an existing (possibly finished) run: evaluation after training."""
    if not run_ref:
        return MetricLogger()
    logger = MLflowLogger.__new__(MLflowLogger)
    logger.client = import_mlflow_client()(tracking_uri=run_ref["tracking_uri"])
    logger.run_id, logger.run_ref = run_ref["run_id"], dict(run_ref)
    return logger


def import_mlflow_client() -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        from textcls.errors import MissingDependencyError

        raise MissingDependencyError("mlflow-skinny", "track", "--track mlflow") from None
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return MlflowClient


def _artifact_root(tracking_uri: str) -> str | None:
    """For a SQLite store, artifacts go in ``mlartifacts/`` beside the database file."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None


def _metric_name(name: str) -> str:
    return name.replace("@", "_at_")


def training_track(train: Any) -> str:
    """Where a training config (``TrainConfig``) sends its metrics: its ``track``, but none when
    that is tensorboard with ``tensorboard: false``."""
    return "none" if train.track == "tensorboard" and not train.tensorboard else train.track


def make_logger(
    kind: str | None,
    log_dir: Path | None,
    *,
    tracking_uri: str | None = None,
    experiment: str = "textcls",
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> MetricLogger:
    """``kind``: tensorboard (writes under ``log_dir``), mlflow, or None / none. ``tags`` mark an
    MLflow run (a fine-tuning run names the pretraining run it started from)."""
    if kind == "mlflow":
        uri = tracking_uri or default_tracking_uri(log_dir.parent if log_dir is not None else None)
        return MLflowLogger(uri, experiment, run_name, parent_run_id, tags)
    if kind != "tensorboard" or log_dir is None:
        return MetricLogger()
    try:
        return TensorBoardLogger(log_dir)
    except ImportError:
        log.warning("tensorboard is not installed; not logging scalars")
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
