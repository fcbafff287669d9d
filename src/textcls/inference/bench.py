"""``textcls bench``: every model directory × backend × thread count on one labelled file.

For each combination: accuracy, macro-F1, p50/p95 ms at batch 1, examples/s at batch 64, load
time, model file size and threads. Writes a Markdown table, the same rows as JSON, and a PNG of
accuracy against latency with the Pareto front (no other row is both faster and more accurate)
highlighted.

The quality figures are ``evaluate``'s, through the model's own decision: a multi-label model's
accuracy is its subset accuracy (every label of a text right; the table says so) and its row adds
micro-F1; a model that can answer out of scope (a trained class or abstention), or data holding
the out-of-scope label, adds in-scope accuracy and out-of-scope precision / recall / F1 and AUROC.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textcls.errors import ModelLoadError, TextClsError

log = logging.getLogger(__name__)
ALL_BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8")


def model_size_mb(directory: Path, backend: str, predictor: Any) -> float:
    """Bytes on disk of what the backend loads (torch-int8: its quantized tensors in memory)."""
    from textcls.inference.onnx import BACKEND_FILES

    if backend in BACKEND_FILES:
        return (directory / BACKEND_FILES[backend]).stat().st_size / 1e6
    if backend == "torch-int8":
        return _tensor_bytes(predictor.model.state_dict()) / 1e6
    return sum(path.stat().st_size for path in directory.glob("*.safetensors")) / 1e6


def _tensor_bytes(value: Any) -> int:
    import torch

    if isinstance(value, torch.Tensor):  # quantized tensors report 1 byte per int8 element
        return value.nelement() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def pareto_front(rows: Sequence[dict[str, Any]]) -> set[int]:
    """Indices of rows that no other row beats on both p50 latency and accuracy."""
    front = set()
    for i, row in enumerate(rows):
        dominated = any(
            other["p50_ms"] <= row["p50_ms"]
            and other["accuracy"] >= row["accuracy"]
            and (other["p50_ms"] < row["p50_ms"] or other["accuracy"] > row["accuracy"])
            for j, other in enumerate(rows)
            if j != i
        )
        if not dominated:
            front.add(i)
    return front


def bench_one(
    directory: Path,
    backend: str,
    threads: int | None,
    examples: Sequence[Any],
    source: str,
    strict_labels: bool = False,
) -> dict[str, Any]:
    from textcls.evaluation import evaluate
    from textcls.inference.predictor import load_predictor

    start = time.perf_counter()
    predictor = load_predictor(directory, backend=backend, threads=threads)
    load_s = time.perf_counter() - start
    report = evaluate(predictor, examples, latency=True, source=source, strict_labels=strict_labels)
    latency = report["latency"]
    return {
        "model": directory.name,
        "path": str(directory),
        "backend": backend,
        "threads": latency["threads"],
        "accuracy": report["accuracy"] * 100,  # multi-label: subset accuracy
        "macro_f1": report["macro_f1"] * 100,
        **task_measures(report),
        "p50_ms": latency["p50_ms"],
        "p95_ms": latency["p95_ms"],
        "throughput_per_s": latency["throughput_per_s"],
        "load_s": load_s,
        "size_mb": model_size_mb(directory, backend, predictor),
        "examples": report["n"],
        "unseen": sum(report["unseen"].values()),  # examples whose label the model never saw (wrong)
    }


OOS_MEASURES = ("in_scope_accuracy", "oos_precision", "oos_recall", "oos_f1")


def task_measures(report: dict[str, Any]) -> dict[str, Any]:
    """What a bench row adds to accuracy and macro-F1 from ``evaluate``'s report, in percent: a
    multi-label model's subset accuracy and micro-F1; the out-of-scope measures (None where the
    data has no example to measure them on)."""
    measures: dict[str, Any] = {}
    if report.get("multi_label"):
        measures.update(
            multi_label=True,
            subset_accuracy=report["subset_accuracy"] * 100,
            micro_f1=report["micro_f1"] * 100,
        )
    oos = report.get("out_of_scope")
    if oos:
        for key in OOS_MEASURES:
            measures[key] = None if oos[key] is None else oos[key] * 100
        measures["oos_auroc"] = oos["auroc"]
    return measures


def run_bench(
    model_dirs: Sequence[str | Path],
    data: str | Path,
    *,
    backends: Sequence[str] = ALL_BACKENDS,
    threads: Sequence[int | None] = (None,),
    out: str | Path | None = None,
    export: bool = False,
    **data_fields: Any,
) -> list[dict[str, Any]]:
    """Benchmark every combination; ONNX backends of a directory without an export, or whose
    export came from other weights (``export_problem``), are skipped (noted) unless ``export``
    (then ``textcls export`` runs first, int8 with its accuracy gate). ``data_fields`` (DataConfig
    field names: ``format``, ``strict_labels``, ...) override how each model reads ``data``."""
    from textcls.api import read_labelled
    from textcls.data.splits import data_options
    from textcls.inference.onnx import BACKEND_FILES, export_problem
    from textcls.model import read_model_config

    _preload(backends)
    import torch

    default_threads = torch.get_num_threads()  # what "no thread count" means, for every row
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name in model_dirs:
        directory = Path(name)
        config = read_model_config(directory)
        config.data = data_options(config.data, **data_fields)
        examples = read_labelled(data, config)
        for backend in backends:
            problem = export_problem(directory, backend) if backend in BACKEND_FILES else None
            if problem is not None:
                missing = not (directory / BACKEND_FILES[backend]).is_file()
                if not export:
                    skipped.append(
                        f"{directory.name} × {backend}: "
                        + ("not exported (textcls export)" if missing else problem)
                    )
                    continue
                from textcls.inference.export import export_model

                if not missing:
                    log.warning("exporting %s again: %s", directory.name, problem)
                try:
                    export_model(directory, quantize="int8" if backend == "onnx-int8" else None)
                except TextClsError as error:
                    skipped.append(f"{directory.name} × {backend}: export failed: {error}")
                    continue
            for count in threads:
                log.info("bench %s × %s × %s threads", directory.name, backend, count or "default")
                try:
                    rows.append(
                        bench_one(
                            directory,
                            backend,
                            count or default_threads,
                            examples,
                            str(data),
                            strict_labels=config.data.strict_labels,
                        )
                    )
                except ModelLoadError as error:
                    skipped.append(f"{directory.name} × {backend}: {error}")
    for i in pareto_front(rows):
        rows[i]["pareto"] = True
    if out is not None:
        write_outputs(Path(out), rows, skipped, str(data))
    return rows


def _preload(backends: Sequence[str]) -> None:
    """Import the libraries once, so load times measure the model, not the first import."""
    import torch  # noqa: F401

    if any(b.startswith("onnx") for b in backends):
        from textcls.inference.onnx import import_onnxruntime

        import_onnxruntime()
    with contextlib.suppress(ImportError):
        import transformers  # noqa: F401


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per row. A micro-F1 column when a row is multi-label (whose accuracy reads
    ``(subset)``), and in-scope accuracy / OOS precision / recall / F1 columns when a row has
    out-of-scope measures; "–" where a row has none."""
    multi = any(r.get("multi_label") for r in rows)
    scoped = any("oos_recall" in r for r in rows)
    extra = ["micro-F1"] * multi + ["in-scope acc.", "OOS P", "OOS R", "OOS F1"] * scoped
    lines = [
        "| model | backend | threads | accuracy | macro-F1 | "
        + "".join(f"{name} | " for name in extra)
        + "p50 ms (batch 1) | p95 ms | examples/s (batch 64) | load s | size MB | Pareto |",
        "|---|---|---:|---:|---:|" + "---:|" * len(extra) + "---:|---:|---:|---:|---:|:---:|",
    ]
    for r in sorted(rows, key=lambda r: (r.get("peer", False), r["model"], r["backend"], r["threads"])):
        name = f"*{r['model']}* (peer)" if r.get("peer") else r["model"]  # rows added by benchmarks
        load = f"{r['load_s']:.2f}" if r["load_s"] == r["load_s"] else "–"  # NaN: not measured
        accuracy = f"{r['accuracy']:.2f}" + (" (subset)" if r.get("multi_label") else "")
        cells = [_cell(r.get("micro_f1"))] * multi
        if scoped:
            cells += [_cell(r.get(key)) for key in OOS_MEASURES]
        lines.append(
            f"| {name} | {r['backend']} | {r['threads']} | {accuracy} | {r['macro_f1']:.2f} | "
            + "".join(f"{cell} | " for cell in cells)
            + f"{r['p50_ms']:.3f} | {r['p95_ms']:.3f} | {r['throughput_per_s']:,.0f} | {load} "
            f"| {r['size_mb']:.2f} | {'★' if r.get('pareto') else ''} |"
        )
    if multi:
        lines.append("\nmulti-label rows: accuracy is subset accuracy (every label of a text right)")
    unseen = {r["model"]: r["unseen"] for r in rows if r.get("unseen")}
    for model, count in unseen.items():
        lines.append(f"\n{model}: {count} examples whose label was never seen in training count as wrong")
    return "\n".join(lines)


def write_outputs(out: Path, rows: Sequence[dict[str, Any]], skipped: Sequence[str], source: str) -> None:
    """``out`` (Markdown), ``out`` with .json and with .png."""
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    text = [f"# textcls bench on {source}", "", markdown_table(rows), ""]
    if skipped:
        text += ["Skipped:", "", *(f"- {line}" for line in skipped), ""]
    if plot(rows, png):
        text += [f"![accuracy vs latency]({png.name})", ""]
    out.write_text("\n".join(text), encoding="utf-8")
    out.with_suffix(".json").write_text(
        json.dumps({"source": source, "rows": list(rows), "skipped": list(skipped)}, indent=2) + "\n",
        encoding="utf-8",
    )


def plot(rows: Sequence[dict[str, Any]], path: Path) -> bool:
    """Accuracy against p50 latency (log scale); the Pareto front drawn as a line."""
    if not rows:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        on_front = row.get("pareto", False)
        ax.scatter(row["p50_ms"], row["accuracy"], s=50 if on_front else 20, c="C3" if on_front else "C0")
        ax.annotate(
            f"{row['model']} {row['backend']} ×{row['threads']}",
            (row["p50_ms"], row["accuracy"]),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r["p50_ms"])
    ax.plot([r["p50_ms"] for r in front], [r["accuracy"] for r in front], "C3--", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency at batch 1 (ms, log scale)")
    multi = [bool(r.get("multi_label")) for r in rows]
    ax.set_ylabel(
        "subset accuracy (%)"
        if all(multi)
        else "accuracy (%; multi-label: subset accuracy)"
        if any(multi)
        else "accuracy (%)"
    )
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
