"""Self-checking model directories: a manifest of every file and golden inputs with their scores.

``save_model`` stages the files of a model in ``.saving/`` and moves each into place with one
atomic rename (a crash never leaves half a file), then writes ``golden.json`` (a few inputs and
the logits the saved model gives them) and last ``manifest.json`` (size and sha256 of every file
it wrote, golden.json included). ``load`` verifies the manifest: a changed, truncated or missing
file is a ``ModelLoadError`` naming it. Every backend (``load_predictor``: predict, evaluate,
serve) and ``export`` then run the golden inputs and refuse a model whose scores differ beyond
the backend's tolerance. ``textcls verify DIR`` does both on demand.

>>> GOLDEN_TOLERANCE["onnx"]
0.001
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textcls.errors import ModelLoadError

log = logging.getLogger(__name__)
MANIFEST_FILE, GOLDEN_FILE, STAGING_DIR = "manifest.json", "golden.json", ".saving"
MANIFEST_FORMAT = "textcls-manifest-1"
# largest allowed |probability - expected| on a golden input, per backend: fp32 backends compute
# the same function (summation order aside); int8 ones approximate it, so only a different
# model (other weights, another vocabulary, a broken graph) exceeds theirs
GOLDEN_TOLERANCE = {"torch": 1e-4, "numpy": 1e-3, "onnx": 1e-3, "torch-int8": 0.25, "onnx-int8": 0.25}
# texts every plain-text model answers: empty, one word, an ordinary sentence, past max_length
PROBE_TEXTS = ["", "hello", "what is the weather like tomorrow", " ".join(["word"] * 600)]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shareable(path: Path) -> None:
    """Give ``path`` the mode any new file of this process gets (0o666 less the umask).

    safetensors 0.8 writes through a temporary file it creates 0600 and renames into place
    (safetensors/safetensors#782), as does ``save_pretrained``: weights readable by their owner only,
    so a model trained by one user, or saved into a Docker image as root, could not be served by
    another. Every weights file textcls writes passes through here."""
    mask = os.umask(0o077)  # reading the umask sets it: the stricter value for the instant between
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_safetensors(path: Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Tensors (torch or numpy) as safetensors, written through a temporary file in the same
    directory, flushed to disk, given the ordinary file mode, then renamed."""
    if all(isinstance(value, np.ndarray) for value in tensors.values()):
        from safetensors.numpy import save_file
    else:
        from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    save_file(tensors, str(temporary), metadata=metadata)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    shareable(temporary)
    temporary.replace(path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write through a temporary file in the same directory, flushed to disk, then renamed."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def staged_save(directory: Path, write: Callable[[Path], None]) -> list[str]:
    """Run ``write(staging)`` into ``directory/.saving``, then move every file it wrote into
    ``directory`` with one rename each (atomic on one file system). Returns the relative paths."""
    staging = directory / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)  # what a crash during an earlier save left
    staging.mkdir(parents=True)
    write(staging)
    written = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    for relative in written:
        source, target = staging / relative, directory / relative
        with open(source, "rb") as handle:  # on disk before it replaces the old file
            os.fsync(handle.fileno())
        shareable(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)
    shutil.rmtree(staging, ignore_errors=True)
    return written


def golden_inputs(examples: Iterable[Any], fields: Sequence[str]) -> list[Any]:
    """A few inputs to pin a model's answers: up to four given inputs (validation texts), and for
    a plain-text model the probe texts (empty, one word, a sentence, a text past max_length)."""
    chosen = [_jsonable(e) for e in list(examples)[:4]]
    return chosen if fields else chosen + PROBE_TEXTS


def write_golden_and_manifest(directory: Path, files: Sequence[str], golden: dict[str, Any]) -> None:
    """``golden.json`` (inputs, logits), then ``manifest.json`` over ``files`` and golden.json:
    the manifest is written last, so a directory whose manifest matches was saved completely."""
    atomic_write_text(directory / GOLDEN_FILE, json.dumps(golden) + "\n")
    entries = {}
    for relative in [*files, GOLDEN_FILE]:
        path = directory / relative
        entries[relative] = {"bytes": path.stat().st_size, "sha256": sha256(path)}
    manifest = {"format": MANIFEST_FORMAT, "files": entries}
    atomic_write_text(directory / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path}: unreadable manifest ({error}); save the model again") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelLoadError(f"{path}: not a textcls manifest; save the model again")
    return manifest


def verify_manifest(directory: str | Path, optional: Iterable[str] = ()) -> dict[str, Any] | None:
    """Check every file the manifest lists (size, then sha256); ModelLoadError naming the first
    that differs. ``optional`` files may be absent (an ONNX-only deployment drops the weights).
    A directory without a manifest (saved by textcls before 0.x) passes with a log line; returns
    the manifest or None."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        log.debug("%s: no %s (an older model directory): not verified", directory, MANIFEST_FILE)
        return None
    skip = set(optional)
    for relative, entry in manifest["files"].items():
        path = directory / relative
        if not path.is_file():
            if relative in skip:
                continue
            raise ModelLoadError(f"{path}: missing (listed in {MANIFEST_FILE}); the model is incomplete")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise ModelLoadError(
                f"{path}: changed or truncated since the model was saved ({size} bytes, "
                f"{MANIFEST_FILE} records {entry.get('bytes')}); restore it or train again"
            )
        if sha256(path) != entry.get("sha256"):
            raise ModelLoadError(
                f"{path}: changed since the model was saved (sha256 differs from {MANIFEST_FILE}); "
                "restore it or train again"
            )
    return manifest


def read_golden(directory: Path) -> dict[str, Any] | None:
    path = Path(directory) / GOLDEN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path}: unreadable ({error}); save the model again") from None


def golden_check(predictor: Any, directory: str | Path, backend: str | None = None) -> dict[str, Any] | None:
    """Run the golden inputs on ``predictor``; ModelLoadError when a probability differs from the
    saved one by more than the backend's tolerance. Returns {inputs, max_abs_diff, tolerance} or
    None without golden.json."""
    from textcls.decision import sigmoid, softmax

    directory = Path(directory)
    golden = read_golden(directory)
    if golden is None:
        return None
    backend = backend or predictor.backend
    inputs = [_input(item) for item in golden["inputs"]]
    tolerance = GOLDEN_TOLERANCE.get(backend, 1e-3)
    if not inputs:
        return {"inputs": 0, "max_abs_diff": 0.0, "tolerance": tolerance}
    expected = np.asarray(golden["logits"], dtype=np.float32)
    actual = predictor.logits(inputs, batch_size=len(inputs) or 1)
    squash = sigmoid if golden.get("multi_label") else softmax
    if actual.shape != expected.shape:
        raise ModelLoadError(
            f"{directory}: the {backend} backend answers golden inputs with shape {actual.shape}, "
            f"{GOLDEN_FILE} records {expected.shape}: not the saved model"
        )
    diff = float(np.abs(squash(actual) - squash(expected)).max())
    if diff > tolerance:
        worst = int(np.abs(squash(actual) - squash(expected)).max(1).argmax())
        raise ModelLoadError(
            f"{directory}: the {backend} backend does not give the saved model's answers: on golden "
            f"input {worst} ({_preview(golden['inputs'][worst])}) a probability differs by {diff:.2e} "
            f"> tolerance {tolerance:g} ({GOLDEN_FILE}); the files were changed, or the backend is broken"
        )
    return {"inputs": len(inputs), "max_abs_diff": diff, "tolerance": tolerance}


def verify_directory(directory: str | Path, backends: Sequence[str] = ("torch",)) -> dict[str, Any]:
    """``textcls verify``: the manifest, then the golden inputs on each backend."""
    from textcls.inference.predictor import load_predictor

    directory = Path(directory)
    manifest = verify_manifest(directory)
    if manifest is None:
        raise ModelLoadError(f"{directory}: no {MANIFEST_FILE}: nothing to verify against; save it again")
    report: dict[str, Any] = {"directory": str(directory), "files": len(manifest["files"]), "backends": {}}
    for backend in backends:
        report["backends"][backend] = load_predictor(directory, backend=backend).golden  # checked there
    return report


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _input(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."
