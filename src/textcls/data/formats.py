"""Read labelled text files: TSV (iclassifier), label-first TSV, CSV, JSON lines and fastText.

Every problem with the input raises :class:`~textcls.errors.DataError` naming the file, the
1-based line, what is wrong and what to do about it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textcls.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FORMATS = ("tsv", "tsv-label-first", "csv", "jsonl", "fasttext")

_BOM = b"\xef\xbb\xbf"
_FASTTEXT_PREFIX = "__label__"
_SNIFF_LINES = 2000
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_TEXT_DEFAULTS = ("text", "sentence")
_PAIR_DEFAULTS = (
    ("text", "text_pair"),
    ("sentence1", "sentence2"),
    ("text_a", "text_b"),
    ("premise", "hypothesis"),
)
_LABEL_DEFAULTS = ("label", "labels", "category", "intent")
_UTF8_HINT = "re-save the file as UTF-8, e.g. iconv -f cp949 -t utf-8 in.txt > out.txt"

Columns = Sequence[str] | str | None


@dataclass(frozen=True)
class Example:
    """One input: a text (plus an optional second segment) and its label, or for multi-label
    data its labels (``labels``; ``label`` then shows them joined, e.g. ``joy,surprise``)."""

    text: str
    label: str | None = None
    text_pair: str | None = None  # second segment for sentence-pair inputs
    line: int = 0  # 1-based source line (0 if constructed in memory)
    # names of the text (and text_pair) columns in the file, as read; not part of equality
    columns: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    labels: tuple[str, ...] | None = None  # several labels (multi-label data)

    def as_input(self) -> str | tuple[str, str]:
        """What a model reads: the text, or the ``(text, text_pair)`` sentence pair."""
        return self.text if self.text_pair is None else (self.text, self.text_pair)

    @property
    def label_set(self) -> tuple[str, ...]:
        """Every label of the example (one, several, or none when unlabeled)."""
        if self.labels is not None:
            return self.labels
        return () if self.label is None else (self.label,)


# --------------------------------------------------------------------------- file access


def check_file(path: str | Path) -> Path:
    """Return ``path`` as a Path, or raise DataError if it is missing or a directory."""
    p = Path(path)
    if not p.exists():
        raise DataError(
            "file not found",
            path=p,
            hint=f"check the path; relative paths start from {Path.cwd()}",
        )
    if p.is_dir():
        raise DataError(
            "is a directory, expected a data file",
            path=p,
            hint="pass the file itself; only the data set argument may be a directory",
        )
    return p


def _decoded_lines(path: Path, bad: BadLines | None = None) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, decoded line without its line ending), blank lines included.

    Strips a UTF-8 BOM, accepts LF and CRLF and a missing final newline. An undecodable line
    raises, or (``bad`` policy warn/skip) is counted and yielded as a blank line.
    """
    data = path.read_bytes()
    data = data.removeprefix(_BOM)
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    for number, raw_line in enumerate(raw_lines, start=1):
        raw = raw_line.removesuffix(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            byte = raw[exc.start : exc.start + 1].hex()
            error = DataError(
                f"not valid UTF-8 (byte 0x{byte} at byte {exc.start + 1} of the line)",
                path=path,
                line=number,
                hint=_UTF8_HINT + ", or pass --on-bad-lines skip",
            )
            if bad is None:
                raise error from None
            bad.record(error)
            text = ""
        yield number, text


def read_text_lines(source: str | Path | Any) -> Iterator[str]:
    """The lines of a text file (a path, or a binary stream such as ``sys.stdin.buffer``) for
    prediction: split on ``\\n`` only (U+2028, NEL or a form feed inside a text stay in it), a
    trailing ``\\r`` and a UTF-8 BOM removed, blank lines kept, so output row i is input line i."""
    if isinstance(source, str | Path):
        path = check_file(source)
        with path.open("rb") as handle:
            yield from read_text_lines(handle)
        return
    name = getattr(source, "name", "<stdin>")
    for number, raw in enumerate(source, start=1):
        raw = raw.removesuffix(b"\n").removesuffix(b"\r")
        if number == 1:
            raw = raw.removeprefix(_BOM)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"not valid UTF-8 (byte 0x{raw[exc.start : exc.start + 1].hex()} at byte {exc.start + 1})",
                path=name,
                line=number,
                hint=_UTF8_HINT,
            ) from None


def _sample_lines(path: Path, limit: int = _SNIFF_LINES) -> list[str]:
    """Return up to ``limit`` non-blank lines (lenient decoding, for format sniffing only)."""
    sample: list[str] = []
    with path.open("rb") as handle:
        for raw in handle:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not sample:
                line = line.lstrip("\ufeff")
            if line.strip():
                sample.append(line)
            if len(sample) >= limit:
                break
    return sample


# --------------------------------------------------------------------------- detection


def detect_format(path: str | Path) -> str:
    """Guess the format of a data file; returns one of :data:`FORMATS`.

    ``.csv`` is csv and ``.jsonl``/``.json``/``.ndjson`` is JSON lines. Otherwise the content
    decides: a first line starting with ``__label__`` is fastText, a JSON object is JSON lines,
    and anything else is TSV. For TSV the label column is the one whose values never contain
    spaces and have far fewer distinct values than rows (sampled from up to 2000 lines); only
    when that clearly points at the first column is ``"tsv-label-first"`` returned, otherwise
    ``"tsv"`` (label last, the iclassifier default).
    """
    p = check_file(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    sample = _sample_lines(p)
    if not sample:
        return "tsv"
    first = sample[0].lstrip()
    if first.startswith(_FASTTEXT_PREFIX):
        return "fasttext"
    if first.startswith("{") and _is_json_object(first):
        return "jsonl"
    return _sniff_tsv(sample)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _sniff_tsv(sample: list[str]) -> str:
    rows = [[f.strip() for f in line.split("\t")] for line in sample]
    rows = [r for r in rows if len(r) >= 2]
    if not rows:
        return "tsv"
    first_is_label = _looks_like_labels([r[0] for r in rows])
    last_is_label = _looks_like_labels([r[-1] for r in rows])
    return "tsv-label-first" if first_is_label and not last_is_label else "tsv"


def _looks_like_labels(values: list[str]) -> bool:
    """Tell whether ``values`` look like a label column.

    That is: no value contains whitespace, and there are at most half as many distinct values
    as rows.
    """
    no_spaces = all(len(v.split()) <= 1 for v in values)
    return no_spaces and 2 * len(set(values)) <= len(values)


# --------------------------------------------------------------------------- public reader


def read_examples(
    path: str | Path,
    format: str = "auto",
    *,
    text_columns: Columns = None,
    label_column: str | None = None,
    pair: bool = False,
    require_labels: bool = True,
    header: bool | None = None,
    on_bad_lines: str = "error",
    notes: list[str] | None = None,
    fields: Sequence[str] | None = None,
) -> list[Example]:
    """Read every example of a data file.

    Args:
        path: the file to read.
        format: one of :data:`FORMATS`, or ``"auto"`` to use :func:`detect_format`.
        text_columns: csv/jsonl only; the column(s) holding the text. Several columns are
            joined with a space, unless ``pair`` is set, where exactly two give
            ``text``/``text_pair``. Default: ``text`` or ``sentence``. Ignored for tsv/fasttext.
        label_column: csv/jsonl only; default ``label`` (then ``labels``, ``category``,
            ``intent``). Ignored for tsv/fasttext.
        pair: sentence-pair input (``a<TAB>b<TAB>label`` for tsv). A tsv file whose every line
            has three fields is read as pairs even without it.
        require_labels: when False, unlabeled examples (label None) are allowed: a TSV line
            with no label field, a fastText line without ``__label__``, a csv/jsonl file
            without a label column, and empty labels.
        header: TSV only: the first line names the columns (``sentence<TAB>label``). ``None``
            detects it: the first line's label occurs nowhere else and looks like a column
            name (label, category, ... or a text column such as sentence). The names then pick
            the label column (``label_column`` or a default name) and the text columns.
        on_bad_lines: ``error`` (default), ``warn`` or ``skip`` malformed lines (wrong number of
            fields, undecodable bytes, empty label, invalid JSON); skipped lines are counted.
        notes: a list that receives what was inferred or skipped (header row, bad lines).
        fields: the named text fields a model reads, in order (one or two, e.g. ``["title",
            "body"]``), by column name: ``text_columns``, the TSV header, or for csv/jsonl the
            fields themselves. One field: that column is the example's text; two: ``text`` and
            ``text_pair``, in the order given. A headerless TSV names its two text columns with
            ``text_columns`` (default ``text``, ``text_pair``).

    Empty texts are valid examples (a web page with no text, a review that is only an emoji).

    Raises:
        DataError: missing file, undecodable line, wrong field count, empty label, bad JSON,
            missing column, or no examples at all.
        ConfigError: unknown ``format``, or ``pair`` with a format or columns that cannot
            give pairs.
    """
    p = check_file(path)
    fmt = detect_format(p) if format == "auto" else format
    if fmt not in _READERS:
        raise ConfigError(f"unknown data format {format!r}; choose auto or one of {FORMATS}")
    bad = BadLines(on_bad_lines)
    fields = check_fields(fields)
    options = _Options(_as_list(text_columns), label_column, pair, require_labels, header, bad, fields)
    notes = notes if notes is not None else []
    examples = _READERS[fmt](p, options, notes)
    if fields:
        examples = [_select_fields(p, e, fields) for e in examples]
    summary = bad.summary(p)
    if summary:
        notes.append(summary)
        if on_bad_lines == "warn":
            log.warning("%s", summary)
    if not examples and summary:
        raise DataError(f"no examples left: {summary}", path=p, hint="check the format and column options")
    if not examples:
        raise DataError(
            "no examples found: the file is empty or holds only blank lines",
            path=p,
            hint="check that this is the right file",
        )
    return examples


@dataclass
class _Options:
    text_columns: list[str] | None
    label_column: str | None
    pair: bool
    require_labels: bool
    header: bool | None = None
    bad_lines: BadLines = field(default_factory=lambda: BadLines("error"))
    fields: list[str] | None = None

    @property
    def split_columns(self) -> bool:
        """Two text columns stay apart (a sentence pair, or two named fields) instead of joined."""
        return self.pair or bool(self.fields)


MAX_FIELDS = 2


def check_fields(fields: Sequence[str] | str | None) -> list[str] | None:
    """The field names a model reads: one or two distinct, non-empty names (or None)."""
    if fields is None:
        return None
    names = [fields] if isinstance(fields, str) else [str(f).strip() for f in fields]
    if not names:
        return None
    if not all(names) or len(set(names)) != len(names) or len(names) > MAX_FIELDS:
        raise ConfigError(f"fields must be one or two distinct names, e.g. --fields title,body; got {names}")
    return names


def _select_fields(path: Path, example: Example, fields: list[str]) -> Example:
    """The example as the model reads it: the named field(s), in the order asked for."""
    names = example.columns or ("text",)
    values = dict(zip(names, (example.text, example.text_pair or ""), strict=False))
    missing = [f for f in fields if f not in values]
    if missing:
        raise DataError(
            f"field(s) {_names(missing)} not among the text columns {_names(list(names))}",
            path=path,
            line=example.line,
            hint="name the file's text columns in order with --text-columns (e.g. title,body), "
            "or choose --fields among them",
        )
    pair = values[fields[1]] if len(fields) > 1 else None
    return Example(text=values[fields[0]], label=example.label, text_pair=pair, line=example.line)


ON_BAD_LINES = ("error", "warn", "skip")


class BadLines:
    """What to do with a malformed line (pandas' ``on_bad_lines``): ``error`` raises its DataError;
    ``warn`` and ``skip`` drop the line and count it (``warn`` also logs one summary warning).

    Used as a context manager around the reading of one line: a DataError inside is recorded and
    suppressed unless the policy is ``error``."""

    def __init__(self, policy: str = "error") -> None:
        if policy not in ON_BAD_LINES:
            raise ConfigError(f"on_bad_lines must be one of {', '.join(ON_BAD_LINES)}, got {policy!r}")
        self.policy = policy
        self.errors: list[DataError] = []

    def record(self, error: DataError) -> None:
        if self.policy == "error":
            raise error
        self.errors.append(error)

    def __enter__(self) -> BadLines:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if isinstance(error, DataError) and error.line is not None:
            self.record(error)
            return True
        return False

    def summary(self, path: Path) -> str | None:
        if not self.errors:
            return None
        self.errors.sort(key=lambda e: e.line or 0)
        lines = ", ".join(str(e.line) for e in self.errors[:5])
        more = ", ..." if len(self.errors) > 5 else ""
        return (
            f"{path}: skipped {len(self.errors)} malformed line(s) (lines {lines}{more}; "
            f"first: {self.errors[0].message})"
        )


def _as_list(columns: Columns) -> list[str] | None:
    if columns is None:
        return None
    return [columns] if isinstance(columns, str) else list(columns)


def _make_example(
    path: Path,
    line: int,
    text: str,
    *,
    text_pair: str | None,
    label: str | None,
    require_labels: bool,
    columns: Sequence[str] | None = None,
) -> Example:
    """Build an Example from stripped fields; an empty text is valid, an empty label is not
    (unless labels are optional). ``columns`` names the text (and text_pair) columns."""
    if not label:
        if require_labels:
            raise DataError("empty label", path=path, line=line, hint="give every example a label")
        label = None
    names = tuple(columns) if columns else None
    return Example(text=text, label=label, text_pair=text_pair, line=line, columns=names)


# --------------------------------------------------------------------------- TSV


def _read_tsv(path: Path, options: _Options, notes: list[str]) -> list[Example]:
    return _read_tab_separated(path, options, notes, label_first=False)


def _read_tsv_label_first(path: Path, options: _Options, notes: list[str]) -> list[Example]:
    return _read_tab_separated(path, options, notes, label_first=True)


_HEADER_LABEL_NAMES = {*_LABEL_DEFAULTS, "class", "target", "sentiment", "topic", "y", "gold"}
_HEADER_TEXT_NAMES = {
    *_TEXT_DEFAULTS,
    *(name for pair in _PAIR_DEFAULTS for name in pair),
    "review",
    "document",
    "content",
    "body",
    "title",
    "subject",
    "utterance",
    "query",
    "question",
    "comment",
    "tweet",
}


def _read_tab_separated(path: Path, options: _Options, notes: list[str], label_first: bool) -> list[Example]:
    rows = [(n, line.split("\t")) for n, line in _decoded_lines(path, options.bad_lines) if line.strip()]
    layout = _TsvLayout.default(label_first)
    if rows and _has_header(rows, options.header, layout):
        header_line, names = rows.pop(0)
        layout = _TsvLayout.from_header(path, header_line, [f.strip() for f in names], options)
        notes.append(
            f"{path}: line {header_line} is a header row ({', '.join(layout.names)}), not an example"
        )
    field_counts = {len(fields) for _, fields in rows}
    pair = options.pair or layout.pair or (bool(rows) and field_counts == {3} and layout.names is None)
    if options.fields and layout.names is None and options.text_columns:
        pair = pair or len(options.text_columns) == 2
    examples = []
    for n, fields in rows:
        with options.bad_lines:
            examples.append(_tsv_example(path, n, fields, pair=pair, layout=layout, options=options))
    return examples


@dataclass(frozen=True)
class _TsvLayout:
    """Where the label sits among a TSV line's fields (and the column names, after a header)."""

    label_first: bool
    label_index: int | None = None  # from a header; None: first or last by ``label_first``
    text_indices: tuple[int, ...] | None = None
    names: tuple[str, ...] | None = None
    pair: bool = False

    @classmethod
    def default(cls, label_first: bool) -> _TsvLayout:
        return cls(label_first)

    @classmethod
    def from_header(cls, path: Path, line: int, names: list[str], options: _Options) -> _TsvLayout:
        lowered = [n.lower() for n in names]
        wanted = options.label_column
        if wanted is not None and wanted not in names:
            raise _missing_column_error(path, line, [wanted], names, "label_column")
        label = (
            names.index(wanted)
            if wanted
            else next((lowered.index(c) for c in _LABEL_DEFAULTS if c in lowered), None)
        )
        if options.text_columns:
            missing = [c for c in options.text_columns if c not in names]
            if missing:
                raise _missing_column_error(path, line, missing, names, "text_columns")
            texts = tuple(names.index(c) for c in options.text_columns)
        else:
            texts = None
        label_first = label == 0 if label is not None else False
        if label is not None and texts is None:
            texts = tuple(i for i in range(len(names)) if i != label)
        pair = options.split_columns and texts is not None and len(texts) == 2
        return cls(label_first, label, texts, tuple(names), pair)


def _has_header(rows: list[tuple[int, list[str]]], header: bool | None, layout: _TsvLayout) -> bool:
    if header is not None:
        return header
    first = [f.strip() for f in rows[0][1]]
    if len(rows) < 2 or len(first) < 2:
        return False
    label_at = 0 if layout.label_first else -1
    others = {fields[label_at].strip() for _, fields in rows[1:] if len(fields) == len(first)}
    label = first[label_at]
    if label in others:
        return False
    lowered = {f.lower() for f in first}
    return bool(lowered & _HEADER_LABEL_NAMES) or bool(
        lowered & _HEADER_TEXT_NAMES and all(re.fullmatch(r"[A-Za-z_][\w ]{0,40}", f) for f in first)
    )


def _tsv_example(
    path: Path,
    line: int,
    fields: list[str],
    *,
    pair: bool,
    layout: _TsvLayout,
    options: _Options,
) -> Example:
    fields = [f.strip() for f in fields]
    require_labels = options.require_labels
    if layout.names is not None:
        expected = len(layout.names)
        if len(fields) != expected and not (len(fields) == expected - 1 and not require_labels):
            raise DataError(
                f"expected {expected} TAB-separated fields (as in the header: "
                f"{', '.join(layout.names)}), found {len(fields)}",
                path=path,
                line=line,
                hint="replace TABs inside the text with spaces, or pass --on-bad-lines skip",
            )
        label = (
            fields[layout.label_index] if layout.label_index is not None and len(fields) == expected else None
        )
        indices = [i for i in (layout.text_indices or range(len(fields))) if i < len(fields)]
        if layout.label_index is None:  # as without a header: the label is first or last
            label = fields[indices[0] if layout.label_first else indices[-1]]
            indices = indices[1:] if layout.label_first else indices[:-1]
        texts = [fields[i] for i in indices]
        columns = [layout.names[i] for i in indices]
        if not pair and len(texts) > 1:
            texts, columns = [" ".join(t for t in texts if t)], ["+".join(columns)]
        text_pair = texts[1] if pair and len(texts) > 1 else None
        return _make_example(
            path,
            line,
            texts[0] if texts else "",
            text_pair=text_pair,
            label=label,
            require_labels=require_labels,
            columns=columns[:2] if pair else columns[:1],
        )
    expected = 3 if pair else 2
    if len(fields) == expected - 1 and not require_labels:
        label, texts = None, fields
    elif len(fields) != expected:
        raise _field_count_error(path, line, len(fields), pair, layout.label_first)
    elif layout.label_first:
        label, texts = fields[0], fields[1:]
    else:
        label, texts = fields[-1], fields[:-1]
    text_pair = texts[1] if pair else None
    columns = ("text", "text_pair") if pair else ("text",)
    if options.text_columns and len(options.text_columns) == len(columns):
        columns = tuple(options.text_columns)  # a headerless file's text columns, named in order
    return _make_example(
        path,
        line,
        texts[0],
        text_pair=text_pair,
        label=label,
        require_labels=require_labels,
        columns=columns,
    )


def _field_count_error(path: Path, line: int, found: int, pair: bool, label_first: bool) -> DataError:
    texts = ["text", "text_pair"] if pair else ["text"]
    layout = "<TAB>".join(["label", *texts] if label_first else [*texts, "label"])
    expected = len(texts) + 1
    if found < expected:
        hint = f"write each line as {layout}"
    elif found == 3 and not pair:
        pair_layout = "label<TAB>text<TAB>text_pair" if label_first else "text<TAB>text_pair<TAB>label"
        hint = (
            "remove the TAB inside the text; or, for sentence pairs, give every line "
            f"{pair_layout} and set pair=True"
        )
    else:
        hint = "replace TABs inside the text with spaces"
    hint += "; or pass --on-bad-lines skip"
    return DataError(
        f"expected {expected} TAB-separated fields ({layout}), found {found}",
        path=path,
        line=line,
        hint=hint,
    )


# --------------------------------------------------------------------------- fastText


def _read_fasttext(path: Path, options: _Options, notes: list[str]) -> list[Example]:
    if options.pair:
        raise ConfigError("sentence pairs (pair=True) are not supported for the fasttext format")
    examples = []
    for n, line in _decoded_lines(path, options.bad_lines):
        if line.strip():
            with options.bad_lines:
                examples.append(_fasttext_example(path, n, line, options.require_labels))
    return examples


def _fasttext_example(path: Path, line: int, content: str, require_labels: bool) -> Example:
    tokens = content.split()
    labels = [t[len(_FASTTEXT_PREFIX) :] for t in tokens if t.startswith(_FASTTEXT_PREFIX)]
    words = [t for t in tokens if not t.startswith(_FASTTEXT_PREFIX)]
    if len(labels) > 1:  # multi-label: every __label__ of the line
        example = _make_example(
            path, line, " ".join(words), text_pair=None, label=labels[0], require_labels=require_labels
        )
        return with_labels(example, labels)
    if not labels and require_labels:
        raise DataError(
            "no __label__ on this line",
            path=path,
            line=line,
            hint="start the line with __label__<name>, a space, then the text",
        )
    label = labels[0] if labels else None
    return _make_example(
        path, line, " ".join(words), text_pair=None, label=label, require_labels=require_labels
    )


# --------------------------------------------------------------------------- CSV / JSON lines


@dataclass(frozen=True)
class _Columns:
    text: list[str]
    label: str | None


def _read_csv(path: Path, options: _Options, notes: list[str]) -> list[Example]:
    rows = _csv_rows(path, options.bad_lines)
    if not rows:
        return []
    header_line, header = rows[0]
    header = [name.strip() for name in header]
    columns = _resolve_columns(path, header_line, header, options)
    examples = []
    for line, row in rows[1:]:
        with options.bad_lines:
            if len(row) != len(header):
                raise DataError(
                    f"expected {len(header)} comma-separated fields (as in the header), found {len(row)}",
                    path=path,
                    line=line,
                    hint='put double quotes around fields that contain commas: "a, b"',
                )
            record = dict(zip(header, row, strict=True))
            examples.append(_record_example(path, line, record, columns, options))
    return examples


def _csv_rows(path: Path, bad: BadLines | None = None) -> list[tuple[int, list[str]]]:
    """Return (first line of the record, fields) for every non-blank CSV record."""
    text = "\n".join(line for _, line in _decoded_lines(path, bad))
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"cannot parse CSV: {exc}", path=path, line=start, hint="check the quoting") from None
    return rows


def _read_jsonl(path: Path, options: _Options, notes: list[str]) -> list[Example]:
    examples: list[Example] = []
    columns: _Columns | None = None
    for line, content in _decoded_lines(path, options.bad_lines):
        if not content.strip():
            continue
        with options.bad_lines:
            record = _parse_json_line(path, line, content)
            if columns is None:
                columns = _resolve_columns(path, line, list(record), options)
            examples.append(_record_example(path, line, record, columns, options))
    return examples


def _parse_json_line(path: Path, line: int, content: str) -> dict:
    hint = 'write one JSON object per line, e.g. {"text": "...", "label": "..."}'
    try:
        record = json.loads(content)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=line, hint=hint
        ) from None
    if not isinstance(record, dict):
        raise DataError(
            f"expected a JSON object, found a JSON {_json_type(record)}",
            path=path,
            line=line,
            hint=hint.replace("per line", "per line, not one JSON array"),
        )
    return record


def _resolve_columns(path: Path, line: int, available: list[str], options: _Options) -> _Columns:
    text = _resolve_text_columns(path, line, available, options)
    label = _resolve_label_column(path, line, available, options)
    return _Columns(text=text, label=label)


def _resolve_text_columns(path: Path, line: int, available: list[str], options: _Options) -> list[str]:
    names = options.text_columns or options.fields
    if names is None:
        defaults = _PAIR_DEFAULTS if options.pair else [(c,) for c in _TEXT_DEFAULTS]
        names = next((list(d) for d in defaults if all(c in available for c in d)), None)
        if names is None:
            wanted = " / ".join("+".join(d) for d in defaults)
            raise DataError(
                f"no text column found (looked for {wanted}); available columns: {_names(available)}",
                path=path,
                line=line,
                hint="name the text column(s) with the text_columns option",
            )
    missing = [c for c in names if c not in available]
    if missing:
        raise _missing_column_error(path, line, missing, available, "text_columns")
    if options.pair and len(names) != 2:
        raise ConfigError(f"pair=True needs exactly two text columns, got {len(names)}: {names}")
    if options.fields and len(names) > MAX_FIELDS:
        raise ConfigError(f"fields read one or two text columns; text_columns names {len(names)}: {names}")
    return names


def _resolve_label_column(path: Path, line: int, available: list[str], options: _Options) -> str | None:
    name = options.label_column
    if name is None:
        name = next((c for c in _LABEL_DEFAULTS if c in available), None)
        if name is None and options.require_labels:
            raise DataError(
                f"no label column found (looked for {', '.join(_LABEL_DEFAULTS)}); "
                f"available columns: {_names(available)}",
                path=path,
                line=line,
                hint="name the label column with the label_column option",
            )
        return name
    if name in available:
        return name
    if not options.require_labels:
        return None
    raise _missing_column_error(path, line, [name], available, "label_column")


def _missing_column_error(
    path: Path, line: int, missing: list[str], available: list[str], option: str
) -> DataError:
    return DataError(
        f"column(s) {_names(missing)} not found; available columns: {_names(available)}",
        path=path,
        line=line,
        hint=f"fix the column name in {option} or in the file",
    )


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "(none)"


def _record_example(path: Path, line: int, record: dict, columns: _Columns, options: _Options) -> Example:
    for name in columns.text + ([columns.label] if columns.label else []):
        if name not in record and (name != columns.label or options.require_labels):
            raise _missing_column_error(path, line, [name], list(record), "the data")
    texts = [_cell_text(path, line, name, record[name]) for name in columns.text]
    names: list[str] = list(columns.text)
    if options.split_columns and len(texts) == 2:
        text, text_pair = texts
    else:
        text, text_pair, names = " ".join(t for t in texts if t), None, ["+".join(names)]
    raw_label = record.get(columns.label) if columns.label else None
    if isinstance(raw_label, list):  # multi-label: a JSON list of labels
        parts = [_cell_label(path, line, columns.label, value) for value in raw_label]
        if not all(parts) and options.require_labels:
            raise DataError(
                f"column {columns.label!r} holds an empty label in its list",
                path=path,
                line=line,
                hint='write the labels as a list of names, e.g. ["joy", "surprise"]',
            )
        example = _make_example(
            path,
            line,
            text,
            text_pair=text_pair,
            label=",".join(p for p in parts if p),
            require_labels=options.require_labels,
            columns=names,
        )
        return with_labels(example, [p for p in parts if p]) if example.label else example
    label = _cell_label(path, line, columns.label, raw_label)
    return _make_example(
        path,
        line,
        text,
        text_pair=text_pair,
        label=label,
        require_labels=options.require_labels,
        columns=names,
    )


def _cell_text(path: Path, line: int, column: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise DataError(
        f"column {column!r} must hold a string, found a JSON {_json_type(value)}",
        path=path,
        line=line,
        hint="store the text as a JSON string",
    )


def _cell_label(path: Path, line: int, column: str | None, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    raise DataError(
        f"column {column!r} must hold a string or a number, found a JSON {_json_type(value)}",
        path=path,
        line=line,
        hint="store the label as a JSON string",
    )


def with_labels(example: Example, labels: Sequence[str], separator: str = ",") -> Example:
    """``example`` carrying several labels (duplicates dropped, order kept)."""
    from dataclasses import replace

    unique = tuple(dict.fromkeys(labels))
    return replace(example, label=separator.join(unique), labels=unique)


def _json_type(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


_READERS: dict[str, Callable[[Path, _Options, list[str]], list[Example]]] = {
    "tsv": _read_tsv,
    "tsv-label-first": _read_tsv_label_first,
    "csv": _read_csv,
    "jsonl": _read_jsonl,
    "fasttext": _read_fasttext,
}
