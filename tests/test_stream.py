"""Streaming batch prediction: ``textcls predict --file/- [--out] [--resume]`` answers line i of
the input on line i of the output in chunks, continues an interrupted run where it stopped, and
keeps its memory flat whatever the size of the input."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import textcls
from conftest import CLASS_WORDS, TINY, make_examples, write_tsv
from textcls.cli import main
from textcls.errors import DataError
from textcls.inference.stream import complete_lines, predict_stream

WORDS = [word for words in CLASS_WORDS.values() for word in words]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    textcls.TextClassifier(**TINY).fit(
        make_examples(30, 0), make_examples(8, 1), out_dir=root / "model", progress=False
    )
    return root / "model"


def write_input(path: Path, lines: int, seed: int = 0, words: tuple[int, int] = (0, 12)) -> list[str]:
    """Texts of the class words and some unknown ones; blank lines, a CRLF line, a BOM, a line
    separator inside a text."""
    rng = random.Random(seed)
    texts = [
        " ".join(rng.choices([*WORDS, "zebra", "ünïcode", "😀"], k=rng.randint(*words))) for _ in range(lines)
    ]
    texts[3] = "song\u2028rain"  # one text, not two
    raw = "\ufeff" + "\n".join(texts[:5]) + "\r\n" + "\n".join(texts[5:]) + "\n"
    path.write_bytes(raw.encode("utf-8"))
    return texts


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").split("\n")[:-1]]


def assert_same_answers(got: list[dict], expected: list[dict], tolerance: float = 1e-5) -> None:
    """Line by line the same text and labels; scores to ``tolerance`` (texts batched with other
    companions round differently in the last bits)."""
    assert len(got) == len(expected)
    for line, (one, other) in enumerate(zip(got, expected, strict=True), start=1):
        assert one["text"] == other["text"], line
        assert [p["label"] for p in one["predictions"]] == [p["label"] for p in other["predictions"]], line
        for p, q in zip(one["predictions"], other["predictions"], strict=True):
            assert p["score"] == pytest.approx(q["score"], abs=tolerance), line


def test_stream_answers_every_line_in_order_like_one_predict_call(model_dir: Path, tmp_path: Path) -> None:
    texts = write_input(tmp_path / "in.txt", 1000)
    classifier = textcls.load(model_dir)
    out = tmp_path / "out.jsonl"
    result = predict_stream(classifier, tmp_path / "in.txt", out, chunk_size=64, top_k=2)
    assert (result.written, result.skipped) == (1000, 0)
    expected = [
        {"text": text, "predictions": answer}
        for text, answer in zip(texts, classifier.predict(texts, top_k=2))
    ]
    got = read_jsonl(out)
    assert_same_answers(got, expected)
    assert got[3]["text"] == "song\u2028rain" and "\u2028" not in out.read_text("utf-8")  # escaped
    assert got[0]["text"] == texts[0] and got[4]["text"] == texts[4]  # BOM and \r removed


def test_cli_file_stdin_and_out_agree(model_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    source = tmp_path / "in.txt"
    write_input(source, 300, seed=1)
    assert main(["predict", str(model_dir), "--file", str(source), "--out", str(tmp_path / "a.jsonl")]) == 0
    assert "300 answers written to" in capsys.readouterr().err
    assert main(["predict", str(model_dir), "--file", str(source), "--json", "--chunk-size", "7"]) == 0
    from_file = capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(source.read_bytes())))
    assert main(["predict", str(model_dir), "-", "--json", "--chunk-size", "7"]) == 0
    from_stdin = capsys.readouterr().out
    assert from_stdin == from_file  # the same chunks: the same bytes
    assert_same_answers(
        [json.loads(line) for line in from_file.splitlines()], read_jsonl(tmp_path / "a.jsonl")
    )
    assert (
        main(["predict", str(model_dir), "--file", str(source), "--out", str(tmp_path / "b"), "--resume"])
        == 0
    )
    assert main(["predict", str(model_dir), "-", "--resume"]) == 2  # stdout cannot be continued
    assert "--resume continues the --out file" in capsys.readouterr().err
    assert main(["predict", str(model_dir), "play", "--file", str(source)]) == 2
    assert "not both" in capsys.readouterr().err


@pytest.mark.parametrize("cut", ["half_line", "mid_chunk", "chunk_boundary", "empty", "complete"])
def test_resume_after_a_cut_output_gives_the_uninterrupted_bytes(
    model_dir: Path, tmp_path: Path, cut
) -> None:
    source = tmp_path / "in.txt"
    write_input(source, 500, seed=2)
    classifier = textcls.load(model_dir)
    full = tmp_path / "full.jsonl"
    predict_stream(classifier, source, full, chunk_size=50)
    reference = full.read_bytes()
    ends = [i + 1 for i, byte in enumerate(reference) if byte == ord("\n")]
    at = {
        "half_line": ends[123] + 17,  # line 125 half written
        "mid_chunk": ends[123],  # 124 complete lines: back to the chunk boundary at 100
        "chunk_boundary": ends[299],
        "empty": 0,
        "complete": len(reference),
    }[cut]
    out = tmp_path / "out.jsonl"
    out.write_bytes(reference[:at])
    result = predict_stream(classifier, source, out, chunk_size=50, resume=True)
    assert out.read_bytes() == reference
    assert result.skipped == {"half_line": 100, "mid_chunk": 100, "chunk_boundary": 300, "empty": 0}.get(
        cut, 500
    )
    assert result.written == 500 - result.skipped


def test_resume_refuses_an_output_longer_than_the_input(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    write_input(source, 20)
    out = tmp_path / "out.jsonl"
    out.write_text("{}\n" * 30)
    with pytest.raises(DataError, match="already holds 30 answers but the input has only 20 lines"):
        predict_stream(textcls.load(model_dir), source, out, chunk_size=10, resume=True)
    assert complete_lines(out, multiple=7) == 28 and out.read_text() == "{}\n" * 28


def test_a_bad_line_names_its_number_and_keeps_what_was_answered(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(b"song\n" * 25 + b"rain \xff\n" + b"goal\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match=r"in.txt:26: not valid UTF-8"):
        predict_stream(textcls.load(model_dir), source, out, chunk_size=10)
    assert len(read_jsonl(out)) == 20  # the two whole chunks before it


def test_kill_9_then_resume_ends_with_the_uninterrupted_output(model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    write_input(source, 40_000, seed=3)
    command = [sys.executable, "-m", "textcls", "predict", str(model_dir), "--file", str(source)]
    command += ["--chunk-size", "500", "--no-progress", "--out"]
    subprocess.run([*command, str(tmp_path / "full.jsonl")], check=True, capture_output=True, timeout=300)
    out = tmp_path / "killed.jsonl"
    process = subprocess.Popen([*command, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (not out.exists() or out.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.01)  # killed once a few chunks are written, likely inside a write
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = out.read_bytes()
    assert 0 < len(written) < (tmp_path / "full.jsonl").stat().st_size, "killed too late to test anything"
    done = subprocess.run([*command, str(out), "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "lines of the earlier run" in done.stderr
    assert out.read_bytes() == (tmp_path / "full.jsonl").read_bytes()


PEAK_RSS = """
import resource, sys
from textcls.inference.stream import predict_stream
import textcls
predict_stream(textcls.load(sys.argv[1]), sys.argv[2], sys.argv[3], chunk_size=256)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak_rss_mb(model_dir: Path, source: Path, out: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(model_dir), str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return int(done.stdout.split()[-1])


def test_memory_stays_flat_on_a_large_file(model_dir: Path, tmp_path: Path) -> None:
    """A 30× larger input (40 MB, long lines) peaks within a few MB of the small one: nothing
    grows with the file. Read whole, the texts alone would add over 40 MB."""
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    write_input(small, 1_000, seed=4, words=(200, 400))
    line = small.read_bytes().split(b"\n", 1)[1]  # no BOM past the first copy
    with large.open("wb") as handle:
        handle.write(small.read_bytes())
        for _ in range(29):
            handle.write(line)
    assert large.stat().st_size > 40 * 2**20
    small_peak = peak_rss_mb(model_dir, small, tmp_path / "small.jsonl")
    large_peak = peak_rss_mb(model_dir, large, tmp_path / "large.jsonl")
    assert sum(1 for _ in (tmp_path / "large.jsonl").open("rb")) == 1_000 + 29 * 999
    assert large_peak - small_peak < 15, (small_peak, large_peak)


def test_every_backend_streams_the_answers_of_its_own_predict(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from textcls.inference.export import export_model

    exported = tmp_path / "model"
    shutil.copytree(model_dir, exported)
    export_model(exported, quantize="int8", valid=write_tsv(tmp_path / "valid.txt", make_examples(8, 1)))
    texts = write_input(tmp_path / "in.txt", 300, seed=5)
    for backend in ("torch", "torch-int8", "onnx", "onnx-int8"):
        classifier = textcls.load(exported, backend=backend)
        out = tmp_path / f"{backend}.jsonl"
        predict_stream(classifier, tmp_path / "in.txt", out, chunk_size=300)  # one chunk: one call
        expected = [
            {"text": t, "predictions": [a]} for t, a in zip(texts, classifier.predict(texts), strict=True)
        ]
        assert read_jsonl(out) == expected, backend
