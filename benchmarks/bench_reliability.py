"""Issue 20's training figures: one process vs two (DDP, gloo on CPU), and kill -9 at random
moments followed by --resume, compared with an uninterrupted run.

    python benchmarks/bench_reliability.py ddp --data data/snips
    python benchmarks/bench_reliability.py crash --points 20

Prints one JSON summary per part (the figures BENCHMARKS.md quotes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
BIN = Path(sys.executable).parent


def ddp(data: str, epochs: int) -> dict:
    """The same SNIPS CNN trained by one process (2 threads) and by two (torchrun, 1 thread each)."""
    arguments = ["train", "--data", data, "--model", "cnn", "--epochs", str(epochs), "--no-progress"]
    arguments += ["--patience", "0", "--cpu"]
    runs = {
        "one process, 2 threads": ([sys.executable, "-m", "textcls"], "2"),
        "two processes (torchrun), 1 thread each": (
            [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "textcls"],
            "1",
        ),
    }
    summary = {}
    with tempfile.TemporaryDirectory(prefix="textcls-ddp-") as scratch:
        for name, (prefix, threads) in runs.items():
            out = Path(scratch) / name.split()[0]
            started = time.perf_counter()
            done = subprocess.run(
                [*prefix, *arguments, "--out", str(out)],
                env={**os.environ, "OMP_NUM_THREADS": threads},
                capture_output=True,
                text=True,
                check=True,
            )
            wall = time.perf_counter() - started
            result = json.loads((out / "train_result.json").read_text())
            test = [line for line in done.stdout.splitlines() if line.startswith("test")]
            summary[name] = {
                "epoch_train_seconds_median": statistics.median(
                    h["train_seconds"] for h in result["history"]
                ),
                "wall_seconds": round(wall, 1),
                "best_valid_accuracy": result["best_metric"],
                "valid_accuracy_per_epoch": [round(h["accuracy"], 4) for h in result["history"]],
                "test": test[0] if test else None,
            }
    return summary


def crash(points: int, seed: int) -> dict:
    """Kill a real training run ``points`` times at random moments; resume each; compare."""
    from conftest import make_examples, write_tsv
    from crashing import kill_after, leftovers, outcome, run, train_command

    rng = random.Random(seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="textcls-crash-") as scratch:
        data = Path(scratch) / "data"
        data.mkdir()
        write_tsv(data / "train.txt", make_examples(300, 1))
        write_tsv(data / "valid.txt", make_examples(10, 2))
        reference = Path(scratch) / "reference"
        seconds = run(train_command(data, reference))
        expected = outcome(reference)
        for number in range(points):
            out = Path(scratch) / f"killed-{number}"
            point = kill_after(train_command(data, out), rng.uniform(0.5, seconds))
            run(train_command(data, out, "--resume"))
            got = outcome(out)
            point["identical"] = got == expected and not leftovers(out)
            results.append(point)
            print(json.dumps(point), flush=True)
    return {
        "kill_points": points,
        "seed": seed,
        "uninterrupted_seconds": round(seconds, 1),
        "killed_before_first_checkpoint": sum(1 for r in results if r["step"] is None),
        "killed_mid_epoch": sum(1 for r in results if r.get("batch")),
        "finished_before_kill": sum(1 for r in results if r["finished"]),
        "resumed_identically": sum(1 for r in results if r["identical"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("ddp")
    p.add_argument("--data", default=str(ROOT / "data" / "snips"))
    p.add_argument("--epochs", type=int, default=3)
    p = sub.add_parser("crash")
    p.add_argument("--points", type=int, default=20)
    p.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    summary = ddp(args.data, args.epochs) if args.part == "ddp" else crash(args.points, args.seed)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
