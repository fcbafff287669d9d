"""Self-checking model directories: the manifest refuses a changed, truncated or missing file by
name; golden inputs refuse a backend whose answers differ; ``textcls verify`` reports both."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import textcls
from conftest import TINY, make_examples
from textcls.errors import ModelLoadError
from textcls.integrity import GOLDEN_FILE, MANIFEST_FILE, sha256, write_safetensors


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("integrity")
    textcls.TextClassifier(**TINY).fit(
        make_examples(30, 0), make_examples(8, 1), out_dir=root / "model", progress=False
    )
    return root / "model"


@pytest.fixture
def copy(saved: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(saved, target)
    return target


def verify(directory: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "textcls", "verify", str(directory), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_save_writes_a_manifest_of_every_model_file_and_golden_inputs(saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    listed = set(manifest["files"])
    assert {"config.json", "model.safetensors", "vocab.txt", "labels.json", GOLDEN_FILE} <= listed
    for name, entry in manifest["files"].items():
        assert entry == {"bytes": (saved / name).stat().st_size, "sha256": sha256(saved / name)}
    golden = json.loads((saved / GOLDEN_FILE).read_text())
    # four validation texts, then the probes (empty, a word, a sentence, past max_length)
    assert len(golden["inputs"]) == 8 and golden["inputs"][4] == ""
    assert len(golden["logits"]) == 8 and len(golden["logits"][0]) == 3
    assert not list(saved.rglob("*.tmp")) and not (saved / ".saving").exists()


def test_verify_passes_an_intact_directory(saved: Path) -> None:
    done = verify(saved, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["files"] == len(json.loads((saved / MANIFEST_FILE).read_text())["files"])
    assert report["backends"]["torch"]["inputs"] == 8
    assert report["backends"]["torch"]["max_abs_diff"] <= report["backends"]["torch"]["tolerance"]


def test_a_tampered_weight_file_is_refused_by_name(copy: Path) -> None:
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x40  # one bit of one weight; the size is unchanged
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"model\.safetensors: changed since the model was saved"):
        textcls.load(copy)
    done = verify(copy)
    assert done.returncode == 2
    assert "model.safetensors: changed" in done.stderr and "Traceback" not in done.stderr
    predicted = subprocess.run(
        [sys.executable, "-m", "textcls", "predict", str(copy), "song album"], capture_output=True, text=True
    )
    assert predicted.returncode == 2 and "model.safetensors" in predicted.stderr
    assert "Traceback" not in predicted.stderr


def test_a_truncated_file_is_refused_by_name(copy: Path) -> None:
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match=r"model\.safetensors: changed or truncated .*bytes"):
        textcls.load(copy)


def test_a_tampered_config_is_refused(copy: Path) -> None:
    config = json.loads((copy / "config.json").read_text())
    config["model"]["tokenizer"]["lowercase"] = not config["model"]["tokenizer"].get("lowercase", True)
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"config\.json: changed"):
        textcls.load(copy)
    done = verify(copy)
    assert done.returncode == 2 and "config.json: changed" in done.stderr


def test_a_missing_file_is_named(copy: Path) -> None:
    (copy / "vocab.txt").unlink()
    with pytest.raises(ModelLoadError, match=r"vocab\.txt: missing \(listed in manifest\.json\)"):
        textcls.load(copy)


def _rewrite_golden(directory: Path, change) -> None:
    """Change golden.json and record the change in the manifest: files that all check out, but
    answers the backend does not give (what a broken backend or a swapped model looks like)."""
    golden = json.loads((directory / GOLDEN_FILE).read_text())
    change(golden)
    (directory / GOLDEN_FILE).write_text(json.dumps(golden))
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    path = directory / GOLDEN_FILE
    manifest["files"][GOLDEN_FILE] = {"bytes": path.stat().st_size, "sha256": sha256(path)}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_answers_that_differ_from_the_golden_scores_are_refused(copy: Path) -> None:
    def swap(golden: dict) -> None:  # the scores of another model: each row reversed
        golden["logits"] = [row[::-1] for row in golden["logits"]]

    _rewrite_golden(copy, swap)
    with pytest.raises(ModelLoadError, match="does not give the saved model's answers"):
        textcls.load(copy)
    done = verify(copy)
    assert done.returncode == 2 and "golden input" in done.stderr


def test_the_server_refuses_a_tampered_model(copy: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from textcls.serve.app import ServeSettings, create_app

    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x40
    weights.write_bytes(bytes(data))
    settings = ServeSettings(models={"tiny": str(copy)}, model_store=str(copy.parent), max_delay_ms=2.0)
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        response = client.post("/predictions/tiny", json={"text": "song album"})
        assert response.status_code == 503
        body = response.json()
        assert set(body) == {"code", "type", "message"}
        status = json.dumps(client.get("/models/tiny").json())  # TorchServe's describe: a list
        assert "FAILED" in status and "model.safetensors: changed" in status


def test_export_runs_the_golden_inputs_on_the_onnx_graph(copy: Path) -> None:
    pytest.importorskip("onnxruntime")
    from textcls.inference.export import export_model

    record = export_model(copy, optimize=False)
    assert record["onnx"]["golden"]["inputs"] == 8
    assert record["onnx"]["golden"]["max_abs_diff"] <= 1e-3
    done = verify(copy, "--json")  # torch and the exported onnx backend
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["backends"]) == {"torch", "onnx"}


def test_export_refuses_a_graph_whose_answers_differ(copy: Path) -> None:
    pytest.importorskip("onnxruntime")
    from textcls.inference.export import export_model

    def swap(golden: dict) -> None:
        golden["logits"] = [row[::-1] for row in golden["logits"]]

    _rewrite_golden(copy, swap)
    with pytest.raises(ModelLoadError, match="onnx backend does not give the saved model's answers"):
        export_model(copy, optimize=False)
    assert not (copy / "model.onnx").exists()


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_every_file_of_a_saved_model_gets_the_ordinary_file_mode(tmp_path: Path, umask_027) -> None:
    """safetensors 0.8 creates its files 0600 whatever the umask (safetensors#782): another user,
    or a server in a container built as root, could not read the weights."""
    out = tmp_path / "model"
    textcls.TextClassifier(**TINY).fit(make_examples(30, 0), make_examples(8, 1), out_dir=out, progress=False)
    modes = {
        p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()
    }
    assert "model.safetensors" in modes and any(name.startswith("checkpoint/") for name in modes)
    assert {name: mode for name, mode in modes.items() if mode != 0o640} == {}


def test_write_safetensors_is_atomic_and_readable_by_the_group(tmp_path: Path, umask_027) -> None:
    from safetensors.numpy import load_file

    target = tmp_path / "centroids.safetensors"
    write_safetensors(target, {"c": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"k": "v"})
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert load_file(str(target))["c"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert [p.name for p in tmp_path.iterdir()] == ["centroids.safetensors"]  # no temporary left
