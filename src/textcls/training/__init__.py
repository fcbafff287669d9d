"""The training loop, schedules, checkpoints and loggers."""

from __future__ import annotations

import os


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process as ``torchrun`` / ``accelerate launch`` set them in the
    environment; (0, 1) for a plain run. Read before any process group exists (and without
    importing torch)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def on_cpu(cpu: bool) -> bool:
    """What to tell ``Accelerator(cpu=...)``: ``cpu``, or True on a machine without a GPU. Accelerate
    starts a CPU process group (gloo) under torchrun only when told ``cpu=True``; otherwise every
    process trains alone on all the data and all of them write the same model directory."""
    import torch

    return cpu or not torch.cuda.is_available()


def close_process_group() -> None:
    """End this process's group of training processes, if it has one, before the interpreter exits:
    gloo's threads otherwise may abort the process at exit ("terminate called without an active
    exception", pytorch#190489). Call it after a clean run only: a process that failed leaves the
    others to the launcher, and ending the group then can hang (torchtitan#1342)."""
    import sys

    torch = sys.modules.get("torch")  # a run that never imported torch has no group
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def is_main_process() -> bool:
    """The process that writes checkpoints, logs, the model directory and reports."""
    return process_rank()[0] == 0
