"""Knowledge distillation: any teacher model directory (any backend) → any student config.

1. The teacher scores the training texts and the unlabeled (augmented) texts once. Its logits are
   stored as ``soft_targets.safetensors``, with ``soft_targets.jsonl`` (text, gold label or null,
   the teacher's label and entropy). They are keyed on what they depend on: the sha256 of the
   teacher's weights (and of the ONNX file for an ONNX backend), the backend, the texts and the
   label order. A second run with the same key reuses them; anything else is scored afresh.
2. The student trains on the union with
   ``alpha * T² * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(gold)``, where t is the
   teacher's logits and s the student's. The KL term is summed over classes; the CE term applies
   only to examples with a gold label; the batch loss is the mean over examples.
   ``loss="mse"`` uses ``alpha * mean((s - t)²) + (1 - alpha) * CE(gold)`` instead.
   ``max_entropy`` drops unlabeled texts on which the teacher is unsure.
3. The report puts the teacher, the student trained alone (``baseline``) and the distilled
   student side by side on the test split: accuracy, macro-F1, p50 latency and size.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from textcls.data.formats import Example
from textcls.errors import ConfigError, DataError

log = logging.getLogger(__name__)
SOFT_TARGETS = "soft_targets.safetensors"
SOFT_INDEX = "soft_targets.jsonl"
CACHE_KEY = "textcls_soft_targets"  # safetensors metadata: the key of the cached logits (JSON)


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    gold: torch.Tensor,
    temperature: float = 2.0,
    alpha: float = 0.5,
    kind: str = "kl",
) -> torch.Tensor:
    """The per-example loss of the module docstring, averaged over the batch. ``gold`` is -1
    where an example has no label."""
    if kind == "kl":
        log_student = F.log_softmax(student / temperature, dim=-1)
        log_teacher = F.log_softmax(teacher / temperature, dim=-1)
        soft = (log_teacher.exp() * (log_teacher - log_student)).sum(-1) * temperature**2
    elif kind == "mse":
        soft = ((student - teacher) ** 2).mean(-1)
    else:
        raise ConfigError(f"unknown distillation loss '{kind}': kl or mse")
    has_gold = gold >= 0
    hard = torch.zeros_like(soft)
    if has_gold.any():
        hard[has_gold] = F.cross_entropy(student[has_gold], gold[has_gold], reduction="none")
    return (alpha * soft + (1 - alpha) * hard).mean()


def entropy(logits: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row's softmax."""
    shifted = logits - logits.max(1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(1, keepdims=True)
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(1)


def read_unlabeled(path: str | Path, labels: Sequence[str]) -> list[Example]:
    """The augmented file: ``text`` lines (no gold) or ``text<TAB>label`` lines (gold kept)."""
    examples = []
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path, hint="make one with 'textcls augment'")
    known = set(labels)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            text, tab, label = line.rpartition("\t") if "\t" in line else (line, "", "")
            if tab and label not in known:
                raise DataError(f"label {label!r} is not one of the training labels", path=path, line=number)
            examples.append(Example(text=text if tab else line, label=label if tab else None, line=number))
    if not examples:
        raise DataError("no texts", path=path)
    return examples


def teacher_logits(
    teacher: str | Path,
    texts: Sequence[Any],
    labels: Sequence[str],
    *,
    backend: str = "torch",
    threads: int | None = None,
    cache: Path | None = None,
    progress: bool = False,
    batch_size: int = 256,
) -> np.ndarray:
    """The teacher's logits for ``texts`` with columns in ``labels`` order (the student's); read
    from ``cache`` when it holds the same texts and labels scored by the same teacher weights
    (and ONNX file) with the same backend (``soft_targets_key``)."""
    from textcls.inference.predictor import load_predictor
    from textcls.integrity import write_safetensors
    from textcls.progress import ProgressBar

    key = soft_targets_key(teacher, texts, labels, backend)
    if cache is not None and (cache / SOFT_TARGETS).is_file():
        stored_key, stored = _read_cache(cache / SOFT_TARGETS)
        changed = _key_changes(stored_key, key)
        if not changed and stored is not None and len(stored) == len(texts):
            log.info("reusing the teacher's soft targets from %s", cache / SOFT_TARGETS)
            return stored
        log.info(
            "the soft targets in %s do not fit (%s): the teacher scores the texts again",
            cache / SOFT_TARGETS,
            ", ".join(changed) or "unreadable",
        )
    predictor = load_predictor(teacher, backend=backend, threads=threads)
    if set(predictor.labels) != set(labels):
        raise ConfigError(
            f"the teacher's labels {sorted(predictor.labels)} differ from the training labels "
            f"{sorted(labels)}"
        )
    columns = [predictor.labels.index(label) for label in labels]
    chunks = []
    step = batch_size * 16
    with ProgressBar(progress, f"teacher scoring ({backend})", -(-len(texts) // step)) as advance:
        for start in range(0, len(texts), step):
            chunks.append(predictor.logits(list(texts[start : start + step]), batch_size)[:, columns])
            advance()
    # column selection can leave a Fortran-ordered array: safetensors writes raw memory
    logits = np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        metadata = {**key, "teacher": str(teacher), "texts": len(texts)}
        # the key rides inside the safetensors file (written atomically): logits and key never part
        write_safetensors(cache / SOFT_TARGETS, {"logits": logits}, {CACHE_KEY: json.dumps(metadata)})
        (cache / (SOFT_TARGETS + ".json")).write_text(json.dumps(metadata, indent=2) + "\n")
    return logits


def soft_targets_key(
    teacher: str | Path, texts: Sequence[Any], labels: Sequence[str], backend: str
) -> dict[str, Any]:
    """What the teacher's logits depend on: the sha256 of its weights (``weights_digest``; None
    for an ONNX-only directory), for an ONNX backend the sha256 of the file it runs, the backend,
    and the texts with the label order (``texts_digest``). Not its path: a directory retrained in
    place is another teacher, a copy of the same weights elsewhere is the same one."""
    from textcls.inference.onnx import BACKEND_FILES, file_sha256
    from textcls.model import WEIGHTS_FILE, weights_digest

    directory = Path(teacher)
    key: dict[str, Any] = {
        "backend": backend,
        "weights_digest": weights_digest(directory) if (directory / WEIGHTS_FILE).is_file() else None,
    }
    if backend in BACKEND_FILES:
        onnx = directory / BACKEND_FILES[backend]
        key["onnx_sha256"] = file_sha256(onnx) if onnx.is_file() else None
    inputs = [text if isinstance(text, str) else list(text) for text in texts]
    key["texts_digest"] = hashlib.sha256(json.dumps([list(labels), inputs]).encode()).hexdigest()
    key["labels"] = list(labels)
    return key


def _read_cache(path: Path) -> tuple[dict[str, Any], np.ndarray | None]:
    """(the key stored with the logits, the logits); ({}, None) for an unreadable file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            stored = json.loads((handle.metadata() or {}).get(CACHE_KEY, "{}"))
            return stored, handle.get_tensor("logits")
    except Exception:  # a truncated or foreign file is simply scored again
        return {}, None


def _key_changes(stored: dict[str, Any], key: dict[str, Any]) -> list[str]:
    """What differs between the key of the cached logits and the wanted one, in words."""
    if not stored:
        return ["written without a key (an older textcls)"]
    names = {
        "weights_digest": "the teacher's weights changed",
        "onnx_sha256": "the teacher's ONNX file changed",
        "backend": "another teacher backend",
        "texts_digest": "the texts or labels changed",
    }
    changes = [words for field, words in names.items() if stored.get(field) != key.get(field)]
    if not changes and key["weights_digest"] is None and key.get("onnx_sha256") is None:
        changes.append("no teacher files to check")
    return changes


def distill(
    teacher: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    student: str | None = None,
    student_config: str | Path | None = None,
    unlabeled: str | Path | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    loss: str = "kl",
    teacher_backend: str = "torch",
    max_entropy: float | None = None,
    baseline: bool = True,
    threads: int | None = None,
    progress: bool = False,
    soft_targets: str | Path | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Distil ``teacher`` into a student (preset ``student`` or ``student_config`` file, with
    ``overrides``) trained on ``data`` (+ ``unlabeled``); the distilled student is saved in
    ``out``, the student trained alone in ``out/baseline``. Returns the report (also written to
    ``out/distill_report.json`` and ``.md``). The teacher's soft targets are kept in
    ``soft_targets`` (default ``out``): students of one teacher on the same texts can share it."""
    from textcls.api import TextClassifier
    from textcls.data.splits import load_splits

    if not temperature > 0 or not 0 <= alpha <= 1:
        raise ConfigError(f"need temperature > 0 and 0 <= alpha <= 1 (got {temperature}, {alpha})")
    if loss not in ("kl", "mse"):
        raise ConfigError(f"unknown distillation loss '{loss}': kl or mse")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from textcls.config import DataConfig

    data_fields = {k: v for k, v in overrides.items() if k in DataConfig.model_fields}
    from textcls.model import read_model_config

    if read_model_config(teacher).model.multi_label:
        raise ConfigError(f"{teacher}: distillation is for one label per text; this teacher is multi-label")
    splits = load_splits(data, **data_fields)  # read like every other verb reads its data
    labels = sorted({str(e.label) for e in splits.train})
    extra = read_unlabeled(unlabeled, labels) if unlabeled else []
    train_texts = {e.text for e in splits.train}
    extra = [e for e in extra if e.text not in train_texts]  # augmented files repeat the originals
    examples = list(splits.train) + extra
    logits = teacher_logits(
        teacher,
        [e.as_input() for e in examples],
        labels,
        backend=teacher_backend,
        threads=threads,
        cache=Path(soft_targets) if soft_targets is not None else out,
        progress=progress,
    )
    teacher_entropy = entropy(logits)
    keep = np.ones(len(examples), bool)
    if max_entropy is not None:
        keep[len(splits.train) :] = teacher_entropy[len(splits.train) :] <= max_entropy
        log.info(
            "entropy filter kept %d of %d unlabeled texts", int(keep[len(splits.train) :].sum()), len(extra)
        )
    _write_index(out, examples, logits, teacher_entropy, labels)
    examples = [e for e, k in zip(examples, keep, strict=True) if k]
    logits = logits[keep]
    targets = torch.from_numpy(logits)

    def soft_loss(student_logits: torch.Tensor, indices: list[int], gold: torch.Tensor) -> torch.Tensor:
        batch_teacher = targets[indices].to(student_logits.device)
        return distillation_loss(student_logits, batch_teacher, gold, temperature, alpha, loss)

    options = {"tensorboard": False, **overrides}
    distilled = TextClassifier(model=student, config=student_config, **options)
    distilled.fit(examples, splits.valid, out_dir=out, progress=progress, soft_loss=soft_loss)
    report: dict[str, Any] = {
        "teacher": str(teacher),
        "teacher_backend": teacher_backend,
        "temperature": temperature,
        "alpha": alpha,
        "loss": loss,
        "train_examples": len(splits.train),
        "unlabeled_examples": len(extra),
        "kept_unlabeled": int(keep[len(splits.train) :].sum()),
        "models": {},
    }
    alone = None
    if baseline:
        alone = TextClassifier(model=student, config=student_config, **options)
        alone.fit(list(splits.train), splits.valid, out_dir=out / "baseline", progress=progress)
    if splits.test:
        from textcls.api import load
        from textcls.inference.bench import model_size_mb

        rows = [
            (
                "teacher",
                load(teacher, backend=teacher_backend, threads=threads),
                Path(teacher),
                teacher_backend,
            )
        ]
        if alone is not None:
            rows.append(("student alone", alone, out / "baseline", "torch"))
        rows.append(("distilled student", distilled, out, "torch"))
        for name, classifier, directory, backend in rows:
            evaluation = classifier.evaluate(splits.test, latency=True)
            report["models"][name] = {
                "accuracy": evaluation["accuracy"] * 100,
                "macro_f1": evaluation["macro_f1"] * 100,
                "p50_ms": evaluation["latency"]["p50_ms"],
                "size_mb": model_size_mb(directory, backend, classifier.predictor),
                "backend": backend,
            }
    (out / "distill_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "distill_report.md").write_text(report_markdown(report), encoding="utf-8")
    return report


def report_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Distillation from {report['teacher']} ({report['teacher_backend']})",
        "",
        f"loss {report['loss']}, temperature {report['temperature']}, alpha {report['alpha']}; "
        f"{report['train_examples']} labelled + {report['kept_unlabeled']} of {report['unlabeled_examples']} "
        "unlabeled texts",
        "",
        "| model | accuracy | macro-F1 | p50 ms (batch 1) | size MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in report["models"].items():
        lines.append(
            f"| {name} ({row['backend']}) | {row['accuracy']:.2f} | {row['macro_f1']:.2f} "
            f"| {row['p50_ms']:.3f} | {row['size_mb']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _write_index(
    out: Path,
    examples: Sequence[Example],
    logits: np.ndarray,
    teacher_entropy: np.ndarray,
    labels: Sequence[str],
) -> None:
    """``soft_targets.jsonl``: one line per scored text, in the order of the safetensors rows."""
    predicted = logits.argmax(1)
    with open(out / SOFT_INDEX, "w", encoding="utf-8") as handle:
        for example, label, h in zip(examples, predicted, teacher_entropy, strict=True):
            record = {
                "text": example.text,
                "gold": example.label,
                "teacher": labels[label],
                "entropy": float(h),
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
