"""Transformer benchmark: MiniLM-L6 fine-tuned with `cls` and with `cnn` through textcls, against
the peer "plain transformers" (the same backbone, a minimal hand loop — AdamW 5e-5, batch 32,
random batches with dynamic padding — evaluated through `transformers.pipeline`), in one process.

    .venv/bin/python benchmarks/bench_transformer.py --datasets snips --out BENCHMARKS.md
    .venv/bin/python benchmarks/bench_transformer.py --datasets r52 --long-docs truncate,chunk
    .venv/bin/python benchmarks/bench_transformer.py --datasets sst2 --train-limit 8000

Rows are appended to benchmarks/results/transformer*.json as they finish.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED_DATA, header, latency_ms, merged_results, record, throughput, write_section

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RATE_NAMES = {"lr": "head lr", "backbone_lr": "backbone lr"}
MAX_LENGTH = {"snips": 64, "sst2": 64, "r52": 256}


def load(dataset: str, train_limit: int | None, seed: int = 42):
    from textcls.data import load_splits, stratified_split

    splits = load_splits(SHARED_DATA / dataset, seed=seed)
    train = splits.train
    if train_limit and len(train) > train_limit:  # stratified, so every class keeps an example
        train, _ = stratified_split(train, 1 - train_limit / len(train), seed)
    return train, splits.valid, splits.test


def run_textcls(dataset, encoder, data, epochs, long_docs, workdir, batch_size, **rates) -> dict:
    from textcls import TextClassifier

    train, valid, test = data
    options = {"max_length": MAX_LENGTH[dataset], "long_docs": long_docs, **rates}
    classifier = TextClassifier(
        model="minilm-l6",
        encoder=encoder,
        epochs=epochs,
        batch_size=batch_size,
        tensorboard=False,
        patience=0,
        **options,
    )
    start = time.perf_counter()
    classifier.fit(train, valid, progress=False)
    seconds = time.perf_counter() - start
    history = classifier.train_result.history
    epoch_times = [record["train_seconds"] for record in history]
    report = classifier.evaluate(test, latency=True)
    out = workdir / f"{dataset}-{encoder}-{long_docs}"
    classifier.save(out)
    size = sum(p.stat().st_size for p in out.rglob("*.safetensors"))
    return {
        "dataset": dataset,
        "model": f"textcls minilm-l6 + {encoder}"
        + (f" ({long_docs})" if dataset == "r52" else "")
        + (f", {epochs} epochs" if epochs != 2 else "")
        + "".join(f", {RATE_NAMES[name]} {value:g}" for name, value in rates.items()),
        "accuracy": report["accuracy"] * 100,
        "macro_f1": report["macro_f1"] * 100,
        "train_s": seconds,
        "epoch_s": statistics.median(epoch_times),
        "epochs": len(history),
        "train_examples": len(train),
        "longer_than_max_length": report.get("longer_than_max_length"),
        "p50_ms": report["latency"]["p50_ms"],
        "throughput": report["latency"]["throughput_per_s"],
        "size_mb": size / 1e6,
    }


def run_plain(dataset, data, epochs, workdir, batch_size) -> dict:
    """The peer: what a user writes with transformers alone."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from textcls.embeddings.transformer import minilm_l6

    train, _, test = data
    labels = sorted({e.label for e in train})
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(minilm_l6())
    model = AutoModelForSequenceClassification.from_pretrained(
        minilm_l6(), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    torch.manual_seed(42)
    epoch_times = []
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = list(range(len(train)))
        random.Random(epoch).shuffle(order)
        epoch_start = time.perf_counter()
        for i in range(0, len(order), batch_size):
            batch = [train[j] for j in order[i : i + batch_size]]
            inputs = tokenizer(
                [e.text for e in batch],
                padding=True,
                truncation=True,
                max_length=MAX_LENGTH[dataset],
                return_tensors="pt",
            )
            loss = model(**inputs, labels=torch.tensor([label2id[e.label] for e in batch])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        epoch_times.append(time.perf_counter() - epoch_start)
    seconds = time.perf_counter() - start
    out = workdir / f"{dataset}-plain"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    classify = pipeline(
        "text-classification", model=str(out), device=-1, truncation=True, max_length=MAX_LENGTH[dataset]
    )
    texts, gold = [e.text for e in test], [e.label for e in test]
    predicted = [p["label"] for p in classify(texts, batch_size=64)]
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "dataset": dataset,
        "model": "plain transformers loop + pipeline (peer)",
        "accuracy": accuracy_score(gold, predicted) * 100,
        "macro_f1": f1_score(gold, predicted, average="macro") * 100,
        "train_s": seconds,
        "epoch_s": statistics.median(epoch_times),
        "epochs": epochs,
        "train_examples": len(train),
        "p50_ms": latency_ms(lambda t: classify(t), texts),
        "throughput": throughput(lambda batch: classify(batch, batch_size=64), texts, repeats=1),
        "size_mb": (out / "model.safetensors").stat().st_size / 1e6,
        "peer": True,
    }


def table(rows: list[dict], dataset: str) -> str:
    rows = [r for r in rows if r["dataset"] == dataset]
    plain = next((r for r in rows if r.get("peer")), None)
    lines = [
        f"### {dataset}",
        "",
        "| model | train examples | epochs | test acc | macro-F1 | epoch s | × plain epoch "
        "| p50 ms (batch 1) | examples/s (batch 64) | size MB | inputs > max_length |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: -r["accuracy"]):
        ratio = f"{r['epoch_s'] / plain['epoch_s']:.2f}" if plain else "–"
        lines.append(
            f"| {r['model']} | {r['train_examples']} | {r['epochs']} | {r['accuracy']:.2f} "
            f"| {r['macro_f1']:.2f} | {r['epoch_s']:.0f} | {ratio} | {r['p50_ms']:.2f} "
            f"| {r['throughput']:.0f} | {r['size_mb']:.1f} | {r.get('longer_than_max_length', '–')} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="snips")
    parser.add_argument("--encoders", default="cls,cnn")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--plain-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-limit", type=int, help="sample this many training examples (documented)")
    parser.add_argument("--long-docs", default="truncate", help="comma list; r52 compares truncate,chunk")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--results", default="transformer.json")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument(
        "--keep", type=Path, help="save the trained models here, not in a temporary directory"
    )
    parser.add_argument("--lr", type=float, help="head learning rate (default: textcls's, 5e-5)")
    parser.add_argument("--backbone-lr", type=float, help="backbone learning rate (default: --lr)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    results = RESULTS_DIR / args.results
    rows = json.loads(results.read_text()) if results.exists() else []
    if not args.render_only:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = args.keep or Path(tmp)
            rates = {k: v for k, v in (("lr", args.lr), ("backbone_lr", args.backbone_lr)) if v is not None}
            for dataset in args.datasets.split(","):
                data = load(dataset, args.train_limit)
                jobs = [] if args.no_peer else [("plain", None)]
                jobs += [(e, mode) for e in args.encoders.split(",") for mode in args.long_docs.split(",")]
                for encoder, mode in jobs:
                    if encoder == "plain":
                        row = run_plain(dataset, data, args.plain_epochs, workdir, args.batch_size)
                    else:
                        row = run_textcls(
                            dataset, encoder, data, args.epochs, mode, workdir, args.batch_size, **rates
                        )
                    rows = record(results, rows, row)
                    print(json.dumps(row), flush=True)
    rows = merged_results(RESULTS_DIR, "transformer*.json")
    command = (
        "make bench-transformer  (= .venv/bin/python benchmarks/bench_transformer.py --out BENCHMARKS.md)"
    )
    body = "\n\n".join(
        [
            "## Transformers (issue 3)",
            header(command),
            "MiniLM-L6 (packaged all-MiniLM-L6-v2) fine-tuned through textcls vs the plain transformers "
            "loop in the same process. `× plain epoch` = our median epoch time ÷ the plain loop's.",
        ]
        + [table(rows, d) for d in ("snips", "sst2", "r52") if any(r["dataset"] == d for r in rows)]
    )
    if args.out:
        write_section(args.out, "bench-transformer", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
