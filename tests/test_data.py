"""Tests for textcls.data: file formats, format detection, errors and splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from textcls.data import (
    DataSplits,
    Example,
    check_known_labels,
    detect_format,
    find_split_files,
    load_splits,
    read_examples,
    stratified_split,
)
from textcls.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")


def write(path: Path, content: str | bytes) -> Path:
    """Write bytes exactly (str is encoded as UTF-8, newlines untouched)."""
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def labelled(n_per_class: dict[str, int]) -> list[Example]:
    return [
        Example(text=f"{label} text {i}", label=label, line=i + 1)
        for label, n in n_per_class.items()
        for i in range(n)
    ]


# --------------------------------------------------------------------------- formats


def test_tsv_label_last(tmp_path: Path) -> None:
    path = write(tmp_path / "train.txt", "play some jazz\tPlayMusic\nwill it rain\tGetWeather\n")
    assert read_examples(path, "tsv") == [
        Example("play some jazz", "PlayMusic", None, 1),
        Example("will it rain", "GetWeather", None, 2),
    ]


def test_tsv_label_first(tmp_path: Path) -> None:
    path = write(tmp_path / "r.tsv", "earn\tprofit rose sharply\nacq\tcompany bought rival\n")
    examples = read_examples(path, "tsv-label-first")
    assert [(e.label, e.text) for e in examples] == [
        ("earn", "profit rose sharply"),
        ("acq", "company bought rival"),
    ]


def test_csv_named_columns_and_quoting(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.csv",
        'id,sentence,label\n1,"hello, world",greet\n2,"two\nlines",other\n3,bye,greet\n',
    )
    examples = read_examples(path)
    assert [(e.text, e.label, e.line) for e in examples] == [
        ("hello, world", "greet", 2),
        ("two\nlines", "other", 3),
        ("bye", "greet", 5),  # the quoted newline makes record 3 start on line 5
    ]


def test_csv_several_text_columns_are_joined(tmp_path: Path) -> None:
    path = write(tmp_path / "news.csv", "title,body,category\nOil up,Prices rose.,business\n")
    (example,) = read_examples(path, text_columns=["title", "body"])
    assert example.text == "Oil up Prices rose."
    assert example.label == "business"  # found through the "category" fallback


def test_jsonl_int_labels_and_custom_columns(tmp_path: Path) -> None:
    rows = [{"review": "great film", "stars": 1}, {"review": "dull", "stars": 0}]
    path = write(tmp_path / "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    examples = read_examples(path, text_columns="review", label_column="stars")
    assert [(e.text, e.label) for e in examples] == [("great film", "1"), ("dull", "0")]


def test_fasttext(tmp_path: Path) -> None:
    path = write(tmp_path / "d.txt", "__label__pos a fine  day\n__label__neg awful\n")
    examples = read_examples(path, "fasttext")
    assert [(e.text, e.label) for e in examples] == [("a fine day", "pos"), ("awful", "neg")]


def test_unlabeled_tsv_for_prediction(tmp_path: Path) -> None:
    path = write(tmp_path / "predict.txt", "just some text\nlabelled too\tpos\n")
    examples = read_examples(path, "tsv", require_labels=False)
    assert [(e.text, e.label) for e in examples] == [
        ("just some text", None),
        ("labelled too", "pos"),
    ]


def test_unlabeled_line_rejected_when_labels_required(tmp_path: Path) -> None:
    path = write(tmp_path / "train.txt", "a\tx\nno label here\n")
    with pytest.raises(DataError, match=r"expected 2 TAB-separated fields.*found 1") as info:
        read_examples(path, "tsv")
    assert info.value.line == 2


# --------------------------------------------------------------------------- pairs


def test_three_fields_everywhere_is_a_pair_file(tmp_path: Path) -> None:
    path = write(tmp_path / "nli.txt", "a cat sits\ta cat is sitting\tentail\nx\ty\tcontra\n")
    examples = read_examples(path)
    assert examples[0] == Example("a cat sits", "entail", "a cat is sitting", 1)
    assert examples[1].text_pair == "y"


def test_pair_flag_reports_short_line(tmp_path: Path) -> None:
    path = write(tmp_path / "nli.txt", "a\tb\tyes\nonly\tno\n")
    with pytest.raises(DataError, match="expected 3 TAB-separated fields") as info:
        read_examples(path, pair=True)
    assert info.value.line == 2


def test_csv_pair_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "sentence1,sentence2,label\nit rains,it is wet,yes\n")
    (example,) = read_examples(path, pair=True)
    assert (example.text, example.text_pair, example.label) == ("it rains", "it is wet", "yes")


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.csv", "text,label\nhi,x\n", "csv"),
        ("a.jsonl", '{"text": "hi", "label": "x"}\n', "jsonl"),
        ("a.txt", '{"text": "hi", "label": "x"}\n', "jsonl"),
        ("a.txt", "__label__x hi there\n__label__y bye\n", "fasttext"),
        ("a.txt", "good movie\tpos\nbad movie\tneg\nok film\tpos\nmeh\tneg\n", "tsv"),
        ("a.tsv", "pos\tgood movie\nneg\tbad movie\npos\tok film\nneg\tmeh\n", "tsv-label-first"),
        # both columns look like labels: ambiguous, so the iclassifier default wins
        ("a.txt", "yes\tpos\nyes\tpos\nno\tneg\nno\tneg\n", "tsv"),
        # neither column repeats: ambiguous as well
        ("a.txt", "one\ttwo\nthree\tfour\n", "tsv"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, content: str, expected: str) -> None:
    assert detect_format(write(tmp_path / name, content)) == expected


def test_auto_reads_label_first(tmp_path: Path) -> None:
    path = write(tmp_path / "x.tsv", "earn\tnet profit up\nearn\tloss narrow\nacq\tbuy stake\n" * 2)
    assert read_examples(path)[2] == Example("buy stake", "acq", None, 3)


# --------------------------------------------------------------------------- robustness


def test_crlf_bom_trailing_spaces_and_no_final_newline(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbfplay jazz  \tPlayMusic \r\n\r\n  \r\nrain today\tGetWeather"
    examples = read_examples(write(tmp_path / "t.txt", content))
    assert examples == [
        Example("play jazz", "PlayMusic", None, 1),
        Example("rain today", "GetWeather", None, 4),
    ]


def test_bom_in_csv_header(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", b"\xef\xbb\xbftext,label\r\nhi,x\r\n")
    assert read_examples(path) == [Example("hi", "x", None, 2)]


# --------------------------------------------------------------------------- errors


def test_error_wrong_column_count(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "a\tx\nb\tinner\ttab\tx\n")
    with pytest.raises(DataError, match=r"expected 2 TAB-separated fields .*found 4") as info:
        read_examples(path, "tsv")
    assert (info.value.path, info.value.line) == (str(path), 2)
    assert "TAB" in (info.value.hint or "")
    assert str(info.value).startswith(f"{path}:2: ")


def test_empty_text_is_a_valid_example(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "a\tx\n   \tx\n")
    examples = read_examples(path, "tsv")
    assert [(e.text, e.label, e.line) for e in examples] == [("a", "x", 1), ("", "x", 2)]
    path = write(tmp_path / "t.ft", "__label__x\n__label__y hello\n")
    assert [(e.text, e.label) for e in read_examples(path, "fasttext")] == [("", "x"), ("hello", "y")]
    path = write(tmp_path / "t.jsonl", '{"text": "", "label": "x"}\n{"text": null, "label": "y"}\n')
    assert [(e.text, e.label) for e in read_examples(path)] == [("", "x"), ("", "y")]
    path = write(tmp_path / "t.csv", 'text,label\n"",x\nb,y\n')
    assert [(e.text, e.label) for e in read_examples(path)] == [("", "x"), ("b", "y")]


def test_error_empty_label(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "a\tx\nb\tx\nc\t  \n")
    with pytest.raises(DataError, match="empty label") as info:
        read_examples(path, "tsv")
    assert info.value.line == 3


def test_error_undecodable_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", b"ok\tx\n" + "caf\xe9\tx\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8") as info:
        read_examples(path, "tsv")
    assert info.value.line == 2
    assert "UTF-8" in (info.value.hint or "")


def test_error_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found") as info:
        read_examples(tmp_path / "nope.txt")
    assert info.value.hint


def test_error_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "\n  \r\n\n")
    with pytest.raises(DataError, match="no examples found"):
        read_examples(path)


def test_error_bad_json(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match="invalid JSON") as info:
        read_examples(path)
    assert info.value.line == 2


def test_error_missing_csv_column_lists_available(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "body,label\nhi,x\n")
    with pytest.raises(DataError, match="available columns: 'body', 'label'"):
        read_examples(path)
    with pytest.raises(DataError, match=r"'tag'.*not found.*'body', 'label'"):
        read_examples(path, text_columns=["body"], label_column="tag")


def test_error_unknown_label_in_valid_named_with_strict_labels(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "a\tcat\nb\tdog\nc\tcat\n")
    valid = write(tmp_path / "valid.txt", "d\tcat\ne\tbird\nf\tfish\ng\tbird\n")
    with pytest.raises(DataError) as info:
        load_splits(tmp_path, strict_labels=True)
    message = str(info.value)
    assert info.value.path == str(valid)
    assert "'bird' (2 examples, first on line 2), 'fish' (1 example, first on line 3)" in message


def test_unknown_labels_in_valid_and_test_are_reported_not_refused(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "a\tcat\nb\tdog\nc\tcat\n")
    write(tmp_path / "valid.txt", "d\tcat\ne\tbird\nf\tfish\ng\tbird\n")
    write(tmp_path / "test.txt", "h\tdog\ni\tflight#airfare\n")
    splits = load_splits(tmp_path)
    assert [e.label for e in splits.valid] == ["cat", "bird", "fish", "bird"]  # nothing dropped
    assert splits.unseen == {"valid": {"bird": 2, "fish": 1}, "test": {"flight#airfare": 1}}
    reported = [n for n in splits.notes if "never seen in training" in n]
    assert len(reported) == 2
    assert "'bird' (2 examples, first on line 2)" in reported[0] and "count as errors" in reported[0]


def test_check_known_labels_passes_known_and_unlabeled() -> None:
    examples = [Example("a", "x", line=1), Example("b", None, line=2)]
    check_known_labels(examples, {"x"}, "valid.txt")  # must not raise


# --------------------------------------------------------------------------- splits


def test_stratified_split_is_deterministic_and_covers_classes() -> None:
    examples = labelled({"a": 50, "b": 20, "c": 2, "d": 1})
    kept, held = stratified_split(examples, 0.1, seed=42)
    assert stratified_split(examples, 0.1, seed=42) == (kept, held)
    assert stratified_split(examples, 0.1, seed=7) != (kept, held)
    assert Counter(e.label for e in held) == {"a": 5, "b": 2}
    assert {e.label for e in kept} == {"a", "b", "c", "d"}
    assert sorted(kept + held, key=examples.index) == examples
    assert kept == sorted(kept, key=examples.index)  # input order kept


def test_stratified_split_keeps_one_in_train_for_two_example_class() -> None:
    kept, held = stratified_split(labelled({"x": 2}), 0.9, seed=0)
    assert (len(kept), len(held)) == (1, 1)


def test_load_splits_carves_valid_with_note(tmp_path: Path) -> None:
    lines = [f"text {i}\t{'pos' if i % 3 else 'neg'}\n" for i in range(60)]
    write(tmp_path / "train.txt", "".join(lines))
    write(tmp_path / "test.txt", "new text\tpos\n")
    splits = load_splits(tmp_path)
    assert isinstance(splits, DataSplits)
    assert (len(splits.train), len(splits.valid), len(splits.test or [])) == (54, 6, 1)
    assert any("carved 10% stratified (seed 42)" in note for note in splits.notes)
    assert set(splits.paths) == {"train", "test"}
    assert splits.labels == ["neg", "pos"]  # order of first appearance in train
    assert load_splits(tmp_path).valid == splits.valid


def test_load_splits_single_file_with_explicit_valid(tmp_path: Path) -> None:
    train = write(tmp_path / "mine.csv", "text,label\na,x\nb,y\n")
    valid = write(tmp_path / "other.csv", "text,label\nc,y\n")
    splits = load_splits(train, valid=valid)
    assert splits.valid == [Example("c", "y", None, 2)]
    assert splits.test is None
    assert splits.paths == {"train": str(train), "valid": str(valid)}


def test_load_splits_directory_without_train(tmp_path: Path) -> None:
    write(tmp_path / "valid.txt", "a\tx\n")
    write(tmp_path / "notes.md", "hello")
    with pytest.raises(DataError, match=r"no training file found.*notes\.md, valid\.txt"):
        load_splits(tmp_path)


def test_find_split_files(tmp_path: Path) -> None:
    for name in ("train.tsv", "dev.tsv", "test.tsv", "README.md", "train.py"):
        write(tmp_path / name, "x")
    found = find_split_files(tmp_path)
    assert {k: p.name for k, p in found.items()} == {
        "train": "train.tsv",
        "valid": "dev.tsv",
        "test": "test.tsv",
    }


def test_find_split_files_r52_style_names(tmp_path: Path) -> None:
    write(tmp_path / "r52train.tsv", "x")
    write(tmp_path / "r52test.tsv", "x")
    found = find_split_files(tmp_path)
    assert {k: p.name for k, p in found.items()} == {
        "train": "r52train.tsv",
        "test": "r52test.tsv",
    }


def test_valid_reuses_train_column_order(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", "earn\tprofit up a lot\nearn\tloss\nacq\tbuys stake\n" * 3)
    write(tmp_path / "valid.tsv", "acq\tsells unit\n")  # too small to detect on its own
    splits = load_splits(tmp_path)
    assert splits.valid == [Example("sells unit", "acq", None, 1)]


# --------------------------------------------------------------------------- real files


@needs_shared
@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("r52/r52train.tsv", "tsv-label-first"),
        ("r52/r52test.tsv", "tsv-label-first"),
        ("snips/train.txt", "tsv"),
        ("sst2/test.txt", "tsv"),
        ("ag_news_5k/valid.txt", "tsv"),
    ],
)
def test_real_detection(relative: str, expected: str) -> None:
    assert detect_format(SHARED / relative) == expected


@needs_shared
def test_real_snips_crlf_and_trailing_spaces() -> None:
    examples = read_examples(SHARED / "snips" / "test.txt")
    assert len(examples) == 700
    assert examples[1].text.endswith("churrascaria cuisine")
    assert examples[1].label == "BookRestaurant"
    assert Counter(e.label for e in examples)["AddToPlaylist"] == 124


@needs_shared
def test_real_sst2_test_without_final_newline() -> None:
    examples = read_examples(SHARED / "sst2" / "test.txt")
    assert len(examples) == 1821
    assert examples[-1].label == "0"
    assert examples[-1].line == 1821


@needs_shared
def test_real_r52_directory() -> None:
    splits = load_splits(SHARED / "r52")
    assert len(splits.train) + len(splits.valid) == 6532
    assert len(splits.test or []) == 2568
    assert len(set(splits.labels)) == 52
    assert splits.test is not None
    assert splits.test[0].label == "trade"


# --------------------------------------------------------------------------- header rows


def test_glue_header_row_is_detected_and_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "train.tsv", "sentence\tlabel\ngood film\t1\nbad film\t0\nfine\t1\n")
    notes: list[str] = []
    examples = read_examples(path, notes=notes)
    assert [(e.text, e.label, e.line) for e in examples] == [
        ("good film", "1", 2),
        ("bad film", "0", 3),
        ("fine", "1", 4),
    ]
    assert any("line 1 is a header row (sentence, label)" in n for n in notes)


def test_header_names_pick_the_label_column(tmp_path: Path) -> None:
    # label-first file with a header: the names decide, whatever the sniffed layout
    path = write(tmp_path / "t.tsv", "label\ttext\nearn\tprofit rose sharply\nacq\tbought a firm\n")
    examples = read_examples(path, "tsv")
    assert [(e.text, e.label) for e in examples] == [
        ("profit rose sharply", "earn"),
        ("bought a firm", "acq"),
    ]
    path = write(tmp_path / "u.tsv", "id\tsentence\tlabel\n7\tgood\tpos\n8\tbad\tneg\n")
    examples = read_examples(path, "tsv", text_columns=["sentence"])
    assert [(e.text, e.label) for e in examples] == [("good", "pos"), ("bad", "neg")]


def test_no_header_when_the_first_label_occurs_again_or_is_forced(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "play some jazz\tlabel\nstop it\tlabel\nrain?\tweather\n")
    assert len(read_examples(path)) == 3  # 'label' is a real class here: it occurs again
    headed = write(tmp_path / "h.tsv", "my text\tmy class\ngood\tpos\nbad\tneg\n")
    assert len(read_examples(headed)) == 3  # nothing looks like a column name
    assert [e.text for e in read_examples(headed, header=True)] == ["good", "bad"]
    glue = write(tmp_path / "g.tsv", "sentence\tlabel\ngood\tpos\n")
    assert len(read_examples(glue, header=False)) == 2


# --------------------------------------------------------------------------- bad lines


BAD_FILE = "a b\tx\nc\td\te\tx\nf g\t \n" + "h\ty\n"  # line 2: 4 fields, line 3: empty label


def test_on_bad_lines_error_is_the_default(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", BAD_FILE)
    with pytest.raises(DataError, match="found 4") as info:
        read_examples(path, "tsv")
    assert info.value.line == 2 and "--on-bad-lines" in (info.value.hint or "")


@pytest.mark.parametrize("policy", ["warn", "skip"])
def test_on_bad_lines_warn_and_skip_drop_and_count(
    tmp_path: Path, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "t.txt", BAD_FILE.encode() + "caf\xe9\tx\n".encode("latin-1"))
    notes: list[str] = []
    with caplog.at_level("WARNING"):
        examples = read_examples(path, "tsv", on_bad_lines=policy, notes=notes)
    assert [(e.text, e.line) for e in examples] == [("a b", 1), ("h", 4)]
    assert any("skipped 3 malformed line(s) (lines 2, 3, 5" in n for n in notes)
    warned = [r for r in caplog.records if "skipped 3 malformed" in r.getMessage()]
    assert len(warned) == (1 if policy == "warn" else 0)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("t.jsonl", '{"text": "a", "label": "x"}\n{oops\n{"text": "b", "label": "y"}\n'),
        ("t.csv", "text,label\na,x\nb,c,d\nb,y\n"),
        ("t.ft", "__label__x a\njust words, no label\n__label__y b\n"),
    ],
)
def test_on_bad_lines_for_every_format(tmp_path: Path, name: str, content: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(DataError) as info:
        read_examples(path)
    assert info.value.line in (2, 3)
    notes: list[str] = []
    examples = read_examples(path, on_bad_lines="skip", notes=notes)
    assert [(e.text, e.label) for e in examples] == [("a", "x"), ("b", "y")]
    assert any("skipped 1 malformed" in n for n in notes)


def test_on_bad_lines_through_load_splits(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "a\tx\nb\tc\tx\nd\ty\ne\tx\n")
    with pytest.raises(DataError):
        load_splits(tmp_path)
    splits = load_splits(tmp_path, on_bad_lines="skip", valid_fraction=0.3)
    assert len(splits.train) + len(splits.valid) == 3
    assert any("skipped 1 malformed" in n for n in splits.notes)


# --------------------------------------------------------------------------- carving and layout


def test_tiny_in_memory_data_still_gets_a_validation_example() -> None:
    examples = labelled({"a": 2, "b": 2, "c": 2})  # round(0.1 * 2) = 0 per class
    kept, held = stratified_split(examples, 0.1, seed=1)
    assert len(held) == 1 and len(kept) == 5
    assert {e.label for e in kept} == {"a", "b", "c"}  # every class still trains


def test_carve_rounds_half_up() -> None:
    # 15 examples at 10 %: 1.5 rounds up to 2 (a floor would hold out 1); 25 at 10 %: 2.5 -> 3
    _, held = stratified_split(labelled({"a": 15, "b": 25}), 0.1, seed=3)
    assert Counter(e.label for e in held) == {"a": 2, "b": 3}


def test_detected_layout_is_reused_for_later_files(tmp_path: Path) -> None:
    from textcls.config import DataConfig
    from textcls.data.splits import read_data_file

    train = write(
        tmp_path / "train.txt", "".join(f"{lab}\t{lab} words number {i}\n" for i in range(6) for lab in "ab")
    )
    assert load_splits(train, valid_fraction=0.3).format == "tsv-label-first"
    # a tiny test file alone does not look label-first; the layout found on train decides
    test = write(tmp_path / "test.txt", "a\tplay jazz\n")
    assert read_examples(test)[0].label == "play jazz"
    options = DataConfig(detected_format="tsv-label-first")
    assert [(e.text, e.label) for e in read_data_file(test, options)] == [("play jazz", "a")]


# --------------------------------------------------------------------------- splits: what users see
# Each promise of textcls.data.splits that a mutation run showed no test held: file discovery,
# the errors' path / hint / listing, the notes a training run prints, options, and carving.


def test_find_split_files_ignores_hidden_copies(tmp_path: Path) -> None:
    # macOS leaves "._name" AppleDouble files next to copied data; they must not make a second train file
    for name in ("r52train.tsv", "._r52train.tsv", "r52test.tsv", ".test.tsv"):
        write(tmp_path / name, "x")
    found = find_split_files(tmp_path)
    assert {k: p.name for k, p in found.items()} == {"train": "r52train.tsv", "test": "r52test.tsv"}


def test_two_training_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "a\tx\n")
    write(tmp_path / "train.tsv", "a\tx\n")
    with pytest.raises(DataError) as info:
        find_split_files(tmp_path)
    error = info.value
    assert error.message == "several train files: train.tsv, train.txt"
    assert error.path == str(tmp_path) and "keep one of them" in (error.hint or "")


def test_a_file_is_not_a_data_directory(tmp_path: Path) -> None:
    path = write(tmp_path / "train.txt", "a\tx\n")
    with pytest.raises(DataError) as info:
        find_split_files(path)
    error = info.value
    assert error.message == "not a directory" and error.path == str(path)
    assert "pass a data directory" in (error.hint or "")


def test_a_missing_data_path_says_where_relative_paths_start(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        load_splits("no-such-dir")
    error = info.value
    assert error.path == "no-such-dir" and "not found" in error.message
    assert f"relative paths start from {tmp_path}" in (error.hint or "")


@pytest.mark.parametrize(("entries", "more"), [(0, ""), (20, ""), (21, " and 1 more"), (23, " and 3 more")])
def test_no_training_file_lists_the_directory(tmp_path: Path, entries: int, more: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    names = []
    for i in range(entries):
        if i == 0:
            (root / "archive").mkdir()  # a folder is shown with a trailing slash
            names.append("archive/")
        else:
            names.append(write(root / f"notes{i:02d}.md", "x").name)
    with pytest.raises(DataError) as info:
        load_splits(root)
    error = info.value
    shown = ", ".join(sorted(names)[:20]) or "nothing"
    assert error.message == f"no training file found; the directory holds: {shown}{more}"
    assert error.path == str(root)
    assert "train.txt" in (error.hint or "") and "pass the training file itself" in (error.hint or "")


def test_every_named_file_is_read_with_the_given_options(tmp_path: Path) -> None:
    from textcls.config import DataConfig

    train = write(tmp_path / "mine.txt", "good film\tpos\nbad film\tneg\nfine\tpos\n \tneg\n")
    valid = write(tmp_path / "v.txt", "ok\tpos\n")
    test = write(tmp_path / "t.txt", "meh\tneg\nnew\tbird\n")
    splits = load_splits(train, valid=valid, test=test, options=DataConfig(format="tsv"))
    assert [e.text for e in splits.train] == ["good film", "bad film", "fine", ""]
    assert [e.text for e in splits.valid] == ["ok"]
    assert [(e.text, e.label) for e in splits.test or []] == [("meh", "neg"), ("new", "bird")]
    assert splits.labels == ["pos", "neg"] and splits.format == "tsv"
    assert splits.paths == {"train": str(train), "valid": str(valid), "test": str(test)}
    assert splits.notes == [
        f"train: {train} (4 examples, 1 with an empty text, format tsv, given)",
        f"valid: {valid} (1 examples, format tsv, given)",
        f"test: {test} (2 examples, format tsv, given)",
        f"{test}: 1 example(s) with 1 label(s) never seen in training: 'bird' (1 example, first on line 2); "
        "they count as errors (--strict-labels refuses them)",
    ]
    assert splits.unseen == {"test": {"bird": 1}}
    with pytest.raises(DataError) as info:  # strict labels apply to the test file too
        load_splits(train, valid=valid, test=test, options=DataConfig(strict_labels=True))
    assert info.value.path == str(test) and info.value.line == 2


def test_detected_files_and_a_missing_test_split_are_noted(tmp_path: Path) -> None:
    train = write(tmp_path / "train.txt", "good film\tpos\nbad film\tneg\n")
    valid = write(tmp_path / "valid.txt", "ok\tpos\n")
    splits = load_splits(tmp_path)
    assert splits.notes == [
        f"train: {train} (2 examples, format tsv, auto-detected)",
        f"valid: {valid} (1 examples, format tsv, auto-detected)",
        "no test split",
    ]
    assert splits.test is None


def test_empty_texts_of_a_pair_file_are_counted_when_both_texts_are_empty(tmp_path: Path) -> None:
    train = write(tmp_path / "train.txt", "a\tb\tyes\n\tonly second\tno\n\t\tyes\n\tanother\tno\n")
    splits = load_splits(train, valid=write(tmp_path / "valid.txt", "c\td\tyes\n"), pair=True)
    assert splits.notes[0] == f"train: {train} (4 examples, 1 with an empty text, format tsv, auto-detected)"


def test_too_little_training_data_to_carve_names_the_file(tmp_path: Path) -> None:
    from textcls.data.splits import carve_validation

    train = write(tmp_path / "train.txt", "only one\tx\n")
    with pytest.raises(DataError) as info:
        load_splits(tmp_path)
    error = info.value
    assert error.path == str(train) and "too few training examples (1)" in error.message
    assert "valid.txt" in (error.hint or "")
    with pytest.raises(DataError) as info:
        carve_validation(labelled({"x": 1, "y": 1}), 0.5, seed=0)
    assert info.value.path == "<in-memory data>" and "too few training examples (2)" in info.value.message


def test_carve_validation_needs_a_fraction_strictly_between_0_and_1() -> None:
    from textcls.data.splits import carve_validation
    from textcls.errors import ConfigError

    examples = labelled({"a": 10, "b": 10})
    for fraction in (0, 1, 1.5, -0.1):
        with pytest.raises(ConfigError, match=r"valid_fraction must be between 0 and 1 .*got"):
            carve_validation(examples, fraction, seed=0)
    kept, held = carve_validation(examples, 0.5, seed=0)
    assert Counter(e.label for e in held) == {"a": 5, "b": 5} and len(kept) == 10


def test_unknown_labels_are_refused_by_default_with_the_line_of_a_single_one() -> None:
    examples = [Example("a", "cat", line=1), Example("b", "bird", line=4), Example("c", "bird", line=6)]
    with pytest.raises(DataError) as info:
        check_known_labels(examples, {"cat", "dog"}, "valid.txt")  # strict is the default
    error = info.value
    assert error.path == "valid.txt" and error.line == 4
    assert error.message == "1 label(s) not in the training data: 'bird' (2 examples, first on line 4)"
    assert "fix the labels" in (error.hint or "") and "without --strict-labels" in (error.hint or "")
    assert "wrong format" not in (error.hint or "")  # one unknown label among two known ones


def test_several_unknown_labels_or_an_unknown_line_give_no_line() -> None:
    two = [Example("a", "bird", line=2), Example("b", "fish", line=3)]
    with pytest.raises(DataError) as info:
        check_known_labels(two, {"cat", "dog"}, "valid.txt")
    assert info.value.line is None and "wrong format" not in (info.value.hint or "")
    in_memory = [Example("a", "bird", line=0)]  # examples built in memory have no line
    with pytest.raises(DataError) as info:
        check_known_labels(in_memory, {"cat"}, "<in-memory data>")
    assert info.value.line is None
    assert info.value.message == "1 label(s) not in the training data: 'bird' (1 example)"


def test_more_unknown_labels_than_known_ones_suggest_a_wrong_layout() -> None:
    examples = [Example(t, label, line=i + 1) for i, (t, label) in enumerate([("x", "a"), ("y", "b")])]
    with pytest.raises(DataError) as info:
        check_known_labels(examples, {"pos"}, "test.txt")
    hint = info.value.hint or ""
    assert "fix the labels" in hint and "wrong format or column order" in hint
    assert "without --strict-labels" in hint


def test_at_most_ten_unknown_labels_are_listed() -> None:
    def unknown(n: int) -> list[Example]:
        return [Example(f"t{i}", f"label{i:02d}", line=i + 1) for i in range(n)]

    with pytest.raises(DataError) as info:
        check_known_labels(unknown(12), {"x"}, "valid.txt")
    message = info.value.message
    assert message.startswith("12 label(s) not in the training data: 'label00' (1 example, first on line 1)")
    assert message.endswith("'label09' (1 example, first on line 10) and 2 more") and "label10" not in message
    with pytest.raises(DataError) as info:
        check_known_labels(unknown(10), {"x"}, "valid.txt")
    assert info.value.message.endswith("'label09' (1 example, first on line 10)")


def test_unknown_labels_note_counts_examples_and_labels() -> None:
    labels = ["cat", "bird", "fish", "bird"]
    examples = [Example(f"text {i}", label, line=i + 1) for i, label in enumerate(labels)]
    note = check_known_labels(examples, {"cat"}, "test.txt", strict=False)
    assert note == (
        "test.txt: 3 example(s) with 2 label(s) never seen in training: "
        "'bird' (2 examples, first on line 2), 'fish' (1 example, first on line 3); "
        "they count as errors (--strict-labels refuses them)"
    )


def test_unknown_data_options_are_named(tmp_path: Path) -> None:
    from textcls.data.splits import data_options, read_data_file
    from textcls.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown data option\(s\): colour, fmt"):
        data_options(fmt="tsv", colour="red")
    with pytest.raises(ConfigError, match="fmt"):
        read_data_file(write(tmp_path / "t.txt", "a\tx\n"), fmt="tsv")


def test_read_data_file_reads_the_way_the_options_say(tmp_path: Path) -> None:
    from textcls.config import DataConfig
    from textcls.data.splits import read_data_file

    news = write(
        tmp_path / "news.csv", "id,title,body,topic\n1,Rain,heavy today,weather\n2,Goal,late win,sports\n"
    )
    expected = [("Rain heavy today", "weather"), ("Goal late win", "sports")]
    options = DataConfig(text_columns=["title", "body"], label_column="topic")
    assert [(e.text, e.label) for e in read_data_file(news, options)] == expected
    keywords = read_data_file(news, text_columns=["title", "body"], label_column="topic")
    assert [(e.text, e.label) for e in keywords] == expected
    pairs = write(tmp_path / "p.csv", "sentence1,sentence2,label\nit rains,it is wet,yes\n")
    (pair,) = read_data_file(pairs, DataConfig(pair=True))
    assert (pair.text, pair.text_pair) == ("it rains", "it is wet")
    headed = write(tmp_path / "h.tsv", "my text\tmy class\ngood\tpos\nbad\tneg\n")
    assert [e.text for e in read_data_file(headed, DataConfig(header=True))] == ["good", "bad"]
    unlabeled = write(tmp_path / "u.txt", "just some text\nmore text\n")
    with pytest.raises(DataError):
        read_data_file(unlabeled, DataConfig(format="tsv"))  # labels are required unless told otherwise
    assert [e.label for e in read_data_file(unlabeled, format="tsv", require_labels=False)] == [None, None]


def test_stratified_split_holds_out_unlabelled_examples_too() -> None:
    examples = labelled({"a": 10, "b": 10}) + [Example(f"u{i}", None, line=100 + i) for i in range(10)]
    kept, held = stratified_split(examples, 0.2, seed=0)
    assert Counter(e.label for e in held) == {"a": 2, "b": 2, None: 2}
    assert stratified_split(examples, 0.2, seed=0) == (kept, held)


def test_the_carved_split_does_not_depend_on_the_order_classes_appear_in() -> None:
    a, b = labelled({"a": 10}), labelled({"b": 10})
    _, held_ab = stratified_split(a + b, 0.3, seed=5)
    _, held_ba = stratified_split(b + a, 0.3, seed=5)
    assert sorted(e.text for e in held_ab) == sorted(e.text for e in held_ba)


def test_tiny_data_holds_out_one_example_of_the_largest_class_and_never_a_singleton() -> None:
    examples = labelled({"a": 3, "b": 2})  # 10 % rounds to nothing in both classes
    _, held = stratified_split(examples, 0.1, seed=0)
    assert [e.label for e in held] == ["a"]
    singletons = labelled({"a": 1, "b": 1, "c": 1})
    assert stratified_split(singletons, 0.5, seed=0) == (singletons, [])
    assert stratified_split(examples, 0.0, seed=0) == (examples, [])  # nothing asked, nothing held


def test_data_splits_labels_default_to_the_order_of_first_appearance() -> None:
    train = [Example("x", "b", line=1), Example("y", None, line=2), Example("z", "a", line=3)]
    assert DataSplits(train, [], None).labels == ["b", "a"]
    assert DataSplits(train, [], None, labels=["a", "b"]).labels == ["a", "b"]
