"""Transformer defaults against the word CNN, both with nothing but defaults (issue 15, item 5):
`TextClassifier(model="minilm-l6")` and `TextClassifier(model="cnn")` on a shared data set, test
accuracy and macro-F1, in one process.

    .venv/bin/python benchmarks/bench_defaults.py --datasets ag_news_5k --out BENCHMARKS.md

Rows are appended to benchmarks/results/defaults.json as they finish.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED_DATA, git_revision, machine, write_section

RESULTS = Path(__file__).resolve().parent / "results" / "defaults.json"
COMMAND = "benchmarks/bench_defaults.py"
# the sets of bench-ladder, where both models run (issue 15)
PENDING = ("snips", "sst2", "r52", "ag_news_5k", "korean_hate_speech", "imdb_small", "news_title_body")


def run(dataset: str, model: str, runs: Path) -> dict:
    import textcls

    data = SHARED_DATA / dataset
    started = time.perf_counter()
    classifier = textcls.TextClassifier(model=model, tensorboard=False)
    classifier.fit(str(data), out_dir=runs / f"{dataset}-{model}", progress=False)
    seconds = time.perf_counter() - started
    report = classifier.evaluate(str(_test_file(data)), latency=False)
    result = classifier.train_result
    return {
        "dataset": dataset,
        "model": model,
        "accuracy": round(report["accuracy"] * 100, 2),
        "macro_f1": round(report["macro_f1"] * 100, 2),
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "train_s": round(seconds, 1),
        "max_length": classifier.config.model.tokenizer.max_length,
        "lr": classifier.config.train.lr,
        "backbone_lr": classifier.config.train.backbone_lr,
        "date": time.strftime("%Y-%m-%d"),
        "revision": git_revision(),
    }


def _test_file(data: Path) -> Path:
    from textcls.data.splits import find_split_files

    return find_split_files(data)["test"]


def render(rows: list[dict]) -> str:
    lines = [
        "## Transformer defaults vs the word CNN",
        "",
        f"Command: `{COMMAND}` · machine: {machine()} · each row's date and commit in its last column",
        "",
        "Both models with nothing but their defaults (`--model minilm-l6`: head lr 1e-3, backbone 5e-5, "
        "epochs to reach 1,500 steps, max_length auto; `--model cnn`). Test split of each set. Train "
        "seconds are wall-clock while other benchmarks shared the 2 cores (SNIPS and SST-2 ran at "
        "the same time): compare accuracy here, not time.",
        "",
        "| data set | model | test acc | macro-F1 | epochs run (best) | max_length | train s | measured |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['accuracy']:.2f} | {r['macro_f1']:.2f} | "
            f"{r['epochs_run']} ({r['best_epoch']}) | {r['max_length']} | {r['train_s']:.0f} | "
            f"{r.get('date', '-')}, {r.get('revision', '-')} |"
        )
    done = {r["dataset"] for r in rows if r["model"] == "minilm-l6"}
    pending = [name for name in PENDING if name not in done]
    verdicts = []
    for dataset in sorted(done):
        by_model = {r["model"]: r for r in rows if r["dataset"] == dataset}
        if {"cnn", "minilm-l6"} <= set(by_model):
            gap = by_model["minilm-l6"]["accuracy"] - by_model["cnn"]["accuracy"]
            f1_gap = by_model["minilm-l6"]["macro_f1"] - by_model["cnn"]["macro_f1"]
            verdicts.append(
                f"{dataset}: MiniLM-L6 {gap:+.2f} accuracy, {f1_gap:+.2f} macro-F1 against the CNN "
                f"({'met' if gap >= 0 else 'missed'})"
            )
    lines += ["", "Target, MiniLM-L6 with defaults ≥ the word CNN: " + "; ".join(verdicts) + "."]
    if pending:
        lines += [
            "",
            "Not run yet on this 2-core CPU: " + ", ".join(pending) + ". MiniLM-L6 with these defaults "
            "took 2 h 11 min on R52 here (9 epochs at max_length 256, epochs 1–5 beside other runs); "
            "the long-document sets are hours more; those rows await a longer or GPU session.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="ag_news_5k")
    parser.add_argument("--models", default="cnn,minilm-l6")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-defaults"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render-only", action="store_true", help="rebuild the section from the JSON")
    args = parser.parse_args()
    rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else []
    for dataset in [] if args.render_only else args.datasets.split(","):
        for model in args.models.split(","):
            row = run(dataset, model, args.runs)
            rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else []  # another run's too
            rows = [r for r in rows if (r["dataset"], r["model"]) != (dataset, model)] + [row]
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps({"rows": rows, "command": COMMAND}, indent=2) + "\n")
            print(json.dumps(row), flush=True)
    if args.out:
        write_section(args.out, "defaults", render(rows))


if __name__ == "__main__":
    main()
