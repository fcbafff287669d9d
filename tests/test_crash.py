"""Crash-safe training: SIGKILL at a random moment, then --resume, ends with the model of an
uninterrupted run; checkpoints survive a crash between their renames."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_examples, write_tsv

sys.path.insert(0, str(Path(__file__).parent))
from crashing import kill_after, leftovers, outcome, run, train_command


@pytest.fixture(scope="module")
def crash_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("crash-data")
    write_tsv(data / "train.txt", make_examples(300, 1))  # 113 batches of 8 an epoch
    write_tsv(data / "valid.txt", make_examples(10, 2))
    return data


def test_kill_at_random_moments_then_resume_gives_the_same_model(crash_data: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    seconds = run(train_command(crash_data, reference))
    expected = outcome(reference)
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    for attempt in range(2):
        out = tmp_path / f"killed-{attempt}"
        # any moment: start-up, an epoch, a validation, a checkpoint being written
        point = kill_after(train_command(crash_data, out), rng.uniform(0.5, seconds))
        run(train_command(crash_data, out, "--resume"))
        got = outcome(out)
        where = f"(random seed {seed}, killed at {point})"
        assert got["history"] == expected["history"], where
        assert got["best"] == expected["best"], where
        assert got["weights"] == expected["weights"], where
        assert leftovers(out) == [], where


def test_resume_continues_inside_an_epoch(crash_data: Path, tmp_path: Path) -> None:
    """Killed right after a mid-epoch checkpoint (--save-steps), the run resumes from that batch
    and still ends with the uninterrupted run's model."""
    import subprocess
    import time

    from crashing import ENV

    reference, out = tmp_path / "reference", tmp_path / "model"
    run(train_command(crash_data, reference))
    process = subprocess.Popen(
        train_command(crash_data, out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state_file, state = out / "checkpoint" / "training_state.json", {}
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("batch"):
            break
        time.sleep(0.02)
    process.kill()
    process.wait()
    assert state.get("batch"), "no mid-epoch checkpoint was written"
    resumed = subprocess.run(
        train_command(crash_data, out, "--resume"), env=ENV, capture_output=True, text=True, check=True
    )
    assert "batches into epoch" in " ".join(resumed.stderr.split())
    assert outcome(out) == outcome(reference)


def _tiny_checkpoint(directory: Path, step: int) -> None:
    from textcls.training.checkpoint import save_checkpoint

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    save_checkpoint(
        directory,
        model,
        optimizer,
        scheduler,
        {"step": step},
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def test_a_crash_between_the_checkpoint_renames_keeps_the_previous_one(tmp_path: Path) -> None:
    from textcls.training.checkpoint import STATE_JSON, find_checkpoint

    checkpoint = tmp_path / "checkpoint"
    _tiny_checkpoint(checkpoint, 1)
    assert find_checkpoint(checkpoint) == checkpoint
    # the state a kill leaves after 'checkpoint -> checkpoint.old' and before 'tmp -> checkpoint'
    checkpoint.replace(tmp_path / "checkpoint.old")
    (tmp_path / "checkpoint.tmp").mkdir()  # half written
    assert find_checkpoint(checkpoint) == tmp_path / "checkpoint.old"
    _tiny_checkpoint(checkpoint, 2)  # the next save recovers
    assert find_checkpoint(checkpoint) == checkpoint
    assert json.loads((checkpoint / STATE_JSON).read_text())["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_half_written_checkpoint_is_never_resumed(tmp_path: Path) -> None:
    from textcls.training.checkpoint import STATE_JSON, STATE_TENSORS, find_checkpoint

    checkpoint = tmp_path / "checkpoint"
    _tiny_checkpoint(checkpoint, 1)
    (checkpoint / STATE_TENSORS).unlink()  # only what a crash inside a hand-made copy leaves
    assert find_checkpoint(checkpoint) is None
    assert (checkpoint / STATE_JSON).is_file()
