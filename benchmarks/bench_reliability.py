"""Issue 20's figures: one process vs two (DDP, gloo on CPU); kill -9 at random moments followed
by --resume, compared with an uninterrupted run; streaming predict over 10 MB to 1 GB inputs
(texts/s and peak RSS, against one predict call over the whole file read into memory).

    python benchmarks/bench_reliability.py ddp --data data/snips
    python benchmarks/bench_reliability.py crash --points 20
    python benchmarks/bench_reliability.py stream --model-dir DIR --sizes 10,100,1000

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


# One `textcls predict` in a fresh process; it reports its own peak RSS (ru_maxrss) last.
PREDICT = """
import resource, sys
from textcls.cli import main
code = main(sys.argv[1:])
print("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""
# The peer: the whole file read into a list and answered by one predict call.
WHOLE = """
import resource, sys, time, textcls
from textcls.data.formats import read_text_lines
classifier = textcls.load(sys.argv[1])
started = time.perf_counter()
texts = list(read_text_lines(sys.argv[2]))
answers = classifier.predict(texts, batch_size=64)
print(len(answers) / (time.perf_counter() - started), file=sys.stderr)
print("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def make_input(path: Path, source: Path, megabytes: int) -> int:
    """Lines of ``source`` (text<TAB>label: the texts) repeated to ``megabytes``; returns the count."""
    texts = [line.split("\t")[0] + "\n" for line in source.read_text("utf-8").splitlines() if line.strip()]
    block = "".join(texts).encode("utf-8")
    target, lines = megabytes * 2**20, 0
    with path.open("wb") as handle:
        while handle.tell() + len(block) <= target:
            handle.write(block)
            lines += len(texts)
    return lines


def run_measured(script: str, *arguments: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    peak = int(done.stderr.split("peak_rss_kb")[-1].split()[0])
    return seconds, peak // 1024, done.stderr


def stream(model_dir: str, source: str, sizes: list[int], whole_up_to: int) -> dict:
    """texts/s (wall, model load included, and the stream's own) and peak RSS per input size."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for megabytes in sizes:
            path, out = Path(tmp) / f"in-{megabytes}.txt", Path(tmp) / f"out-{megabytes}.jsonl"
            lines = make_input(path, Path(source), megabytes)
            arguments = ["predict", model_dir, "--file", str(path), "--out", str(out), "--no-progress"]
            seconds, peak, stderr = run_measured(PREDICT, *arguments)
            reported = float(stderr.split("(")[-1].split(" texts/s")[0].replace(",", ""))
            row = {
                "megabytes": megabytes,
                "lines": lines,
                "seconds": round(seconds, 1),
                "texts_per_s_wall": round(lines / seconds),
                "texts_per_s_stream": round(reported),
                "peak_rss_mb": peak,
                "output_mb": round(out.stat().st_size / 2**20),
            }
            out.unlink()
            if megabytes <= whole_up_to:  # the peer holds everything: small inputs only
                _, whole_peak, whole_err = run_measured(WHOLE, model_dir, str(path))
                row["whole_file_texts_per_s"] = round(float(whole_err.split()[0]))
                row["whole_file_peak_rss_mb"] = whole_peak
            path.unlink()
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    machine = f"{os.cpu_count()} CPU cores"
    return {"model_dir": model_dir, "source": source, "machine": machine, "runs": results}


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
    p = sub.add_parser("stream")
    p.add_argument("--model-dir", required=True, help="a trained model directory")
    p.add_argument("--source", default=str(ROOT / "data" / "snips" / "test.txt"), help="text<TAB>label")
    p.add_argument("--sizes", default="10,100,1000", help="input sizes in MB (default 10,100,1000)")
    p.add_argument("--whole-up-to", type=int, default=100, help="MB up to which the peer also runs")
    args = parser.parse_args()
    if args.part == "stream":
        sizes = [int(size) for size in args.sizes.split(",")]
        summary = stream(args.model_dir, args.source, sizes, args.whole_up_to)
    else:
        summary = ddp(args.data, args.epochs) if args.part == "ddp" else crash(args.points, args.seed)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
