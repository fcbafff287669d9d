"""Word-vector sources (files, packaged GloVe, spaCy, random) and the embedding matrix."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

from textcls.embeddings.vectors import (
    FileVectors,
    PackagedGloVe,
    RandomVectors,
    SpacyVectors,
    build_matrix,
    open_vectors,
)
from textcls.errors import ConfigError, DataError

WORDS = ["the", "of", "and", "play", "jazz", "rain", "music", "song"]


@pytest.fixture(scope="module")
def table() -> dict[str, np.ndarray]:
    """word → 4-d vector; values with few decimals so text round trips are exact in float32."""
    rng = np.random.default_rng(0)
    return {w: np.round(rng.normal(size=4), 3).astype(np.float32) for w in WORDS}


def vector_lines(table: dict[str, np.ndarray]) -> str:
    return "".join(f"{w} {' '.join(f'{v:.3f}' for v in vec)}\n" for w, vec in table.items())


def write_vectors(tmp_path: Path, kind: str, table: dict[str, np.ndarray]) -> Path:
    text = vector_lines(table)
    if kind == "txt":
        path = tmp_path / "vectors.txt"
        path.write_text(text, encoding="utf-8")
    elif kind == "txt.gz":
        path = tmp_path / "vectors.txt.gz"
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    elif kind == "zip":
        path = tmp_path / "vectors.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("README", "not vectors\n")
            archive.writestr("glove.tiny.4d.txt", text)
    elif kind == "vec":
        path = tmp_path / "vectors.vec"
        path.write_text(f"{len(table)} 4\n{text}", encoding="utf-8")
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("kind", ["txt", "txt.gz", "zip", "vec"])
def test_file_vectors_keep_first_lines_and_needed_words(tmp_path, table, kind) -> None:
    path = write_vectors(tmp_path, kind, table)
    vectors = FileVectors(path, needed={"rain", "song", "absent"}, keep_first=2)
    assert vectors.dim == 4
    # the first two vectors of the file (frequency order), then the needed ones, in file order
    assert vectors.words == ["the", "of", "rain", "song"]
    assert vectors.frequent_words(2) == ["the", "of"]
    found_vectors, found = vectors.lookup(["song", "absent", "the", "jazz"])
    assert found.tolist() == [True, False, True, False]  # "jazz" is in the file but was not kept
    assert found_vectors.dtype == np.float32
    np.testing.assert_array_equal(found_vectors[0], table["song"])
    np.testing.assert_array_equal(found_vectors[2], table["the"])
    np.testing.assert_array_equal(found_vectors[1], np.zeros(4, np.float32))


@pytest.mark.parametrize("kind", ["txt", "vec"])
def test_file_vectors_keep_nothing_extra(tmp_path, table, kind) -> None:
    vectors = FileVectors(write_vectors(tmp_path, kind, table), needed={"jazz"}, keep_first=0)
    assert vectors.words == ["jazz"]
    np.testing.assert_array_equal(vectors.matrix, table["jazz"][None])


def test_file_vectors_through_open_vectors(tmp_path, table) -> None:
    path = write_vectors(tmp_path, "txt.gz", table)
    source = open_vectors(str(path), needed={"music"}, keep_first=1)
    assert isinstance(source, FileVectors)
    assert source.words == ["the", "music"]


def test_file_vectors_inconsistent_dimension_names_line(tmp_path, table) -> None:
    lines = vector_lines(table).splitlines()
    lines[3] = "play 0.1 0.2 0.3"  # 3 values instead of 4, on line 4
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        FileVectors(path, needed={"play"}, keep_first=10)
    assert info.value.line == 4
    assert f"{path}:4" in str(info.value)
    assert "expected 4" in str(info.value)


def test_file_vectors_inconsistent_dimension_after_header(tmp_path, table) -> None:
    path = write_vectors(tmp_path, "vec", table)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5] + " 9.0"  # line 6 of the file (after the header) has 5 values
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        FileVectors(path, needed=set(WORDS), keep_first=0)
    assert info.value.line == 6


def test_file_vectors_non_numeric_value_is_a_data_error(tmp_path, table) -> None:
    """A malformed number must be reported like any other bad line: as DataError with its line."""
    lines = vector_lines(table).splitlines()
    lines[2] = "and 0.1 oops 0.3 0.4"
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        FileVectors(path, needed={"and"}, keep_first=0)
    assert info.value.line == 3


def test_word2vec_header_does_not_count_as_a_kept_line(tmp_path, table) -> None:
    """keep_first=N keeps the N most frequent words, whether or not the file has a header."""
    plain = FileVectors(write_vectors(tmp_path, "txt", table), needed=set(), keep_first=3)
    headed = FileVectors(write_vectors(tmp_path, "vec", table), needed=set(), keep_first=3)
    assert plain.words == WORDS[:3]
    assert headed.words == WORDS[:3]


def test_file_vectors_missing_file_is_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        FileVectors(tmp_path / "nope.txt", needed=set())


def test_file_vectors_without_any_vector_is_data_error(tmp_path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no vectors"):
        FileVectors(path, needed={"a"})


def test_zip_without_vector_member_is_data_error(tmp_path) -> None:
    path = tmp_path / "vectors.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("README.md", "nothing here\n")
    with pytest.raises(DataError, match="zip"):
        FileVectors(path, needed={"a"})


def test_open_vectors_unknown_name_lists_choices(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        open_vectors(str(tmp_path / "glove-42d"))
    for name in ("glove-6b-50d", "spacy-md-300d", "random"):
        assert name in str(info.value)


def test_open_vectors_registered_random() -> None:
    source = open_vectors("random", dim=12)
    assert isinstance(source, RandomVectors) and source.dim == 12


# ---------------------------------------------------------------------------- build_matrix


def test_build_matrix(tmp_path, table) -> None:
    source = FileVectors(write_vectors(tmp_path, "txt", table), needed=set(WORDS))
    words = ["<pad>", "<unk>", "jazz", "unseen-1", "the", "unseen-2"]
    matrix, stats = build_matrix(words, source, seed=3)
    assert matrix.shape == (6, 4) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], np.zeros(4))
    np.testing.assert_array_equal(matrix[2], table["jazz"])
    np.testing.assert_array_equal(matrix[4], table["the"])
    for row in (1, 3, 5):  # missing rows: random, non-zero, distinct
        assert np.abs(matrix[row]).sum() > 0
    assert not np.array_equal(matrix[3], matrix[5])
    assert stats["found"] == 2
    assert stats["coverage"] == pytest.approx(2 / 4)

    again, _ = build_matrix(words, source, seed=3)
    np.testing.assert_array_equal(matrix, again)
    other, _ = build_matrix(words, source, seed=4)
    assert not np.array_equal(other[[1, 3, 5]], matrix[[1, 3, 5]])
    np.testing.assert_array_equal(other[[0, 2, 4]], matrix[[0, 2, 4]])


def test_build_matrix_pad_row_zero_even_when_file_has_pad(tmp_path, table) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text("<pad> 1 1 1 1\n" + vector_lines(table), encoding="utf-8")
    source = FileVectors(path, needed={"<pad>", "jazz"})
    matrix, _ = build_matrix(["<pad>", "<unk>", "jazz"], source, seed=0)
    np.testing.assert_array_equal(matrix[0], np.zeros(4))


def test_build_matrix_random_rows_have_the_scale_of_found_vectors(tmp_path) -> None:
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(300)]
    path = tmp_path / "big.txt"
    path.write_text(
        "".join(f"{w} {' '.join(f'{v:.4f}' for v in rng.normal(0, 3.0, 8))}\n" for w in words),
        encoding="utf-8",
    )
    source = FileVectors(path, needed=set(words))
    vocab = ["<pad>", "<unk>", *words, *(f"missing{i}" for i in range(300))]
    matrix, _ = build_matrix(vocab, source, seed=0)
    assert matrix[302:].std() == pytest.approx(3.0, rel=0.15)
    # fastText's initialisation: unknown rows uniform within ±1/dim, found rows untouched
    uniform, _ = build_matrix(vocab, source, seed=0, oov_init="uniform")
    assert np.abs(uniform[302:]).max() <= 1 / 8 and uniform[302:].std() > 0.03
    np.testing.assert_array_equal(uniform[2:302], matrix[2:302])


def test_random_vectors() -> None:
    source = RandomVectors(dim=7)
    vectors, found = source.lookup(["a", "b", "c"])
    assert vectors.shape == (3, 7) and not found.any()
    assert source.frequent_words(10) == []
    assert RandomVectors().dim == 100
    matrix, stats = build_matrix(["<pad>", "<unk>", "a", "b"], source, seed=0)
    assert matrix.shape == (4, 7)
    np.testing.assert_array_equal(matrix[0], np.zeros(7))
    assert np.all(np.abs(matrix[1:]).sum(1) > 0)
    assert stats["found"] == 0 and stats["coverage"] == 0.0


# ---------------------------------------------------------------------------- packaged sources


@pytest.fixture(scope="module")
def glove() -> PackagedGloVe:
    return PackagedGloVe()


def test_packaged_glove(glove) -> None:
    assert glove.dim == 50
    vectors, found = glove.lookup(["the", "zzzqqq"])
    assert found.tolist() == [True, False]
    assert vectors.shape == (2, 50) and vectors.dtype == np.float32
    assert np.abs(vectors[0]).sum() > 0
    np.testing.assert_array_equal(vectors[1], np.zeros(50))
    frequent = glove.frequent_words(3)
    assert len(frequent) == 3
    assert "the" in frequent
    assert all(isinstance(w, str) and w for w in frequent)


def test_packaged_glove_vectors_are_semantic(glove) -> None:
    vectors, found = glove.lookup(["king", "queen", "carrot"])
    assert found.all()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > unit[0] @ unit[2]


def test_open_vectors_glove_by_name() -> None:
    assert open_vectors("glove-6b-50d").dim == 50


def test_spacy_vectors() -> None:
    source = SpacyVectors()
    assert source.dim == 300
    vectors, found = source.lookup(["king", "zzzqqqxx"])
    assert found.tolist() == [True, False]
    assert vectors.shape == (2, 300) and np.abs(vectors[0]).sum() > 0
    np.testing.assert_array_equal(vectors[1], np.zeros(300))
