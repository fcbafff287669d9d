"""Batch prediction past one machine: a ``Predictor`` inside a Dask bag's partitions.

``pip install 'textcls[dask]'``. Dask reads the files in blocks (local disks, shared storage, or
s3:// gs:// hdfs:// ... through fsspec), hands the blocks to its workers, and writes the answers
back; textcls only supplies the function each partition runs. That function takes the model from a
per-process cache, so every worker loads it once, however many partitions it answers::

    from distributed import Client
    from textcls.integrations.dask import predict_files

    client = Client("tcp://scheduler:8786")  # an existing cluster (or LocalCluster() for one box)
    parts = predict_files(
        "/shared/models/snips-cnn",  # a directory every worker can read
        "s3://bucket/texts/*.txt",  # one text per line, like ``textcls predict --file``
        "s3://bucket/answers/",  # part-00000.jsonl, part-00001.jsonl, ... in input order
        blocksize="64MiB",
        storage_options={"anon": False},  # passed to fsspec, for reading and writing
    )

Concatenated in name order (``cat answers/part-*.jsonl``), the parts hold exactly what
``textcls predict MODEL --file F --out answers.jsonl`` writes for the inputs taken in path order:
one JSON line ``{"text", "predictions"}`` per input line, blank lines included, in order. Lines
are split as ``read_text_lines`` splits them (on ``\\n`` only; a trailing ``\\r`` and a file's
UTF-8 BOM removed). Labels are the streaming ones; a score can differ from the streaming run's in
its last float bits (~1e-7) when a block starts at a line that is not a multiple of ``chunk_size``,
because texts are batched with other neighbours (with ``blocksize=None``, one partition per file,
the answers are the streaming ones bit for bit).

To continue a pipeline instead, ``predict_bag`` returns the answers as a lazy bag of dicts, and
``predict_partition`` is the map function itself, for a bag of texts from anywhere::

    bag = read_lines("s3://bucket/texts/*.txt").map_partitions(predict_partition, "/shared/model")

Every worker needs textcls with the model's backend installed; ``threads`` (default 1) is the
torch / ONNX Runtime intra-op threads per worker process, so run one worker thread per core
(``dask worker --nthreads 1 --nworkers N``) or lower ``threads`` accordingly.

Why Dask rather than Ray Data or Spark: it is pure Python and pip-installable next to textcls (no
JVM, no separate runtime), its bags read large line-oriented files in byte ranges from any fsspec
storage, and the same code runs on a laptop (``LocalCluster``), a Kubernetes or HPC cluster
(dask-kubernetes, dask-jobqueue) or a managed one, so the integration stays this small.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textcls.errors import DataError, MissingDependencyError
from textcls.inference.stream import DEFAULT_CHUNK, format_answer, parse_line

if TYPE_CHECKING:
    from dask.bag import Bag

    from textcls.inference.predictor import Predictor

__all__ = [
    "clear_cache",
    "predict_bag",
    "predict_files",
    "predict_partition",
    "read_lines",
    "worker_predictor",
    "worker_stats",
]

PART_NAME = "part-{:05d}.jsonl"  # output file of partition i: sorts in input order

# The per-process model cache: one Predictor per (model directory, backend, threads) in each worker
# process, shared by its threads; _LOADS and _WORK say what this process did (see worker_stats).
_MODELS: dict[tuple[str, str, int | None], Predictor] = {}
_LOADS: Counter[str] = Counter()
_WORK: Counter[str] = Counter()
_LOCK = threading.Lock()


def _require_dask() -> Any:
    try:
        import dask.bag
    except ImportError:
        raise MissingDependencyError("dask", "dask", "batch prediction on a Dask cluster") from None
    return dask.bag


class _Lines(list):
    """One partition of ``read_lines``: its lines, and where they come from, for error messages."""

    source: str = "<dask partition>"


def _block_lines(block: bytes, path: str, index: int, blocks: int) -> _Lines:
    """The lines of one block of a file, split like ``read_text_lines``: on ``\\n`` only, a
    trailing ``\\r`` removed, the UTF-8 BOM removed from the file's first line, blank lines kept."""
    from textcls.data.formats import _BOM, _UTF8_HINT

    lines = _Lines()
    if index > 0:  # a line number counts from the block's first line
        lines.source = f"{path} (block {index + 1} of {blocks}, lines counted from its start)"
    else:
        lines.source = path
    raws = block.split(b"\n")
    if raws[-1] == b"":  # the block ends with a newline (or is empty): no line after it
        raws.pop()
    for number, raw in enumerate(raws, start=1):
        raw = raw.removesuffix(b"\r")
        if number == 1 and index == 0:
            raw = raw.removeprefix(_BOM)
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(
                f"not valid UTF-8 (byte 0x{raw[exc.start : exc.start + 1].hex()} at byte {exc.start + 1})",
                path=lines.source,
                line=number,
                hint=_UTF8_HINT,
            ) from None
    return lines


def read_lines(
    paths: str | Path | list[str | Path],
    *,
    blocksize: int | str | None = "64MiB",
    compression: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Bag:
    """A bag of the lines of ``paths`` (a path, a glob, a URL fsspec opens, or a list of them), in
    order: files in path order, each read in blocks of about ``blocksize`` bytes (one partition a
    block; ``None``: one partition per file). The lines are those ``textcls predict --file`` reads.
    ``compression`` ("gzip", ...) needs ``blocksize=None``: a compressed file cannot be split."""
    bag = _require_dask()
    from dask.bytes import read_bytes
    from dask.delayed import delayed

    if isinstance(paths, list | tuple):
        paths = [str(path) for path in paths]
    _, per_file, names = read_bytes(
        str(paths) if isinstance(paths, Path) else paths,
        delimiter=b"\n",
        blocksize=blocksize,
        sample=False,
        compression=compression,
        include_path=True,
        **(storage_options or {}),
    )
    split = delayed(_block_lines, pure=True)
    parts = [
        split(block, str(name), index, len(blocks))
        for blocks, name in zip(per_file, names, strict=True)
        for index, block in enumerate(blocks)
    ]
    return bag.from_delayed(parts)


def worker_predictor(model_dir: str | Path, backend: str = "torch", threads: int | None = 1) -> Predictor:
    """This process's ``Predictor`` for the model: loaded (and checked, as ``load_predictor``
    checks it) on the first call, the same object on every later one, from every thread."""
    key = (str(model_dir), backend, threads)
    with _LOCK:  # a second thread waits for the first one's load instead of loading it again
        predictor = _MODELS.get(key)
        if predictor is None:
            from textcls.inference.predictor import load_predictor

            predictor = load_predictor(model_dir, backend=backend, threads=threads)
            _MODELS[key] = predictor
            _LOADS[str(model_dir)] += 1
    return predictor


def predict_partition(
    lines: Iterable[str],
    model_dir: str | Path,
    *,
    backend: str = "torch",
    threads: int | None = 1,
    top_k: int | None = None,
    threshold: float | None = None,
    batch_size: int = 64,
    chunk_size: int = DEFAULT_CHUNK,
    as_json: bool = False,
) -> list[Any]:
    """The map function: the answers to one partition of lines, in order, ``chunk_size`` lines per
    ``Predictor.predict`` call as ``predict_stream`` makes them. An answer is ``{"text",
    "predictions"}`` (``predictions``: the ranked list), or with ``as_json`` the JSON line (no
    newline) ``textcls predict --out`` writes. A model with fields reads JSON lines, as there."""
    from textcls.errors import ConfigError

    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
    predictor = worker_predictor(model_dir, backend, threads)
    source = getattr(lines, "source", _Lines.source)
    lines = lines if isinstance(lines, list) else list(lines)
    fields = predictor.fields
    answers: list[Any] = []
    for start in range(0, len(lines), chunk_size):
        chunk = [
            parse_line(line, fields, source, number)
            for number, line in enumerate(lines[start : start + chunk_size], start=start + 1)
        ]
        predicted = predictor.predict(chunk, top_k=top_k, batch_size=batch_size, threshold=threshold)
        for text, answer in zip(chunk, predicted, strict=True):
            ranked = answer if isinstance(answer, list) else [answer]
            answer = {"text": text, "predictions": ranked}
            answers.append(format_answer(text, ranked, as_json=True) if as_json else answer)
    with _LOCK:
        _WORK["partitions"] += 1
        _WORK["texts"] += len(lines)
    return answers


def predict_bag(
    model_dir: str | Path,
    paths: str | Path | list[str | Path],
    *,
    backend: str = "torch",
    threads: int | None = 1,
    top_k: int | None = None,
    threshold: float | None = None,
    batch_size: int = 64,
    chunk_size: int = DEFAULT_CHUNK,
    blocksize: int | str | None = "64MiB",
    compression: str | None = None,
    storage_options: dict[str, Any] | None = None,
    as_json: bool = False,
) -> Bag:
    """A lazy bag of the answers to every line of ``paths``, in order (see ``read_lines`` and
    ``predict_partition``); ``.compute()``, ``.to_textfiles()`` or keep mapping. ``model_dir`` is
    a directory path every worker can read (a relative one is made absolute here)."""
    model = os.path.abspath(model_dir)
    lines = read_lines(paths, blocksize=blocksize, compression=compression, storage_options=storage_options)
    options = {"top_k": top_k, "threshold": threshold, "batch_size": batch_size, "chunk_size": chunk_size}
    return lines.map_partitions(
        predict_partition, model, backend=backend, threads=threads, as_json=as_json, **options
    )


def _joined(lines: list[str]) -> list[bytes]:
    """A partition's JSON lines as the one UTF-8 block its part file holds (empty: an empty file)."""
    return ["".join(line + "\n" for line in lines).encode("utf-8")]


def predict_files(
    model_dir: str | Path,
    paths: str | Path | list[str | Path],
    out_dir: str | Path,
    *,
    backend: str = "torch",
    threads: int | None = 1,
    top_k: int | None = None,
    threshold: float | None = None,
    batch_size: int = 64,
    chunk_size: int = DEFAULT_CHUNK,
    blocksize: int | str | None = "64MiB",
    compression: str | None = None,
    storage_options: dict[str, Any] | None = None,
    client: Any = None,
) -> list[str]:
    """Predict every line of ``paths`` into ``out_dir`` (a directory or an fsspec URL), one
    ``part-NNNNN.jsonl`` per partition, and return the part paths in order: read one after the
    other, they are the lines ``textcls predict --out`` writes for the inputs in path order.
    ``client``: a ``distributed.Client`` (or a scheduler name such as "processes"); None: Dask's
    default, the active Client when there is one."""
    answers = predict_bag(
        model_dir,
        paths,
        backend=backend,
        threads=threads,
        top_k=top_k,
        threshold=threshold,
        batch_size=batch_size,
        chunk_size=chunk_size,
        blocksize=blocksize,
        compression=compression,
        storage_options=storage_options,
        as_json=True,
    )
    pattern = f"{str(out_dir).rstrip('/')}/{PART_NAME.replace('{:05d}', '*')}"
    compute = {} if client is None else {"scheduler": client}
    return answers.map_partitions(_joined).to_textfiles(
        pattern,
        name_function="{:05d}".format,
        encoding=None,  # bytes: exactly the UTF-8 and \n that predict_stream writes
        storage_options=storage_options,
        **compute,
    )


def worker_stats() -> dict[str, Any]:
    """What this process did: its pid, how many times it loaded each model, and the partitions and
    texts it answered. On a cluster: ``client.run(worker_stats)``, one entry per worker."""
    with _LOCK:
        return {"pid": os.getpid(), "loads": dict(_LOADS), **{k: _WORK[k] for k in ("partitions", "texts")}}


def clear_cache() -> None:
    """Drop this process's models (the next partition loads its model again): ``client.run(clear_cache)``
    frees the workers' memory after a run."""
    with _LOCK:
        _MODELS.clear()
