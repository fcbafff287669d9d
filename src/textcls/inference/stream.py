"""Streaming batch prediction: one text per input line in, one answer per output line out.

``predict_stream(predictor, source, out)`` reads ``chunk_size`` lines, predicts them, writes their
answers and flushes before it reads the next chunk, so memory stays constant whatever the size of
the input, and output line i is the answer to input line i (blank lines included). With
``resume=True`` it continues a file an earlier, interrupted run was writing: a half-written last
line is cut off, and the input lines already answered are skipped. ``textcls predict --file`` and
``-`` (stdin) run through it; the Dask integration answers partitions with the same line
parsing and answer format.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

from textcls.errors import DataError

DEFAULT_CHUNK = 2048  # lines per predict call: large enough to batch well, small enough to stay flat
_BLOCK = 1 << 20  # bytes per read when lines are counted or a file is checked for resume
# Line breaks that str.splitlines() honours inside a JSON line: escaped, so one answer is one line.
_SEPARATORS = ("\u2028", "\u2029", "\x85")


@dataclass
class StreamResult:
    """What one streaming run did: lines answered now, lines an earlier run had written."""

    written: int
    skipped: int
    seconds: float

    @property
    def texts_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def parse_line(line: str, fields: list[str], source: str, number: int) -> Any:
    """One input line: a text, or for a model with fields a JSON object with their names (a
    one-field model also takes plain lines). Bad JSON names the file and the line."""
    if not fields or (len(fields) == 1 and not line.lstrip().startswith("{")):
        return line
    try:
        record = json.loads(line)
    except ValueError as error:
        raise DataError(
            f"not a JSON object: {error}",
            path=source,
            line=number,
            hint=f"this model reads the fields {', '.join(fields)}: write one JSON object per line, "
            "e.g. " + json.dumps({name: "..." for name in fields}),
        ) from None
    if not isinstance(record, dict):
        raise DataError("not a JSON object", path=source, line=number, hint="one object per line")
    return record


def parse_lines(lines: Iterable[str], fields: list[str], source: str, start: int = 1) -> Iterator[Any]:
    for number, line in enumerate(lines, start=start):
        yield parse_line(line, fields, source, number)


def format_answer(text: Any, prediction: Any, as_json: bool) -> str:
    """One output line (without its newline): JSON ``{"text", "predictions"}``, or the labels with
    their scores, a tab, and the text on one line."""
    ranked = prediction if isinstance(prediction, list) else [prediction]
    if as_json:
        line = json.dumps({"text": text, "predictions": ranked}, ensure_ascii=False)
        for separator in _SEPARATORS:
            line = line.replace(separator, f"\\u{ord(separator):04x}")
        return line
    if isinstance(text, dict):
        text = json.dumps(text, ensure_ascii=False)
    shown = " ".join(text.split()) if isinstance(text, str) else text
    answer = [
        f"{p['label']}{' (out of scope)' * bool(p.get('out_of_scope'))} {p['score']:.4f}" for p in ranked
    ]
    return "\t".join([*(answer or ["(no label)"]), str(shown)])


def count_lines(path: str | Path) -> int:
    """Lines of a file as ``read_text_lines`` yields them (a last line without ``\\n`` counts),
    read in blocks: constant memory."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def complete_lines(path: str | Path, multiple: int = 1) -> int:
    """Cut an interrupted run's output back to its last complete line, and further back to a
    whole number of ``multiple``-line chunks; return the lines kept. Resuming on a chunk boundary
    puts every text in the batch it had in an uninterrupted run: the same answers, bit for bit."""
    complete, end = 0, 0  # complete lines, and the byte just past the last newline
    with open(path, "r+b") as handle:
        offset = 0
        while block := handle.read(_BLOCK):
            complete += block.count(b"\n")
            cut = block.rfind(b"\n")
            if cut >= 0:
                end = offset + cut + 1
            offset += len(block)
        keep = complete - complete % multiple
        if keep < complete:  # the byte just past the keep-th newline
            handle.seek(0)
            seen, offset, end = 0, 0, 0
            while seen < keep and (block := handle.read(_BLOCK)):
                position = -1
                while seen < keep and (position := block.find(b"\n", position + 1)) >= 0:
                    seen += 1
                    end = offset + position + 1
                offset += len(block)
        handle.truncate(end)
    return keep


def predict_stream(
    predictor: Any,
    source: str | Path | IO[bytes],
    out: str | Path | IO[str] | None = None,
    *,
    top_k: int | None = None,
    threshold: float | None = None,
    batch_size: int = 64,
    chunk_size: int = DEFAULT_CHUNK,
    as_json: bool = True,
    resume: bool = False,
    progress: bool = False,
) -> StreamResult:
    """Predict every line of ``source`` (a path or a binary stream such as ``sys.stdin.buffer``)
    into ``out`` (a path, a text stream, or None for stdout), ``chunk_size`` lines at a time.
    ``predictor`` is a ``Predictor`` or a ``TextClassifier``. ``resume=True`` (``out`` a path)
    keeps the complete chunks ``out`` already holds and continues after them (with the same
    ``chunk_size``, every answer is the one an uninterrupted run writes)."""
    from textcls.data.formats import check_file, read_text_lines
    from textcls.errors import ConfigError
    from textcls.progress import ProgressBar

    predictor = getattr(predictor, "predictor", None) or predictor  # a TextClassifier's
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
    name = str(check_file(source)) if isinstance(source, str | Path) else getattr(source, "name", "<stdin>")
    skipped = 0
    if resume:
        if not isinstance(out, str | Path):
            raise ConfigError("resume needs an output file (--out): stdout cannot be continued")
        if Path(out).exists():
            skipped = complete_lines(out, multiple=chunk_size)
    total = count_lines(source) if isinstance(source, str | Path) else None
    if total is not None and skipped > total:
        raise DataError(
            f"{out} already holds {skipped} answers but the input has only {total} lines",
            path=name,
            hint="--resume continues the output of the same input; drop --resume to start over",
        )
    lines = read_text_lines(source)
    for _ in islice(lines, skipped):  # answered by the earlier run; still read, for line numbers
        pass
    texts = parse_lines(lines, predictor.fields, name, start=skipped + 1)
    handle, close = _open_output(out, append=skipped > 0)
    written, started = 0, time.perf_counter()
    remaining = None if total is None else total - skipped
    try:
        with ProgressBar(progress, "predicting", remaining, rate="texts/s") as advance:
            while chunk := list(islice(texts, chunk_size)):
                answers = predictor.predict(chunk, top_k=top_k, batch_size=batch_size, threshold=threshold)
                rows = zip(chunk, answers, strict=True)
                handle.write("".join(format_answer(text, answer, as_json) + "\n" for text, answer in rows))
                handle.flush()
                written += len(chunk)
                advance(steps=len(chunk), rate=written / max(time.perf_counter() - started, 1e-9))
    finally:
        if close:
            os.fsync(handle.fileno())
            handle.close()
    return StreamResult(written=written, skipped=skipped, seconds=time.perf_counter() - started)


def _open_output(out: str | Path | IO[str] | None, append: bool) -> tuple[IO[str], bool]:
    if out is None:
        return sys.stdout, False
    if isinstance(out, str | Path):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        return open(out, "a" if append else "w", encoding="utf-8", newline="\n"), True
    return out, False
