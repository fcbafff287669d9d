"""Multi-label classification, calibration and out-of-scope detection (issue 19).

- ``goemotions``: the ``multilabel`` set (GoEmotions, 28 labels): textcls ``linear``, the word
  CNN and MiniLM-L6 against fastText (``loss='ova'``, word bigrams, 25 epochs, lr 0.5;
  ``predict(k=-1, threshold)`` with one threshold tuned on valid for macro-F1) and scikit-learn
  TF-IDF (1-2-grams, sublinear tf) + one-vs-rest LinearSVC (``decision_function > 0``), in one
  process on the same splits.
- ``mixsnips``: a multi-intent set built from SNIPS the way MixSNIPS was (Qin et al. 2020): 1, 2
  or 3 utterances of distinct intents (shares 0.3 / 0.5 / 0.2) joined with " and ", labelled
  with the union of their intents (``#``-joined), from each SNIPS split separately (seed 19).
- ``calibration``: ECE (15 bins) on the test file before and after temperature scaling, the word
  CNN and MiniLM-L6 on SNIPS and SST-2; and (``calibration-defaults``, also run by ``calibration``)
  the MiniLM-L6 models ``bench_defaults.py`` trained with the defaults, when ``runs/`` holds them,
  each also refitted in memory with ``--top-label isotonic`` (temperature, then an isotonic map
  of the top probability; ECE and the top-label Brier score before and after the map).
- ``oos``: SNIPS with BookRestaurant and RateBook held out of training as "oos": their valid
  utterances choose the abstention threshold (``--oos-target-recall 0.9``), their test utterances
  are the unseen inputs.

MiniLM-L6 trains one epoch everywhere here (``--minilm-epochs``; max_length 64) and on SST-2 on
a 20,000-sentence sample of train (seed 19): a CPU budget, stated with the figures.

    .venv/bin/python benchmarks/bench_multilabel.py --out BENCHMARKS.md
    .venv/bin/python benchmarks/bench_multilabel.py --part goemotions --skip-minilm
    .venv/bin/python benchmarks/bench_multilabel.py --report-only --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, SHARED_DATA, header, save_json, write_section

RESULTS = REPO / "benchmarks" / "results" / "multilabel.json"
RUNS = REPO / "runs" / "bench-multilabel"
COMMAND = "make bench-multilabel  (= .venv/bin/python benchmarks/bench_multilabel.py --out BENCHMARKS.md)"
SEED = 19
HELD_OUT = ("BookRestaurant", "RateBook")
PARTS = ("goemotions", "mixsnips", "calibration", "oos")


def load_rows() -> list[dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else []


def record(row: dict) -> None:
    key = (row["part"], row["dataset"], row["model"])
    rows = [r for r in load_rows() if (r["part"], r["dataset"], r["model"]) != key]
    save_json(RESULTS, [*rows, row])
    print(json.dumps(row), flush=True)


# ----------------------------------------------------------------------------------------- data
def read_rows(path: Path, separator: str = ",") -> list[tuple[str, list[str]]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text, _, labels = line.rpartition("\t")
        rows.append((text, labels.split(separator)))
    return rows


def write_rows(path: Path, rows: list[tuple[str, list[str]]], separator: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t}\t{separator.join(ls)}\n" for t, ls in rows), encoding="utf-8")
    return path


def mix_snips(source: Path, count: int, seed: int) -> list[tuple[str, list[str]]]:
    """MixSNIPS-style multi-intent utterances from one SNIPS split (see the module docstring)."""
    by_intent: dict[str, list[str]] = {}
    for text, (intent,) in read_rows(source):
        by_intent.setdefault(intent, []).append(text)
    rng = random.Random(seed)
    intents = sorted(by_intent)
    rows = []
    for _ in range(count):
        k = rng.choices([1, 2, 3], weights=[0.3, 0.5, 0.2])[0]
        chosen = rng.sample(intents, k)
        rows.append((" and ".join(rng.choice(by_intent[i]) for i in chosen), sorted(chosen)))
    return rows


def build_mixsnips() -> Path:
    root = RUNS / "data" / "mixsnips"
    sizes = {"train": 12000, "valid": 1000, "test": 1500}
    for offset, (split, count) in enumerate(sizes.items()):
        write_rows(
            root / f"{split}.txt",
            mix_snips(SHARED_DATA / "snips" / f"{split}.txt", count, SEED + offset),
            "#",
        )
    return root


def build_oos() -> Path:
    root = RUNS / "data" / "snips-oos"
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        lines = []
        for line in (SHARED_DATA / "snips" / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            text, _, intent = line.rpartition("\t")
            if intent in HELD_OUT:
                if split == "train":
                    continue  # never seen in training
                intent = "oos"
            lines.append(f"{text}\t{intent}\n")
        (root / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
    return root


def sst2_subset(count: int) -> Path:
    root = RUNS / "data" / "sst2-20k"
    root.mkdir(parents=True, exist_ok=True)
    lines = (SHARED_DATA / "sst2" / "train.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    random.Random(SEED).shuffle(lines)
    (root / "train.txt").write_text("".join(lines[:count]), encoding="utf-8")
    for split in ("valid", "test"):
        shutil.copy(SHARED_DATA / "sst2" / f"{split}.txt", root / f"{split}.txt")
    return root


# ----------------------------------------------------------------------------------- textcls runs
def textcls_run(part: str, dataset: str, name: str, data: Path, settings: dict, model: str) -> dict:
    import textcls

    out = RUNS / part / f"{dataset}-{name}"
    shutil.rmtree(out, ignore_errors=True)
    print(f"{part} / {dataset}: {name} ...", flush=True)
    started = time.perf_counter()
    classifier = textcls.TextClassifier(model=model, tensorboard=False, **settings)
    classifier.fit(data, out_dir=out, progress=False)
    row = evaluated_row(part, dataset, name, out, data / "test.txt", settings)
    return {**row, "train_seconds": round(time.perf_counter() - started, 1)}


def evaluated_row(part: str, dataset: str, name: str, model_dir: Path, test: Path, settings: dict) -> dict:
    """The row of a trained model directory: its test metrics and its calibration, valid and test."""
    import textcls

    report = textcls.load(model_dir).evaluate(test, model_dir / "eval", latency=False)
    result = json.loads((model_dir / "train_result.json").read_text())
    row = {
        "part": part,
        "dataset": dataset,
        "model": name,
        "train_seconds": result["seconds"],
        "best_epoch": result["best_epoch"],
        "epochs_run": len(result["history"]),
        "settings": settings,
        "valid_calibration": {k: v for k, v in result["calibration"].items() if k != "thresholds"},
        "test": {k: v for k, v in report.items() if k in SCALARS},
        "test_calibration": test_calibration(report),
    }
    decision = json.loads((model_dir / "config.json").read_text())["model"].get("decision", {})
    if decision.get("bias"):  # multi-label models trained since Platt scaling (6fc4280)
        row["calibrator"] = "Platt per label"
    if "out_of_scope" in report:
        row["test_out_of_scope"] = report["out_of_scope"]
    return row


def test_calibration(report: dict) -> dict:
    """What a row keeps of an evaluation's calibration (the ECE after T alone when a map was applied)."""
    keys = ("ece_before", "ece_after", "temperature", "ece_after_temperature", "top_label")
    return {k: report["calibration"][k] for k in keys if k in report["calibration"]}


SCALARS = (
    "n",
    "accuracy",
    "macro_f1",
    "micro_f1",
    "weighted_f1",
    "samples_f1",
    "hamming_loss",
    "subset_accuracy",
    "labels_per_example",
    "without_prediction",
)


def minilm_settings(args: argparse.Namespace) -> dict:
    # target_steps None: exactly --minilm-epochs passes (the preset plans passes to 1,500 steps,
    # at least 3 and at most `epochs`)
    return {"epochs": args.minilm_epochs, "target_steps": None, "max_length": 64}


def minilm_name(args: argparse.Namespace) -> str:
    return "minilm-l6" if args.minilm_epochs == 1 else f"minilm-l6 ({args.minilm_epochs} epochs)"


# ------------------------------------------------------------------------------------------ peers
def binarize(rows: list[list[str]], labels: list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(rows), len(labels)), np.int64)
    for i, row in enumerate(rows):
        for label in row:
            if label in index:
                out[i, index[label]] = 1
    return out


def peer_row(
    dataset: str, name: str, gold: np.ndarray, predicted: np.ndarray, seconds: float, extra: dict
) -> dict:
    from textcls.metrics import multi_label_scores

    scores = multi_label_scores(gold, predicted)
    return {
        "part": "goemotions",
        "dataset": dataset,
        "model": name,
        "train_seconds": round(seconds, 1),
        "test": {**scores, "accuracy": scores["subset_accuracy"], "n": len(gold)},
        **extra,
    }


def fasttext_ova(data: Path, dataset: str) -> dict:
    import fasttext

    from textcls.metrics import multi_label_scores

    train, valid, test = (read_rows(data / f"{s}.txt") for s in ("train", "valid", "test"))
    labels = sorted({label for _, ls in train for label in ls})
    path = RUNS / "peers" / f"{dataset}.fasttext.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(" ".join(f"__label__{l}" for l in ls) + " " + " ".join(t.split()) + "\n" for t, ls in train),
        encoding="utf-8",
    )
    started = time.perf_counter()
    # the settings of bench-word's fastText peer (its defaults, lr 0.1 / 5 epochs, ended in NaN here)
    params = {"epoch": 25, "lr": 0.5, "dim": 100, "wordNgrams": 2}
    model = fasttext.train_supervised(str(path), loss="ova", verbose=0, thread=2, seed=0, **params)
    seconds = time.perf_counter() - started

    def predicted(rows: list, threshold: float) -> np.ndarray:
        found = [model.predict(" ".join(t.split()), k=-1, threshold=threshold)[0] for t, _ in rows]
        return binarize([[l.removeprefix("__label__") for l in row] for row in found], labels)

    gold_valid = binarize([ls for _, ls in valid], labels)
    grid = [0.01, 0.02, 0.03, 0.04, *(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))]
    tuned = {t: multi_label_scores(gold_valid, predicted(valid, t))["macro_f1"] for t in grid}
    threshold = max(tuned, key=tuned.get)
    return peer_row(
        dataset,
        "fastText ova (threshold tuned on valid)",
        binarize([ls for _, ls in test], labels),
        predicted(test, threshold),
        seconds,
        {"threshold": threshold, "settings": f"loss='ova', {params}"},
    )


def tfidf_svc(data: Path, dataset: str) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    train, test = read_rows(data / "train.txt"), read_rows(data / "test.txt")
    labels = sorted({label for _, ls in train for label in ls})
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x = vectorizer.fit_transform([t for t, _ in train])
    model = OneVsRestClassifier(LinearSVC()).fit(x, binarize([ls for _, ls in train], labels))
    seconds = time.perf_counter() - started
    scores = model.decision_function(vectorizer.transform([t for t, _ in test]))
    return peer_row(
        dataset,
        "TF-IDF + one-vs-rest LinearSVC",
        binarize([ls for _, ls in test], labels),
        (scores > 0).astype(np.int64),
        seconds,
        {"settings": "TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LinearSVC()"},
    )


# ------------------------------------------------------------------------------------------ parts
def run_goemotions(args: argparse.Namespace) -> None:
    data = SHARED_DATA / "multilabel"
    record(tfidf_svc(data, "goemotions"))
    record(fasttext_ova(data, "goemotions"))
    record(textcls_run("goemotions", "goemotions", "linear", data, {}, "linear"))
    record(textcls_run("goemotions", "goemotions", "cnn", data, {}, "cnn"))
    if not args.skip_minilm:
        name = minilm_name(args)
        record(textcls_run("goemotions", "goemotions", name, data, minilm_settings(args), "minilm-l6"))


def run_mixsnips(args: argparse.Namespace) -> None:
    data = build_mixsnips()
    record(textcls_run("mixsnips", "mixsnips", "cnn", data, {"label_sep": "#"}, "cnn"))
    if not args.skip_minilm:
        settings = {"label_sep": "#", **minilm_settings(args)}
        record(textcls_run("mixsnips", "mixsnips", minilm_name(args), data, settings, "minilm-l6"))


def run_calibration(args: argparse.Namespace) -> None:
    for dataset in ("snips", "sst2"):
        record(textcls_run("calibration", dataset, "cnn", SHARED_DATA / dataset, {}, "cnn"))
    if not args.skip_minilm:
        for dataset, data in (("snips", SHARED_DATA / "snips"), ("sst2 (20k train)", sst2_subset(20000))):
            settings = minilm_settings(args)
            record(textcls_run("calibration", dataset, minilm_name(args), data, settings, "minilm-l6"))
    run_calibration_defaults(args)


def run_calibration_defaults(args: argparse.Namespace) -> None:
    for dataset in ("snips", "sst2"):  # the models users get: MiniLM-L6 with its defaults, full train
        trained = args.defaults_runs / f"{dataset}-minilm-l6"
        if (trained / "train_result.json").is_file():
            name = "minilm-l6 (defaults, `bench_defaults.py`)"
            print(f"calibration / {dataset}: {name} from {trained} ...", flush=True)
            test = SHARED_DATA / dataset / "test.txt"
            record(evaluated_row("calibration", dataset, name, trained, test, {"model_dir": str(trained)}))
            record(top_label_row(dataset, name, trained, test))


def top_label_row(dataset: str, name: str, model_dir: Path, test: Path) -> dict:
    """The same model with its calibration fitted again on the validation file, in memory, with
    ``top_label: isotonic`` (temperature, then the isotonic map of the top probability): what
    ``--top-label isotonic`` would have saved. The model directory is left as it is."""
    import textcls
    from textcls.api import read_labelled
    from textcls.decision import Decision, calibrate, top_label_brier

    classifier = textcls.load(model_dir)
    model = classifier.config.model
    model.decision.top_label = "isotonic"
    labels = list(model.labels)
    valid = read_labelled(SHARED_DATA / dataset / "valid.txt", classifier.config)
    logits = classifier.predictor.logits([e.as_input() for e in valid], 64)
    fitted = calibrate(model, logits, [labels.index(e.label) if e.label in labels else -1 for e in valid])
    classifier.predictor.decision = Decision(model)
    report = classifier.evaluate(test, latency=False)
    examples = read_labelled(test, classifier.config)
    gold = np.array([labels.index(e.label) if e.label in labels else -1 for e in examples])
    test_logits = classifier.predictor.logits([e.as_input() for e in examples], 64)
    mapped = Decision(model).probabilities(test_logits)
    knots, model.decision.confidence_map = model.decision.confidence_map, []
    scaled = Decision(model).probabilities(test_logits)  # temperature alone
    model.decision.confidence_map = knots
    return {
        "part": "calibration",
        "dataset": dataset,
        "model": f"{name} + `--top-label isotonic` (refitted on valid)",
        "train_seconds": 0.0,
        "settings": {"model_dir": str(model_dir), "top_label": "isotonic"},
        "valid_calibration": {k: v for k, v in fitted.items() if k != "thresholds"},
        "test": {k: v for k, v in report.items() if k in SCALARS},
        "test_calibration": test_calibration(report),
        "test_brier": {"temperature": top_label_brier(scaled, gold), "after": top_label_brier(mapped, gold)},
        "knots": len(model.decision.confidence_map[0]),
    }


def run_oos(args: argparse.Namespace) -> None:
    data = build_oos()
    settings = {"oos_target_recall": 0.9}
    record(textcls_run("oos", "snips-oos", "cnn", data, settings, "cnn"))
    if not args.skip_minilm:
        settings = {**settings, **minilm_settings(args)}
        record(textcls_run("oos", "snips-oos", minilm_name(args), data, settings, "minilm-l6"))


# ----------------------------------------------------------------------------------------- report
def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def label_ece(row: dict) -> str:
    """A multi-label row's mean per-label ECE before → after its calibrator ("–" for a peer)."""
    c = row.get("test_calibration")
    if not c:
        return "–"
    return f"{c['ece_before']:.4f} → {c['ece_after']:.4f} ({row.get('calibrator', 'T per label')})"


def report(rows: list[dict]) -> str:
    by_part = {part: [r for r in rows if r["part"] == part] for part in PARTS}
    lines = [
        "## bench-multilabel: multi-label, calibration, out of scope (issue 19)",
        "",
        header(COMMAND),
        "",
        "MiniLM-L6 rows train one epoch at max_length 64 unless the row names more (a CPU budget; SST-2 on a "
        "20,000-sentence sample). The `defaults` rows evaluate the models `bench_defaults.py` trained with "
        "MiniLM-L6's defaults on the full train set.",
        "",
    ]
    if by_part["goemotions"]:
        lines += [
            "### GoEmotions (`multilabel`, 28 labels), test set",
            "",
            "| model | macro-F1 | micro-F1 | samples-F1 | subset acc. | hamming "
            "| label ECE raw → after | train s |",
            "|---|---:|---:|---:|---:|---:|---|---:|",
        ]
        for r in by_part["goemotions"]:
            t = r["test"]
            lines.append(
                f"| {r['model']} | {pct(t['macro_f1'])} | {pct(t['micro_f1'])} | {pct(t['samples_f1'])} | "
                f"{pct(t['subset_accuracy'])} | {t['hamming_loss']:.4f} | {label_ece(r)} | "
                f"{r['train_seconds']:.0f} |"
            )
        lines += [
            "",
            "Label ECE: the mean over the 28 labels of each label's ECE (15 bins) on the test file, before "
            "and after the calibration that training fitted on valid: Platt scaling per label (a temperature "
            "and a bias) in models trained since 2026-12-06, one temperature per label in the rows trained "
            "before.",
            "",
        ]
    if by_part["mixsnips"]:
        lines += [
            '### MixSNIPS-style multi-intent SNIPS (12,000 / 1,000 / 1,500; 1-3 intents joined with "and")',
            "",
            "| model | subset acc. | micro-F1 | macro-F1 | train s |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in by_part["mixsnips"]:
            t = r["test"]
            lines.append(
                f"| {r['model']} | {pct(t['subset_accuracy'])} | {pct(t['micro_f1'])} | "
                f"{pct(t['macro_f1'])} | {r['train_seconds']:.0f} |"
            )
        lines.append("")
    if by_part["calibration"]:
        lines += [
            "### Calibration: expected calibration error on the test file (15 bins), target ≤ 0.02 after",
            "",
            "| data | model | accuracy | ECE raw | ECE after T | ECE after | T | top-label Brier: T, after |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in by_part["calibration"]:
            c, brier = r["test_calibration"], r.get("test_brier")
            lines.append(
                f"| {r['dataset']} | {r['model']} | {pct(r['test']['accuracy'])} | {c['ece_before']:.4f} | "
                f"{c.get('ece_after_temperature', c['ece_after']):.4f} | {c['ece_after']:.4f} | "
                f"{c['temperature']:.3f} | "
                + (f"{brier['temperature']:.4f}, {brier['after']:.4f}" if brier else "–")
                + " |"
            )
        lines.append("")
    if by_part["oos"]:
        lines += [
            f"### Out of scope: SNIPS with {' and '.join(HELD_OUT)} unseen in training "
            "(`--oos-target-recall 0.9`)",
            "",
            "| model | threshold | in-scope acc. | OOS recall | OOS precision | OOS F1 | AUROC |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in by_part["oos"]:
            o = r["test_out_of_scope"]
            lines.append(
                f"| {r['model']} | {o['abstain_below']:.4f} | {pct(o['in_scope_accuracy'])} | "
                f"{pct(o['oos_recall'])} | {pct(o['oos_precision'])} | {pct(o['oos_f1'])} "
                f"| {o['auroc']:.4f} |"
            )
        lines.append("")
    lines += targets(by_part)
    return "\n".join(lines)


def targets(by_part: dict[str, list[dict]]) -> list[str]:
    """The issue's targets, checked against the rows: met or missed, with the figures."""
    out = ["### Targets", ""]
    goemotions = {r["model"]: r["test"]["macro_f1"] for r in by_part["goemotions"]}
    peers = {m: v for m, v in goemotions.items() if m.startswith(("fastText", "TF-IDF"))}
    if peers:
        best = max(peers.values())
        for model, value in goemotions.items():
            if model not in peers:
                verdict = "met" if value >= best else "MISSED"
                out.append(
                    f"- GoEmotions macro-F1 ≥ both peers ({pct(best)}): {model} {pct(value)}, {verdict}"
                )
        for model, value in goemotions.items():
            if model.startswith("minilm"):
                verdict = "met" if value >= 0.46 else "MISSED"
                paper = "- MiniLM-L6 macro-F1 ≥ 46.0 (the GoEmotions paper's BERT-base)"
                out.append(f"{paper}: {model} {pct(value)}, {verdict}")
    for r in by_part["calibration"]:
        after = r["test_calibration"]["ece_after"]
        verdict = "met" if after <= 0.02 else "MISSED"
        out.append(f"- ECE ≤ 0.02 after: {r['dataset']} {r['model']} {after:.4f}, {verdict}")
    return [*out, ""]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=[*PARTS, "calibration-defaults", "all"], default="all")
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--minilm-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--defaults-runs",
        type=Path,
        default=REPO / "runs" / "bench-defaults",
        help="calibration: also evaluate the MiniLM-L6 models bench_defaults.py trained here, if any",
    )
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--out", type=Path, help="write the section into this Markdown file")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not args.report_only:
        runners = {
            "goemotions": run_goemotions,
            "mixsnips": run_mixsnips,
            "calibration": run_calibration,
            "calibration-defaults": run_calibration_defaults,
            "oos": run_oos,
        }
        for part in PARTS if args.part == "all" else (args.part,):
            runners[part](args)
    text = report(load_rows())
    print(text)
    if args.out:
        write_section(args.out, "bench-multilabel", text)


if __name__ == "__main__":
    main()
