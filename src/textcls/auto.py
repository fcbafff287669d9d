"""``--model auto``: climb the ladder cheapest first within a time budget and keep the best model
that meets the latency and size limits.

linear → fasttext → cnn → densenet-cnn → minilm-l6, each trained as a normal run into
``OUT/candidates/NAME``, exported for the backend it would serve with (``numpy`` for the bag
models, ``onnx`` for word models, ``onnx-int8`` for the transformer), and measured there: the
validation metric, the test metric when the data has a test file, batch-1 p50 latency, size and
train time. The winner is the cheapest candidate that the one with the best validation metric does
not beat beyond validation noise (a paired randomization test on the validation answers, one-sided
5 %):
a costlier rung must earn its cost. Before each candidate the time it needs is estimated from what
the ones before it took (scaled by a cost factor); a candidate with ``probe`` (the transformer,
whose cost against word models depends on the hardware) first trains a few batches and is
estimated from that, scaled to the data size. A candidate that does not fit is skipped with its
reason, or, when it can train for fewer epochs, trained shorter and said so. The winner's files
are copied into OUT, which is then a normal model directory, beside ``auto.json``, ``auto.md`` and
``auto.png``.

OUT may hold other work: auto replaces only what it wrote there (listed in ``auto_files.json``:
the kept model's entries and the candidate folders) and what was made from that model (exports,
``eval/``); a model, a candidate folder or a leaderboard there that auto did not write is refused
before anything is trained.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textcls.errors import AccuracyGateError, ConfigError, TextClsError

log = logging.getLogger(__name__)
AUTO_FILE = "auto.json"
CANDIDATES_DIR = "candidates"
RECORD_FILE = "auto_files.json"  # what auto wrote in OUT: the kept model's entries, the candidates
LEADERBOARD = (AUTO_FILE, "auto.md", "auto.png")
SKIP_COPY = {"checkpoint", "tensorboard", "eval"}  # training leftovers stay with the candidate
PROBE_BATCHES = 3  # what a probe trains on (one pass), to time a candidate before committing to it
PROBE_MIN_SECONDS = 60.0  # a probe itself takes time (a loaded CPU: minutes): not started with less left
SIGNIFICANCE = 0.05  # a costlier candidate wins only when it beats a cheaper one at this level
RANDOMIZATION_SAMPLES = 2000
PICKS = ("cheapest", "best")  # the winner: the cheapest within validation noise of the best, or the best


@dataclass(frozen=True)
class Candidate:
    """One rung: a preset (or a local Hugging Face directory), the backend it serves with, and its
    cost relative to ``linear``. ``probe``: time a few training batches first and estimate from
    them instead of from ``cost``."""

    name: str
    preset: str
    backend: str
    cost: float
    shortenable: bool = False  # may train for fewer epochs when the budget is short
    overrides: dict[str, Any] = field(default_factory=dict)
    probe: bool = False
    # a rung at least as slow at batch 1 (same or larger featurizer and encoder): when it was over
    # --max-latency-ms, this one would be too and is skipped without training
    slower_than: str | None = None


LADDER: tuple[Candidate, ...] = (
    Candidate("linear", "linear", "numpy", 1),
    Candidate("fasttext", "fasttext", "numpy", 4),
    Candidate("cnn", "cnn", "onnx", 40, shortenable=True, slower_than="fasttext"),
    Candidate("densenet-cnn", "densenet-cnn", "onnx", 120, shortenable=True, slower_than="cnn"),
    Candidate("minilm-l6", "minilm-l6", "onnx-int8", 1500, shortenable=True, probe=True, slower_than="cnn"),
)


def parse_budget(value: str | float | int) -> float:
    """``90s``, ``10m``, ``1h`` or a number of seconds → seconds."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(value))
        if not match:
            raise ConfigError(f"time budget '{value}': give seconds or a number with s, m or h (e.g. 10m)")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"time budget must be positive, got {value}")
    return seconds


def batch1_p50_ms(predictor: Any, texts: Sequence[Any], n: int = 200) -> float:
    """Median ms per text at batch size 1 over up to 200 texts after 10 warm-ups: the batch-1
    half of ``textcls.evaluation.measure_latency`` (``textcls bench``), without its throughput
    passes."""
    from textcls.evaluation import single_timings

    return float(statistics.median(single_timings(predictor, list(texts) or [""], n)))


def train_auto(
    data: str | Path,
    out: str | Path,
    *,
    time_budget: str | float = "10m",
    max_latency_ms: float | None = None,
    max_size_mb: float | None = None,
    candidates: Sequence[Candidate] = LADDER,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    progress: bool = False,
    measure_latency: Callable[[Any, Sequence[Any]], float] = batch1_p50_ms,
    pick: str = "cheapest",
    **overrides: Any,
) -> dict[str, Any]:
    """Train the ladder on ``data`` (a directory or a training file; ``valid`` / ``test`` name
    split files as ``textcls train`` does) within ``time_budget``; the winner is saved in ``out``
    with the leaderboard. Returns the leaderboard (also ``out/auto.json``). Raises TextClsError
    when no candidate meets the limits (the leaderboard is written first).

    ``pick="cheapest"``: the winner is the cheapest candidate within the limits that the best one
    (by the validation metric) does not beat beyond noise (``SIGNIFICANCE`` in a paired
    randomization test on the validation answers); ``pick="best"``: the best validation metric,
    however small its lead.

    >>> train_auto("data/snips", "runs/auto", time_budget="10m", max_latency_ms=1)  # doctest: +SKIP
    """
    budget = parse_budget(time_budget)
    if pick not in PICKS:
        raise ConfigError(f"pick must be one of {', '.join(PICKS)}, got {pick!r}")
    out = Path(out)
    _check_out(out, [c.name for c in candidates])
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    seconds_per_cost: float | None = None
    too_slow: dict[str, str] = {}  # candidate → the measured one over the latency cap it follows
    outcomes: dict[str, Outcomes] = {}  # candidate → its validation answers, for the paired test
    for candidate in candidates:
        row: dict[str, Any] = {"candidate": candidate.name, "backend": candidate.backend}
        rows.append(row)
        if not _available(candidate.preset):
            row["status"] = "skipped: preset not available"
            continue
        if candidate.slower_than in too_slow:
            measured = too_slow[candidate.slower_than]
            too_slow[candidate.name] = measured
            row["status"] = (
                f"skipped: at least as slow at batch 1 as {candidate.slower_than}, and {measured} "
                f"was over the {max_latency_ms:g} ms latency limit"
            )
            log.info("skipped %s: %s", candidate.name, row["status"].removeprefix("skipped: "))
            continue
        try:
            seconds = _try(
                candidate, row, data, out, budget - (time.perf_counter() - started), seconds_per_cost,
                overrides, valid=valid, test=test, progress=progress, measure_latency=measure_latency,
            )  # fmt: skip
        except Exception as error:  # one broken candidate is a row of the leaderboard, not the end
            if not isinstance(error, TextClsError):
                log.exception("auto: %s failed", candidate.name)
            message = str(error) if isinstance(error, TextClsError) else f"{type(error).__name__}: {error}"
            row["status"] = f"failed: {' '.join(message.split())}"
            continue
        if seconds is None:  # skipped
            log.info("skipped %s: %s", candidate.name, row["status"].removeprefix("skipped: "))
            continue
        if (answers := row.pop("_outcomes", None)) is not None:
            outcomes[candidate.name] = answers
        actual = seconds / candidate.cost
        seconds_per_cost = max(seconds_per_cost or 0.0, actual)  # the slowest rate seen: no overruns
        over = []
        if max_latency_ms is not None and row["p50_ms"] > max_latency_ms:
            over.append(f"over latency ({row['p50_ms']:.3f} > {max_latency_ms:g} ms)")
            too_slow[candidate.name] = f"{candidate.name} ({row['p50_ms']:.3f} ms)"
        if max_size_mb is not None and row["size_mb"] > max_size_mb:
            over.append(f"over size ({row['size_mb']:.1f} > {max_size_mb:g} MB)")
        row["status"] = ", ".join(over) or "ok"
    winner, pick_note = choose(rows, outcomes, SIGNIFICANCE if pick == "cheapest" else None)
    limits = {"max_latency_ms": max_latency_ms, "max_size_mb": max_size_mb, "pick": pick}
    if pick_note:
        limits["pick_note"] = pick_note
    return _finish(out, rows, winner, budget, time.perf_counter() - started, limits)


def _available(preset: str) -> bool:
    from textcls.api import resolve_preset

    try:
        resolve_preset(preset)
    except ConfigError:
        return False
    return True


def _try(
    candidate: Candidate,
    row: dict[str, Any],
    data: str | Path,
    out: Path,
    left: float,
    seconds_per_cost: float | None,
    overrides: dict[str, Any],
    **run: Any,
) -> float | None:
    """Estimate, maybe shorten, train and measure one candidate (its results go into ``row``);
    the seconds it took (training, export, measurement), or None when it was skipped."""
    if left <= 0:
        row["status"] = f"skipped: {_duration(0)} left"
        return None
    options = {**candidate.overrides, **overrides}
    estimate = seconds_per_cost * candidate.cost if seconds_per_cost else None
    reserve = min(60.0, 0.1 * left)  # export and measurement after training
    if candidate.probe and left < PROBE_MIN_SECONDS:
        row["status"] = f"skipped: {_duration(left)} left, too little to time it"
        return None
    if candidate.probe:
        started = time.perf_counter()
        per_epoch, other, planned, note = _probe(candidate, data, options, run["valid"])
        left -= time.perf_counter() - started
        row["note"] = note
        reserve = other
        estimate = other + planned * per_epoch
        if estimate > left:
            fitting = fitting_epochs(per_epoch, other, planned, left)
            if fitting is None:
                row["status"] = f"skipped: needs ~{_duration(estimate)}, {_duration(max(left, 0))} left"
                return None
            options.update(epochs=fitting, target_steps=None)
            row["note"] += f"; trained for {fitting} of {planned} epochs to fit the {_duration(left)} left"
    elif left <= 0 or (estimate is not None and estimate > left):
        shorter = _shorter(candidate, estimate, left, options)
        if shorter is None:
            need = f"needs ~{_duration(estimate)}, " if estimate else ""
            row["status"] = f"skipped: {need}{_duration(max(left, 0))} left"
            return None
        options.update(shorter)
        row["note"] = f"trained for {shorter['epochs']} epochs to fit the {_duration(left)} left"
    if estimate is not None:
        row["estimate_s"] = round(estimate, 1)
    # estimates miss on a loaded machine: training itself stops in time (its best epoch kept)
    limit = max(1.0, left - reserve)
    options["time_limit"] = min(limit, options.get("time_limit") or limit)
    log.info("auto: training %s (%s left)", candidate.name, _duration(left))
    directory = out / CANDIDATES_DIR / candidate.name
    _record_candidate(out, candidate.name)  # before anything is written there
    started = time.perf_counter()
    row.update(_run(candidate, data, directory, options, row, **run))
    return time.perf_counter() - started


def fitting_epochs(per_epoch: float, other: float, planned: int, left: float) -> int | None:
    """The epochs (at most ``planned``, at least one) that fit in ``left`` seconds when an epoch
    takes ``per_epoch`` and the rest (start-up, export, measurement) ``other``; None if none do.

    >>> fitting_epochs(60, 30, 3, 200), fitting_epochs(60, 30, 3, 100), fitting_epochs(60, 30, 3, 80)
    (2, 1, None)
    """
    if per_epoch <= 0:
        return planned
    fitting = min(planned, math.floor((left - other) / per_epoch))
    return fitting if fitting >= 1 else None


def _probe(
    candidate: Candidate, data: str | Path, options: dict[str, Any], valid: str | Path | None
) -> tuple[float, float, int, str]:
    """Train the candidate for one pass over a few batches of a sample of the training data and
    time it: (seconds per epoch on the whole data, seconds for the rest — loading, export,
    measurement —, the epochs it would train, a note saying so)."""
    from textcls.api import TextClassifier
    from textcls.data.splits import load_splits
    from textcls.training.loop import planned_epochs

    classifier = TextClassifier(model=candidate.preset, **options)
    train = classifier.config.train
    splits = load_splits(data, valid=valid, options=classifier.config.data, seed=train.seed)
    size = min(len(splits.train), PROBE_BATCHES * train.batch_size)
    sample = random.Random(train.seed).sample(splits.train, size)
    labels = {str(e.label) for e in sample}
    sample_valid = [e for e in splits.valid if str(e.label) in labels][:64] or sample[:64]
    started = time.perf_counter()
    quick = {"epochs": 1, "patience": 0, "track": "none", "tensorboard": False}
    probe = TextClassifier(model=candidate.preset, **{**options, **quick})
    probe.fit(sample, sample_valid, progress=False)
    wall = time.perf_counter() - started
    result = probe.train_result
    train_s = result.history[0]["train_seconds"]  # the optimisation only
    per_valid = max(result.seconds - train_s, 0.0) / len(sample_valid)
    per_epoch = train_s / size * len(splits.train) + per_valid * len(splits.valid)
    n_eval = len(splits.test or splits.valid)
    # start-up (loading the model) + what export and measurement run through it
    other = max(wall - result.seconds, 0.0) + per_valid * (4 * 257 + 2 * len(splits.valid) + n_eval + 4 * 210)
    steps = -(-len(splits.train) // train.batch_size) // max(1, train.grad_accum)
    planned = planned_epochs(train, max(1, steps))
    note = (
        f"probe: {size} examples trained in {train_s:.1f} s, so ~{_duration(per_epoch)} an epoch "
        f"on {len(splits.train)} (+ ~{_duration(other)} to load, export and measure)"
    )
    log.info("auto: %s %s", candidate.name, note)
    return per_epoch, other, planned, note


def _shorter(candidate: Candidate, estimate: float | None, left: float, options: dict) -> dict | None:
    """Fewer epochs for a candidate that does not fit, when at least a third of it would."""
    if not candidate.shortenable or estimate is None or left <= 0:
        return None
    from textcls.api import build_config

    epochs = build_config(candidate.preset, **options).train.epochs  # the candidate's own, overrides too
    fitting = int(epochs * left / estimate)
    if fitting < max(1, epochs // 3):
        return None
    return {"epochs": fitting, "target_steps": None}


def _run(
    candidate: Candidate,
    data: str | Path,
    directory: Path,
    options: dict[str, Any],
    row: dict[str, Any],
    *,
    valid: str | Path | None,
    test: str | Path | None,
    progress: bool,
    measure_latency: Callable[[Any, Sequence[Any]], float],
) -> dict[str, Any]:
    from textcls.api import TextClassifier
    from textcls.evaluation import evaluate
    from textcls.inference.bench import model_size_mb
    from textcls.inference.predictor import load_predictor

    if directory.exists():
        shutil.rmtree(directory)  # auto's own from an earlier run (_check_out refused any other)
    started = time.perf_counter()
    classifier = TextClassifier(model=candidate.preset, **options)
    classifier.fit(data, valid, out_dir=directory, progress=progress)
    train_s = time.perf_counter() - started
    if classifier.train_result.extra.get("time_limit_reached"):
        epochs = len(classifier.train_result.history)
        note = f"stopped by the time left ({_duration(options['time_limit'])}) during epoch {epochs}"
        row["note"] = f"{row['note']}; {note}" if row.get("note") else note
    backend = candidate.backend
    if backend in ("onnx", "onnx-int8"):
        from textcls.inference.export import export_model

        try:
            export_model(directory, quantize="int8" if backend == "onnx-int8" else None)
        except AccuracyGateError as error:  # model.onnx is written before the gate: serve that
            backend = "onnx"
            note = f"served on onnx: {error}"
            row["note"] = f"{row['note']}; {note}" if row.get("note") else note
            log.warning("auto: %s %s", candidate.name, note)
    predictor = load_predictor(directory, backend=backend)
    result = classifier.train_result
    measured: dict[str, Any] = {
        "backend": backend,
        "metric": classifier.config.train.metric,
        "valid": float(result.best_metric),
        "train_s": round(train_s, 2),
        "size_mb": round(model_size_mb(directory, backend, predictor), 3),
        "directory": str(directory),
    }
    test = test if test is not None else _test_file(data)
    if test is not None:
        from textcls.api import read_labelled

        examples = read_labelled(test, classifier.config)
        report = evaluate(predictor, examples, latency=False, source=str(test))
        measured["test_accuracy"] = report["accuracy"]
        measured["test_macro_f1"] = report["macro_f1"]
    else:  # no test split: latency on the validation texts the training used
        from textcls.inference.export import resolve_validation

        examples = resolve_validation(directory) or []
    texts = [e.as_input() for e in examples]
    measured["p50_ms"] = round(measure_latency(predictor, texts or ["a short text"]), 4)
    measured["_outcomes"] = validation_outcomes(predictor, directory)  # popped by train_auto
    return measured


def _test_file(data: str | Path) -> Path | None:
    from textcls.data.splits import find_split_files

    return find_split_files(data).get("test") if Path(data).is_dir() else None


# ------------------------------------------------------------------------------ choosing the winner
@dataclass(frozen=True)
class Outcomes:
    """A candidate's answers on the validation examples beside the gold ones: labels, or sorted
    label tuples for a multi-label model."""

    gold: tuple[Any, ...]
    predicted: tuple[Any, ...]


def validation_outcomes(predictor: Any, directory: Path) -> Outcomes | None:
    """What ``predictor`` answers on the validation split its model trained with (None when that
    split cannot be read back, e.g. data given in memory)."""
    from textcls.inference.export import resolve_validation

    try:
        examples = resolve_validation(directory)
    except TextClsError:
        return None
    if not examples:
        return None
    answers = predictor.predict([e.as_input() for e in examples])
    if predictor.decider().multi_label:
        gold = tuple(tuple(sorted(e.label_set)) for e in examples)
        predicted = tuple(tuple(sorted(a["label"] for a in ranked)) for ranked in answers)
    else:
        gold, predicted = tuple(e.label for e in examples), tuple(a["label"] for a in answers)
    return Outcomes(gold, predicted)


def paired_p_value(
    better: Outcomes, other: Outcomes, metric: str, samples: int = RANDOMIZATION_SAMPLES, seed: int = 0
) -> float | None:
    """One-sided p-value that ``better`` is no better than ``other`` on the same validation
    examples. Accuracy: McNemar's exact test, the binomial tail of the examples only ``better``
    gets right among those exactly one of the two gets right. Macro-F1: approximate randomization
    (Noreen 1989; Riezler and Maxwell 2005): each example's two answers swapped at random, p the
    share of ``samples`` swaps whose difference is at least the observed one (add-one smoothed).
    None when the two answered different examples, or for a metric without a paired form here (a
    loss; macro-F1 of several labels per text).

    >>> gold = tuple("ab" * 50)
    >>> three_worse = Outcomes(gold, ("b", "a", "b") + gold[3:])
    >>> paired_p_value(Outcomes(gold, gold), three_worse, "accuracy")  # 1/2³
    0.125
    >>> paired_p_value(Outcomes(gold, gold), Outcomes(gold, ("a",) * 100), "accuracy") < 0.01
    True
    """
    import numpy as np

    n = len(better.gold)
    if n == 0 or better.gold != other.gold:
        return None
    multi = isinstance(better.gold[0], tuple)
    if metric not in ("accuracy", "macro_f1") or (metric == "macro_f1" and multi):
        return None
    ids: dict[Any, int] = {}
    gold, a, b = (
        np.array([ids.setdefault(v, len(ids)) for v in values])
        for values in (better.gold, better.predicted, other.predicted)
    )
    if metric == "accuracy":
        from scipy.stats import binomtest

        only_better = int(((a == gold) & (b != gold)).sum())
        only_other = int(((b == gold) & (a != gold)).sum())
        if only_better + only_other == 0:
            return 1.0
        return float(binomtest(only_better, only_better + only_other, 0.5, alternative="greater").pvalue)

    def difference(first: Any, second: Any) -> Any:  # rows of predictions → macro-F1 differences
        return _macro_f1_rows(gold, first, len(ids)) - _macro_f1_rows(gold, second, len(ids))

    observed = float(difference(a[None, :], b[None, :])[0])
    rng = np.random.default_rng(seed)
    at_least = 0
    for start in range(0, samples, 200):  # in chunks: a swap matrix is samples × n
        swap = rng.random((min(200, samples - start), n)) < 0.5
        at_least += int((difference(np.where(swap, b, a), np.where(swap, a, b)) >= observed - 1e-12).sum())
    return (at_least + 1) / (samples + 1)


def outcome_metric(outcomes: Outcomes, metric: str) -> float:
    """The metric (accuracy or macro-F1) of a candidate's validation answers."""
    from textcls.metrics import accuracy, macro_f1

    return (accuracy if metric == "accuracy" else macro_f1)(outcomes.gold, outcomes.predicted)


def _macro_f1_rows(gold: Any, predicted: Any, k: int) -> Any:
    """Macro-F1 (``textcls.metrics.macro_f1``: over the labels in the gold or predicted ones) of
    each row of ``predicted`` [rows, examples] against ``gold`` [examples], labels 0..k-1."""
    import numpy as np

    rows = len(predicted)
    offset = np.arange(rows)[:, None] * k
    g = np.broadcast_to(gold, predicted.shape)
    hits = np.bincount((offset + g)[g == predicted], minlength=rows * k).reshape(-1, k)
    gold_counts = np.bincount((offset + g).ravel(), minlength=rows * k).reshape(-1, k)
    predicted_counts = np.bincount((offset + predicted).ravel(), minlength=rows * k).reshape(-1, k)
    denominator = gold_counts + predicted_counts
    f1 = 2 * hits / np.maximum(denominator, 1)
    return f1.sum(1) / np.maximum((denominator > 0).sum(1), 1)


def choose(
    rows: list[dict[str, Any]], outcomes: dict[str, Outcomes], significance: float | None = SIGNIFICANCE
) -> tuple[dict[str, Any] | None, str | None]:
    """(the winning row, a note when the noise test could not decide) among the rows within the
    limits (status ``ok``), which are in ladder order, cheapest first: the first one that the best
    by validation metric does not beat at ``significance`` on their served validation answers
    (``paired_p_value``), else the best itself. Each compared row records its p-value; the winner
    says why it won. (None, None) when no row is within the limits."""
    fits = [r for r in rows if r.get("status") == "ok"]
    if not fits:
        return None, None
    metric = fits[0]["metric"]
    best = (min if metric == "loss" else max)(fits, key=lambda r: r["valid"])  # ties: the cheapest
    if significance is None or best is fits[0]:
        return best, None
    skipped = []
    for row in fits:
        if row is best:
            break
        better, other = outcomes.get(best["candidate"]), outcomes.get(row["candidate"])
        p = paired_p_value(better, other, metric) if better and other else None
        if p is None:
            skipped.append(row["candidate"])
            continue
        row["p_best_not_better"] = round(p, 4)
        if p >= significance:
            lead = (outcome_metric(better, metric) - outcome_metric(other, metric)) * 100
            note = (
                f"{best['candidate']} leads by {lead:.2f} points on its served validation answers, "
                f"within noise (p = {p:.2f} ≥ {significance:g}): the cheaper one wins"
            )
            row["note"] = f"{row['note']}; {note}" if row.get("note") else note
            return row, None
        row["note"] = f"{row['note']}; " if row.get("note") else ""
        row["note"] += f"{best['candidate']} better beyond noise (p = {p:.3f})"
    if not skipped:
        return best, None
    return best, (
        f"{', '.join(skipped)} not tested against {best['candidate']} for noise (no paired test of "
        f"{metric} on their validation answers): the best validation metric wins"
    )


def _finish(
    out: Path,
    rows: list[dict[str, Any]],
    winner: dict[str, Any] | None,
    budget: float,
    seconds: float,
    limits: dict[str, Any],
) -> dict[str, Any]:
    if winner is not None:
        winner["status"] = "winner"
        _install(Path(winner["directory"]), out, winner["candidate"])
    board = {
        "winner": winner["candidate"] if winner else None,
        "backend": winner["backend"] if winner else None,
        "budget_s": budget,
        "seconds": round(seconds, 1),
        **limits,
        "rows": rows,
    }
    (out / AUTO_FILE).write_text(json.dumps(board, indent=2) + "\n", encoding="utf-8")
    (out / "auto.md").write_text(leaderboard_markdown(board), encoding="utf-8")
    _plot(rows, out / "auto.png")
    if winner is None:
        raise TextClsError(
            f"no candidate met the limits within {_duration(budget)} (see {out / 'auto.md'}): "
            "raise --time-budget, --max-latency-ms or --max-size-mb"
        )
    log.info(
        "auto: %s wins (%s %.4f on valid, %s)",
        winner["candidate"],
        winner["metric"],
        winner["valid"],
        winner["backend"],
    )
    return board


# ------------------------------------------------------------------------------ what is in OUT
def _read_record(out: Path) -> dict[str, list[str]]:
    """``auto_files.json``: {"entries": the kept model's entries, "candidates": folders under
    ``candidates/``} (a list: the entries, as the first version wrote it)."""
    try:
        record = json.loads((out / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"entries": [], "candidates": []}
    if isinstance(record, list):  # the first version: its candidate folders were all its own
        folder = out / CANDIDATES_DIR
        mine = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        record = {"entries": record, "candidates": mine}
    if not isinstance(record, dict):
        record = {}

    def names(key: str) -> list[str]:
        values = record.get(key) or []
        return [n for n in values if isinstance(n, str) and n not in ("", ".", "..") and Path(n).name == n]

    return {"entries": names("entries"), "candidates": names("candidates")}


def _write_record(out: Path, entries: Sequence[str], candidates: Sequence[str]) -> None:
    record = {
        "entries": sorted(set(entries)),
        "candidates": sorted(set(candidates)),
        "about": "what textcls train --model auto wrote here: the kept model's entries and the folders "
        f"under {CANDIDATES_DIR}/; auto replaces only these (and the exports made from the model)",
    }
    temporary = out / f".{RECORD_FILE}.tmp"
    temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    temporary.replace(out / RECORD_FILE)


def _record_candidate(out: Path, name: str) -> None:
    record = _read_record(out)
    _write_record(out, record["entries"], [*record["candidates"], name])


def _model_names() -> tuple[set[str], set[str]]:
    """(entries a model directory written by textcls may have, those derived from its model)."""
    from textcls.search import MODEL_NAMES, derived_names

    return set(MODEL_NAMES), set(derived_names())


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _install(source: Path, out: Path, name: str) -> None:
    """The winner's files into ``out`` (copied: the candidate stays for comparison, and the
    exports stay bound to their weights). The copy is made inside ``out`` first; then the
    entries of the model kept there before (and its exports, evaluations) are removed and the
    new ones renamed in. Nothing else in ``out`` is touched."""
    _, derived = _model_names()
    record = _read_record(out)
    old = set(record["entries"])
    staging = Path(tempfile.mkdtemp(prefix=".textcls-auto-", dir=out))
    try:
        incoming = staging / name
        shutil.copytree(source, incoming, ignore=shutil.ignore_patterns(*SKIP_COPY))
        new = sorted(p.name for p in incoming.iterdir())
        clash = [n for n in new if _exists(out / n) and n not in old and not (old and n in derived)]
        clash += [n for n in new if n in (RECORD_FILE, CANDIDATES_DIR, *LEADERBOARD)]
        if clash:
            raise ConfigError(f"{out}: {', '.join(clash)} not written by --model auto; not replaced")
        stale = old | ({n for n in derived if _exists(out / n)} if old else set())
        _write_record(out, stale | set(new), record["candidates"])  # a crash from here names them all
        for entry in sorted(stale):
            target = out / entry
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif _exists(target):
                target.unlink()
        for entry in new:
            (incoming / entry).rename(out / entry)
        _write_record(out, new, record["candidates"])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_out(out: Path, candidate_names: Sequence[str] = ()) -> None:
    """Refuse an OUT holding a model, a candidate folder or a leaderboard that auto did not write
    (the winner or a candidate would replace it); everything else in OUT is left alone."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory")
    model_names, derived = _model_names()
    recorded = (out / RECORD_FILE).is_file()
    record = _read_record(out)
    ours = set(record["entries"])
    allowed = ours | (derived if ours else set()) | (set(LEADERBOARD) if recorded else set())
    names = sorted(model_names | derived | set(LEADERBOARD))
    foreign = [n for n in names if _exists(out / n) and n not in allowed]
    folder = out / CANDIDATES_DIR
    if _exists(folder) and not folder.is_dir():
        foreign.append(CANDIDATES_DIR)
    elif folder.is_dir():
        mine = set(record["candidates"])
        foreign += [f"{CANDIDATES_DIR}/{n}" for n in candidate_names if _exists(folder / n) and n not in mine]
    if foreign:
        raise ConfigError(
            f"{out} already holds {', '.join(foreign)}, not written by --model auto; give a new --out "
            "or one that only holds other work in sub-directories"
        )


def leaderboard_markdown(board: dict[str, Any]) -> str:
    """The leaderboard as Markdown: metrics in percent (a validation loss as it is); the test
    column shows the training metric (accuracy for a loss)."""
    metric = next((r["metric"] for r in board["rows"] if "metric" in r), "accuracy")
    test_metric = "macro_f1" if metric == "macro_f1" else "accuracy"
    lines = [
        "# --model auto leaderboard",
        "",
        f"Budget {_duration(board['budget_s'])}, used {_duration(board['seconds'])}; "
        f"limits: latency {board['max_latency_ms'] or '–'} ms, size {board['max_size_mb'] or '–'} MB; "
        f"winner: {board['winner'] or 'none'}"
        + (
            "."
            if not board["winner"]
            else " (the cheapest candidate that the best validation metric does not beat beyond noise)."
            if board.get("pick", "best") == "cheapest"  # boards before --pick: the best
            else " (the best validation metric)."
        )
        + (f" {board['pick_note']}." if board.get("pick_note") else ""),
        "",
        f"| candidate | status | valid {metric} | test {test_metric} | p50 ms (batch 1) | backend "
        "| size MB | train s |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in board["rows"]:
        valid = "–"
        if "valid" in r:
            valid = f"{r['valid']:.4f}" if metric == "loss" else f"{r['valid'] * 100:.2f}"
        test = f"{r[f'test_{test_metric}'] * 100:.2f}" if f"test_{test_metric}" in r else "–"
        p50 = f"{r['p50_ms']:.3f}" if "p50_ms" in r else "–"
        size = f"{r['size_mb']:.2f}" if "size_mb" in r else "–"
        train = f"{r['train_s']:.1f}" if "train_s" in r else "–"
        status = r["status"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(
            f"| {r['candidate']} | {status} | {valid} | {test} | {p50} | {r['backend']} | {size} | {train} |"
        )
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import torch

    from textcls.inference.bench import plot

    measured = [
        {
            "model": r["candidate"],
            "backend": r["backend"],
            "threads": torch.get_num_threads(),
            "p50_ms": r["p50_ms"],
            "accuracy": 100 * r.get("test_accuracy", r["valid"]),
        }
        for r in rows
        if "p50_ms" in r
    ]
    if measured:
        from textcls.inference.bench import pareto_front

        front = pareto_front(measured)
        for i, row in enumerate(measured):
            row["pareto"] = i in front
        plot(measured, path)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
