"""``textcls search`` on a real PostgreSQL server: two worker processes share one study URL and one
``--out``. The server is Debian's PostgreSQL (``make postgres`` installs it), started here in a
temporary directory on a free local port, as an unprivileged user when the tests run as root."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import make_examples, write_tsv

optuna = pytest.importorskip("optuna", reason="pip install 'textcls[search]'")
psycopg = pytest.importorskip("psycopg", reason="pip install 'textcls[postgres]'")

REPO = Path(__file__).resolve().parents[1]
TRIALS = 6  # the study's total, both workers together
SPACE = """params:
  train.lr: {type: float, low: 1.0e-3, high: 5.0e-2, log: true}
  model.encoder.params.num_filters: {type: int, low: 4, high: 12, step: 4}
"""
BASE_CONFIG = """model:
  embedding: {vectors: random, dim: 16}
  encoder: {name: cnn, params: {num_filters: 8, kernel_sizes: [2, 3]}}
train: {epochs: 3, batch_size: 16, patience: 0, tensorboard: false, cpu: true}
"""


# ------------------------------------------------------------------------------------ the server
def postgres_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/N/bin
    (the newest), which Debian does not put on PATH."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl", path=str(Path(found).parent)):
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in re.findall(r"\d+", p)]
    )
    for folder in reversed(versions):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A throw-away cluster in ``root``: initdb with trust authentication, pg_ctl start/stop. As
    root (initdb refuses it) every server command runs as ``nobody``, which owns ``root``."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir, self.root = bindir, root
        self.data, self.log = root / "data", root / "server.log"
        self.port = 0
        self.account = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            try:
                self.account = pwd.getpwnam("nobody")
            except KeyError:
                pytest.skip("the tests run as root and there is no user 'nobody' to run PostgreSQL as")
        if self.account is not None:
            os.chown(root, self.account.pw_uid, self.account.pw_gid)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        user = {}
        if self.account is not None:
            user = {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C", "HOME": str(self.root)},
            **user,
        )

    def check(self, done: subprocess.CompletedProcess, what: str) -> None:
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.is_file() else ""
            pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}")

    def start(self) -> None:
        initdb = (
            "initdb",
            "-D",
            str(self.data),
            "--auth=trust",
            "--username=textcls",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.check(self.run(*initdb), "initdb")
        for attempt in range(3):  # the free port may be taken between the probe and the start
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
            )
            done = self.run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start"
            )
            if done.returncode == 0:
                return
            if attempt == 2:
                self.check(done, "pg_ctl start")

    def stop(self) -> None:
        """Stop the server; one that does not stop is killed (its pid from postmaster.pid)."""
        pidfile = self.data / "postmaster.pid"
        if not pidfile.is_file():
            return
        try:
            if (
                self.run(
                    "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60
                ).returncode
                == 0
            ):
                return
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://textcls@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A running server with an empty database ``textcls``: its SQLAlchemy URL (psycopg 3)."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): "
            "`make postgres` installs Debian's package"
        )
    root = Path(tempfile.mkdtemp(prefix="textcls-pg-"))  # short: the socket path has a length limit
    server = None
    try:
        server = Server(bindir, root)
        server.start()
        with psycopg.connect(host="127.0.0.1", port=server.port, user="textcls", dbname="postgres") as admin:
            admin.autocommit = True
            admin.execute("CREATE DATABASE textcls")
        yield server.url("textcls")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------- search
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pg-search-data")
    for split, (n, seed) in {"train": (30, 0), "valid": (8, 1), "test": (8, 2)}.items():
        write_tsv(root / f"{split}.txt", make_examples(n, seed))
    return root


def search(data: Path, storage: str, out: Path, folder: Path, seed: int) -> subprocess.Popen:
    """One ``textcls search`` worker, output captured."""
    command = [
        sys.executable, "-m", "textcls", "search", "--data", str(data), "--space", str(folder / "space.yaml"),
        "--config", str(folder / "base.yaml"), "--trials", str(TRIALS), "--storage", storage,
        "--study", "shared", "--pruner", "none", "--metric", "loss", "--seed", str(seed), "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_two_workers_share_one_study_on_postgres(postgres, data, tmp_path) -> None:
    (tmp_path / "space.yaml").write_text(SPACE, encoding="utf-8")
    (tmp_path / "base.yaml").write_text(BASE_CONFIG, encoding="utf-8")
    out = tmp_path / "best"  # one --out for both workers, as on one machine
    workers = [search(data, postgres, out, tmp_path, seed) for seed in (1, 2)]
    try:
        outputs = [w.communicate(timeout=300)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output
        assert "best trial" in output

    study = optuna.load_study(study_name="shared", storage=postgres)
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # one number per trial, no gaps
    # --trials is the study's total; Optuna checks it after each trial, so two workers finishing
    # at the same moment may both start one more
    assert TRIALS <= len(trials) <= TRIALS + 1
    assert [t.state.name for t in trials] == ["COMPLETE"] * len(trials)  # none failed or left running

    # no trial ran twice: each was run by one worker, and neither was a heartbeat retry
    pids = {worker.pid for worker in workers}
    ran = {t.number: t.user_attrs["worker"]["pid"] for t in trials}
    assert set(ran.values()) == pids  # both workers ran trials of the one study
    assert not [t.number for t in trials if "failed_trial" in t.system_attrs]
    started = [  # each worker's log: the trials it started
        {int(n) for n in re.findall(rf"trial (\d+) started by worker \S+:{worker.pid}\b", output)}
        for worker, output in zip(workers, outputs, strict=True)
    ]
    assert started[0].isdisjoint(started[1]) and started[0] | started[1] == set(numbers)
    for worker, mine in zip(workers, started, strict=True):
        assert mine == {n for n, pid in ran.items() if pid == worker.pid}

    # the shared --out: the best trial's model and a report of every trial
    best = study.best_trial
    assert json.loads((out / "search_trial.json").read_text()) == {
        "study": "shared",
        "trial": best.number,
        "loss": best.value,
    }
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["lr"] == best.params["train.lr"]
    assert (
        config["model"]["encoder"]["params"]["num_filters"] == best.params["model.encoder.params.num_filters"]
    )
    assert (out / "model.safetensors").is_file()
    report = json.loads((out / "search" / "trials.json").read_text())
    assert report["summary"]["best_trial"] == best.number
    assert [(row["number"], row["state"]) for row in report["trials"]] == [(n, "COMPLETE") for n in numbers]
    assert {row["worker"].rsplit(":", 1)[1] for row in report["trials"]} == {str(pid) for pid in pids}
    assert (out / "search" / "trials.md").is_file()
    assert (
        not list(out.glob(".textcls-swap-*")) and not (out / "search.db").exists()
    )  # the study is on the server
