"""Mutation testing of textcls's core modules with mutmut (``make mutate``).

One mutmut run per module, each in its own working copy ``mutants/<module>/`` (git-ignored) and with
only the tests that exercise that module (``MODULES`` below; the shared settings are
``[tool.mutmut]`` in pyproject.toml). Then a table of killed / survived / timeout per module and
the diff of every mutant the tests did not kill.

    .venv/bin/python tools/mutate.py                  # every module
    .venv/bin/python tools/mutate.py metrics splits   # some of them
    .venv/bin/python tools/mutate.py --jobs 1         # mutmut workers (default 2, MUTATE_JOBS)

Every run starts from a fresh copy: mutmut keeps a survivor's verdict between runs even when new
tests were added, and a fresh copy checks every mutant again. Afterwards, in ``mutants/<module>/``,
``../../.venv/bin/mutmut show NAME`` shows one mutant and ``mutmut browse`` all of them; the table
and the survivors are also written to ``mutants/summary.txt``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # mutmut depends on toml before 3.11
    import toml as tomllib

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "mutants"
LINKED = ("src", "tests", "data", "configs")  # what a working copy sees of the checkout
MUTMUT = Path(sys.executable).with_name("mutmut")
RECORD = "mutate.json"  # per working copy: the mutants that count, the time taken
# Single-threaded everything: the tests' torch (tests/conftest.py sets 1 thread too), OpenMP, BLAS.
THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@dataclass
class Module:
    """A file to mutate and the tests that exercise it.

    ``functions``: mutate only these functions (all of the file when empty), plus, in the file's
    other functions, the mutants that change a line matching ``lines``.
    """

    path: str
    tests: list[str]
    functions: list[str] = field(default_factory=list)
    lines: str | None = None


GATE_TESTS = [
    f"tests/test_inference.py::{name}"
    for name in (
        "test_failing_gate_raises_and_removes_the_int8_model",
        "test_forced_gate_keeps_the_int8_model_and_says_so",
        "test_failing_gate_on_the_command_line",
        "test_passing_gate_on_the_command_line",
        "test_gate_refuses_an_int8_model_that_lost_accuracy",
        "test_gate_figures_are_the_accuracies_of_the_files",
        "test_recorded_int8_accuracy_is_measured_on_a_passing_model_too",
        "test_gate_on_the_command_line_with_the_default_max_drop",
    )
] + [
    f"tests/test_predictor.py::{name}"
    for name in (
        "test_gate_accuracy_counts_a_label_the_model_never_saw_as_wrong",
        "test_gate_a_drop_of_exactly_max_drop_passes",
        "test_gate_force_on_a_passing_model_is_not_recorded_as_forced",
        "test_gate_a_forced_failure_is_logged_as_such",
    )
]

MODULES = {
    "metrics": Module("src/textcls/metrics.py", ["tests/test_evaluation.py"]),
    "splits": Module("src/textcls/data/splits.py", ["tests/test_data.py"]),
    "batching": Module(
        "src/textcls/data/batching.py",
        [
            "tests/test_tokenizer.py",
            "tests/test_training.py::test_every_training_example_is_seen_every_epoch",
        ],
    ),
    "predictor": Module(
        "src/textcls/inference/predictor.py",
        [
            "tests/test_predictor.py",
            "tests/test_evaluation.py",
            "tests/test_inference.py::test_sorted_logits_restores_the_input_order",
        ],
    ),
    # the int8 accuracy gate: the accuracies it compares (_gate, accuracy) and, in export_model,
    # the lines that turn them into pass / fail / forced
    "export-gate": Module(
        "src/textcls/inference/export.py",
        GATE_TESTS,
        functions=["_gate", "accuracy"],
        lines=r"\b(passed|max_drop|force|_gate)\b",
    ),
}

STATUSES = ("killed", "survived", "timeout", "no tests")  # the table's columns; anything else: other


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("modules", nargs="*", metavar="MODULE", help="some of: " + ", ".join(MODULES))
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATE_JOBS", "2")))
    parser.add_argument("--report", action="store_true", help="only summarize the last runs in mutants/")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    settings = shared_settings()
    names = args.modules or list(MODULES)
    failed = []
    started = time.monotonic()
    for name in [] if args.report else names:
        print(f"mutmut: {name} ({MODULES[name].path})", flush=True)
        try:
            run_module(name, MODULES[name], settings, args.jobs)
        except MutmutFailed as error:
            print(error, file=sys.stderr, flush=True)
            failed.append(name)
            continue
        print(f"  {format_counts(report_module(name, MODULES[name])[0])}", flush=True)
    done = [name for name in names if (WORK / name / RECORD).is_file() and name not in failed]
    rows, reports = [], []
    for name in done:
        row, survivors = report_module(name, MODULES[name])
        rows.append(row)
        reports += survivors
    lines = [table(rows)]
    if not args.report:
        lines.append(f"total time {time.monotonic() - started:.0f} s")
    lines += [f"FAILED (see mutants/{name}/mutmut.log): {name}" for name in failed]
    if not rows:
        lines.append("no finished run in mutants/")
    summary = "\n".join([*lines, "", *(reports or ["no survivors"] if rows else [])])
    print("\n" + summary)
    WORK.mkdir(exist_ok=True)
    (WORK / "summary.txt").write_text(summary + "\n", encoding="utf-8")
    return 1 if failed or not rows else 0


class MutmutFailed(Exception):
    pass


def shared_settings() -> dict:
    """``[tool.mutmut]`` of pyproject.toml, checked against ``MODULES``."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]
    listed = set(settings.get("only_mutate", []))
    covered = {m.path for m in MODULES.values()}
    if listed != covered:
        raise SystemExit(
            f"pyproject.toml [tool.mutmut] only_mutate {sorted(listed)} and the files of MODULES in "
            f"tools/mutate.py {sorted(covered)} must be the same files"
        )
    return settings


def run_module(name: str, module: Module, settings: dict, jobs: int) -> None:
    """Mutate ``module`` in a fresh working copy; the mutants that count and the time taken go to
    ``mutants/<name>/mutate.json``."""
    started = time.monotonic()
    workspace = prepare(name, module, settings)
    key = module.path.removeprefix("src/").removesuffix(".py").replace("/", ".")
    patterns = [f"{key}.x_{function}__mutmut_*" for function in module.functions]
    mutmut(workspace, jobs, patterns)
    selected = list(exit_codes(workspace, module))
    if patterns:
        chosen = [
            mutant
            for mutant in selected
            if not matches(mutant, patterns)
            and module.lines
            and changes_line(workspace, module, mutant, module.lines)
        ]
        if chosen:
            mutmut(workspace, jobs, chosen)
        selected = [m for m in selected if matches(m, patterns) or m in chosen]
    record = {"selected": selected, "seconds": round(time.monotonic() - started, 1)}
    (workspace / RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def report_module(name: str, module: Module) -> tuple[dict, list[str]]:
    """The table row of a finished run and the diff of each mutant it did not kill."""
    from mutmut.stats import status_by_exit_code

    workspace = WORK / name
    record = json.loads((workspace / RECORD).read_text(encoding="utf-8"))
    codes = exit_codes(workspace, module)
    status = {mutant: status_by_exit_code[codes[mutant]] for mutant in record["selected"]}
    row = {"module": name, "total": len(status), "seconds": record["seconds"]}
    for column in STATUSES:
        row[column] = sum(s == column for s in status.values())
    row["other"] = row["total"] - sum(row[c] for c in STATUSES)
    survivors = [
        f"## {mutant} ({s})\n{diff(workspace, module, mutant)}\n"
        for mutant, s in sorted(status.items(), key=lambda item: natural(item[0]))
        if s != "killed"
    ]
    return row, survivors


def prepare(name: str, module: Module, settings: dict) -> Path:
    """A fresh working copy: links to the checkout and a pyproject.toml whose ``[tool.mutmut]`` is
    the shared settings with this module's file and tests."""
    workspace = WORK / name
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    for entry in LINKED:
        (workspace / entry).symlink_to(Path("..") / ".." / entry)
    own = {**settings, "only_mutate": [module.path], "pytest_add_cli_args_test_selection": module.tests}
    project = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[)", "", project)
    # JSON strings, numbers, booleans and lists of them are valid TOML
    lines = [f"{key} = {json.dumps(value)}" for key, value in own.items()]
    (workspace / "pyproject.toml").write_text(project + "\n[tool.mutmut]\n" + "\n".join(lines) + "\n")
    return workspace


def mutmut(workspace: Path, jobs: int, names: list[str]) -> None:
    command = [str(MUTMUT), "run", "--max-children", str(jobs), *names]
    env = {**os.environ, **THREADS_ENV}
    with open(workspace / "mutmut.log", "a", encoding="utf-8") as log:
        code = subprocess.run(
            command, cwd=workspace, env=env, stdout=log, stderr=subprocess.STDOUT
        ).returncode
    if code != 0:
        tail = (workspace / "mutmut.log").read_text(encoding="utf-8", errors="replace")[-3000:]
        raise MutmutFailed(f"{tail}\nmutmut failed in {workspace} (exit {code}); see {workspace}/mutmut.log")


def exit_codes(workspace: Path, module: Module) -> dict[str, int | None]:
    meta = workspace / "mutants" / f"{module.path}.meta"
    return json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]


def matches(mutant: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(mutant, p) for p in patterns)


def diff(workspace: Path, module: Module, mutant: str) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    previous = Path.cwd()
    os.chdir(workspace)  # mutmut reads mutants/<path> from the working directory
    try:
        return get_diff_for_mutant(mutant, path=module.path)
    finally:
        os.chdir(previous)


def changes_line(workspace: Path, module: Module, mutant: str, pattern: str) -> bool:
    """Whether the mutant changes an original line that matches ``pattern``."""
    removed = [
        line[1:]
        for line in diff(workspace, module, mutant).splitlines()
        if line.startswith("-") and not line.startswith("---")
    ]
    return any(re.search(pattern, line) for line in removed)


def natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("_")
    return stem, int(number) if number.isdigit() else 0


def format_counts(row: dict) -> str:
    return ", ".join(f"{row[c]} {c}" for c in (*STATUSES, "other") if row[c] or c in STATUSES[:3])


def table(rows: list[dict]) -> str:
    columns = ["module", *STATUSES, "other", "total", "seconds"]
    body = [[str(row[c]) if c != "seconds" else f"{row[c]:.0f}" for c in columns] for row in rows]
    totals = ["all", *(str(sum(row[c] for row in rows)) for c in columns[1:-1]), ""]
    widths = [max(len(r[i]) for r in [columns, *body, totals]) for i in range(len(columns))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(columns), rule, *map(line, body), line(totals)])


if __name__ == "__main__":
    sys.exit(main())
