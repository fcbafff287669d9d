"""Word-model benchmark: every encoder × {glove-6b-50d, spacy-md-300d} on SNIPS and SST-2, with the
peers fastText (supervised, bigrams) and TF-IDF + LinearSVC measured in the same process.

    .venv/bin/python benchmarks/bench_word.py --out BENCHMARKS.md
    .venv/bin/python benchmarks/bench_word.py --datasets snips --encoders cnn --vectors glove-6b-50d

Results are appended to benchmarks/results/word.json as each run finishes (a crash loses nothing);
the Markdown table is rebuilt from that file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    SHARED_DATA,
    FastTextPeer,
    TfidfSvmPeer,
    header,
    latency_ms,
    merged_results,
    record,
    throughput,
    write_section,
)

ENCODERS = ["mean", "gnb", "cnn", "densenet-cnn", "densenet-dsa", "lstm"]
VECTORS = ["glove-6b-50d", "spacy-md-300d"]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Per-data-set training settings (the same for every encoder, so the comparison is fair).
SETTINGS = {
    "snips": {"epochs": 10, "patience": 3, "batch_size": 64, "lr": 1e-3},
    "sst2": {"epochs": 4, "patience": 1, "batch_size": 128, "lr": 1e-3},
}
ENCODER_SETTINGS = {"gnb": {"lr": 1e-2}, "mean": {"lr": 1e-2}}


def load(dataset: str):
    from textcls.data import load_splits

    splits = load_splits(SHARED_DATA / dataset)
    return splits.train, splits.valid, splits.test


def run_textcls(dataset: str, encoder: str, vectors: str, data, workdir: Path) -> dict:
    from textcls import TextClassifier

    train, valid, test = data
    settings = {**SETTINGS[dataset], **ENCODER_SETTINGS.get(encoder, {})}
    classifier = TextClassifier(model=encoder, vectors=vectors, tensorboard=False, **settings)
    start = time.perf_counter()
    classifier.fit(train, valid, progress=False)
    train_seconds = time.perf_counter() - start
    report = classifier.evaluate(test, latency=True)
    out = workdir / f"{dataset}-{encoder}-{vectors}"
    classifier.save(out)
    return {
        "dataset": dataset,
        "model": f"{encoder} + {vectors}",
        "accuracy": report["accuracy"] * 100,
        "macro_f1": report["macro_f1"] * 100,
        "train_s": train_seconds,
        "epochs": len(classifier.train_result.history),
        "p50_ms": report["latency"]["p50_ms"],
        "throughput": report["latency"]["throughput_per_s"],
        "size_mb": (out / "model.safetensors").stat().st_size / 1e6,
        "settings": settings,
        "threads": report["latency"]["threads"],
    }


def run_peer(dataset: str, peer, data, workdir: Path) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    train, _, test = data
    start = time.perf_counter()
    peer.fit([e.text for e in train], [e.label for e in train], workdir)
    train_seconds = time.perf_counter() - start
    texts, gold = [e.text for e in test], [e.label for e in test]
    predicted = peer.predict(texts)
    return {
        "dataset": dataset,
        "model": peer.name,
        "accuracy": accuracy_score(gold, predicted) * 100,
        "macro_f1": f1_score(gold, predicted, average="macro") * 100,
        "train_s": train_seconds,
        "epochs": getattr(peer, "params", {}).get("epoch", ""),
        "p50_ms": latency_ms(peer.predict_one, texts),
        "throughput": throughput(peer.predict, texts),
        "size_mb": (peer.size or 0) / 1e6,
        "peer": True,
    }


def table(rows: list[dict], dataset: str) -> str:
    rows = [r for r in rows if r["dataset"] == dataset]
    fasttext = next((r for r in rows if r["model"].startswith("fastText")), None)
    lines = [
        f"### {dataset}",
        "",
        "| model | test acc | macro-F1 | train s | epochs | × fastText train | p50 ms (batch 1) "
        "| × fastText p50 | examples/s (batch 64) | size MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: -r["accuracy"]):
        ratio_train = f"{r['train_s'] / fasttext['train_s']:.1f}" if fasttext else "–"
        ratio_p50 = f"{r['p50_ms'] / fasttext['p50_ms']:.1f}" if fasttext else "–"
        name = f"*{r['model']}* (peer)" if r.get("peer") else r["model"]
        lines.append(
            f"| {name} | {r['accuracy']:.2f} | {r['macro_f1']:.2f} | {r['train_s']:.1f} | {r['epochs']} "
            f"| {ratio_train} | {r['p50_ms']:.3f} | {ratio_p50} | {r['throughput']:.0f} "
            f"| {r['size_mb']:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="snips,sst2")
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--vectors", default=",".join(VECTORS))
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--out", type=Path, help="Markdown file to (re)write the section in")
    parser.add_argument("--render-only", action="store_true", help="rebuild the Markdown from the JSON")
    parser.add_argument("--fresh", action="store_true", help="discard earlier results in the JSON")
    parser.add_argument(
        "--results", default="word.json", help="results file under benchmarks/results (one per process)"
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    results = RESULTS_DIR / args.results
    rows = json.loads(results.read_text()) if results.exists() and not args.fresh else []
    datasets = args.datasets.split(",")
    if not args.render_only:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            for dataset in datasets:
                data = load(dataset)
                jobs: list = [] if args.no_peers else [("peer", FastTextPeer()), ("peer", TfidfSvmPeer())]
                jobs += [(e, v) for v in args.vectors.split(",") for e in args.encoders.split(",")]
                for first, second in jobs:
                    if first == "peer":
                        row = run_peer(dataset, second, data, workdir)
                    else:
                        row = run_textcls(dataset, first, second, data, workdir)
                    rows = record(results, rows, row)
                    print(
                        f"{dataset:6} {row['model']:32} acc {row['accuracy']:6.2f} "
                        f"f1 {row['macro_f1']:6.2f} train {row['train_s']:7.1f}s "
                        f"p50 {row['p50_ms']:.3f}ms {row['throughput']:8.0f}/s",
                        flush=True,
                    )
    rows = merged_results(RESULTS_DIR, "word*.json")
    command = "make bench-word  (= .venv/bin/python benchmarks/bench_word.py --out BENCHMARKS.md)"
    body = "\n\n".join(
        [
            "## Word models (issue 2)",
            header(command),
            "Test accuracy on each set's test split; the best validation epoch is kept. Peers run in "
            "the same process. p50 = median ms per example at batch 1 (tokenization included); "
            "throughput at batch 64. Ratios are textcls ÷ fastText (lower is faster).",
        ]
        + [table(rows, d) for d in ("snips", "sst2") if any(r["dataset"] == d for r in rows)]
    )
    if args.out:
        write_section(args.out, "bench-word", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
