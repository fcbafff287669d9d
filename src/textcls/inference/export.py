"""``textcls export``: write ONNX graphs next to the PyTorch weights, check them, gate int8.

    export_model("runs/snips-minilm", quantize="int8")

1. ``model.onnx``: traced from the PyTorch model (dynamic batch and sequence axes), fused by ONNX
   Runtime's transformer optimizer for transformers (kept only if it still matches PyTorch), then
   checked against PyTorch on real inputs: the max abs logit difference is reported and the export
   fails beyond ``tolerance``.
2. ``model.int8.onnx`` (``quantize="int8"``): dynamic int8 quantization, evaluated on the
   validation split; more than ``max_drop`` accuracy points lost against PyTorch fails the
   export (the file is removed) unless ``force``.
3. ``export.json``: what was written, sizes, differences, fusions, the gate's figures, and for
   each file the sha256 of the weights it came from (``weights_digest``) and its own (``sha256``):
   the ONNX backends refuse a file whose weights or bytes no longer match (``export_problem``).
   Entries (and files) of an earlier export that no longer match are dropped.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textcls.data.formats import Example
from textcls.decision import Decision
from textcls.errors import AccuracyGateError, ConfigError, ExportError
from textcls.inference.onnx import (
    BACKEND_FILES,
    EXPORT_FILE,
    INT8_FILE,
    ONNX_FILE,
    OnnxPredictor,
    export_problem,
    file_sha256,
    read_export_record,
)

log = logging.getLogger(__name__)
CHECK_TEXTS = 256


def resolve_validation(directory: str | Path, valid: str | Path | None = None) -> list[Example] | None:
    """The validation examples of a model: ``valid`` if given, else the split recorded at training
    time in ``train_result.json`` (re-carved with the same seed when it was carved), read with the
    data options training used (format, columns, label separator, bad lines, fields). None if
    unknown."""
    from textcls.api import read_labelled
    from textcls.data.splits import load_splits
    from textcls.model import read_model_config

    config = read_model_config(directory)
    if valid is not None:
        return read_labelled(valid, config)
    summary = Path(directory) / "train_result.json"
    if not summary.is_file():
        return None
    source = json.loads(summary.read_text(encoding="utf-8")).get("data") or {}
    if not source.get("data") or not Path(source["data"]).exists():
        return None
    if source.get("valid") and not Path(source["valid"]).exists():
        return None
    decision = config.model.decision  # an abstaining model's validation holds its oos label
    abstains = decision.oos_target_recall is not None or decision.abstain_below is not None
    splits = load_splits(
        source["data"],
        valid=source.get("valid"),
        options=config.data,
        seed=source.get("seed", 42),
        multi_label=config.model.multi_label,
        also_known=[decision.oos_label] if abstains else [],
    )
    return splits.valid


def check_texts(examples: Sequence[Example] | None, featurizer: Any) -> list[Any]:
    """Real inputs for the export check: validation texts, plus one long text made of several
    so that long-document windows are exercised."""
    texts = [e.as_input() for e in (examples or [])][:CHECK_TEXTS]
    if not texts:
        texts = [
            "play some jazz by miles davis",
            "will it rain in paris tomorrow",
            "book a table for two at an italian restaurant tonight",
            "add this song to my workout playlist",
            "rate this novel four out of six stars",
            "what time is the new star wars film showing",
        ]
    if all(isinstance(t, str) for t in texts):
        texts.append(" ".join(texts[:40] * (1 + 40 // len(texts))))
    return texts


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def accuracy(logits: np.ndarray, decision: Decision, examples: Sequence[Example]) -> float:
    """Percent of examples answered right by the model's decision (calibration, out of scope;
    multi-label: every label right, subset accuracy)."""
    predicted = decision.predicted(decision.probabilities(logits))
    if decision.multi_label:
        right = [set(p) == set(e.label_set) for p, e in zip(predicted, examples, strict=True)]
    else:
        right = [p == str(e.label) for p, e in zip(predicted, examples, strict=True)]
    return float(np.mean(right) * 100) if right else 0.0


def export_model(
    directory: str | Path,
    *,
    quantize: str | None = None,
    valid: str | Path | None = None,
    max_drop: float = 1.0,
    force: bool = False,
    optimize: bool = True,
    tolerance: float = 1e-3,
    threads: int | None = None,
) -> dict[str, Any]:
    """Export ``directory`` to ONNX (and int8 with ``quantize="int8"``); returns the export record
    (also written to ``export.json``). Raises ExportError / AccuracyGateError on a failed check."""
    import torch

    from textcls.inference.onnx import export_graph, optimize_transformer, quantize_int8
    from textcls.inference.predictor import predict_logits
    from textcls.integrity import golden_check
    from textcls.model import WEIGHTS_FILE, load_model, weights_digest

    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize {quantize}: only int8 is supported")
    directory = Path(directory)
    digest = weights_digest(directory)  # before loading: the files are bound to what was loaded
    model, featurizer, config = load_model(directory)
    labels = config.model.labels
    examples = resolve_validation(directory, valid)
    if quantize and examples is None:
        raise ConfigError(
            f"{directory}: the int8 accuracy gate needs the validation split, and none is recorded "
            "for this model: give --valid FILE"
        )
    texts = check_texts(examples, featurizer)
    if threads:
        torch.set_num_threads(threads)
    reference = predict_logits(model, featurizer, featurizer.encode(texts), 64, "cpu")
    record: dict[str, Any] = read_export_record(directory)
    record.update(
        torch_version=torch.__version__,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        check_texts=len(texts),
        pytorch_size_mb=_size_mb(directory / WEIGHTS_FILE),
    )

    def compare(path: Path, backend: str) -> tuple[OnnxPredictor, np.ndarray, float, float]:
        predictor = OnnxPredictor(path, featurizer, labels, _aggregate(config), backend, threads)
        logits = predictor.logits(texts)
        agree = float((logits.argmax(1) == reference.argmax(1)).mean() * 100)
        return predictor, logits, max_abs_diff(logits, reference), agree

    with tempfile.TemporaryDirectory(prefix="textcls-export-") as scratch:
        traced = Path(scratch) / ONNX_FILE
        log.info("exporting %s to ONNX", directory)
        export_graph(model, featurizer, texts, traced)
        _, _, diff, agree = compare(traced, "onnx")
        entry: dict[str, Any] = {
            "file": ONNX_FILE,
            "weights_digest": digest,
            "max_abs_diff": diff,
            "label_agreement": agree,
        }
        chosen = traced
        if optimize and config.model.backbone is not None:
            fused_path = Path(scratch) / "fused.onnx"
            try:
                fused = optimize_transformer(traced, fused_path, _hf_config(model), _heads_left(model))
                _, _, fused_diff, fused_agree = compare(fused_path, "onnx")
            except Exception as error:  # an architecture the optimizer does not know: keep the trace
                log.warning("transformer optimizer failed (%s); keeping the unfused graph", error)
                fused, fused_diff = {}, float("inf")
            if fused and fused_diff <= tolerance:
                chosen = fused_path
                entry.update(
                    max_abs_diff=fused_diff,
                    label_agreement=fused_agree,
                    fused=fused,
                    unfused_max_abs_diff=diff,
                )
            else:
                entry["fused"] = "rejected: outputs differ from PyTorch" if fused else "nothing fused"
        if entry["max_abs_diff"] > tolerance:
            raise ExportError(
                f"ONNX export of {directory} disagrees with PyTorch: max abs logit difference "
                f"{entry['max_abs_diff']:.2e} > tolerance {tolerance:g} on {len(texts)} inputs "
                "(nothing written; please report this model's architecture)"
            )
        # the graph must also give the directory's golden inputs their saved scores
        golden = golden_check(
            OnnxPredictor(chosen, featurizer, labels, _aggregate(config), "onnx", threads), directory, "onnx"
        )
        if golden is not None:
            entry["golden"] = golden
        entry["sha256"] = file_sha256(chosen)
        _install(chosen, directory / ONNX_FILE)
        entry["size_mb"] = _size_mb(directory / ONNX_FILE)
        record["onnx"] = entry
        log.info("wrote %s (max abs diff vs PyTorch %.2e)", directory / ONNX_FILE, entry["max_abs_diff"])

        if quantize:
            quantized = Path(scratch) / INT8_FILE
            quantize_int8(directory / ONNX_FILE, quantized)
            _, _, q_diff, q_agree = compare(quantized, "onnx-int8")
            assert examples is not None
            gate = _gate(model, featurizer, labels, examples, quantized, config, threads)
            golden_check(
                OnnxPredictor(quantized, featurizer, labels, _aggregate(config), "onnx-int8", threads),
                directory,
                "onnx-int8",
            )
            passed = gate["drop"] <= max_drop
            gate.update(max_drop=max_drop, passed=passed, forced=bool(force and not passed))
            record["onnx-int8"] = {
                "file": INT8_FILE,
                "weights_digest": digest,
                "sha256": file_sha256(quantized),
                "max_abs_diff": q_diff,
                "label_agreement": q_agree,
                "gate": gate,
                "size_mb": _size_mb(quantized),
            }
            if not passed and not force:
                (directory / INT8_FILE).unlink(missing_ok=True)
                record.pop("onnx-int8")
                _drop_stale(directory, record, digest)
                _write_record(directory, record)
                raise AccuracyGateError(
                    f"int8 model rejected: validation accuracy {gate['int8_accuracy']:.2f} vs "
                    f"{gate['torch_accuracy']:.2f} in PyTorch, a drop of {gate['drop']:.2f} points "
                    f"> --max-drop {max_drop:g} ({INT8_FILE} not written; --force keeps it anyway)"
                )
            _install(quantized, directory / INT8_FILE)
            verdict = "passed" if passed else "FAILED, kept because of --force"
            log.info(
                "wrote %s: validation accuracy %.2f vs %.2f in PyTorch (gate %s)",
                directory / INT8_FILE,
                gate["int8_accuracy"],
                gate["torch_accuracy"],
                verdict,
            )
    _drop_stale(directory, record, digest)
    _write_record(directory, record)
    return record


def _drop_stale(directory: Path, record: dict[str, Any], digest: str) -> None:
    """Remove the ONNX files (and their entries) this export did not write that no longer match
    the weights (an int8 file of earlier weights, a hand-copied graph): they could not be served."""
    for backend, name in BACKEND_FILES.items():
        problem = export_problem(directory, backend, record=record, weights=digest)
        if problem is None or not ((directory / name).is_file() or backend in record):
            continue
        log.warning("removing %s: %s", name, problem)
        (directory / name).unlink(missing_ok=True)
        record.pop(backend, None)


def _gate(
    model: Any,
    featurizer: Any,
    labels: list[str],
    examples: Sequence[Example],
    path: Path,
    config: Any,
    threads: int | None,
) -> dict[str, Any]:
    from textcls.inference.predictor import predict_logits

    texts = [e.as_input() for e in examples]
    decision = Decision(config.model)
    torch_accuracy = accuracy(
        predict_logits(model, featurizer, featurizer.encode(texts), 64, "cpu"), decision, examples
    )
    predictor = OnnxPredictor(path, featurizer, labels, _aggregate(config), "onnx-int8", threads)
    int8_accuracy = accuracy(predictor.logits(texts), decision, examples)
    return {
        "valid_examples": len(examples),
        "torch_accuracy": torch_accuracy,
        "int8_accuracy": int8_accuracy,
        "drop": torch_accuracy - int8_accuracy,
    }


def _aggregate(config: Any) -> str:
    return config.model.backbone.aggregate if config.model.backbone else "mean"


def _hf_config(model: Any) -> Any:
    embedder = model.embedder
    return (embedder.model if hasattr(embedder, "model") else embedder.backbone).config


def _install(source: Path, target: Path) -> None:
    """Copy into the model directory through a temporary name (a crash leaves no half file)."""
    import shutil

    temporary = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, temporary)
    temporary.replace(target)


def _size_mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 3) if path.is_file() else 0.0


def _write_record(directory: Path, record: dict[str, Any]) -> None:
    (directory / EXPORT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _heads_left(model: Any) -> tuple[int, int] | None:
    """(heads, their total width) of the first layer after structured pruning; None when unpruned
    (a fused graph whose layers differ fails the comparison with PyTorch and is not kept)."""
    backbone = model.config.backbone
    if backbone is None or not backbone.pruned_heads:
        return None
    hf = _hf_config(model)
    total, hidden = int(getattr(hf, "num_attention_heads", 0) or 0), int(getattr(hf, "hidden_size", 0) or 0)
    if not total or not hidden:
        return None
    kept = max(1, total - len(backbone.pruned_heads.get(0, [])))
    return kept, kept * (hidden // total)
