"""Hyper-parameter search with Optuna: a YAML search space over any config field, TPE with a seed,
median or Hyperband pruning fed by each epoch's validation metric, resumable and shareable
through an Optuna storage URL, failed trials recorded and skipped.

    run_search("data/snips", space="configs/search/cnn.yaml", model="cnn", trials=30,
               storage="sqlite:///runs/search.db", study="snips-cnn", out="runs/snips-cnn-best")

The search space (YAML) maps dotted config paths to distributions, sampled in file order; a
``when`` clause makes a parameter conditional on values sampled before it. Categorical choices
may be any JSON value (numbers, strings, booleans, null, lists, mappings):

    params:
      train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      train.batch_size: {type: categorical, choices: [32, 64, 128]}
      model.encoder.name: {type: categorical, choices: [cnn, densenet-cnn]}
      model.encoder.params.kernel_sizes: {type: categorical, choices: [[2, 3], [3, 4, 5]]}
      model.encoder.params.num_filters:
        {type: int, low: 64, high: 256, step: 32, when: {model.encoder.name: cnn}}

The best trial's model directory is kept in ``out`` (a normal model directory; retrained from its
parameters when another worker ran it), with ``search/``: the trials table (Markdown + JSON), the
optimization history and parameter importances (PNG). ``out`` may hold other work: a swap
replaces only the entries the previous kept model consists of (listed in
``search/model_files.json``), and the exports and evaluations made from it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textcls.config import ClassifierConfig, deep_update, read_config_file
from textcls.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)
DISTRIBUTIONS = {"float", "int", "categorical"}
BEST_FILE = "search_trial.json"  # in OUT: which study and trial the kept model is
REPORT_DIR = "search"
MODEL_RECORD = "model_files.json"  # in OUT/search/: the entries of OUT the kept model consists of
SWAP_PREFIX = ".textcls-swap-"
HEARTBEAT_INTERVAL, GRACE_PERIOD = 30, 120  # seconds: a trial silent for longer lost its worker
# Entries a model directory written by textcls may have (word models, Hugging Face directories,
# transformers under another head); an ``out`` holding them unrecorded holds someone else's model.
MODEL_NAMES = (
    "config.json",
    "model.safetensors",
    "vocab.txt",
    "labels.json",
    "train_result.json",
    "backbone",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "init.safetensors",  # rewind points for textcls prune (train.save_init, train.rewind_at)
    "rewind.safetensors",
    "clusters.safetensors",  # k-means centroids of --cluster-features
    "golden.json",  # the self-check (textcls.integrity)
    "manifest.json",
    BEST_FILE,
)


def derived_names() -> tuple[str, ...]:
    """What later commands write into a model directory from its model (exports, evaluations):
    stale once that model is replaced."""
    from textcls.inference.onnx import EXPORT_FILE, INT8_FILE, ONNX_FILE

    return (ONNX_FILE, INT8_FILE, EXPORT_FILE, "eval")


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


def _plain(choices: list[Any]) -> bool:
    """Choices Optuna holds as they are: scalars no two of which compare equal (``1`` and ``true``
    do, and would be confused)."""
    scalars = all(c is None or isinstance(c, bool | int | float | str) for c in choices)
    return scalars and len(set(choices)) == len(choices)


def encode_choice(choice: Any) -> str:
    return json.dumps(choice, sort_keys=True)


@dataclass
class Param:
    path: str
    spec: dict[str, Any]

    @property
    def encoded(self) -> bool:
        """Categorical choices Optuna cannot hold (lists, mappings, mixed equal scalars) go to it
        as JSON strings (``"[2, 3, 4]"``, readable in its dashboard) and come back decoded."""
        return self.spec["type"] == "categorical" and not _plain(self.spec["choices"])

    def applies(self, sampled: dict[str, Any]) -> bool:
        return all(sampled.get(key) == value for key, value in (self.spec.get("when") or {}).items())

    def suggest(self, trial: Any) -> Any:
        """The sampled value, as the config takes it (a decoded choice)."""
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
        choices = list(self.spec["choices"])
        if self.encoded:
            return json.loads(trial.suggest_categorical(self.path, [encode_choice(c) for c in choices]))
        return trial.suggest_categorical(self.path, choices)

    def decode(self, value: Any) -> Any:
        """Optuna's stored value → the real one (a trial recorded without ``params``)."""
        return json.loads(value) if self.encoded and isinstance(value, str) else value


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
            _check_choices(where, spec.get("choices"))
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


def _check_choices(where: str, choices: Any) -> None:
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}: a categorical parameter needs a non-empty 'choices' list")
    try:
        encoded = [encode_choice(c) for c in choices]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: choices must be JSON values (numbers, strings, lists, ...)") from None
    if len(set(encoded)) < len(encoded):
        raise ConfigError(f"{where}: choices repeat a value")


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
    if out_path is not None:
        check_out(out_path)  # before any trial: a search never overwrites a model it did not write
        out_path.mkdir(parents=True, exist_ok=True)
    if storage is None and out_path is not None:
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
    worker = {"host": socket.gethostname(), "pid": os.getpid()}  # which process ran a trial

    def objective(trial: Any) -> float:
        try:
            sampled: dict[str, Any] = {}
            for param in params:
                if param.applies(sampled):
                    sampled[param.path] = param.suggest(trial)
            trial.set_user_attr("params", sampled)  # the real values (Optuna may hold encoded ones)
            trial.set_user_attr("worker", worker)
            log.info("trial %d started by worker %s:%d", trial.number, worker["host"], worker["pid"])
            return run_trial(trial, sampled)
        except optuna.TrialPruned:
            raise
        except BaseException as error:  # recorded for the report, then a FAIL trial
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            raise

    def run_trial(trial: Any, sampled: dict[str, Any]) -> float:
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
            if epoch < trial_cfg.train.epochs and trial.should_prune():  # a finished trial is kept
                raise optuna.TrialPruned(f"epoch {epoch}: {metric} {metrics[metric]:.4f}")

        classifier = TextClassifier(config=trial_cfg)
        try:
            classifier.fit(
                data,
                out_dir=directory,
                progress=progress,
                on_epoch=report,
                run_name=f"{study}-trial-{trial.number}",
                parent_run_id=parent.run_ref["run_id"] if parent.run_ref else None,
            )
            value = classifier.train_result.best_metric
            if math.isnan(value):
                raise ValueError(f"validation {metric} is NaN (the training diverged?)")
            if out_path is not None and _is_best(optuna_study, trial.number, value, direction):
                keep(directory, out_path, {"study": study, "trial": trial.number, metric: value}, direction)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return value

    started = time.perf_counter()
    callbacks = [optuna.study.MaxTrialsCallback(trials, states=counted(optuna))]  # other workers' too
    remaining = max(0, trials - existing)
    try:
        if remaining:
            optuna_study.optimize(
                objective,
                n_trials=remaining,
                timeout=timeout,
                callbacks=callbacks,
                catch=(Exception,),  # a failed trial is recorded as FAIL and the search goes on
                gc_after_trial=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = summarize(optuna, optuna_study, metric, time.perf_counter() - started, params)
    if out_path is not None and summary.get("best_trial") is not None:
        _ensure_best_model(optuna_study, out_path, data, progress, metric, direction)
    if out_path is not None:
        # workers sharing ``out`` write one report at a time, each from the study as it is then:
        # the last one written holds every trial's final state (not an early finisher's view)
        with _lock(out_path):
            summary = summarize(optuna, optuna_study, metric, time.perf_counter() - started, params)
            try:
                write_report(optuna, optuna_study, out_path / REPORT_DIR, summary, params)
            except Exception as error:  # the study and the model are safe; the report is a convenience
                log.warning("search report not written: %s: %s", type(error).__name__, error)
    if parent.run_ref:
        parent.log_metrics(
            {f"best_{metric}": summary["best_value"]} if summary.get("best_value") is not None else {}
        )
        if out_path is not None:
            parent.log_artifact(out_path / REPORT_DIR, "search")
        parent.close()
    summary.update(storage=storage, study=study, out=str(out_path) if out_path else None)
    return summary


def _storage(optuna: Any, url: str | None) -> Any:
    """An RDB storage with heartbeats: a trial whose worker died is marked failed and retried once
    by the next worker, instead of staying "running" for ever."""
    if url is None:
        return None
    import warnings

    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)  # optuna >= 4.9
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
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD, **options
                )
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


def _better(value: float, than: float, direction: str) -> bool:
    return value > than if direction == "maximize" else value < than


def _is_best(study: Any, number: int, value: float, direction: str) -> bool:
    """Better than every trial finished so far (this trial is still running)."""
    values = [t.value for t in study.get_trials(deepcopy=False) if t.value is not None and t.number != number]
    if not values:
        return True
    return _better(value, max(values) if direction == "maximize" else min(values), direction)


# ------------------------------------------------------------------------------ the kept model
def model_entries(out: Path) -> set[str]:
    """The entries of ``out`` the kept model consists of, as recorded when it was swapped in (an
    ``out`` from before the record: the model names present beside its ``search_trial.json``)."""
    record = out / REPORT_DIR / MODEL_RECORD
    if record.is_file():
        names = json.loads(record.read_text(encoding="utf-8")).get("entries", [])
        return {n for n in names if isinstance(n, str) and n not in ("", ".", "..") and Path(n).name == n}
    if (out / BEST_FILE).is_file():
        return {n for n in (*MODEL_NAMES, *derived_names()) if _exists(out / n)}
    return set()


def check_out(out: Path) -> None:
    """Refuse an ``out`` holding a model that no search kept there: the best model would
    overwrite it. Everything else in ``out`` (other models in sub-directories, notes, other
    studies' databases) is left alone by the search."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory")
    ours = model_entries(out)
    allowed = ours | (set(derived_names()) if ours else set())  # exports of the kept model
    foreign = sorted(n for n in (*MODEL_NAMES, *derived_names()) if _exists(out / n) and n not in allowed)
    if foreign:
        raise ConfigError(
            f"{out} already holds {', '.join(foreign)}, not written by textcls search (a model "
            "directory?); the best model would replace them. Give --out a new directory, or one "
            "that only holds other work in sub-directories"
        )


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _kept(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / BEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _lock(out: Path) -> Any:
    """Workers on one machine may share ``out`` (its default SQLite study): one swap at a time."""
    from filelock import FileLock  # a dependency of torch

    (out / REPORT_DIR).mkdir(parents=True, exist_ok=True)
    return FileLock(str(out / REPORT_DIR / ".model.lock"))


def keep(directory: Path, out: Path, best: dict[str, Any], direction: str, *, force: bool = False) -> bool:
    """Make ``directory``'s model the one kept in ``out`` unless a better trial of the same study
    is kept there already (another worker's); ``best`` = {"study", "trial", metric: value}."""
    metric = next(k for k in best if k not in ("study", "trial"))
    with _lock(out):
        kept = _kept(out)
        same = kept.get("study") == best["study"] and isinstance(kept.get(metric), int | float)
        if not force and same and not _better(best[metric], kept[metric], direction):
            return False
        swap_model(directory, out, best)
    return True


def swap_model(source: Path, out: Path, best: dict[str, Any]) -> None:
    """Replace the model in ``out`` by the one in ``source``, entry by entry with renames.

    The new model is first copied into a temporary directory inside ``out`` (same file system),
    then each file replaces its predecessor with an atomic rename. Removed: only the entries the
    previous kept model consisted of (``search/model_files.json``) and what was derived from it
    (ONNX exports, ``export.json``, ``eval/``); nothing else in ``out`` is touched."""
    from textcls.training.loop import CHECKPOINT_DIR

    old = model_entries(out)
    derived = set(derived_names())
    staging = Path(tempfile.mkdtemp(prefix=SWAP_PREFIX, dir=out))
    try:
        incoming = staging / "new"
        shutil.copytree(source, incoming, ignore=shutil.ignore_patterns(CHECKPOINT_DIR, "tensorboard"))
        _write_json(incoming / BEST_FILE, best)
        new = sorted(p.name for p in incoming.iterdir())
        foreign = [n for n in new if _exists(out / n) and n not in old and not (old and n in derived)]
        if foreign:
            raise ConfigError(f"{out}: {', '.join(foreign)} not written by textcls search; not replaced")
        stale = {n for n in old - set(new)} | ({n for n in derived if _exists(out / n)} if old else set())
        # a crash from here on leaves a record naming every entry that may be the search's
        _write_json(out / REPORT_DIR / MODEL_RECORD, _record(old | set(new)))
        trash = staging / "old"
        trash.mkdir()
        for name in sorted(stale - set(new)):
            if _exists(out / name):
                (out / name).rename(trash / name)
        for name in sorted(new, key=lambda n: n == BEST_FILE):  # the trial record goes in last
            target, replacement = out / name, incoming / name
            if replacement.is_dir() or (target.is_dir() and not target.is_symlink()):
                if _exists(target):
                    target.rename(trash / name)
                replacement.rename(target)
            else:
                os.replace(replacement, target)  # atomic: readers see the old file or the new one
        _write_json(out / REPORT_DIR / MODEL_RECORD, _record(set(new)))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _record(names: set[str]) -> dict[str, Any]:
    return {
        "entries": sorted(names),
        "about": "the entries of this search's --out that the kept model consists of; "
        "textcls search replaces only these (and the exports made from them)",
    }


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _ensure_best_model(study: Any, out: Path, data: Any, progress: bool, metric: str, direction: str) -> None:
    """The best trial's model in ``out``: kept when this worker ran it, else retrained."""
    from textcls.api import TextClassifier

    best = study.best_trial
    kept = _kept(out)
    if kept.get("study") == study.study_name and kept.get("trial") == best.number:
        return
    log.info("retraining trial %d (run by another worker) into %s", best.number, out)
    config = ClassifierConfig.from_dict(best.user_attrs["config"], source=f"trial {best.number}")
    config.train.track = "none"
    with tempfile.TemporaryDirectory(prefix="textcls-best-") as tmp:
        TextClassifier(config=config).fit(data, out_dir=Path(tmp) / "model", progress=progress)
        record = {"study": study.study_name, "trial": best.number, metric: float(best.value)}
        keep(Path(tmp) / "model", out, record, direction, force=True)


# ------------------------------------------------------------------------------------- report
def trial_params(trial: Any, space: list[Param] | None = None) -> dict[str, Any]:
    """A trial's sampled values as the config took them."""
    if isinstance(trial.user_attrs.get("params"), dict):
        return dict(trial.user_attrs["params"])
    decoders = {p.path: p for p in space or []}
    return {k: decoders[k].decode(v) if k in decoders else v for k, v in trial.params.items()}


def summarize(
    optuna: Any, study: Any, metric: str, seconds: float, space: list[Param] | None = None
) -> dict[str, Any]:
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
        summary.update(best_trial=best.number, best_value=best.value, best_params=trial_params(best, space))
    return summary


def trials_table(study: Any, space: list[Param] | None = None) -> list[dict[str, Any]]:
    rows = []
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    for t in trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        error = None
        if t.state.name == "FAIL":
            error = t.user_attrs.get("error") or t.system_attrs.get("fail_reason")
            if error is None:  # objectives record theirs: this trial's worker died
                error = "its worker stopped sending heartbeats" + (
                    " (retried)" if t.number in retried else ""
                )
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "epochs": len(t.intermediate_values),
                "seconds": seconds,
                "params": trial_params(t, space),
                "retry_of": t.system_attrs.get("failed_trial"),  # Optuna's retry of a dead worker's trial
                "worker": _worker(t),
                "error": error,
            }
        )
    return rows


def _worker(trial: Any) -> str | None:
    """``host:pid`` of the process that ran the trial (None: recorded before workers were)."""
    worker = trial.user_attrs.get("worker")
    return f"{worker['host']}:{worker['pid']}" if isinstance(worker, dict) else None


def write_report(
    optuna: Any, study: Any, folder: Path, summary: dict[str, Any], space: list[Param] | None = None
) -> None:
    """trials.md / trials.json, history.png and importances.png (when they can be computed)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = trials_table(study, space)
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
        cells = [_cell(row["params"], name) for name in names]
        lines.append(
            f"| {row['number']} | {row['state']} | {value} | {row['epochs']} | {seconds} | "
            + " | ".join(cells)
            + " |"
        )
    (folder / "trials.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plots(optuna, study, folder)


def _cell(params: dict[str, Any], name: str) -> str:
    """A sampled value as the space file writes it (``null``, ``true``, ``[2, 3]``); empty when the
    parameter did not apply to the trial."""
    if name not in params:
        return ""
    value = params[name]
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|")


def _plots(optuna: Any, study: Any, folder: Path) -> None:
    """history.png and importances.png; one that cannot be drawn (too few trials, a plotting
    library's error) is a warning, never a lost search."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as views
    except ImportError as error:
        log.warning("no search plots (pip install 'textcls[plot]'): %s", error)
        return
    import warnings

    for name, draw in (
        ("history", views.plot_optimization_history),
        ("importances", views.plot_param_importances),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib views experimental
                axes = draw(study)
            figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figure.savefig(folder / f"{name}.png", dpi=100)
            plt.close(figure)
        except Exception as error:  # e.g. importances need two or more completed trials
            log.warning("no %s plot: %s: %s", name, type(error).__name__, error)
            plt.close("all")
