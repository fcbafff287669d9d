"""Hyper-parameter search with Optuna: a YAML search space over any config field, TPE with a seed,
median or Hyperband pruning fed by each epoch's validation metric, resumable and shareable
through an Optuna storage URL, failed trials recorded and skipped.

    run_search("data/snips", space="configs/search/cnn.yaml", model="cnn", trials=30,
               storage="sqlite:///runs/search.db", study="snips-cnn", out="runs/snips-cnn-best")

The search space (YAML) maps dotted config paths to distributions, sampled in file order; a
``when`` clause makes a parameter conditional on values sampled before it:

    params:
      train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      train.batch_size: {type: categorical, choices: [32, 64, 128]}
      model.encoder.name: {type: categorical, choices: [cnn, densenet-cnn]}
      model.encoder.params.num_filters:
        {type: int, low: 64, high: 256, step: 32, when: {model.encoder.name: cnn}}

The best trial's model directory is kept in ``out`` (a normal model directory; retrained from its
parameters when another worker ran it), with ``search/``: the trials table (Markdown + JSON), the
optimization history and parameter importances (PNG).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textcls.config import ClassifierConfig, deep_update, read_config_file
from textcls.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)
DISTRIBUTIONS = {"float", "int", "categorical"}
BEST_FILE = "search_trial.json"


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError("optuna", "search", "textcls search") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def counted(optuna: Any) -> tuple[Any, ...]:
    """Trial states that count towards ``trials``: all but enqueued ones still waiting to run."""
    state = optuna.trial.TrialState
    return (state.COMPLETE, state.PRUNED, state.FAIL, state.RUNNING)


@dataclass
class Param:
    path: str
    spec: dict[str, Any]

    def applies(self, sampled: dict[str, Any]) -> bool:
        return all(sampled.get(key) == value for key, value in (self.spec.get("when") or {}).items())

    def suggest(self, trial: Any) -> Any:
        kind = self.spec["type"]
        if kind == "float":
            return trial.suggest_float(
                self.path, float(self.spec["low"]), float(self.spec["high"]), log=bool(self.spec.get("log"))
            )
        if kind == "int":
            return trial.suggest_int(
                self.path,
                int(self.spec["low"]),
                int(self.spec["high"]),
                step=int(self.spec.get("step", 1)),
                log=bool(self.spec.get("log")),
            )
        return trial.suggest_categorical(self.path, list(self.spec["choices"]))


def read_space(path: str | Path) -> list[Param]:
    """The search space file → parameters, checked so that mistakes fail before any trial runs."""
    data = read_config_file(path)
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{path}: a search space needs a non-empty 'params:' mapping")
    space: list[Param] = []
    seen: set[str] = set()
    for name, spec in params.items():
        where = f"{path}: {name}"
        if not isinstance(spec, dict) or spec.get("type") not in DISTRIBUTIONS:
            raise ConfigError(f"{where}: give 'type' as one of {', '.join(sorted(DISTRIBUTIONS))}")
        if spec["type"] == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise ConfigError(f"{where}: a categorical parameter needs a non-empty 'choices' list")
        else:
            if "low" not in spec or "high" not in spec:
                raise ConfigError(f"{where}: give 'low' and 'high'")
            if float(spec["low"]) > float(spec["high"]):
                raise ConfigError(f"{where}: low {spec['low']} is above high {spec['high']}")
            if spec.get("log") and float(spec["low"]) <= 0:
                raise ConfigError(f"{where}: a log scale needs low > 0")
        unknown = set(spec.get("when") or {}) - seen
        if unknown:
            raise ConfigError(f"{where}: 'when' refers to {sorted(unknown)}, not sampled before it")
        seen.add(name)
        space.append(Param(name, spec))
    return space


def dotted_update(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 1e-3}`` applied to a nested config dict."""
    for path, value in values.items():
        update: dict[str, Any] = value
        for part in reversed(path.split(".")):
            update = {part: update}
        data = deep_update(data, update)
    return data


def trial_config(base: ClassifierConfig, values: dict[str, Any]) -> ClassifierConfig:
    data = dotted_update(base.model_dump(), values)
    if "model.encoder.name" in values and values["model.encoder.name"] != base.model.encoder.name:
        # another encoder: only the sampled encoder parameters apply
        data["model"]["encoder"]["params"] = {
            k.removeprefix("model.encoder.params."): v
            for k, v in values.items()
            if k.startswith("model.encoder.params.")
        }
    return ClassifierConfig.from_dict(data, source="search trial")


def make_pruner(name: str, optuna: Any, max_epochs: int) -> Any:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner '{name}': median, hyperband or none")


def run_search(
    data: str | Path,
    *,
    space: str | Path,
    model: str | None = None,
    config: str | Path | None = None,
    trials: int = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study: str = "textcls",
    metric: str | None = None,
    pruner: str = "median",
    seed: int = 42,
    out: str | Path | None = None,
    track: str | None = None,
    tracking_uri: str | None = None,
    progress: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Run (or continue) a study until it holds ``trials`` finished trials or ``timeout`` seconds
    pass; returns a summary (best trial, counts, paths). Workers sharing ``storage`` and ``study``
    split the trials between them."""
    optuna = import_optuna()
    from textcls.api import TextClassifier, build_config

    params = read_space(space)
    base = build_config(model, config=config, **overrides)
    metric = metric or base.train.metric
    if metric not in ("accuracy", "macro_f1", "loss"):
        raise ConfigError(f"unknown metric '{metric}': accuracy, macro_f1 or loss")
    base.train.metric = metric
    direction = "minimize" if metric == "loss" else "maximize"
    out_path = Path(out) if out else None
    if storage is None and out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{(out_path / 'search.db').resolve()}"
    storage_object = _storage(optuna, storage)
    existing = _count(optuna, storage_object, study)
    sampler = optuna.samplers.TPESampler(seed=seed + existing, multivariate=True)  # resumes don't repeat
    optuna_study = optuna.create_study(
        study_name=study,
        storage=storage_object,
        load_if_exists=True,
        direction=direction,
        sampler=sampler,
        pruner=make_pruner(pruner, optuna, base.train.epochs),
    )
    parent = _parent_logger(track, tracking_uri, out_path, study, base)
    scratch = Path(tempfile.mkdtemp(prefix="textcls-search-"))

    def objective(trial: Any) -> float:
        sampled: dict[str, Any] = {}
        for param in params:
            if param.applies(sampled):
                sampled[param.path] = param.suggest(trial)
        trial_cfg = trial_config(base, sampled)
        if track:
            trial_cfg.train.track = track
            trial_cfg.train.tracking_uri = parent.run_ref["tracking_uri"] if parent.run_ref else tracking_uri
        else:
            trial_cfg.train.track = "none"
        trial.set_user_attr("config", json.loads(trial_cfg.model_dump_json()))
        directory = scratch / f"trial-{trial.number}"

        def report(epoch: int, metrics: dict[str, float]) -> None:
            trial.report(metrics[metric], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: {metric} {metrics[metric]:.4f}")

        classifier = TextClassifier(config=trial_cfg)
        classifier.fit(
            data,
            out_dir=directory,
            progress=progress,
            on_epoch=report,
            run_name=f"{study}-trial-{trial.number}",
            parent_run_id=parent.run_ref["run_id"] if parent.run_ref else None,
        )
        value = classifier.train_result.best_metric
        if out_path is not None and _is_best(optuna_study, trial.number, value, direction):
            _keep(directory, out_path, trial.number, value, metric)
        shutil.rmtree(directory, ignore_errors=True)
        return value

    started = time.perf_counter()
    callbacks = [optuna.study.MaxTrialsCallback(trials, states=counted(optuna))]  # other workers' too
    remaining = max(0, trials - existing)
    if remaining:
        optuna_study.optimize(
            objective,
            n_trials=remaining,
            timeout=timeout,
            callbacks=callbacks,
            catch=(Exception,),  # a failed trial is recorded as FAIL and the search goes on
            gc_after_trial=True,
        )
    shutil.rmtree(scratch, ignore_errors=True)
    summary = summarize(optuna, optuna_study, metric, time.perf_counter() - started)
    if out_path is not None and summary.get("best_trial") is not None:
        _ensure_best_model(optuna_study, out_path, data, progress)
        write_report(optuna, optuna_study, out_path / "search", summary)
    if parent.run_ref:
        parent.log_metrics(
            {f"best_{metric}": summary["best_value"]} if summary.get("best_value") is not None else {}
        )
        if out_path is not None:
            parent.log_artifact(out_path / "search", "search")
        parent.close()
    summary.update(storage=storage, study=study, out=str(out_path) if out_path else None)
    return summary


def _storage(optuna: Any, url: str | None) -> Any:
    """An RDB storage with heartbeats: a trial whose worker died is marked failed and retried once
    by the next worker, instead of staying "running" for ever."""
    if url is None:
        return None
    import warnings

    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeats are marked experimental
        options = (
            {"heartbeat_stale_trial_callback": retry(max_retry=1)}
            if retry is not None
            else {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)}
        )
        if url.startswith("sqlite"):  # several workers on one SQLite file wait for its lock
            options["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120, **options)
            except Exception as error:  # two workers creating the same new database's tables at once
                racing = "UNIQUE constraint" in str(error) or "already exists" in str(error)
                if not racing or attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
    return None


def _count(optuna: Any, storage: Any, study: str) -> int:
    """Trials already started or finished (enqueued, waiting ones are still to run)."""
    if storage is None:
        return 0
    try:
        return len(optuna.load_study(study_name=study, storage=storage).get_trials(states=counted(optuna)))
    except KeyError:  # a new study
        return 0


def _parent_logger(
    track: str | None, tracking_uri: str | None, out: Path | None, study: str, base: Any
) -> Any:
    from textcls.training.loggers import MetricLogger, MLflowLogger, default_tracking_uri

    if track != "mlflow":
        return MetricLogger()
    logger = MLflowLogger(tracking_uri or default_tracking_uri(out), base.train.experiment, f"search-{study}")
    logger.log_params({"search": {"study": study}})
    return logger


def _is_best(study: Any, number: int, value: float, direction: str) -> bool:
    """Better than every trial finished so far (this trial is still running)."""
    values = [t.value for t in study.get_trials(deepcopy=False) if t.value is not None and t.number != number]
    if not values:
        return True
    return value > max(values) if direction == "maximize" else value < min(values)


def _keep(directory: Path, out: Path, number: int, value: float, metric: str) -> None:
    """Replace the model files in ``out`` by this trial's (the search report stays)."""
    model_dir = out / "model.tmp"
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(directory, model_dir, ignore=shutil.ignore_patterns("checkpoint", "tensorboard"))
    for item in out.iterdir():
        if item.name not in ("search", "search.db", "model.tmp"):
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    for item in model_dir.iterdir():
        item.rename(out / item.name)
    model_dir.rmdir()
    (out / BEST_FILE).write_text(
        json.dumps({"trial": number, metric: value}, indent=2) + "\n", encoding="utf-8"
    )


def _ensure_best_model(study: Any, out: Path, data: Any, progress: bool) -> None:
    """The best trial's model in ``out``: kept when this worker ran it, else retrained."""
    from textcls.api import TextClassifier

    best = study.best_trial
    kept = json.loads((out / BEST_FILE).read_text()) if (out / BEST_FILE).is_file() else {}
    if kept.get("trial") == best.number:
        return
    log.info("retraining trial %d (run by another worker) into %s", best.number, out)
    config = ClassifierConfig.from_dict(best.user_attrs["config"], source=f"trial {best.number}")
    config.train.track = "none"
    with tempfile.TemporaryDirectory(prefix="textcls-best-") as tmp:
        TextClassifier(config=config).fit(data, out_dir=Path(tmp) / "model", progress=progress)
        _keep(Path(tmp) / "model", out, best.number, float(best.value), config.train.metric)


def summarize(optuna: Any, study: Any, metric: str, seconds: float) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    summary: dict[str, Any] = {
        "metric": metric,
        "trials": len(trials),
        "counts": {k: v for k, v in counts.items() if v},
        "seconds": seconds,
        "best_trial": None,
        "best_value": None,
    }
    if counts.get("complete"):
        best = study.best_trial
        summary.update(best_trial=best.number, best_value=best.value, best_params=best.params)
    return summary


def trials_table(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "epochs": len(t.intermediate_values),
                "seconds": seconds,
                "params": t.params,
                "error": t.system_attrs.get("fail_reason") if t.state.name == "FAIL" else None,
            }
        )
    return rows


def write_report(optuna: Any, study: Any, folder: Path, summary: dict[str, Any]) -> None:
    """trials.md / trials.json, history.png and importances.png (when they can be computed)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = trials_table(study)
    (folder / "trials.json").write_text(
        json.dumps({"summary": summary, "trials": rows}, indent=2, default=str) + "\n", encoding="utf-8"
    )
    names = sorted({name for row in rows for name in row["params"]})
    lines = [
        f"# Search {study.study_name}: {summary['metric']} ({study.direction.name.lower()})",
        "",
        f"best trial {summary['best_trial']}: {summary['best_value']}",
        "",
        "| trial | state | value | epochs | seconds | " + " | ".join(names) + " |",
        "|---:|---|---:|---:|---:|" + "---|" * len(names),
    ]
    for row in rows:
        value = "" if row["value"] is None else f"{row['value']:.4f}"
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        cells = [_cell(row["params"].get(name)) for name in names]
        lines.append(
            f"| {row['number']} | {row['state']} | {value} | {row['epochs']} | {seconds} | "
            + " | ".join(cells)
            + " |"
        )
    (folder / "trials.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plots(optuna, study, folder)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plots(optuna: Any, study: Any, folder: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as views
    except ImportError:
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib views experimental
        for name, draw in (
            ("history", views.plot_optimization_history),
            ("importances", views.plot_param_importances),
        ):
            try:
                axes = draw(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as error:  # too few trials
                log.info("no %s plot: %s", name, error)
                continue
            figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figure.savefig(folder / f"{name}.png", dpi=100)
            plt.close(figure)
