"""``textcls pretrain``: pretraining on unlabeled text before fine-tuning.

- ``model`` = ``minilm-l6`` or a local Hugging Face encoder: continued masked-LM pretraining
  (task-adaptive pretraining, Gururangan et al. 2020); the output directory is a Hugging Face
  model that ``textcls train --model DIR`` fine-tunes like any other.
- ``model`` = ``bilm``: an ELMo-style biLM (``textcls.embeddings.bilm``) that
  ``textcls train --embedder bilm:DIR --model cnn`` (any word encoder) reads through a scalar mix.

The output directory also holds ``pretrain.json`` (settings, every logged step and validation,
the tracking run), ``pretrain.md`` and ``pretrain_curves.png``; ``checkpoint/`` while unfinished.

>>> pretrain(["data/unlabeled.txt"], "runs/minilm-tapt", max_steps=500)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textcls.config import PretrainConfig, deep_update
from textcls.errors import ConfigError

log = logging.getLogger(__name__)
REPORT_JSON, REPORT_MD, CURVES_PNG = "pretrain.json", "pretrain.md", "pretrain_curves.png"
BILM_DEFAULTS = {"lr": 2e-3, "batch_size": 64, "max_length": 64}  # an LSTM from scratch, not a fine-tune


def pretrain_config(model: str = "minilm-l6", **settings: Any) -> PretrainConfig:
    """The settings: defaults, the biLM's own defaults when ``model`` is ``bilm``, then ``settings``
    (field names of :class:`PretrainConfig`, or dotted paths such as ``bilm.char_cnn``)."""
    data: dict[str, Any] = {"model": model, **(BILM_DEFAULTS if model == "bilm" else {})}
    for key, value in settings.items():
        if value is None:
            continue
        update: dict[str, Any] = {key.split(".")[-1]: value}
        for parent in reversed(key.split(".")[:-1]):
            update = {parent: update}
        data = deep_update(data, update)
    try:
        return PretrainConfig.model_validate(data)
    except ValueError as error:
        raise ConfigError(f"invalid pretraining settings:\n{error}") from None


def pretrain(
    data: Sequence[str | Path] | str | Path,
    out_dir: str | Path,
    *,
    model: str = "minilm-l6",
    resume: bool = False,
    progress: bool = True,
    format: str = "auto",
    text_columns: Sequence[str] | None = None,
    on_step: Any = None,
    **settings: Any,
) -> dict[str, Any]:
    """Pretrain on the texts of ``data`` (files), write the result to ``out_dir``; returns the
    report (also ``pretrain.json``)."""
    from textcls.pretraining.corpus import read_texts
    from textcls.pretraining.loop import CHECKPOINT_DIR, run
    from textcls.pretraining.tasks import make_task
    from textcls.training.loggers import make_logger
    from textcls.training.loop import set_seed

    config = pretrain_config(model, **settings)
    out = Path(out_dir)
    paths = [data] if isinstance(data, str | Path) else list(data)
    report_path = out / REPORT_JSON
    if (out / CHECKPOINT_DIR).exists() and not resume:
        raise ConfigError(
            f"{out} holds an unfinished pretraining run (checkpoint/): add --resume to continue it, "
            "or choose a new --out"
        )
    if resume and report_path.is_file():
        previous = json.loads(report_path.read_text(encoding="utf-8"))["config"]
        ignore = {"time_limit"}
        changed = sorted(k for k in previous if k not in ignore and previous[k] != config.model_dump()[k])
        if changed:
            raise ConfigError(
                f"{out}: --resume with different settings ({', '.join(changed)}); use a new --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    texts = read_texts(paths, format, text_columns)
    task = make_task(config, texts)
    report: dict[str, Any] = {
        "config": config.model_dump(),
        "data": [str(Path(p).resolve()) for p in paths],
        "texts": len(texts),
        "status": "running",
        **task.describe(),
    }
    tracking = None
    if resume and report_path.is_file():
        tracking = json.loads(report_path.read_text(encoding="utf-8")).get("tracking")
    logger = _logger(config, out, tracking, make_logger)
    report["tracking"] = logger.run_ref
    _write_json(report_path, report)
    logger.log_params(
        {"pretrain": config.model_dump(), **{k: v for k, v in task.describe().items() if k != "architecture"}}
    )
    try:
        state = run(task, config, out, resume=resume, logger=logger, progress=progress, on_step=on_step)
    except BaseException:
        report["status"] = "interrupted (resume with --resume)"
        _write_json(report_path, report)
        logger.close("KILLED")
        raise
    valid = [h for h in state["history"] if h["split"] == "valid"]
    report.update(
        status="time limit reached" if state["out_of_time"] else "finished",
        steps=state["step"],
        planned_steps=state["planned_steps"],
        tokens=state["tokens"],
        seconds=round(state["seconds"], 1),
        tokens_per_s=round(state["tokens"] / max(1e-9, state["seconds"]), 1),
        valid=valid[-1] if valid else None,
        first_valid=valid[0] if valid else None,
        history=state["history"],
    )
    _write_json(report_path, report)
    (out / REPORT_MD).write_text(report_markdown(report), encoding="utf-8")
    plot_curves(state["history"], out / CURVES_PNG, task.accuracy_name)
    for name in (REPORT_JSON, REPORT_MD, CURVES_PNG):
        logger.log_artifact(out / name)
    logger.log_metrics(
        {"pretrain_seconds": state["seconds"], "pretrain_tokens": state["tokens"]}, state["step"]
    )
    logger.close()
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)  # finished: the output is complete
    return report


def _logger(config: PretrainConfig, out: Path, tracking: dict | None, make_logger: Any) -> Any:
    """The run's logger; a resumed MLflow run continues the same run."""
    if config.track == "mlflow" and tracking:
        from textcls.training.loggers import reopen

        return reopen(tracking)
    kind = "none" if config.track == "none" else config.track
    return make_logger(
        kind,
        out / "tensorboard",
        tracking_uri=config.tracking_uri,
        experiment=config.experiment,
        run_name=f"pretrain-{out.name}",
        tags={"textcls.stage": "pretrain", "textcls.pretrain_dir": str(out.resolve())},
    )


def pretrain_source(directory: str | Path) -> dict[str, Any] | None:
    """What a pretrained directory says of its pretraining (``pretrain.json``), or None: fine-tuning
    records it and tags its MLflow run with the pretraining run."""
    path = Path(directory).expanduser() / REPORT_JSON
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    return {
        "directory": str(Path(directory).expanduser().resolve()),
        "objective": report.get("objective"),
        "steps": report.get("steps"),
        "valid": report.get("valid"),
        "run_id": (report.get("tracking") or {}).get("run_id"),
    }


def _write_json(path: Path, document: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    temporary.replace(path)


def report_markdown(report: dict[str, Any]) -> str:
    config, valid, first = report["config"], report.get("valid") or {}, report.get("first_valid") or {}
    lines = [
        f"# Pretraining: {config['model']} ({report.get('objective')})",
        "",
        f"- texts: {report['texts']:,}; windows {report['windows']['train']:,} train, "
        f"{report['windows']['valid']:,} held out",
        f"- steps {report['steps']:,} of {report['planned_steps']:,} planned, {report['tokens']:,} tokens, "
        f"{report['seconds']:.0f} s ({report['tokens_per_s']:,.0f} tokens/s); status: {report['status']}",
    ]
    if report.get("mlm_head_created"):
        lines.append(
            "- the backbone had no masked-LM head: one was created (transform + LayerNorm, decoder "
            "tied to the word embeddings)"
        )
    if valid:
        accuracy = "masked-token" if report.get("objective") == "masked LM" else "next-token"
        lines.append(
            f"- held-out: loss {first.get('loss', float('nan')):.4f} → {valid['loss']:.4f}, perplexity "
            f"{first.get('perplexity', float('nan')):.2f} → {valid['perplexity']:.2f}, {accuracy} accuracy "
            f"{first.get('accuracy', float('nan')):.4f} → {valid['accuracy']:.4f} "
            f"(step {first.get('step', '?')} → step {valid.get('step', '?')})"
        )
    lines += [
        "",
        "| step | split | loss | perplexity | accuracy | tokens/s |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for h in report["history"]:
        speed = f"{h['tokens_per_s']:,.0f}" if "tokens_per_s" in h else ""
        lines.append(
            f"| {h['step']} | {h['split']} | {h['loss']:.4f} | {h['perplexity']:.2f} | "
            f"{h['accuracy']:.4f} | {speed} |"
        )
    return "\n".join(lines) + "\n"


def plot_curves(history: list[dict[str, Any]], path: Path, accuracy_name: str) -> None:
    """Perplexity and accuracy against steps, train and held-out, on one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("valid", "o-")):
        points = [h for h in history if h["split"] == split]
        if not points:
            continue
        steps = [h["step"] for h in points]
        left.plot(steps, [h["perplexity"] for h in points], style, label=split)
        right.plot(steps, [h["accuracy"] for h in points], style, label=split)
    left.set(xlabel="step", ylabel="perplexity", yscale="log", title="perplexity")
    right.set(xlabel="step", ylabel=accuracy_name, title=accuracy_name)
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
