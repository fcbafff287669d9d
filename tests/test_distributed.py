"""Distributed training on existing engines: two CPU processes (gloo) launched by torchrun and by
``accelerate launch`` train the model one process trains, within floating-point tolerance.

With dropout off, a two-process step is the one-process step on the same batch (each process
takes half, the gradients are averaged weighted by share), so the validation figures agree to
1e-5 and the weights to 1e-5; only the main process writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_examples, write_tsv

sys.path.insert(0, str(Path(__file__).parent))
from tiny_backbones import build

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TOLERANCE = 1e-5
BIN = Path(sys.executable).parent
LAUNCHERS = {
    "torchrun": [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "textcls"],
    # Accelerate's torchrun launcher; without a GPU each process uses gloo on CPU
    "accelerate": [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "-m", "textcls"],
}


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("ddp-data")
    write_tsv(data / "train.txt", make_examples(40, 1))
    write_tsv(data / "valid.txt", make_examples(11, 2)[:31])  # odd: the processes get 16 and 15
    return data


def _train(prefix: list[str], arguments: list[str], out: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*prefix, "train", *arguments, "--out", str(out)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _compare(one: Path, two: Path) -> None:
    from safetensors.torch import load_file

    first = json.loads((one / "train_result.json").read_text())["history"]
    second = json.loads((two / "train_result.json").read_text())["history"]
    assert len(first) == len(second)
    for a, b in zip(first, second):
        for key in ("loss", "accuracy", "macro_f1", "train_loss"):
            assert abs(a[key] - b[key]) <= TOLERANCE, (key, a, b)
    weights_one, weights_two = (
        load_file(str(one / "model.safetensors")),
        load_file(str(two / "model.safetensors")),
    )
    assert weights_one.keys() == weights_two.keys()
    worst = max(float((weights_one[k] - weights_two[k]).abs().max()) for k in weights_one)
    assert worst <= TOLERANCE, worst


WORD = ["--model", "cnn", "--vectors", "random", "--vectors-dim", "16", "--epochs", "2", "--batch-size", "9"]
NO_DROPOUT = ["--head-dropout", "0", "--embedding-dropout", "0", "--no-progress", "--cpu", "--patience", "0"]


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_train_the_one_process_model(ddp_data: Path, tmp_path: Path, launcher: str) -> None:
    arguments = ["--data", str(ddp_data), *WORD, *NO_DROPOUT]
    _train([sys.executable, "-m", "textcls"], arguments, tmp_path / "one")
    done = _train(LAUNCHERS[launcher], arguments, tmp_path / "two")
    _compare(tmp_path / "one", tmp_path / "two")
    assert done.stdout.count("trained cnn") == 1  # the main process reports, the other does not
    assert len(list((tmp_path / "two" / "tensorboard").rglob("events.*"))) == 1
    import textcls

    textcls.load(tmp_path / "two")  # a normal, verified model directory


def test_without_a_gpu_torchrun_needs_no_cpu_flag(ddp_data: Path, tmp_path: Path) -> None:
    """The README's `torchrun ... -m textcls train` on a machine without a GPU: the processes share
    the work in one group, as with --cpu. Before, Accelerate started no group without cpu=True:
    each process trained alone on all the data, and all of them wrote the same directory."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("about a machine without a GPU")
    arguments = ["--data", str(ddp_data), *WORD, *[a for a in NO_DROPOUT if a != "--cpu"]]
    _train([sys.executable, "-m", "textcls"], arguments, tmp_path / "one")
    _train(LAUNCHERS["torchrun"], arguments, tmp_path / "two")
    assert json.loads((tmp_path / "two" / "train_result.json").read_text())["processes"] == 2
    _compare(tmp_path / "one", tmp_path / "two")


def test_a_transformer_trains_on_two_processes(ddp_data: Path, tmp_path: Path) -> None:
    backbone = build("bert", tmp_path / "bert")
    config = json.loads((backbone / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (backbone / "config.json").write_text(json.dumps(config))
    arguments = ["--data", str(ddp_data), "--model", str(backbone), "--encoder", "mean", "--epochs", "1"]
    arguments += ["--batch-size", "16", "--max-length", "16", "--head-dropout", "0", *NO_DROPOUT[4:]]
    _train([sys.executable, "-m", "textcls"], arguments, tmp_path / "one")
    _train(LAUNCHERS["torchrun"], arguments, tmp_path / "two")
    _compare(tmp_path / "one", tmp_path / "two")


def test_a_last_batch_smaller_than_the_processes_is_joined_not_left_to_one(tmp_path: Path) -> None:
    """33 examples in batches of 8 leave a last batch of one: joined to its neighbour. Before, the
    process with an empty share skipped the step while the other waited in the gradient
    all-reduce, and the run broke (gloo: connection reset)."""
    data = tmp_path / "data"
    data.mkdir()
    write_tsv(data / "train.txt", make_examples(11, 3))  # 11 per class: 33
    write_tsv(data / "valid.txt", make_examples(4, 4))
    arguments = ["--data", str(data), *WORD, *NO_DROPOUT, "--batch-size", "8"]
    _train(LAUNCHERS["torchrun"], arguments, tmp_path / "two")
    result = json.loads((tmp_path / "two" / "train_result.json").read_text())
    assert result["train_examples"] == 33 and len(result["history"]) == 2
