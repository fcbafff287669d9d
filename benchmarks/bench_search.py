"""Search benchmark (issue 6): an Optuna search for the DenseNet-CNN on SST-2 against the default
DenseNet-CNN, both evaluated on the SST-2 test split; wall time included.

    .venv/bin/python benchmarks/bench_search.py --out BENCHMARKS.md

The study is stored in runs/search-sst2/search.db: running the command again resumes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, SHARED_DATA, header, write_section

RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = " ".join([".venv/bin/python", "benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "sst2")
    parser.add_argument("--space", type=Path, default=REPO / "configs" / "search" / "sst2-densenet-cnn.yaml")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=2400, help="seconds before no new trial starts")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--runs", type=Path, default=REPO / "runs")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = RESULTS / "search.json"
    if not args.render_only:
        import textcls
        from textcls.search import run_search

        test = args.data / "test.txt"
        start = time.perf_counter()
        default = textcls.TextClassifier(model="densenet-cnn", tensorboard=False)
        default.fit(str(args.data), out_dir=args.runs / "search-sst2-default", progress=False)
        default_seconds = time.perf_counter() - start
        default_report = default.evaluate(str(test), latency=False)
        print(f"default: test {default_report['accuracy'] * 100:.2f} in {default_seconds:.0f}s", flush=True)
        start = time.perf_counter()
        summary = run_search(
            str(args.data),
            space=args.space,
            model="densenet-cnn",
            trials=args.trials,
            timeout=args.timeout,
            study="sst2-densenet-cnn",
            out=args.runs / "search-sst2",
            epochs=args.epochs,
            patience=2,
            tensorboard=False,
        )
        search_seconds = time.perf_counter() - start
        best_report = textcls.load(args.runs / "search-sst2").evaluate(str(test), latency=False)
        row = {
            "default_test": default_report["accuracy"] * 100,
            "default_valid": default.train_result.best_metric * 100,
            "default_seconds": default_seconds,
            "best_test": best_report["accuracy"] * 100,
            "best_valid": summary["best_value"] * 100,
            "search_seconds": search_seconds,
            "summary": summary,
            "command": COMMAND,
        }
        RESULTS.mkdir(exist_ok=True)
        results.write_text(json.dumps(row, indent=2, default=str) + "\n")
    row = json.loads(results.read_text())
    s = row["summary"]
    gain = row["best_test"] - row["default_test"]
    counts = ", ".join(f"{v} {k}" for k, v in s["counts"].items())
    body = "\n\n".join(
        [
            "## Hyper-parameter search (issue 6)",
            header(row["command"]),
            f"SST-2, DenseNet-CNN: the default config against the best of an Optuna search "
            f"(TPE, seed 42, median pruning on each epoch's validation accuracy; space "
            f"`configs/search/sst2-densenet-cnn.yaml`). {s['trials']} trials ({counts}).",
            "\n".join(
                [
                    "| model | valid acc | test acc | wall time |",
                    "|---|---:|---:|---:|",
                    f"| DenseNet-CNN, default config | {row['default_valid']:.2f} | "
                    f"{row['default_test']:.2f} "
                    f"| {row['default_seconds']:.0f} s |",
                    f"| DenseNet-CNN, best trial ({s['best_trial']}) | {row['best_valid']:.2f} "
                    f"| {row['best_test']:.2f} | {row['search_seconds'] / 60:.1f} min (whole search) |",
                ]
            ),
            f"Gain on test: {gain:+.2f} points (target ≥ +1.0: {'met' if gain >= 1.0 else 'missed'}). "
            f"Best parameters: `{json.dumps(s.get('best_params'))}`. The trials table, history and "
            "importances are in runs/search-sst2/search/ (not committed).",
        ]
    )
    print(body)
    if args.out:
        write_section(args.out, "bench-search", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
