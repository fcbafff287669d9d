"""The command line end to end: train on a SNIPS subset, evaluate, predict, errors."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from textcls import __version__
from textcls.cli import main
from textcls.registry import PRESETS

SNIPS_TRAIN_LINES = 1500
COMMON = ["--no-progress", "--no-tensorboard", "--cpu"]


def labels_of(path: Path) -> list[str]:
    return [line.rsplit("\t", 1)[1].strip() for line in path.read_text("utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def snips_run(snips_dir: Path, tmp_path_factory) -> dict:
    """Train a CNN with GloVe 50d on the first 1,500 SNIPS training lines (3 epochs) via the CLI."""
    root = tmp_path_factory.mktemp("snips-cli")
    data = root / "data"
    data.mkdir()
    lines = (snips_dir / "train.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (data / "train.txt").write_text("".join(lines[:SNIPS_TRAIN_LINES]), encoding="utf-8")
    for split in ("valid", "test"):
        (data / f"{split}.txt").write_bytes((snips_dir / f"{split}.txt").read_bytes())
    model = root / "model"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(
            [
                "train",
                "--data",
                str(data),
                "--out",
                str(model),
                "--model",
                "cnn",
                "--vectors",
                "glove-6b-50d",
                "--epochs",
                "3",
                "--seed",
                "3",
                *COMMON,
            ]
        )
    assert code == 0, stderr.getvalue()
    return {"data": data, "model": model, "stdout": stdout.getvalue(), "root": root}


def test_train_beats_the_majority_baseline(snips_run) -> None:
    model = snips_run["model"]
    for name in ("config.json", "model.safetensors", "vocab.txt", "labels.json", "train_result.json"):
        assert (model / name).is_file(), name
    test_labels = labels_of(snips_run["data"] / "test.txt")
    majority = Counter(test_labels).most_common(1)[0][1] / len(test_labels)
    assert majority < 0.3
    report = json.loads((model / "eval" / "test" / "report.json").read_text())
    assert report["n"] == len(test_labels) == 700
    assert report["accuracy"] >= 0.8
    assert report["accuracy"] - majority >= 0.5
    assert f"accuracy {report['accuracy'] * 100:.2f}" in snips_run["stdout"]
    assert "trained cnn" in snips_run["stdout"]
    labels = json.loads((model / "labels.json").read_text())["labels"]
    assert labels == sorted(set(labels_of(snips_run["data"] / "train.txt")))
    config = json.loads((model / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["train"]["seed"] == 3
    assert config["model"]["embedding"]["vectors"] == "glove-6b-50d"


def test_evaluate_writes_consistent_reports(snips_run, capsys) -> None:
    out = snips_run["root"] / "eval-out"
    test = snips_run["data"] / "test.txt"
    assert (
        main(["evaluate", str(snips_run["model"]), "--data", str(test), "--out", str(out), "--no-latency"])
        == 0
    )
    printed = capsys.readouterr().out
    for name in ("report.json", "report.md", "predictions.tsv", "confusion.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    rows = [line.split("\t") for line in (out / "predictions.tsv").read_text("utf-8").splitlines()]
    assert rows[0] == ["text", "gold", "pred", "score"]
    rows = rows[1:]
    assert len(rows) == report["n"] == 700
    assert [row[1] for row in rows] == labels_of(test)
    recomputed = sum(row[1] == row[2] for row in rows) / len(rows)
    assert report["accuracy"] == pytest.approx(recomputed)
    assert all(0 < float(row[3]) <= 1 for row in rows)
    assert sum(map(sum, report["confusion_matrix"])) == 700
    assert f"accuracy: {report['accuracy'] * 100:.2f}" in printed
    assert (out / "report.md").read_text() in printed + "\n"


def test_evaluate_json_with_latency_default_out_dir(snips_run, capsys) -> None:
    small = snips_run["root"] / "small.txt"
    small.write_text("".join((snips_run["data"] / "test.txt").open().readlines()[:40]))
    assert main(["evaluate", str(snips_run["model"]), "--data", str(small), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 40
    assert report["latency"]["p50_ms"] > 0 and report["latency"]["throughput_per_s"] > 0
    saved = json.loads((snips_run["model"] / "eval" / "small" / "report.json").read_text())
    assert saved["accuracy"] == report["accuracy"]


def test_predict_top_k(snips_run, capsys) -> None:
    texts = ["play some jazz by miles davis", "will it rain tomorrow in paris"]
    assert main(["predict", str(snips_run["model"]), *texts, "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    known = json.loads((snips_run["model"] / "labels.json").read_text())["labels"]
    top = []
    for line, text in zip(lines, texts):
        fields = line.split("\t")
        assert len(fields) == 4 and fields[-1] == text
        pairs = [field.rsplit(" ", 1) for field in fields[:3]]
        assert all(label in known for label, _ in pairs)
        assert len({label for label, _ in pairs}) == 3
        scores = [float(score) for _, score in pairs]
        assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-3
        top.append(pairs[0][0])
    assert top == ["PlayMusic", "GetWeather"]


def _stdin(data: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")


def test_predict_reads_stdin_one_row_per_line(snips_run, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", _stdin(b"add this song to my playlist\n\n  book a table for two \n"))
    assert main(["predict", str(snips_run["model"]), "-"]) == 0
    lines = capsys.readouterr().out.rstrip("\n").split("\n")
    texts = [line.split("\t")[-1] for line in lines]
    assert texts == ["add this song to my playlist", "", "book a table for two"]  # blank line kept
    assert all(len(line.split("\t")) == 2 for line in lines)  # top-1: one "label score" field
    assert lines[2].split("\t")[0].split()[0] == "BookRestaurant"


def test_predict_json_and_file(snips_run, capsys, tmp_path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("what is the forecast for boston\n\nrate this book five stars\n", encoding="utf-8")
    assert main(["predict", str(snips_run["model"]), "--file", str(path), "--json", "--top-k", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["text"] for r in records] == [
        "what is the forecast for boston",
        "",
        "rate this book five stars",
    ]
    for record in records:
        assert len(record["predictions"]) == 2
        assert set(record["predictions"][0]) == {"label", "score"}
        assert record["predictions"][0]["score"] >= record["predictions"][1]["score"]
    assert records[0]["predictions"][0]["label"] == "GetWeather"
    assert records[2]["predictions"][0]["label"] == "RateBook"


def test_predict_file_lines_up_with_its_input(snips_run, capsys, tmp_path, monkeypatch) -> None:
    # U+2028, NEL and a form feed inside a line are not line breaks; CRLF is one; blank lines stay
    content = "play jazz\u2028now\r\nrate this\x85book\n\nwill it\x0crain\n"
    path = tmp_path / "texts.txt"
    path.write_bytes(content.encode("utf-8"))
    assert main(["predict", str(snips_run["model"]), "--file", str(path), "--json"]) == 0
    from_file = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["text"] for r in from_file] == [
        "play jazz\u2028now",
        "rate this\x85book",
        "",
        "will it\x0crain",
    ]
    monkeypatch.setattr(sys, "stdin", _stdin(content.encode("utf-8")))
    assert main(["predict", str(snips_run["model"]), "-", "--json"]) == 0
    from_stdin = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert from_stdin == from_file  # 4 lines in, 4 predictions out, both ways
    assert main(["predict", str(snips_run["model"]), "--file", str(path)]) == 0
    assert len(capsys.readouterr().out.rstrip("\n").split("\n")) == 4  # plain output: one row each


def test_predict_file_errors_are_clear(snips_run, capsys, tmp_path) -> None:
    assert main(["predict", str(snips_run["model"]), "--file", str(tmp_path / "missing.txt")]) == 2
    assert "file not found" in capsys.readouterr().err
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    assert main(["predict", str(snips_run["model"]), "--file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: not valid UTF-8" in err and "Traceback" not in err


def test_predict_interactive(snips_run, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("play some rock music\nwill it snow today\n\nignored\n"))
    assert main(["predict", str(snips_run["model"]), "--interactive"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("labels: ")
    # input() prints its "> " prompt without a newline when stdin is not a terminal
    predictions = [line.lstrip("> ").split("\t") for line in out.splitlines() if "\t" in line]
    assert [p[-1] for p in predictions] == ["play some rock music", "will it snow today"]
    assert [p[0].split()[0] for p in predictions] == ["PlayMusic", "GetWeather"]


def test_predict_without_texts_is_an_error(snips_run, capsys) -> None:
    assert main(["predict", str(snips_run["model"])]) == 2
    assert "no texts" in capsys.readouterr().err


# ---------------------------------------------------------------------------- small models


def test_train_with_a_config_file(synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "model:\n  encoder: {name: mean}\n  embedding: {vectors: random, dim: 8, extra_vocab: 0}\n"
        "train: {epochs: 5, batch_size: 16, lr: 0.05, patience: 0}\n",
        encoding="utf-8",
    )
    out = tmp_path / "model"
    assert (
        main(
            [
                "train",
                "--data",
                str(synthetic_dir),
                "--out",
                str(out),
                "--config",
                str(config),
                "--epochs",
                "2",
                *COMMON,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "trained mean" in printed and f"saved to {out}" in printed
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["encoder"]["name"] == "mean"
    assert saved["train"]["epochs"] == 2  # the flag beats the file
    assert saved["train"]["lr"] == 0.05  # the file beats the defaults
    assert len(json.loads((out / "train_result.json").read_text())["history"]) == 2
    assert (out / "eval" / "test" / "report.json").is_file()
    assert not (out / "tensorboard").exists()


# ---------------------------------------------------------------------------- errors


def test_missing_data_directory(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no-such-data"
    assert main(["train", "--data", str(missing), "--out", str(tmp_path / "m"), *COMMON]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "not found" in err
    assert not (tmp_path / "m").exists()


def test_bad_training_file_names_file_and_line(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text(
        "play some jazz\tPlayMusic\nwill it rain\tGetWeather\tmore\tfields\nrain\tGetWeather\n",
        encoding="utf-8",
    )
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m"), *COMMON]) == 2
    err = capsys.readouterr().err
    assert f"{data / 'train.txt'}:2" in err


def test_unknown_model_lists_choices(synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "train",
                "--data",
                str(synthetic_dir),
                "--out",
                str(tmp_path / "m"),
                "--model",
                "bert-huge",
                *COMMON,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "bert-huge" in err
    for name in PRESETS:
        assert name in err


def test_evaluate_missing_model_directory(tmp_path: Path, synthetic_dir: Path, capsys) -> None:
    missing = tmp_path / "no-model"
    assert main(["evaluate", str(missing), "--data", str(synthetic_dir / "test.txt")]) == 2
    assert str(missing) in capsys.readouterr().err


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--out", "x"])  # --data missing
    assert info.value.code == 2
    assert "--data" in capsys.readouterr().err


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_in_a_subprocess() -> None:
    script = Path(sys.executable).with_name("textcls")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "textcls"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for word in ("train", "evaluate", "predict"):
        assert word in result.stdout


def test_bench_with_bad_threads_is_a_usage_error(snips_run, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", str(snips_run["model"]), "--data", "x.txt", "--threads", "a,b"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "expected comma-separated integers, got 'a,b'" in err and "Traceback" not in err


TINY_FLAGS = ["--vectors", "random", "--epochs", "1", "--batch-size", "8", *COMMON]


def test_label_first_layout_is_saved_and_reused_on_test_files(tmp_path, capsys) -> None:
    from conftest import make_examples

    data = tmp_path / "data"
    data.mkdir()
    for split, n, seed in (("train", 12, 1), ("valid", 3, 2)):
        (data / f"{split}.txt").write_text(
            "".join(f"{label}\t{text}\n" for text, label in make_examples(n, seed)), encoding="utf-8"
        )
    # one line alone looks label-last ("play jazz" has no space-free label column to spot)
    (data / "test.txt").write_text("music\tplay jazz song\n", encoding="utf-8")
    model = tmp_path / "model"
    assert main(["train", "--data", str(data), "--out", str(model), *TINY_FLAGS]) == 0
    assert "test (" in capsys.readouterr().out  # the same command evaluated its own test file
    saved = json.loads((model / "config.json").read_text())["data"]
    assert saved["format"] == "auto" and saved["detected_format"] == "tsv-label-first"
    assert main(["evaluate", str(model), "--data", str(data / "test.txt"), "--no-latency", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.split("\nreports written")[0])
    assert report["n"] == 1 and report["unseen"] == {}


def test_train_and_evaluate_with_unseen_labels_header_and_bad_lines(tmp_path, capsys) -> None:
    from conftest import make_examples

    data = tmp_path / "data"
    data.mkdir()
    train = make_examples(12, 1)
    lines = [
        "sentence\tlabel\n",
        *(f"{t}\t{label}\n" for t, label in train),
        "broken\tline\tx\n",
        "\tmusic\n",
    ]
    (data / "train.tsv").write_text("".join(lines), encoding="utf-8")
    valid = [*make_examples(3, 2), ("fly me to rome", "flight#airfare")]
    (data / "valid.tsv").write_text("".join(f"{t}\t{label}\n" for t, label in valid), encoding="utf-8")
    test = [*make_examples(2, 3), ("fly me to rome", "flight#airfare"), ("and to oslo", "flight#airfare")]
    (data / "test.tsv").write_text("".join(f"{t}\t{label}\n" for t, label in test), encoding="utf-8")
    model = tmp_path / "model"
    assert main(["train", "--data", str(data), "--out", str(model), *TINY_FLAGS]) == 2
    assert "found 3" in capsys.readouterr().err  # the malformed line stops training by default
    args = ["train", "--data", str(data), "--out", str(model), "--on-bad-lines", "skip", *TINY_FLAGS]
    assert main(args) == 0
    out = capsys.readouterr().out
    summary = json.loads((model / "train_result.json").read_text())
    assert summary["train_examples"] + summary["valid_examples"] == len(train) + 1 + len(valid)
    assert summary["empty_texts"]["train"] == 1  # "\tmusic" is a valid example
    assert summary["valid_unseen_labels"] == {"flight#airfare": 1}
    assert any("header row" in n for n in summary["notes"])
    assert any("skipped 1 malformed" in n for n in summary["notes"])
    assert "header" not in json.loads((model / "labels.json").read_text())["labels"]
    assert "label" not in json.loads((model / "labels.json").read_text())["labels"]
    assert "test (" in out
    report = json.loads((model / "eval" / "test" / "report.json").read_text())
    assert report["n"] == len(test) and report["unseen"] == {"flight#airfare": 2}
    assert main(["evaluate", str(model), "--data", str(data / "test.tsv"), "--strict-labels"]) == 2
    assert "flight#airfare" in capsys.readouterr().err


def test_every_data_verb_reads_through_the_shared_path(tmp_path, capsys) -> None:
    """train, evaluate, bench, augment and distill read the same awkward file alike: a header row,
    an empty text, a malformed line skipped with --on-bad-lines skip, a test label never seen."""
    from conftest import make_examples

    data = tmp_path / "data"
    data.mkdir()
    header, bad = "sentence\tlabel\n", "one\ttwo\tthree\tfour\n"
    train = make_examples(10, 1)
    (data / "train.tsv").write_text(
        header + "".join(f"{t}\t{label}\n" for t, label in train) + bad + "\tmusic\n", encoding="utf-8"
    )
    (data / "valid.tsv").write_text(header + "".join(f"{t}\t{lab}\n" for t, lab in make_examples(3, 2)))
    test = [*make_examples(2, 3), ("fly to rome", "flight#airfare")]
    (data / "test.tsv").write_text(header + bad + "".join(f"{t}\t{label}\n" for t, label in test))
    skip = ["--on-bad-lines", "skip"]
    teacher = tmp_path / "teacher"
    assert main(["train", "--data", str(data), "--out", str(teacher), *skip, *TINY_FLAGS]) == 0
    capsys.readouterr()
    test_file = str(data / "test.tsv")
    assert main(["evaluate", str(teacher), "--data", test_file, "--no-latency", "--json", *skip]) == 0
    report = json.loads(capsys.readouterr().out.split("\nreports written")[0])
    assert report["n"] == len(test) and report["unseen"] == {"flight#airfare": 1}
    # the data options are saved with the model (skip, here); a flag overrides them
    assert (
        main(["evaluate", str(teacher), "--data", test_file, "--no-latency", "--on-bad-lines", "error"]) == 2
    )
    assert "found 4" in capsys.readouterr().err
    bench_out = tmp_path / "bench.md"
    args = ["bench", str(teacher), "--data", test_file, "--backends", "torch", "--out", str(bench_out)]
    assert main([*args, *skip]) == 0
    rows = json.loads(bench_out.with_suffix(".json").read_text())["rows"]
    assert rows[0]["examples"] == len(test) and rows[0]["unseen"] == 1
    assert "never seen in training" in bench_out.read_text()
    assert main([*args, *skip, "--strict-labels"]) == 2
    augmented = tmp_path / "aug.txt"
    aug = ["augment", str(data / "train.tsv"), "--out", str(augmented), "--n-per-example", "1"]
    aug += ["--preserve-label", "--no-progress", "--workers", "1", "--p-pos", "0", "--p-neighbor", "0"]
    assert main([*aug, *skip]) == 0
    lines = augmented.read_text(encoding="utf-8").splitlines()
    assert not any(line.startswith("sentence\t") for line in lines)  # the header is no example
    assert "\tmusic" in lines  # the empty text came through
    student = tmp_path / "student"
    distill = ["distill", "--teacher", str(teacher), "--data", str(data), "--out", str(student)]
    distill += ["--student", "cnn", "--no-baseline", "--epochs", "1", "--no-progress", *skip]
    assert main(distill) == 0
    distilled = json.loads((student / "train_result.json").read_text())
    assert distilled["train_examples"] >= len(train)
