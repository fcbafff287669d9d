"""Find and load train/valid/test splits; carve a stratified validation split when none exists."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from textcls.config import DataConfig
from textcls.data.formats import Example, detect_format, read_examples
from textcls.errors import ConfigError, DataError

_DATA_SUFFIXES = (".txt", ".tsv", ".csv", ".jsonl", ".json", ".ndjson")
_SPLIT_STEMS = {
    "train": ("train",),
    "valid": ("valid", "dev", "validation", "val"),
    "test": ("test",),
}
_FUZZY_SPLITS = ("train", "test")  # R52 style: r52train.tsv / r52test.tsv
_TSV_FORMATS = ("tsv", "tsv-label-first")
_MAX_LISTED = 10


@dataclass
class DataSplits:
    """The examples of each split, with notes on what was inferred and the files used."""

    train: list[Example]
    valid: list[Example]
    test: list[Example] | None
    notes: list[str] = field(default_factory=list)  # e.g. "no valid split: carved 10% ..."
    paths: dict[str, str] = field(default_factory=dict)  # split name -> file path used
    # label names in order of first appearance in the training file (iclassifier's id order),
    # counted before any validation carve; computed from ``train`` when not given
    labels: list[str] = field(default_factory=list)
    format: str | None = None  # the training file's format, as resolved
    unseen: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> count
    label_sep: str | None = None  # the separator of several labels in a label field, given or detected

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = _label_order(self.train)


def _label_order(examples: Iterable[Example]) -> list[str]:
    return list(dict.fromkeys(label for e in examples for label in e.label_set))


def find_split_files(directory: str | Path) -> dict[str, Path]:
    """Find the split files of a data directory.

    Looks for ``train.*``, ``valid.*`` (also ``dev.*``, ``validation.*``, ``val.*``) and
    ``test.*`` with a data suffix (.txt .tsv .csv .jsonl .json .ndjson). When there is no exact
    ``train``/``test`` name, a single data file whose name contains ``train``/``test`` is used
    (R52's ``r52train.tsv``/``r52test.tsv``). Returns only the splits found.
    """
    root = Path(directory)
    if not root.is_dir():
        raise DataError("not a directory", path=root, hint="pass a data directory")
    files = sorted(p for p in root.iterdir() if p.is_file() and _is_data_file(p))
    found: dict[str, Path] = {}
    for split, stems in _SPLIT_STEMS.items():
        exact = [p for p in files if p.stem.lower() in stems]
        if len(exact) > 1:
            raise DataError(
                f"several {split} files: {', '.join(p.name for p in exact)}",
                path=root,
                hint="keep one of them, or pass the files explicitly",
            )
        if exact:
            found[split] = exact[0]
    for split in _FUZZY_SPLITS:
        if split not in found:
            used = set(found.values())
            fuzzy = [p for p in files if split in p.name.lower() and p not in used]
            if len(fuzzy) == 1:
                found[split] = fuzzy[0]
    return found


def _is_data_file(path: Path) -> bool:
    return path.suffix.lower() in _DATA_SUFFIXES and not path.name.startswith(".")


def data_options(options: DataConfig | None = None, **fields: object) -> DataConfig:
    """The data options: ``options`` (default: the defaults) with ``fields`` (DataConfig field
    names; None values ignored) applied."""
    options = options or DataConfig()
    updates = {k: v for k, v in fields.items() if v is not None}
    unknown = set(updates) - set(DataConfig.model_fields)
    if unknown:
        raise ConfigError(f"unknown data option(s): {', '.join(sorted(unknown))}")
    return DataConfig.model_validate({**options.model_dump(), **updates}) if updates else options


def read_data_file(
    path: str | Path,
    options: DataConfig | None = None,
    *,
    notes: list[str] | None = None,
    require_labels: bool = True,
    **fields: object,
) -> list[Example]:
    """Read one data file the way a model directory's data options say (the one path every verb
    uses). With format ``auto``, a TSV file takes the layout detected on the training file."""
    options = data_options(options, **fields)
    examples = read_examples(
        path,
        resolve_format(path, options),
        text_columns=options.text_columns,
        label_column=options.label_column,
        pair=options.pair,
        require_labels=require_labels,
        header=options.header,
        on_bad_lines=options.on_bad_lines,
        notes=notes,
        fields=options.fields,
    )
    if options.label_sep:  # several labels in one field (multi-label)
        from textcls.data.labels import split_labels

        examples = split_labels(examples, options.label_sep)
    return examples


def resolve_format(path: str | Path, options: DataConfig) -> str:
    """The format to read ``path`` with: the given one, else detected, where a TSV file keeps the
    TSV layout (label first or last) found on the training file."""
    if options.format != "auto":
        return options.format
    detected = detect_format(path)
    if options.detected_format in _TSV_FORMATS and detected in _TSV_FORMATS:
        return options.detected_format
    return detected


def load_splits(
    data: str | Path,
    *,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    options: DataConfig | None = None,
    seed: int = 42,
    multi_label: bool | None = None,
    also_known: Iterable[str] = (),
    **fields: object,
) -> DataSplits:
    """Load the train, valid and (optional) test examples.

    ``data`` is a directory (split files found by :func:`find_split_files`) or the training
    file itself; ``valid``/``test`` name files explicitly and win over the directory's. Without
    a validation file, ``valid_fraction`` of train is carved off with :func:`stratified_split`
    (fixed ``seed``) and a note says so. With ``format="auto"`` each file is detected, and
    valid/test reuse train's TSV column order when they are TSV too. ``options`` (or DataConfig
    field names as keywords) say how to read the files.

    Valid/test labels that never occur in train are reported in the notes and in ``unseen``
    (they count as errors in every metric); with ``strict_labels`` they are a DataError.

    Label fields joining several labels (``joy,surprise``) are split on ``label_sep``; without
    one it is detected on the training file (:func:`textcls.data.labels.detect_separator`,
    reported) unless ``multi_label`` is False, and is ``,`` when ``multi_label`` is True.
    ``also_known`` labels are expected in valid/test though not in train (the out-of-scope label
    of a model that abstains).

    Raises:
        DataError: no training file, unreadable data, or (strict) valid/test labels absent from train.
        ConfigError: ``valid_fraction`` outside (0, 1) when a split has to be carved.
    """
    options = data_options(options, **fields)
    paths = _split_paths(data, valid, test)
    reader = _SplitReader(options)
    train = reader.read("train", paths["train"])
    if options.label_sep is None and multi_label is not False:
        from textcls.data.labels import detect_separator, split_labels, undetected_separator_hint

        separator, note = detect_separator(train)
        if separator is None and multi_label:
            separator, note = ",", "multi-label: label fields are split on ',' (--label-sep sets another)"
        if separator is not None:
            reader.notes.append(note)
            options = reader.options = options.model_copy(update={"label_sep": separator})
            train = split_labels(train, separator)
        elif hint := undetected_separator_hint(train):
            reader.notes.append(hint)
    result = DataSplits(train, [], None, reader.notes, labels=_label_order(train), format=reader.train_format)
    result.label_sep = options.label_sep
    known = {label for e in train for label in e.label_set} | set(also_known)
    if "valid" in paths:
        result.valid = reader.read("valid", paths["valid"])
        _note_unseen(result, "valid", paths["valid"], known, options.strict_labels)
    else:
        result.train, result.valid = carve_validation(train, options.valid_fraction, seed, paths["train"])
        result.notes.append(
            f"no valid split: carved {options.valid_fraction * 100:g}% stratified (seed {seed}) "
            f"from {paths['train'].name}: {len(result.train)} train / {len(result.valid)} valid"
        )
    if "test" in paths:
        result.test = reader.read("test", paths["test"])
        _note_unseen(result, "test", paths["test"], known, options.strict_labels)
    else:
        result.notes.append("no test split")
    result.paths = {split: str(path) for split, path in paths.items()}
    return result


def _note_unseen(result: DataSplits, split: str, path: Path, known: set, strict: bool) -> None:
    note = check_known_labels(getattr(result, split), known, path, strict=strict)
    if note:
        result.notes.append(note)
        result.unseen[split] = dict(unseen_labels(getattr(result, split), known))


def _split_paths(data: str | Path, valid: str | Path | None, test: str | Path | None) -> dict[str, Path]:
    root = Path(data)
    if not root.exists():
        raise DataError(
            "file or directory not found",
            path=root,
            hint=f"check the path; relative paths start from {Path.cwd()}",
        )
    if root.is_dir():
        paths = find_split_files(root)
        if "train" not in paths:
            raise DataError(
                f"no training file found; the directory holds: {_listing(root)}",
                path=root,
                hint="name the training file train.txt, train.tsv, train.csv or train.jsonl, "
                "or pass the training file itself",
            )
    else:
        paths = {"train": root}
    if valid is not None:
        paths["valid"] = Path(valid)
    if test is not None:
        paths["test"] = Path(test)
    return paths


def _listing(root: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    shown = ", ".join(names[:20]) or "nothing"
    return shown + (f" and {len(names) - 20} more" if len(names) > 20 else "")


class _SplitReader:
    """Reads split files with shared options, keeping TSV column order consistent."""

    def __init__(self, options: DataConfig) -> None:
        self.options = options
        self.train_format: str | None = None
        self.notes: list[str] = []

    def read(self, split: str, path: Path) -> list[Example]:
        options = self.options
        if self.train_format is not None:
            options = options.model_copy(update={"detected_format": self.train_format})
        fmt = resolve_format(path, options)
        notes: list[str] = []
        examples = read_data_file(path, options.model_copy(update={"format": fmt}), notes=notes)
        how = "auto-detected" if self.options.format == "auto" else "given"
        empty = sum(1 for e in examples if not e.text and not e.text_pair)
        extra = f", {empty} with an empty text" if empty else ""
        self.notes.append(f"{split}: {path} ({len(examples)} examples{extra}, format {fmt}, {how})")
        self.notes += notes
        if self.train_format is None:
            self.train_format = fmt
        return examples


def carve_validation(
    train: Sequence[Example], fraction: float, seed: int, path: str | Path = "<in-memory data>"
) -> tuple[list[Example], list[Example]]:
    """:func:`stratified_split` for a validation split, with a clear error when it cannot be made."""
    if not 0 < fraction < 1:
        raise ConfigError(f"valid_fraction must be between 0 and 1 (exclusive), got {fraction}")
    kept, held = stratified_split(train, fraction, seed)
    if not held:
        raise DataError(
            f"too few training examples ({len(train)}) to carve a validation split",
            path=path,
            hint="provide a validation file such as valid.txt, or more training examples",
        )
    return kept, held


def stratified_split(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split ``examples`` into (kept, held_out), holding out about ``fraction`` of each label.

    Deterministic for a given seed (``random.Random(seed)``, classes in sorted order). Each
    class holds out round-half-up(fraction * n) examples but always keeps at least one in the
    first part, so a class with a single example is never held out. When that rounds to nothing
    at all (tiny data), one example of the largest class with two or more is held out. Both
    parts keep the input order.
    """
    by_label: dict[str | None, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        by_label[example.label].append(index)
    rng = random.Random(seed)
    held: set[int] = set()
    for label in sorted(by_label, key=lambda lab: (lab is None, lab or "")):
        indices = by_label[label]
        count = min(int(fraction * len(indices) + 0.5), len(indices) - 1)
        held.update(rng.sample(indices, count))
    if not held and fraction > 0:
        largest = max(by_label.values(), key=len)
        if len(largest) > 1:
            held.add(rng.choice(largest))
    kept = [e for i, e in enumerate(examples) if i not in held]
    return kept, [e for i, e in enumerate(examples) if i in held]


def unseen_labels(examples: Iterable[Example], known_labels: Iterable[str | None]) -> Counter[str]:
    """How many examples carry each label that is not in ``known_labels`` (label None ignored)."""
    known = set(known_labels)
    return Counter(label for e in examples for label in e.label_set if label not in known)


def check_known_labels(
    examples: Iterable[Example],
    known_labels: Iterable[str | None],
    path: str | Path,
    *,
    strict: bool = True,
) -> str | None:
    """Labels of ``examples`` that are not in ``known_labels``: with ``strict`` a DataError naming
    each (sorted, with its count and first line); otherwise a note saying they were never seen in
    training and count as errors (None when there are none). Unlabeled examples are ignored.
    """
    known = set(known_labels)
    counts: Counter[str] = Counter()
    first_line: dict[str, int] = {}
    for example in examples:
        for label in example.label_set:
            if label not in known:
                counts[label] += 1
                first_line.setdefault(label, example.line)
    if not counts:
        return None
    names = sorted(counts)
    shown = [_describe_label(n, counts[n], first_line[n]) for n in names[:_MAX_LISTED]]
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    hint = "fix the labels, or add training examples of these classes"
    if len(names) > len(known):
        hint += "; so many unknown labels may mean a wrong format or column order"
    if not strict:
        total = sum(counts.values())
        return (
            f"{path}: {total} example(s) with {len(names)} label(s) never seen in training: "
            f"{', '.join(shown)}{more}; they count as errors (--strict-labels refuses them)"
        )
    raise DataError(
        f"{len(names)} label(s) not in the training data: {', '.join(shown)}{more}",
        path=path,
        line=first_line[names[0]] if len(names) == 1 and first_line[names[0]] else None,
        hint=hint + "; without --strict-labels they count as errors instead",
    )


def _describe_label(name: str, count: int, line: int) -> str:
    where = f", first on line {line}" if line else ""
    return f"{name!r} ({count} example{'s' if count != 1 else ''}{where})"
