"""The Dask integration (``textcls.integrations.dask``): on a local cluster of two worker processes,
the answers to files read in many blocks are the streaming ``textcls predict --file --out``
answers, line by line and in order, with the model loaded once per worker."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

import textcls
from conftest import CLASS_WORDS, TINY, make_examples
from test_stream import assert_same_answers, read_jsonl
from textcls.cli import main
from textcls.data.formats import read_text_lines
from textcls.errors import DataError, MissingDependencyError
from textcls.integrations.dask import predict_bag, predict_files, read_lines, worker_stats

pytest.importorskip("distributed", reason="pip install 'textcls[dask]'")

WORDS = [word for words in CLASS_WORDS.values() for word in words]
LINES = 3000
BLOCKSIZE = 12_000  # bytes: ~10 partitions of the ~110 kB input, several per worker


def write_input(path: Path, lines: int, seed: int) -> list[str]:
    """Texts of the class words and some others; blank lines, a BOM, a CRLF line, a lone CR, a
    line separator and a BOM character inside texts."""
    rng = random.Random(seed)
    vocabulary = [*WORDS, "zebra", "ünïcode", "😀", "日本語"]
    texts = [" ".join(rng.choices(vocabulary, k=rng.randint(0, 10))) for _ in range(lines)]
    texts[3], texts[6], texts[9] = "song\u2028rain", "goal\rstorm", "\ufeffjazz band"  # one text each
    raw = "\ufeff" + "\n".join(texts[:5]) + "\r\n" + "\n".join(texts[5:]) + "\n"
    path.write_bytes(raw.encode("utf-8"))
    return texts


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dask-model")
    textcls.TextClassifier(**TINY).fit(
        make_examples(30, 0), make_examples(8, 1), out_dir=root / "model", progress=False
    )
    return root / "model"


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        yield client


@pytest.fixture(scope="module")
def runs(tmp_path_factory, model_dir, client) -> dict:
    """Streaming and Dask answers to the same inputs: one file in ~10 blocks, and two files read
    whole (one partition each); the workers' counts after both runs."""
    root = tmp_path_factory.mktemp("dask-runs")
    big, first, second = root / "big.txt", root / "in-1.txt", root / "in-2.txt"
    write_input(big, LINES, seed=0)
    write_input(first, 700, seed=1)
    write_input(second, 500, seed=2)
    for source in (big, first, second):
        out = source.with_suffix(".stream.jsonl")
        command = ["predict", str(model_dir), "--file", str(source), "--out", str(out), "--threads", "1"]
        assert main(command) == 0
    blocks = read_lines(big, blocksize=BLOCKSIZE).npartitions
    parts = predict_files(model_dir, big, root / "blocks", blocksize=BLOCKSIZE, client=client)
    whole = predict_files(model_dir, str(root / "in-*.txt"), root / "whole", blocksize=None, client=client)
    answers = predict_bag(model_dir, big, blocksize=BLOCKSIZE).compute(scheduler=client)
    return {
        "root": root,
        "big": big,
        "blocks": blocks,
        "parts": [Path(part) for part in parts],
        "whole": [Path(part) for part in whole],
        "answers": answers,
        "stats": client.run(worker_stats),
    }


def test_blocks_give_the_streaming_answers_in_order(runs):
    assert runs["blocks"] >= 8
    parts = runs["parts"]
    assert [part.name for part in parts] == [f"part-{i:05d}.jsonl" for i in range(runs["blocks"])]
    assert sorted(parts) == parts  # the names sort in input order
    got = [answer for part in parts for answer in read_jsonl(part)]
    expected = read_jsonl(runs["big"].with_suffix(".stream.jsonl"))
    assert len(got) == LINES
    assert [answer["text"] for answer in got] == list(read_text_lines(runs["big"]))
    assert_same_answers(got, expected)
    assert "" in [answer["text"] for answer in got]  # blank lines answered, in their place
    assert got[3]["text"] == "song\u2028rain" and got[6]["text"] == "goal\rstorm"


def test_whole_files_are_the_streaming_output_bit_for_bit(runs):
    """One partition per file: every text is batched as in the streaming run, so the part files
    are the streaming output files, byte for byte, in path order."""
    root = runs["root"]
    assert [part.name for part in runs["whole"]] == ["part-00000.jsonl", "part-00001.jsonl"]
    for part, source in zip(runs["whole"], ["in-1", "in-2"], strict=True):
        assert part.read_bytes() == (root / f"{source}.stream.jsonl").read_bytes()


def test_answer_bag_holds_the_parsed_lines(runs):
    assert runs["answers"] == [answer for part in runs["parts"] for answer in read_jsonl(part)]


def test_both_workers_answered_and_loaded_the_model_once(runs, model_dir):
    stats = list(runs["stats"].values())
    assert len(stats) == 2 and len({one["pid"] for one in stats}) == 2
    partitions = 2 * runs["blocks"] + len(runs["whole"])  # predict_files, predict_bag, whole files
    assert sum(one["partitions"] for one in stats) == partitions
    assert sum(one["texts"] for one in stats) == 2 * LINES + 700 + 500
    for one in stats:
        assert one["partitions"] >= 1  # both workers did work
        assert one["loads"] == {str(model_dir): 1}  # once per worker, not once per partition
    assert max(one["partitions"] for one in stats) > 1


@pytest.mark.parametrize("blocksize", [None, 1, 5, 64, 1000])
def test_lines_split_like_read_text_lines(tmp_path, blocksize):
    """Blocks of any size (down to one byte: empty blocks in the middle of a line) split into
    the lines ``read_text_lines`` gives: \\n only, CR of CRLF and the file's BOM dropped."""
    path = tmp_path / "lines.txt"
    write_input(path, 40, seed=3)
    with path.open("ab") as handle:
        handle.write("\n\nlast line, no newline \u00e9".encode())
    lines = read_lines([path, path], blocksize=blocksize).compute(scheduler="sync")
    assert lines == 2 * list(read_text_lines(path))


def test_bad_utf8_names_the_file_and_block(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"song\n" * 100 + b"rain \xff\n")
    with pytest.raises(DataError, match=r"bad\.txt:101: not valid UTF-8 \(byte 0xff at byte 6\)"):
        read_lines(path, blocksize=None).compute(scheduler="sync")
    with pytest.raises(DataError, match=r"bad\.txt \(block 5 of 5, lines counted from its start\):\d+: not"):
        read_lines(path, blocksize=100).compute(scheduler="sync")


def test_missing_dask_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "dask.bag", None)  # import dask.bag raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'textcls\[dask\]'"):
        read_lines(tmp_path / "any.txt")
