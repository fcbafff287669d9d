"""Resumable training checkpoints without pickles: tensors in safetensors, the rest in JSON.

A checkpoint is a directory written beside the final one (``checkpoint.tmp``), flushed to disk and
renamed into place; the previous one is moved to ``checkpoint.old`` first and removed last, so a
crash (``kill -9``) at any moment leaves at least one complete checkpoint: ``find_checkpoint``
picks it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer

from textcls.integrity import shareable, write_safetensors

STATE_TENSORS, STATE_JSON = "training_state.safetensors", "training_state.json"
# rewind points kept in the model directory for textcls prune (train.save_init, train.rewind_at)
INIT_FILE, REWIND_FILE = "init.safetensors", "rewind.safetensors"


def save_weights(path: Path, model: nn.Module, **metadata: str) -> None:
    """The model's plain weights (pruning masks folded in) as safetensors, written through a
    temporary file and renamed."""
    from textcls.model import plain_state_dict

    write_safetensors(path, plain_state_dict(model), {"format": "textcls", **metadata})


def rewind_point(value: str | None) -> tuple[str, int] | None:
    """``train.rewind_at`` (``epoch:1``, ``step:200``) → ("epoch", 1); None when unset.

    >>> rewind_point("step:200"), rewind_point(None)
    (('step', 200), None)
    """
    if not value:
        return None
    kind, _, number = value.partition(":")
    return kind, int(number)


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    best_state: dict[str, torch.Tensor],
) -> None:
    """Model, optimizer, schedule, RNG states, loop state and the best weights so far."""
    from safetensors.torch import save_file

    tensors = _unshared({f"model.{k}": v for k, v in model.state_dict().items()})
    tensors.update(_unshared({f"best.{k}": v for k, v in best_state.items()}))
    optim_state = optimizer.state_dict()
    for param_id, values in optim_state["state"].items():
        for key, value in values.items():
            tensors[f"optim.{param_id}.{key}"] = torch.as_tensor(value).contiguous().cpu()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        **state,
        "param_groups": optim_state["param_groups"],
        "scheduler": scheduler.state_dict(),
        "rng_python": _jsonable(random.getstate()),
        "rng_numpy": _jsonable(np.random.get_state()),
    }
    temporary = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_file(tensors, str(temporary / STATE_TENSORS))
    (temporary / STATE_JSON).write_text(json.dumps(meta), encoding="utf-8")
    for name in (STATE_TENSORS, STATE_JSON):  # on disk before the rename makes them the checkpoint
        with open(temporary / name, "rb") as handle:
            os.fsync(handle.fileno())
        shareable(temporary / name)
    backup = directory.with_name(directory.name + ".old")
    if directory.exists():
        if backup.exists() and not _complete(directory):  # a crash left .old as the good one
            shutil.rmtree(directory)
        else:
            shutil.rmtree(backup, ignore_errors=True)
            directory.replace(backup)
    temporary.replace(directory)
    shutil.rmtree(backup, ignore_errors=True)


def find_checkpoint(directory: Path | None) -> Path | None:
    """The complete checkpoint to resume from: ``directory``, or ``directory.old`` when a crash
    came between the two renames of ``save_checkpoint``; None when there is none."""
    if directory is None:
        return None
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if _complete(candidate):
            return candidate
    return None


def remove_checkpoint(directory: Path) -> None:
    """Drop the checkpoint of an earlier run (a fresh run must not be resumed from it)."""
    for suffix in ("", ".tmp", ".old"):
        shutil.rmtree(directory.with_name(directory.name + suffix), ignore_errors=True)


def _complete(directory: Path) -> bool:
    return (directory / STATE_TENSORS).is_file() and (directory / STATE_JSON).is_file()


def load_checkpoint(
    directory: Path, model: nn.Module, optimizer: Optimizer, scheduler: Any
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore everything in place; return (loop state, best weights)."""
    from safetensors.torch import load_file

    tensors = load_file(str(directory / STATE_TENSORS))
    meta = json.loads((directory / STATE_JSON).read_text(encoding="utf-8"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optim_state: dict[str, Any] = {"state": {}, "param_groups": meta.pop("param_groups")}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, param_id, name = key.split(".", 2)
            optim_state["state"].setdefault(int(param_id), {})[name] = value
    optimizer.load_state_dict(optim_state)
    scheduler.load_state_dict(meta.pop("scheduler"))
    torch.set_rng_state(tensors["rng.torch"])
    random.setstate(_tuples(meta.pop("rng_python")))
    kind, keys, pos, has_gauss, cached = meta.pop("rng_numpy")
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    return meta, best


def _unshared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU tensors; one sharing memory with an earlier one (tied weights: a masked-LM
    decoder and the word embeddings) is copied, since safetensors refuses shared tensors."""
    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        tensor = value.detach().contiguous().cpu()
        pointer = tensor.untyped_storage().data_ptr()
        out[key] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
