"""``--model auto``: climb the ladder cheapest first within a time budget and keep the best model
that meets the latency and size limits.

linear → fasttext → cnn → densenet-cnn → minilm-l6, each trained as a normal run into
``OUT/candidates/NAME``, exported for the backend it would serve with (``numpy`` for the bag
models, ``onnx`` for word models, ``onnx-int8`` for the transformer), and measured there: the
validation metric, the test metric when the data has a test file, batch-1 p50 latency, size and
train time. Before each candidate the time it needs is estimated from what the ones before it
took (scaled by a cost factor); a candidate that does not fit is skipped with its reason, or, when
it can train for fewer epochs, trained shorter and said so. The winner's files are copied into
OUT, which is then a normal model directory, beside ``auto.json``, ``auto.md`` and ``auto.png``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textcls.errors import ConfigError, TextClsError

log = logging.getLogger(__name__)
AUTO_FILE = "auto.json"
CANDIDATES_DIR = "candidates"
SKIP_COPY = {"checkpoint", "tensorboard", "eval"}  # training leftovers stay with the candidate


@dataclass(frozen=True)
class Candidate:
    """One rung: a preset, the backend it serves with, and its cost relative to ``linear``."""

    name: str
    preset: str
    backend: str
    cost: float
    shortenable: bool = False  # may train for fewer epochs when the budget is short
    overrides: dict[str, Any] = field(default_factory=dict)


LADDER: tuple[Candidate, ...] = (
    Candidate("linear", "linear", "numpy", 1),
    Candidate("fasttext", "fasttext", "numpy", 4),
    Candidate("cnn", "cnn", "onnx", 40, shortenable=True),
    Candidate("densenet-cnn", "densenet-cnn", "onnx", 120, shortenable=True),
    Candidate("minilm-l6", "minilm-l6", "onnx-int8", 1500, shortenable=True),
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


def batch1_p50_ms(predictor: Any, texts: Sequence[Any], n: int = 100) -> float:
    """Median ms per text at batch size 1 after a warm-up (textcls.evaluation's protocol)."""
    sample = list(texts[:n]) or [""]
    for text in sample[:10]:
        predictor.logits([text], 1)
    timings = []
    for text in sample:
        start = time.perf_counter()
        predictor.logits([text], 1)
        timings.append((time.perf_counter() - start) * 1000)
    return float(statistics.median(timings))


def train_auto(
    data: str | Path,
    out: str | Path,
    *,
    time_budget: str | float = "10m",
    max_latency_ms: float | None = None,
    max_size_mb: float | None = None,
    candidates: Sequence[Candidate] = LADDER,
    progress: bool = False,
    measure_latency: Callable[[Any, Sequence[Any]], float] = batch1_p50_ms,
    **overrides: Any,
) -> dict[str, Any]:
    """Train the ladder on ``data`` within ``time_budget``; the winner is saved in ``out`` with the
    leaderboard. Returns the leaderboard (also ``out/auto.json``). Raises TextClsError when no
    candidate meets the limits (the leaderboard is written first)."""
    from textcls.registry import PRESETS

    budget = parse_budget(time_budget)
    out = Path(out)
    _check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    seconds_per_cost: float | None = None
    for candidate in candidates:
        row: dict[str, Any] = {"candidate": candidate.name, "backend": candidate.backend}
        rows.append(row)
        left = budget - (time.perf_counter() - started)
        if candidate.preset not in PRESETS:
            row["status"] = "skipped: preset not available"
            continue
        estimate = seconds_per_cost * candidate.cost if seconds_per_cost else None
        options = dict(overrides)
        if left <= 0 or (estimate is not None and estimate > left):
            shorter = _shorter(candidate, estimate, left, overrides)
            if shorter is None:
                need = f"needs ~{_duration(estimate)}, " if estimate else ""
                row["status"] = f"skipped: {need}{_duration(max(left, 0))} left"
                log.info("skipped %s: %s", candidate.name, row["status"].removeprefix("skipped: "))
                continue
            options.update(shorter)
            row["note"] = f"trained for {shorter['epochs']} epochs to fit the {_duration(left)} left"
        log.info("auto: training %s (%s left)", candidate.name, _duration(left))
        try:
            measured = _run(
                candidate, data, out / CANDIDATES_DIR / candidate.name, options, progress, measure_latency
            )
        except TextClsError as error:
            row["status"] = f"failed: {error}"
            continue
        row.update(measured)
        actual = measured["train_s"] / candidate.cost
        seconds_per_cost = max(seconds_per_cost or 0.0, actual)  # the slowest rate seen: no overruns
        over = []
        if max_latency_ms is not None and measured["p50_ms"] > max_latency_ms:
            over.append(f"over latency ({measured['p50_ms']:.3f} > {max_latency_ms:g} ms)")
        if max_size_mb is not None and measured["size_mb"] > max_size_mb:
            over.append(f"over size ({measured['size_mb']:.1f} > {max_size_mb:g} MB)")
        row["status"] = ", ".join(over) or "ok"
    return _finish(out, rows, budget, time.perf_counter() - started, max_latency_ms, max_size_mb)


def _shorter(candidate: Candidate, estimate: float | None, left: float, overrides: dict) -> dict | None:
    """Fewer epochs for a candidate that does not fit, when at least a third of it would."""
    if not candidate.shortenable or estimate is None or left <= 0:
        return None
    from textcls.api import build_config

    epochs = int(overrides.get("epochs") or build_config(candidate.preset).train.epochs)
    fitting = int(epochs * left / estimate)
    if fitting < max(1, epochs // 3):
        return None
    return {"epochs": fitting, "target_steps": None}


def _run(
    candidate: Candidate,
    data: str | Path,
    directory: Path,
    options: dict[str, Any],
    progress: bool,
    measure_latency: Callable[[Any, Sequence[Any]], float],
) -> dict[str, Any]:
    from textcls.api import TextClassifier
    from textcls.evaluation import evaluate
    from textcls.inference.bench import model_size_mb
    from textcls.inference.predictor import load_predictor

    if directory.exists():
        shutil.rmtree(directory)  # a candidate directory is auto's own, from an earlier run
    started = time.perf_counter()
    classifier = TextClassifier(model=candidate.preset, **{**candidate.overrides, **options})
    classifier.fit(data, out_dir=directory, progress=progress)
    train_s = time.perf_counter() - started
    if candidate.backend in ("onnx", "onnx-int8"):
        from textcls.inference.export import export_model

        export_model(directory, quantize="int8" if candidate.backend == "onnx-int8" else None, force=True)
    predictor = load_predictor(directory, backend=candidate.backend)
    result = classifier.train_result
    row: dict[str, Any] = {
        "metric": classifier.config.train.metric,
        "valid": float(result.best_metric),
        "train_s": round(train_s, 2),
        "size_mb": round(model_size_mb(directory, candidate.backend, predictor), 3),
        "directory": str(directory),
    }
    test = _test_file(data)
    texts: list[Any] = []
    if test is not None:
        from textcls.api import read_labelled

        examples = read_labelled(test, classifier.config)
        report = evaluate(predictor, examples, latency=False, source=str(test))
        row["test_accuracy"] = report["accuracy"]
        row["test_macro_f1"] = report["macro_f1"]
        texts = [e.as_input() for e in examples]
    row["p50_ms"] = round(measure_latency(predictor, texts or ["a short text"]), 4)
    return row


def _test_file(data: str | Path) -> Path | None:
    from textcls.data.splits import find_split_files

    return find_split_files(data).get("test") if Path(data).is_dir() else None


def _finish(
    out: Path,
    rows: list[dict[str, Any]],
    budget: float,
    seconds: float,
    max_latency_ms: float | None,
    max_size_mb: float | None,
) -> dict[str, Any]:
    fits = [r for r in rows if r.get("status") == "ok"]
    winner = None
    if fits:
        lower_is_better = fits[0]["metric"] == "loss"
        winner = (min if lower_is_better else max)(fits, key=lambda r: r["valid"])
        winner["status"] = "winner"
        _install(Path(winner["directory"]), out)
    board = {
        "winner": winner["candidate"] if winner else None,
        "backend": winner["backend"] if winner else None,
        "budget_s": budget,
        "seconds": round(seconds, 1),
        "max_latency_ms": max_latency_ms,
        "max_size_mb": max_size_mb,
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


def _install(source: Path, out: Path) -> None:
    """The winner's files into ``out`` (copied: the candidate stays for comparison)."""
    previous = _previous_files(out)
    for name in previous:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for item in source.iterdir():
        if item.name in SKIP_COPY:
            continue
        if item.is_dir():
            shutil.copytree(item, out / item.name)
        else:
            shutil.copy2(item, out / item.name)
    (out / "auto_files.json").write_text(
        json.dumps(sorted(p.name for p in source.iterdir() if p.name not in SKIP_COPY)) + "\n",
        encoding="utf-8",
    )


def _previous_files(out: Path) -> list[str]:
    record = out / "auto_files.json"
    return json.loads(record.read_text(encoding="utf-8")) if record.is_file() else []


def _check_out(out: Path) -> None:
    """Refuse an OUT holding a model that auto did not write (the winner would replace it)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory")
    ours = set(_previous_files(out))
    foreign = [
        n for n in ("config.json", "model.safetensors", "vocab.txt") if (out / n).exists() and n not in ours
    ]
    if foreign:
        raise ConfigError(
            f"{out} already holds {', '.join(foreign)}, not written by --model auto; give a new --out "
            "or one that only holds other work in sub-directories"
        )


def leaderboard_markdown(board: dict[str, Any]) -> str:
    lines = [
        "# --model auto leaderboard",
        "",
        f"Budget {_duration(board['budget_s'])}, used {_duration(board['seconds'])}; "
        f"limits: latency {board['max_latency_ms'] or '–'} ms, size {board['max_size_mb'] or '–'} MB; "
        f"winner: {board['winner'] or 'none'}.",
        "",
        "| candidate | status | valid | test acc | p50 ms (batch 1) | backend | size MB | train s |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in board["rows"]:
        valid = f"{r['valid']:.4f}" if "valid" in r else "–"
        test = f"{r['test_accuracy'] * 100:.2f}" if "test_accuracy" in r else "–"
        p50 = f"{r['p50_ms']:.3f}" if "p50_ms" in r else "–"
        size = f"{r['size_mb']:.2f}" if "size_mb" in r else "–"
        train = f"{r['train_s']:.1f}" if "train_s" in r else "–"
        status = r["status"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(
            f"| {r['candidate']} | {status} | {valid} | {test} | {p50} | {r['backend']} | {size} | {train} |"
        )
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    from textcls.inference.bench import plot

    measured = [
        {
            "model": r["candidate"],
            "backend": r["backend"],
            "threads": 1,
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
