"""Reading data files and building train/valid/test splits."""

from textcls.data.formats import FORMATS, Example, detect_format, read_examples
from textcls.data.splits import (
    DataSplits,
    check_known_labels,
    find_split_files,
    load_splits,
    stratified_split,
)

__all__ = [
    "FORMATS",
    "DataSplits",
    "Example",
    "check_known_labels",
    "detect_format",
    "find_split_files",
    "load_splits",
    "read_examples",
    "stratified_split",
]
