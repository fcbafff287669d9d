"""Shared helpers for the benchmark scripts: data paths, timing, peers, Markdown sections."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def machine() -> str:
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        cpu = model
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def git_revision() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def single_timings(predict_one: Callable[[str], object], texts: Sequence[str], n: int = 200) -> list[float]:
    """ms per call of ``predict_one`` on each of the first ``n`` texts, after 10 warm-up calls
    (the protocol of ``textcls.evaluation.measure_latency``)."""
    sample = list(texts[:n])
    for text in sample[:10]:
        predict_one(text)
    timings = []
    for text in sample:
        start = time.perf_counter()
        predict_one(text)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def other_busy_cores(seconds: float = 1.0) -> float:
    """How many cores processes other than this one kept busy over ``seconds``: the machine's CPU
    time less this process's. Timings taken while it is well above 0 are not comparable across runs
    (and, on 2 cores, not even within one: the ratios moved by 2× under load here)."""
    import psutil

    me = psutil.Process()

    def sample() -> tuple[float, float]:
        machine_times, own = psutil.cpu_times(), me.cpu_times()
        idle = machine_times.idle + getattr(machine_times, "iowait", 0.0)
        return sum(machine_times) - idle, own.user + own.system

    busy, own = sample()
    time.sleep(seconds)
    busy_after, own_after = sample()
    return max(0.0, (busy_after - busy) - (own_after - own)) / seconds


def check_idle(what: str, threshold: float = 0.25) -> float:
    """``other_busy_cores()``, with a warning on stdout when other work competes with a timing."""
    busy = other_busy_cores()
    if busy > threshold:
        print(
            f"warning: timing {what} while other processes keep {busy:.1f} of {os.cpu_count()} cores busy: "
            "its latencies (ratios included) are not comparable with an idle machine's",
            flush=True,
        )
    return round(busy, 2)


def latency_ms(predict_one: Callable[[str], object], texts: Sequence[str], n: int = 200) -> float:
    """Median ms per call of ``predict_one`` on single texts (after a warm-up)."""
    return statistics.median(single_timings(predict_one, texts, n))


def throughput(predict_many: Callable[[list[str]], object], texts: Sequence[str], repeats: int = 3) -> float:
    """Median examples/s of ``predict_many`` over batches of 64."""
    texts = list(texts[:2048])
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(texts), 64):
            predict_many(texts[i : i + 64])
        rates.append(len(texts) / (time.perf_counter() - start))
    return statistics.median(rates)


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the section between markers ``<!-- name:start -->`` / ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def header(command: str, row: dict | None = None) -> str:
    """The line naming how a section was measured: now, or as ``row`` recorded its run (its
    ``measured``, ``commit`` and ``machine``, where it has them)."""
    row = row or {}
    day = str(row.get("measured", "") or date.today().isoformat())[:10]
    return (
        f"Command: `{command}` · date {day} · commit {row.get('commit') or git_revision()} · "
        f"machine: {row.get('machine') or machine()}"
    )


def portable(value: object) -> object:
    """``value`` with this machine's paths made relative to the repository (``runs/...``,
    ``../shared/data/...``): results files are committed."""
    if isinstance(value, str):
        return value.replace(f"{REPO}/", "").replace(f"{REPO.parent}/", "../")
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    return value


def save_json(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(portable(rows), indent=2) + "\n", encoding="utf-8")


def record(path: Path, rows: list[dict], row: dict) -> list[dict]:
    """Replace the row of the same (dataset, model) and save at once: a crash loses nothing."""
    rows = [r for r in rows if (r["dataset"], r["model"]) != (row["dataset"], row["model"])]
    rows.append(row)
    save_json(path, rows)
    return rows


def merged_results(directory: Path, pattern: str) -> list[dict]:
    """Rows of every results file matching ``pattern`` (a benchmark may run as several
    processes); for the same (dataset, model, training-set size) the file sorted last wins."""
    merged: dict[tuple, dict] = {}
    for path in sorted(directory.glob(pattern)):
        for row in json.loads(path.read_text()):
            merged[(row["dataset"], row["model"], row.get("train_examples"))] = row
    return list(merged.values())


class FastTextPeer:
    """fastText supervised (word bigrams), trained from a temporary file in fastText's format."""

    name = "fastText (bigrams)"

    def __init__(self, epoch: int = 25, lr: float = 0.5, dim: int = 100, word_ngrams: int = 2) -> None:
        self.params = {"epoch": epoch, "lr": lr, "dim": dim, "wordNgrams": word_ngrams}

    def fit(self, texts: Sequence[str], labels: Sequence[str], workdir: Path) -> None:
        import fasttext

        path = workdir / "fasttext.train.txt"
        with open(path, "w", encoding="utf-8") as handle:
            for text, label in zip(texts, labels, strict=True):
                handle.write(f"__label__{label} {self.clean(text)}\n")
        self.model = fasttext.train_supervised(str(path), verbose=0, thread=2, seed=0, **self.params)
        self.size = None
        model_path = workdir / "fasttext.bin"
        self.model.save_model(str(model_path))
        self.size = model_path.stat().st_size

    @staticmethod
    def clean(text: str) -> str:
        return " ".join(text.lower().split())

    def predict(self, texts: Sequence[str]) -> list[str]:
        labels, _ = self.model.predict([self.clean(t) for t in texts], k=1)
        return [label[0].removeprefix("__label__") for label in labels]

    def predict_one(self, text: str) -> str:
        return self.model.predict(self.clean(text), k=1)[0][0]


class TfidfSvmPeer:
    """TF-IDF (word 1–2-grams, sublinear tf) + LinearSVC."""

    name = "TF-IDF + LinearSVC"

    def fit(self, texts: Sequence[str], labels: Sequence[str], workdir: Path) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline
        from sklearn.svm import LinearSVC

        self.model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1), LinearSVC(C=1.0)
        )
        self.model.fit(list(texts), list(labels))
        vectorizer, svm = self.model.steps[0][1], self.model.steps[1][1]
        self.size = len(vectorizer.vocabulary_) * 40 + svm.coef_.size * 8  # rough in-memory bytes

    def predict(self, texts: Sequence[str]) -> list[str]:
        return list(self.model.predict(list(texts)))

    def predict_one(self, text: str) -> str:
        return self.model.predict([text])[0]
