"""ONNX: export a model directory's network to ``model.onnx`` (fused for transformers), quantize it
to ``model.int8.onnx``, and run either through ONNX Runtime as the ``onnx`` / ``onnx-int8`` backends.

The graph maps padded token ids to one row of logits per window; tokenization, length-sorted
batching and the aggregation of long-document windows happen in the predictor, in NumPy, so the
backend needs neither torch models nor training code at run time.

An ONNX file is bound to the weights it was exported from: its entry in ``export.json`` records
the sha256 of ``model.safetensors`` at export (``weights_digest``) and of the ONNX file itself
(``sha256``). The backends open a file only when both still match, so a retrained directory or a
graph copied from another model is refused instead of serving another model's answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textcls.errors import MissingDependencyError, ModelLoadError
from textcls.inference.predictor import Predictor, TextInput, sorted_logits

log = logging.getLogger(__name__)

ONNX_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"
EXPORT_FILE = "export.json"
BACKEND_FILES = {"onnx": ONNX_FILE, "onnx-int8": INT8_FILE}
OPSET = 17


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("onnxruntime", "onnx", "the ONNX backends") from None
    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


# ------------------------------------------------------------------------------------------ export
@contextlib.contextmanager
def quiet() -> Any:
    """Silence the INFO chatter and advice (root logger) and warnings of ONNX Runtime's Python
    tools (export problems surface as exceptions and as the checks against PyTorch)."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def logits_graph(model: Any, input_names: Sequence[str]) -> Any:
    """``model`` as positional tensors → per-window logits: the signature the exporter traces."""
    from torch import nn

    class LogitsGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(dict(zip(input_names, tensors, strict=True)))["logits"]

    return LogitsGraph().eval()


def graph_inputs(featurizer: Any) -> list[str]:
    """The graph's input names, from what the featurizer produces (never from model names)."""
    if getattr(featurizer, "input_names", None):
        return list(featurizer.input_names)
    names = ["input_ids", "attention_mask"]
    if getattr(featurizer, "use_token_types", False):
        names.append("token_type_ids")
    return names


def export_graph(model: Any, featurizer: Any, texts: Sequence[TextInput], path: Path) -> None:
    """Trace ``model`` on a padded batch of ``texts`` and write the ONNX graph, with dynamic batch
    and sequence axes."""
    import torch

    names = graph_inputs(featurizer)
    model = model.cpu().eval()
    if hasattr(model.embedder, "backbone") or hasattr(model.embedder, "model"):
        _use_eager_attention(model)
    encoded = featurizer.encode(list(texts))
    batch = featurizer.collate(sorted(encoded, key=featurizer.length)[-2:] + encoded[:1])
    # [batch, sequence] tensors, and per-text ones ([batch]: the cluster ids)
    axes = {name: {0: "batch", 1: "sequence"} if batch[name].dim() > 1 else {0: "batch"} for name in names}
    axes["logits"] = {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            logits_graph(model, names),
            tuple(batch[name] for name in names),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _use_eager_attention(model: Any) -> None:
    """Plain matmul-softmax attention traces into the pattern ONNX Runtime's optimizer fuses."""
    for module in model.modules():
        setter = getattr(module, "set_attn_implementation", None)
        if setter is not None and getattr(module, "config", None) is not None:
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                setter("eager")
            return


def optimize_transformer(
    path: Path, out: Path, hf_config: Any, heads: tuple[int, int] | None = None
) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer: fuses attention, LayerNorm, GELU and embeddings.
    Returns the fused operator counts (empty when nothing fused). ``heads``: (heads, their total
    width) of a layer after ``textcls prune --heads-per-layer`` (default the config's); the
    optimizer cannot detect them on a pruned graph, and without them fuses no attention."""
    import_onnxruntime()
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = "bart" if getattr(hf_config, "model_type", "") == "bart" else "bert"
    with quiet():
        optimized = optimize_model(
            str(path),
            model_type=model_type,
            num_heads=heads[0] if heads else int(getattr(hf_config, "num_attention_heads", 0) or 0),
            hidden_size=heads[1] if heads else int(getattr(hf_config, "hidden_size", 0) or 0),
            opt_level=0,
        )
    fused = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    optimized.save_model_to_file(str(out))
    return fused


def quantize_int8(path: Path, out: Path) -> None:
    """Dynamic int8 quantization (weights int8 per channel, activations uint8 on the fly)."""
    import_onnxruntime()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet():
        quantize_dynamic(
            str(path),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,  # 7-bit weights: no u8s8 overflow on CPUs without VNNI
            op_types_to_quantize=["MatMul", "Attention", "Gemm", "LSTM", "Gather", "EmbedLayerNormalization"],
            # fused contrib ops (Attention, SkipLayerNormalization) defeat ONNX shape inference
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


# --------------------------------------------------------------------------------------- predictor
def aggregate_windows(logits: np.ndarray, doc_index: np.ndarray, how: str) -> np.ndarray:
    """Per-document logits from per-window logits (mean or max over each document's windows)."""
    documents = int(doc_index.max()) + 1
    if how == "max":
        out = np.full((documents, logits.shape[1]), -np.inf, dtype=logits.dtype)
        np.maximum.at(out, doc_index, logits)
        return out
    out = np.zeros((documents, logits.shape[1]), dtype=logits.dtype)
    np.add.at(out, doc_index, logits)
    return out / np.bincount(doc_index, minlength=documents)[:, None].astype(logits.dtype)


def session_options(threads: int | None) -> Any:
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default (one per core)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OnnxPredictor(Predictor):
    """ONNX Runtime on CPU over an exported graph; the featurizer does the tokenization."""

    def __init__(
        self,
        path: str | Path,
        featurizer: Any,
        labels: list[str],
        aggregate: str = "mean",
        backend: str = "onnx",
        threads: int | None = None,
    ) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        self.featurizer = featurizer
        self.labels = labels
        self.aggregate = aggregate
        self.backend = backend
        self._threads = threads or len(os.sched_getaffinity(0))
        self.session = ort.InferenceSession(
            str(self.path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.input_names = [node.name for node in self.session.get_inputs()]

    def logits(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        collate, run, names = self.featurizer.collate_numpy, self.session.run, self.input_names

        def run_batch(items: list[Any]) -> np.ndarray:
            batch = collate(items)
            logits = run(None, {name: batch[name] for name in names})[0]
            if "doc_index" in batch:
                logits = aggregate_windows(logits, batch["doc_index"], self.aggregate)
            return logits

        return sorted_logits(self.featurizer.encode(texts), self.featurizer.length, batch_size, run_batch)

    def count_long(self, texts: Sequence[TextInput]) -> int:
        return self.featurizer.count_long(texts)

    @property
    def threads(self) -> int:
        return self._threads


# ------------------------------------------------------------------------- binding to the weights
def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_export_record(directory: str | Path) -> dict[str, Any]:
    """``export.json`` of a model directory ({} when there is none or it is not a JSON object)."""
    path = Path(directory) / EXPORT_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def export_command(directory: str | Path, backend: str) -> str:
    """The command that (re)writes the file of an ONNX backend."""
    flag = " --quantize int8" if backend == "onnx-int8" else ""
    return f"textcls export {directory} --format onnx{flag}"


def export_problem(
    directory: str | Path,
    backend: str,
    *,
    record: dict[str, Any] | None = None,
    weights: str | None = None,
) -> str | None:
    """Why the ONNX file of ``backend`` in ``directory`` must not be served, or None when it may:
    missing; not recorded in export.json, or recorded without a weights digest (an older export);
    exported from other weights than the directory's ``model.safetensors``; or not the file the
    export wrote (replaced, or copied from another model directory). ``record`` and ``weights``
    (the weights' digest) save reading them again."""
    from textcls.model import WEIGHTS_FILE, weights_digest

    directory = Path(directory)
    name = BACKEND_FILES[backend]
    path = directory / name
    command = export_command(directory, backend)
    if not path.is_file():
        return f"{directory}: no {name} for the {backend} backend: run '{command}' first"
    entry = (read_export_record(directory) if record is None else record).get(backend)
    if not isinstance(entry, dict) or entry.get("file", name) != name:
        return (
            f"{directory}: {name} is not recorded in {EXPORT_FILE}, so nothing tells which weights it "
            f"was exported from (copied by hand, or its export record was lost): run '{command}' again"
        )
    recorded, recorded_file = entry.get("weights_digest"), entry.get("sha256")
    if not recorded or not recorded_file:
        return (
            f"{directory}: {EXPORT_FILE} records no weights digest for {name} (an export by an older "
            f"textcls), so it cannot be checked against {WEIGHTS_FILE}: run '{command}' again"
        )
    if (directory / WEIGHTS_FILE).is_file():  # an ONNX-only deployment has nothing else to check
        current = weights or weights_digest(directory)
        if current != recorded:
            return (
                f"{directory}: {name} was exported from other weights ({EXPORT_FILE} records "
                f"{WEIGHTS_FILE} sha256 {recorded[:12]}…, the directory holds {current[:12]}…; "
                f"retrained since?): run '{command}' again"
            )
    actual = file_sha256(path)
    if actual != recorded_file:
        return (
            f"{directory}: {name} is not the file its export wrote (sha256 {actual[:12]}…, "
            f"{EXPORT_FILE} records {recorded_file[:12]}…; replaced or copied from another model "
            f"directory?): run '{command}' again"
        )
    return None


def open_onnx(directory: str | Path, backend: str, threads: int | None = None) -> OnnxPredictor:
    """The ONNX backend of a model directory, only when its file was exported from the
    directory's weights (``export_problem``); ModelLoadError otherwise."""
    from textcls.model import load_featurizer, read_model_config

    directory = Path(directory)
    path = directory / BACKEND_FILES[backend]
    problem = export_problem(directory, backend)
    if problem is not None:
        raise ModelLoadError(problem)
    config = read_model_config(directory)
    from textcls.decision import Decision

    aggregate = config.model.backbone.aggregate if config.model.backbone else "mean"
    predictor = OnnxPredictor(
        path, load_featurizer(directory, config), config.model.labels, aggregate, backend, threads
    )
    predictor.decision = Decision(config.model)
    return predictor


def onnx_backend(directory: str | Path, threads: int | None = None) -> OnnxPredictor:
    return open_onnx(directory, "onnx", threads)


def onnx_int8_backend(directory: str | Path, threads: int | None = None) -> OnnxPredictor:
    return open_onnx(directory, "onnx-int8", threads)
