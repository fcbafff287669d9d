"""Kill a real ``textcls train`` with SIGKILL and resume it: shared by tests/test_crash.py and
benchmarks/bench_reliability.py (which tries many more kill points)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # one thread: bitwise repeatable


def train_command(data: Path, out: Path, *extra: str) -> list[str]:
    """A small CNN over ``data`` with a checkpoint every 7 optimizer steps."""
    return [
        sys.executable,
        "-m",
        "textcls",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--model",
        "cnn",
        "--vectors",
        "random",
        "--vectors-dim",
        "16",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--save-steps",
        "7",
        "--patience",
        "0",
        "--no-progress",
        "--cpu",
        *extra,
    ]


def run(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=ENV, capture_output=True, timeout=600)
    return time.perf_counter() - started


def kill_after(command: list[str], seconds: float) -> dict[str, Any]:
    """Start ``command``, SIGKILL it after ``seconds`` (if it is still running); what it had
    checkpointed then."""
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=seconds)
        finished = True
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        finished = False
    out = Path(command[command.index("--out") + 1])
    state = out / "checkpoint" / "training_state.json"
    point = json.loads(state.read_text()) if state.is_file() else {}
    return {
        "finished": finished,
        "after_s": round(seconds, 2),
        "epoch": point.get("epoch"),
        "batch": point.get("batch"),
        "step": point.get("step"),
    }


def outcome(directory: Path) -> dict[str, Any]:
    """What must not depend on an interruption: every validation figure of every epoch and the
    saved weights (tensor by tensor; the file's header order may differ)."""
    from safetensors.torch import load_file

    import textcls

    result = json.loads((directory / "train_result.json").read_text())
    history = [
        {k: v for k, v in epoch.items() if k not in ("seconds", "train_seconds")}
        for epoch in result["history"]
    ]
    textcls.load(directory)  # the manifest and the golden inputs check out
    weights = load_file(str(directory / "model.safetensors"))
    return {
        "history": history,
        "best": (result["best_metric"], result["best_epoch"]),
        "weights": {k: v.numpy().tobytes() for k, v in weights.items()},
    }


def leftovers(directory: Path) -> list[str]:
    """Temporary files a finished run must not leave behind."""
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.name.endswith((".tmp", ".old")) or p.name == ".saving"
    )
