"""The training loop, schedules, checkpoints and loggers."""

from __future__ import annotations

import os


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process as ``torchrun`` / ``accelerate launch`` set them in the
    environment; (0, 1) for a plain run. Read before any process group exists (and without
    importing torch)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """The process that writes checkpoints, logs, the model directory and reports."""
    return process_rank()[0] == 0
