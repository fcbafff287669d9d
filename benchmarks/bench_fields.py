"""Several text fields, cluster features and Korean morphology (issue 17), with the word CNN.

Fields (news_title_body, 20 Newsgroups subject + body): mode 1 (body), 2 (title), 3 (title,body),
then the cluster features on mode 3's input: mode 4 (``--cluster-mode concat``) and mode 5
(``add``) with K = 8, 16, 32, 64 (MiniLM-L6 mean-pooled sentence embeddings of title + body,
k-means on train). Each row: test accuracy, macro-F1, the epoch of the best validation accuracy,
the wall time to that epoch, and the epoch at which the model first reached the no-cluster
model's best validation accuracy (if it did).

Korean: korean_hate_speech (raw comments; its test file is its valid file, so every model selects
on a 10 % carve of train, as in bench-ladder) and nsmc_like, with the regex (whitespace-level)
tokenizer, ``--tokenizer kiwi`` and, for korean_hate_speech, the precomputed morpheme files
(``korean_hate_speech_morph``), same encoder and settings.

    .venv/bin/python benchmarks/bench_fields.py --out BENCHMARKS.md             # everything
    .venv/bin/python benchmarks/bench_fields.py --part fields --clusters 8,32
    .venv/bin/python benchmarks/bench_fields.py --part korean --nsmc-lines 30000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, SHARED_DATA, header, save_json, write_section

RESULTS = REPO / "benchmarks" / "results" / "fields.json"
RUNS = REPO / "runs" / "bench-fields"
NEWS = SHARED_DATA / "news_title_body"


def load_rows() -> list[dict]:
    """Rows of every results file of this benchmark (each part writes its own)."""
    rows = []
    for path in sorted(RESULTS.parent.glob("fields*.json")):
        rows += json.loads(path.read_text())
    return rows


def record(rows: list[dict], row: dict) -> list[dict]:
    """Replace the row of the same (dataset, run) and save the part's file at once."""
    rows = [r for r in rows if (r["dataset"], r["run"]) != (row["dataset"], row["run"])]
    rows.append(row)
    korean = ("korean_hate_speech", "nsmc_like")
    files = (
        (RESULTS, lambda r: r["dataset"] not in korean and not r["run"].startswith("minilm")),
        (RESULTS.with_name("fields-minilm.json"), lambda r: r["run"].startswith("minilm")),
        (RESULTS.with_name("fields-korean.json"), lambda r: r["dataset"] in korean),
    )
    for path, mine in files:
        if mine(row):
            save_json(path, [r for r in rows if mine(r)])
    return rows


def train_row(
    dataset: str, run: str, data: Path, settings: dict, test: Path | None = None, model: str = "cnn"
) -> dict:
    import textcls

    out = RUNS / f"{dataset}-{run}".replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    classifier = textcls.TextClassifier(model=model, tensorboard=False, **settings)
    classifier.fit(data, out_dir=out, progress=False)
    seconds = time.perf_counter() - started
    result = json.loads((out / "train_result.json").read_text())
    history = result["history"]
    best = result["best_epoch"]
    report = textcls.load(out).evaluate(test or data / "test.txt", latency=False)
    return {
        "dataset": dataset,
        "run": run,
        "test_accuracy": round(100 * report["accuracy"], 2),
        "macro_f1": round(100 * report["macro_f1"], 2),
        "best_epoch": best,
        "epochs_run": len(history),
        "best_valid_accuracy": round(100 * result["best_metric"], 2),
        "seconds_to_best": history[best - 1]["seconds"],
        "train_seconds": round(seconds, 1),
        "valid_curve": [round(100 * h["accuracy"], 2) for h in history],
        "seconds_curve": [h["seconds"] for h in history],
        "max_length": result.get("max_length"),
        "clusters": result.get("clusters", {}).get("sizes"),
    }


def run_fields(rows: list[dict], clusters: list[int], modes: list[str], reuse: bool = False) -> list[dict]:
    base = {"text_columns": ["title", "body"]}
    for run, fields in (
        ("mode 1 (body)", ["body"]),
        ("mode 2 (title)", ["title"]),
        ("mode 3 (title,body)", ["title", "body"]),
    ):
        if any(r["dataset"] == "news_title_body" and r["run"] == run for r in rows) and reuse:
            continue
        print(f"news_title_body {run} ...", flush=True)
        rows = record(rows, train_row("news_title_body", run, NEWS, {**base, "fields": fields}))
    if clusters:  # embed the training texts once, timed (the runs below reuse the cache)
        from textcls.data.splits import load_splits
        from textcls.embeddings.clusters import SentenceEmbedder, embedding_text

        splits = load_splits(NEWS, text_columns=["title", "body"], fields=["title", "body"])
        embedder = SentenceEmbedder.shared("minilm-l6")
        for split in ("train", "valid", "test"):
            texts = [embedding_text(e.as_input()) for e in getattr(splits, split)]
            started = time.perf_counter()
            embedder.embed(texts)
            print(
                f"sentence embeddings of {split} ({len(texts)}): {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            rows = record(
                rows,
                {
                    "dataset": "news_title_body",
                    "run": f"embedding {split}",
                    "texts": len(texts),
                    "seconds": round(time.perf_counter() - started, 1),
                },
            )
    for k in clusters:  # K outer, so a cut-off run still has both modes of the first K values
        for mode in modes:
            number = 4 if mode == "concat" else 5
            run = f"mode {number} ({mode}) K={k}"
            print(f"news_title_body {run} ...", flush=True)
            settings = {**base, "fields": ["title", "body"], "cluster_features": k, "cluster_mode": mode}
            rows = record(rows, train_row("news_title_body", run, NEWS, settings))
    return rows


def subset(folder: Path, name: str, sizes: dict[str, int]) -> Path:
    """The first N lines of each split after a fixed shuffle (the files are sorted by label)."""
    import random

    out = RUNS / name
    out.mkdir(parents=True, exist_ok=True)
    for split, count in sizes.items():
        lines = (folder / f"{split}.txt").read_text(encoding="utf-8").splitlines(keepends=True)
        random.Random(0).shuffle(lines)
        (out / f"{split}.txt").write_text("".join(lines[:count]), encoding="utf-8")
    return out


def run_minilm(rows: list[dict], train: int, epochs: int) -> list[dict]:
    """Modes 1-3 with MiniLM-L6 on a subset (CPU): the preset's learning rates, max_length 128."""
    data = subset(NEWS, "news-subset", {"train": train, "valid": 1131, "test": 2000})
    for run, fields in (
        ("mode 1 (body)", ["body"]),
        ("mode 2 (title)", ["title"]),
        ("mode 3 (title,body)", ["title", "body"]),
    ):
        name = f"minilm-l6 {run}, {train:,} train, {epochs} epochs"
        print(f"news_title_body {name} ...", flush=True)
        settings = {
            "text_columns": ["title", "body"],
            "fields": fields,
            "epochs": epochs,
            "target_steps": None,
            "max_length": 128,
            "patience": 0,
        }
        rows = record(rows, train_row("news_title_body", name, data, settings, model="minilm-l6"))
    return rows


def run_korean(
    rows: list[dict],
    nsmc_lines: int | None,
    models: list[str],
    sets: list[str],
    tokenizers: tuple[str, ...] = ("regex", "kiwi"),
    time_limit: float | None = None,
) -> list[dict]:
    khs, morph = SHARED_DATA / "korean_hate_speech", SHARED_DATA / "korean_hate_speech_morph"
    for model in models if "korean_hate_speech" in sets else []:
        tag = "" if model == "cnn" else f"{model}, "
        for run, folder, settings in (
            ("whitespace (regex)", khs, {}),
            ("kiwi morphemes", khs, {"tokenizer_engine": "kiwi"}),
            ("precomputed morph files", morph, {}),
            # the best of 7 linear variants by validation accuracy on the carve (README: Korean)
            ("kiwi morphemes + char 1-3-grams", khs, {"tokenizer_engine": "kiwi", "char_ngrams": [1, 3]}),
        ):
            if run.endswith("char 1-3-grams") and model != "linear":
                continue
            if not folder.is_dir():
                continue
            print(f"korean_hate_speech {tag}{run} ...", flush=True)
            # test.txt is valid.txt: select on a carve of train (valid.txt never read), test on test.txt
            row = train_row(
                "korean_hate_speech",
                tag + run,
                folder / "train.txt",
                settings,
                test=folder / "test.txt",
                model=model,
            )
            rows = record(rows, row)
    if "nsmc_like" not in sets:
        return rows
    nsmc = SHARED_DATA / "nsmc_like"
    data = nsmc
    if nsmc_lines:
        data = RUNS / "nsmc_like-subset"
        data.mkdir(parents=True, exist_ok=True)
        lines = (nsmc / "train.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:nsmc_lines]
        (data / "train.txt").write_text("".join(lines), encoding="utf-8")
        for split in ("valid.txt", "test.txt"):
            if (nsmc / split).is_file():
                shutil.copy(nsmc / split, data / split)
    for model in models:
        for run, settings in (("whitespace (regex)", {}), ("kiwi morphemes", {"tokenizer_engine": "kiwi"})):
            if settings.get("tokenizer_engine", "regex") not in tokenizers:
                continue
            if time_limit:
                settings = {**settings, "time_limit": time_limit}
            name = ("" if model == "cnn" else f"{model}, ") + run
            name += f", first {nsmc_lines:,} train lines" if nsmc_lines else ""
            name += f", --time-limit {time_limit:g}" if time_limit else ""
            print(f"nsmc_like {name} ...", flush=True)
            rows = record(
                rows, train_row("nsmc_like", name, data, settings, test=data / "test.txt", model=model)
            )
    return rows


def table(rows: list[dict]) -> str:
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        lines += [
            f"### {dataset}",
            "",
            "| run | test acc | macro-F1 | best epoch (of run) | best valid acc | s to best epoch "
            "| reaches mode 3's best valid at | valid acc by epoch |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        plain = next((r for r in rows if r["dataset"] == dataset and r["run"] == "mode 3 (title,body)"), None)
        for r in rows:
            if r["dataset"] != dataset or "test_accuracy" not in r:
                continue
            curve = " ".join(f"{v:.1f}" for v in r["valid_curve"])
            reach = ""
            if plain is not None and r["run"].startswith(("mode 3", "mode 4", "mode 5")):
                hits = [i for i, v in enumerate(r["valid_curve"]) if v >= plain["best_valid_accuracy"]]
                reach = f"epoch {hits[0] + 1} ({r['seconds_curve'][hits[0]]:.0f} s)" if hits else "never"
            lines.append(
                f"| {r['run']} | {r['test_accuracy']:.2f} | {r['macro_f1']:.2f} "
                f"| {r['best_epoch']} ({r['epochs_run']}) "
                f"| {r['best_valid_accuracy']:.2f} | {r['seconds_to_best']:.0f} | {reach} | {curve} |"
            )
        extra = [r for r in rows if r["dataset"] == dataset and "texts" in r]
        if extra:
            lines += [
                "",
                "Sentence embeddings (MiniLM-L6, once; later runs read the cache): "
                + "; ".join(
                    f"{r['run'].split()[-1]} {r['texts']:,} texts in {r['seconds']:.0f} s" for r in extra
                ),
            ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["all", "fields", "minilm", "korean", "none"], default="all")
    parser.add_argument("--minilm-train", type=int, default=2000, help="MiniLM: training examples (subset)")
    parser.add_argument("--minilm-epochs", type=int, default=3)
    parser.add_argument("--clusters", default="8,16,32,64", help="K values (empty: no cluster runs)")
    parser.add_argument("--modes", default="concat,add", help="cluster modes (concat = mode 4, add = mode 5)")
    parser.add_argument("--nsmc-lines", type=int, help="train nsmc_like on its first N lines only")
    parser.add_argument("--korean-models", default="cnn", help="word-model presets for the Korean runs")
    parser.add_argument("--korean-sets", default="korean_hate_speech,nsmc_like")
    parser.add_argument("--korean-tokenizers", default="regex,kiwi", help="nsmc_like: regex, kiwi or both")
    parser.add_argument("--time-limit", type=float, help="nsmc_like: seconds of training per run at most")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="skip modes 1-3 rows already in the results")
    parser.add_argument("--out", type=Path, help="write the section into this Markdown file")
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing: write the table of the results"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = load_rows()
    if args.report_only:
        args.part = "none"
    if args.part in ("all", "fields"):
        clusters = [int(k) for k in args.clusters.split(",") if k]
        rows = run_fields(rows, clusters, [m for m in args.modes.split(",") if m], args.reuse)
    if args.part in ("all", "minilm"):
        rows = run_minilm(rows, args.minilm_train, args.minilm_epochs)
    if args.part in ("all", "korean"):
        rows = run_korean(
            rows,
            args.nsmc_lines,
            args.korean_models.split(","),
            args.korean_sets.split(","),
            tuple(args.korean_tokenizers.split(",")),
            args.time_limit,
        )
    print(table(rows))
    if args.out:
        command = "make bench-fields  (= .venv/bin/python benchmarks/bench_fields.py --out BENCHMARKS.md)"
        write_section(
            args.out,
            "bench-fields",
            "## Fields, clusters and Korean morphology (issue 17)\n\n"
            + header(command)
            + "\n\n"
            + table(rows),
        )


if __name__ == "__main__":
    main()
