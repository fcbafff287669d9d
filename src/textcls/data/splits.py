"""Find and load train/valid/test splits; carve a stratified validation split when none exists."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from textcls.data.formats import Columns, Example, detect_format, read_examples
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

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = _label_order(self.train)


def _label_order(examples: Iterable[Example]) -> list[str]:
    return list(dict.fromkeys(e.label for e in examples if e.label is not None))


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


def load_splits(
    data: str | Path,
    *,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    format: str = "auto",
    text_columns: Columns = None,
    label_column: str | None = None,
    pair: bool = False,
    valid_fraction: float = 0.1,
    seed: int = 42,
) -> DataSplits:
    """Load the train, valid and (optional) test examples.

    ``data`` is a directory (split files found by :func:`find_split_files`) or the training
    file itself; ``valid``/``test`` name files explicitly and win over the directory's. Without
    a validation file, ``valid_fraction`` of train is carved off with :func:`stratified_split`
    (fixed ``seed``) and a note says so. With ``format="auto"`` each file is detected, and
    valid/test reuse train's TSV column order when they are TSV too.

    Raises:
        DataError: no training file, unreadable data, or valid/test labels absent from train.
        ConfigError: ``valid_fraction`` outside (0, 1) when a split has to be carved.
    """
    paths = _split_paths(data, valid, test)
    reader = _SplitReader(format, text_columns, label_column, pair)
    train = reader.read("train", paths["train"])
    result = DataSplits(train, [], None, reader.notes, labels=_label_order(train))
    known = {e.label for e in train}
    if "valid" in paths:
        result.valid = reader.read("valid", paths["valid"])
        check_known_labels(result.valid, known, paths["valid"])
    else:
        result.train, result.valid = _carve(train, paths["train"], valid_fraction, seed)
        result.notes.append(
            f"no valid split: carved {valid_fraction * 100:g}% stratified (seed {seed}) "
            f"from {paths['train'].name}: {len(result.train)} train / {len(result.valid)} valid"
        )
    if "test" in paths:
        result.test = reader.read("test", paths["test"])
        check_known_labels(result.test, known, paths["test"])
    else:
        result.notes.append("no test split")
    result.paths = {split: str(path) for split, path in paths.items()}
    return result


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

    def __init__(self, format: str, text_columns: Columns, label_column: str | None, pair: bool) -> None:
        self.format = format
        self.options = {"text_columns": text_columns, "label_column": label_column, "pair": pair}
        self.train_format: str | None = None
        self.notes: list[str] = []

    def read(self, split: str, path: Path) -> list[Example]:
        fmt = self._format_for(path)
        examples = read_examples(path, fmt, **self.options)
        how = "auto-detected" if self.format == "auto" else "given"
        self.notes.append(f"{split}: {path} ({len(examples)} examples, format {fmt}, {how})")
        if self.train_format is None:
            self.train_format = fmt
        return examples

    def _format_for(self, path: Path) -> str:
        if self.format != "auto":
            return self.format
        detected = detect_format(path)
        if self.train_format in _TSV_FORMATS and detected in _TSV_FORMATS:
            return self.train_format
        return detected


def _carve(
    train: list[Example], path: Path, fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
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
    first part, so a class with a single example is never held out. Both parts keep the input
    order.
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
    kept = [e for i, e in enumerate(examples) if i not in held]
    return kept, [e for i, e in enumerate(examples) if i in held]


def check_known_labels(
    examples: Iterable[Example], known_labels: Iterable[str | None], path: str | Path
) -> None:
    """Raise DataError naming every label of ``examples`` that is not in ``known_labels``.

    The message lists the unknown labels sorted by name, each with its count and first line.
    Unlabeled examples (label None) are ignored.
    """
    known = set(known_labels)
    counts: Counter[str] = Counter()
    first_line: dict[str, int] = {}
    for example in examples:
        if example.label is not None and example.label not in known:
            counts[example.label] += 1
            first_line.setdefault(example.label, example.line)
    if not counts:
        return
    names = sorted(counts)
    shown = [_describe_label(n, counts[n], first_line[n]) for n in names[:_MAX_LISTED]]
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    hint = "fix the labels, or add training examples of these classes"
    if len(names) > len(known):
        hint += "; so many unknown labels may mean a wrong format or column order"
    raise DataError(
        f"{len(names)} label(s) not in the training data: {', '.join(shown)}{more}",
        path=path,
        line=first_line[names[0]] if len(names) == 1 and first_line[names[0]] else None,
        hint=hint,
    )


def _describe_label(name: str, count: int, line: int) -> str:
    where = f", first on line {line}" if line else ""
    return f"{name!r} ({count} example{'s' if count != 1 else ''}{where})"
