"""Hyper-parameter search (Optuna) and experiment tracking (MLflow): resuming, several workers on
one study, pruning, failed trials, the kept best model, the report, and runs read back through
the MLflow client."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import textcls
from conftest import SMALL_ENCODER_PARAMS, TINY, make_examples, write_tsv
from textcls.cli import main
from textcls.errors import ConfigError
from textcls.search import MODEL_RECORD, Param, read_space, run_search, trial_config

optuna = pytest.importorskip("optuna", reason="pip install 'textcls[search]'")

FAST = {
    "model": "cnn",
    "vectors": "random",
    "vectors_dim": 16,
    "epochs": 3,
    "batch_size": 16,
    "patience": 0,
    "tensorboard": False,
    "cpu": True,
}
SPACE = """params:
  train.lr: {type: float, low: 1.0e-3, high: 5.0e-2, log: true}
  model.encoder.params.num_filters: {type: int, low: 4, high: 12, step: 4}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("search-data")
    for split, (n, seed) in {"train": (30, 0), "valid": (8, 1), "test": (8, 2)}.items():
        write_tsv(root / f"{split}.txt", make_examples(n, seed))
    return root


def space_file(tmp_path: Path, text: str = SPACE) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def trials_of(storage: str, study: str) -> list:
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


# ------------------------------------------------------------------------------------------ space
CONDITIONAL_ON_LATER = """params:
  model.encoder.params.growth: {type: int, low: 1, high: 2, when: {model.encoder.name: x}}
"""


def test_space_is_checked_before_any_trial(tmp_path) -> None:
    bad = {
        "params: {}": "non-empty",
        "params:\n  train.lr: {type: gaussian}": "type",
        "params:\n  train.lr: {type: float, low: 1}": "low' and 'high",
        "params:\n  train.lr: {type: float, low: 2, high: 1}": "above high",
        "params:\n  train.lr: {type: float, low: 0, high: 1, log: true}": "log scale",
        "params:\n  train.lr: {type: categorical, choices: []}": "choices",
        CONDITIONAL_ON_LATER: "sampled before",
    }
    for text, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            read_space(space_file(tmp_path, text))


def test_conditional_parameters_follow_the_encoder(tmp_path) -> None:
    space = read_space(REPO_SPACES / "densenet-cnn.yaml")
    base = textcls.TextClassifier(model="densenet-cnn").config
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        sampled: dict = {}
        for param in space:
            if param.applies(sampled):
                sampled[param.path] = param.suggest(trial)
        config = trial_config(base, sampled)
        name = sampled["model.encoder.name"]
        seen.add(name)
        assert config.model.encoder.name == name
        if name == "cnn":
            assert (
                "growth" not in config.model.encoder.params and "num_filters" in config.model.encoder.params
            )
        else:
            assert (
                "num_filters" not in config.model.encoder.params and "growth" in config.model.encoder.params
            )
        study.tell(trial, 0.5)
    assert seen == {"cnn", "densenet-cnn"}


REPO_SPACES = Path(__file__).resolve().parents[1] / "configs" / "search"


def test_shipped_spaces_are_valid() -> None:
    for path in REPO_SPACES.glob("*.yaml"):
        assert read_space(path), path


# ----------------------------------------------------------------------------------------- search
def test_search_keeps_the_best_model_and_resumes_numbering(data, tmp_path) -> None:
    out = tmp_path / "best"
    first = run_search(str(data), space=space_file(tmp_path), trials=3, out=out, study="s", **FAST)
    storage = first["storage"]
    assert storage.startswith("sqlite:///") and (out / "search.db").is_file()
    assert [t.number for t in trials_of(storage, "s")] == [0, 1, 2]
    before = {t.number: t.params for t in trials_of(storage, "s")}
    second = run_search(str(data), space=space_file(tmp_path), trials=5, out=out, study="s", **FAST)
    trials = trials_of(storage, "s")
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert {t.number: t.params for t in trials[:3]} == before  # resumed, not restarted
    assert second["trials"] == 5
    # the kept model is a normal model directory: it loads and scores what the best trial scored
    kept = json.loads((out / "search_trial.json").read_text())
    assert kept["trial"] == second["best_trial"]
    classifier = textcls.load(out)
    assert classifier.predict(["song album guitar band"])[0]["label"] == "music"
    assert (
        textcls.load(out).config.model.encoder.params["num_filters"]
        == second["best_params"]["model.encoder.params.num_filters"]
    )
    report = out / "search"
    table = (report / "trials.md").read_text()
    assert table.count("\n| ") == 5 + 1  # header + one row per trial
    assert json.loads((report / "trials.json").read_text())["summary"]["best_trial"] == second["best_trial"]
    assert (report / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert (report / "importances.png").read_bytes()[:4] == b"\x89PNG"


def test_pruning_stops_a_hopeless_trial(data, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'prune.db'}"
    space = space_file(tmp_path, "params:\n  train.lr: {type: categorical, choices: [0.03, 1.0e-7]}\n")
    study = optuna.create_study(study_name="p", storage=storage, direction="maximize")
    for lr in (0.03, 0.03, 0.03, 1e-7):  # three good trials, then one that cannot learn
        study.enqueue_trial({"train.lr": lr})
    options = {**FAST, "epochs": 5}
    summary = run_search(
        str(data), space=space, trials=4, storage=storage, study="p", pruner="median", **options
    )
    trials = trials_of(storage, "p")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"]
    assert len(trials[3].intermediate_values) < 5  # stopped before its last epoch
    assert summary["counts"] == {"complete": 3, "pruned": 1}


def test_failed_trials_are_recorded_and_the_search_goes_on(data, tmp_path, capsys) -> None:
    space = space_file(tmp_path, "params:\n  train.batch_size: {type: categorical, choices: [0, -3]}\n")
    summary = run_search(str(data), space=space, trials=2, out=tmp_path / "o", study="f", **FAST)
    assert summary["counts"] == {"fail": 2} and summary["best_trial"] is None
    rows = json.loads((tmp_path / "o" / "search" / "trials.json").read_text())["trials"]
    assert all("batch_size" in row["error"] for row in rows)  # each failure says why
    code = main(
        ["search", "--data", str(data), "--space", str(space), "--trials", "3", "--out", str(tmp_path / "o"),
         "--study", "f", "--model", "cnn", "--epochs", "1"]
    )  # fmt: skip
    assert code == 1 and "no trial completed" in capsys.readouterr().out


def test_two_workers_share_one_sqlite_study(data, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    space = space_file(tmp_path)
    script = (
        "import sys, json; sys.path.insert(0, 'tests');"
        "from textcls.search import run_search;"
        f"run_search({str(data)!r}, space={str(space)!r}, trials=6, storage={storage!r}, study='w',"
        f" seed=int(sys.argv[1]), **json.loads(sys.argv[2]))"
    )
    repo = Path(__file__).resolve().parents[1]
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(seed), json.dumps(FAST)], cwd=repo)
        for seed in (1, 2)
    ]
    assert [w.wait(300) for w in workers] == [0, 0]
    trials = trials_of(storage, "w")
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(numbers)))  # no duplicates, no gaps
    assert 6 <= len(trials) <= 7  # two workers may both start the last trial
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)  # none lost or left running


def test_cli_search(data, tmp_path, capsys) -> None:
    code = main(
        ["search", "--data", str(data), "--space", str(space_file(tmp_path)), "--model", "cnn",
         "--trials", "2", "--out", str(tmp_path / "cli"), "--study", "c", "--epochs", "2", "--pruner", "none"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "best trial" in out and "2 trials" in out
    assert (tmp_path / "cli" / "model.safetensors").is_file()


# --------------------------------------------------------------------------------------- tracking
def mlflow_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_train_with_mlflow_logs_params_steps_reports_and_model(data, tmp_path, capsys) -> None:
    pytest.importorskip("mlflow", reason="pip install 'textcls[track]'")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "runs" / "m"
    code = main(
        ["train", "--data", str(data), "--out", str(out), "--model", "cnn", "--vectors", "random",
         "--epochs", "3", "--track", "mlflow", "--tracking-uri", uri, "--experiment", "exp", "--log-model",
         "--no-progress", "--cpu"]
    )  # fmt: skip
    assert code == 0
    ref = json.loads((out / "train_result.json").read_text())["tracking"]
    client = mlflow_client(uri)
    run = client.get_run(ref["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "m"
    assert client.get_experiment(run.info.experiment_id).name == "exp"
    assert run.data.params["train.epochs"] == "3" and run.data.params["model.encoder.name"] == "cnn"
    history = client.get_metric_history(run.info.run_id, "valid/accuracy")
    assert [m.step for m in history] == sorted(m.step for m in history) and len(history) == 3
    assert run.data.metrics["best_valid_accuracy"] == pytest.approx(max(m.value for m in history))
    assert "test/accuracy" in run.data.metrics  # the evaluation after training joined the run
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "train_result.json", "model", "eval"} <= top
    evaluation = {a.path for a in client.list_artifacts(run.info.run_id, "eval/test")}
    assert {"eval/test/report.json", "eval/test/confusion.png"} <= evaluation
    model_files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert "model/model.safetensors" in model_files


def test_search_trials_are_nested_mlflow_runs(data, tmp_path) -> None:
    pytest.importorskip("mlflow", reason="pip install 'textcls[track]'")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = run_search(
        str(data), space=space_file(tmp_path), trials=2, out=tmp_path / "o", study="n", track="mlflow",
        tracking_uri=uri, **FAST,
    )  # fmt: skip
    client = mlflow_client(uri)
    experiment = client.get_experiment_by_name("textcls")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.info.run_name == "search-n"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.info.run_name for r in children) == ["n-trial-0", "n-trial-1"]
    assert parents[0].data.metrics["best_accuracy"] == pytest.approx(summary["best_value"])
    assert all("train.lr" in r.data.params for r in children)


# ------------------------------------------------------------------------------- the kept model
def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path → content)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def recorded(out: Path) -> set[str]:
    return set(json.loads((out / "search" / MODEL_RECORD).read_text())["entries"])


def test_out_keeps_other_work_and_swaps_only_the_model(data, tmp_path) -> None:
    out = tmp_path / "runs"  # `--out runs`: a folder that already holds a user's work
    textcls.TextClassifier(**TINY).fit(str(data), out_dir=out / "other-model", progress=False)
    (out / "notes.txt").write_text("my notes\n", encoding="utf-8")
    mine = optuna.create_study(study_name="mine", storage=f"sqlite:///{out / 'other.db'}")
    mine.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    before = snapshot(out)

    run_search(str(data), space=space_file(tmp_path), trials=2, out=out, study="a", **FAST)
    assert snapshot(out).items() >= before.items()  # every file of the user's work is still there
    assert textcls.load(out / "other-model").predict(["rain storm cold wind"])[0]["label"] == "weather"
    assert len(optuna.load_study(study_name="mine", storage=f"sqlite:///{out / 'other.db'}").trials) == 2
    assert textcls.load(out).predict(["song album guitar band"])[0]["label"] == "music"
    model = recorded(out)
    assert {"config.json", "model.safetensors", "vocab.txt", "labels.json", "search_trial.json"} <= model
    ours = model | {"search", "search.db"}
    assert {p.name for p in out.iterdir()} == ours | {"other-model", "notes.txt", "other.db"}  # no leftovers

    # the kept model is exported and evaluated; say it came with a backbone/ (a transformer's)
    for name in ("model.onnx", "model.int8.onnx", "export.json", "eval/test/report.json", "backbone/x.json"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("of the old model", encoding="utf-8")
    record = json.loads((out / "search" / MODEL_RECORD).read_text())
    record["entries"].append("backbone")
    (out / "search" / MODEL_RECORD).write_text(json.dumps(record), encoding="utf-8")

    # another study into the same folder: its first trial replaces the kept model
    run_search(
        str(data), space=space_file(tmp_path), trials=1, out=out, study="b",
        storage=f"sqlite:///{out / 'b.db'}", **FAST,
    )  # fmt: skip
    assert snapshot(out).items() >= before.items()
    stale = ("model.onnx", "model.int8.onnx", "export.json", "eval", "backbone")
    assert [name for name in stale if (out / name).exists()] == []  # they belonged to the old model
    assert json.loads((out / "search_trial.json").read_text())["study"] == "b"
    assert recorded(out) == model
    assert {p.name for p in out.iterdir()} == ours | {"other-model", "notes.txt", "other.db", "b.db"}
    assert textcls.load(out).predict(["goal match team score"])[0]["label"] == "sports"


def test_out_holding_a_model_search_did_not_write_is_refused(data, tmp_path) -> None:
    out = tmp_path / "my-model"
    textcls.TextClassifier(**TINY).fit(str(data), out_dir=out, progress=False)
    before = snapshot(out)
    with pytest.raises(ConfigError, match="not written by textcls search"):
        run_search(str(data), space=space_file(tmp_path), trials=1, out=out, study="x", **FAST)
    assert snapshot(out) == before  # nothing removed, nothing written


def test_out_of_an_earlier_search_without_a_record_is_replaced_in_place(data, tmp_path) -> None:
    out = tmp_path / "old-search"  # as searches wrote it before model_files.json: model + trial file
    textcls.TextClassifier(**TINY).fit(str(data), out_dir=out, progress=False)
    (out / "search_trial.json").write_text('{"trial": 0, "accuracy": 0.1}', encoding="utf-8")
    (out / "model.onnx").write_text("of the old model", encoding="utf-8")
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    run_search(str(data), space=space_file(tmp_path), trials=1, out=out, study="o", **FAST)
    assert (out / "notes.txt").read_text() == "mine\n" and not (out / "model.onnx").exists()
    assert json.loads((out / "search_trial.json").read_text())["study"] == "o"
    assert textcls.load(out).config.model.encoder.params["num_filters"] in (4, 8, 12)  # the space's


# ----------------------------------------------------------------------------- fault tolerance
REPO = Path(__file__).resolve().parents[1]
WORKER = (
    "import sys, json; sys.path.insert(0, 'tests');"
    "from textcls.search import run_search;"
    "args = json.loads(sys.argv[1]); run_search(args.pop('data'), **args)"
)


def start_worker(**kwargs) -> subprocess.Popen:
    """A search worker in its own process (``run_search(**kwargs)``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(kwargs)], cwd=REPO, env=env)


def poll(condition, what: str, worker: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if worker.poll() is not None:
            pytest.fail(f"the worker exited ({worker.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f} s")
        time.sleep(0.1)


def training(db: Path) -> set[int]:
    """Numbers of the RUNNING trials whose worker has recorded a heartbeat and a first epoch (so
    every parameter has been sampled)."""
    if not db.is_file():
        return set()
    connection = sqlite3.connect(db, timeout=60)
    try:
        rows = connection.execute(
            "SELECT DISTINCT t.number FROM trials t JOIN trial_heartbeats h ON h.trial_id = t.trial_id"
            " JOIN trial_intermediate_values v ON v.trial_id = t.trial_id WHERE t.state = 'RUNNING'"
        ).fetchall()
    except sqlite3.OperationalError:  # the worker has not created the tables yet
        return set()
    finally:
        connection.close()
    return {number for (number,) in rows}


def kill_and_age(worker: subprocess.Popen, db: Path) -> None:
    """SIGKILL the worker, then date its last heartbeat past the grace period (instead of waiting
    the two minutes that make a heartbeat stale)."""
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait(60) == -signal.SIGKILL
    connection = sqlite3.connect(db, timeout=60)
    try:
        connection.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")
        connection.commit()
    finally:
        connection.close()


def test_a_killed_workers_trial_is_failed_by_heartbeat_and_retried_once(data, tmp_path) -> None:
    db = tmp_path / "h.db"
    common = {"space": str(space_file(tmp_path)), "trials": 3, "storage": f"sqlite:///{db}", "study": "h"}
    endless = {**FAST, "epochs": 10**6}  # a trial that runs until its worker is killed
    first = start_worker(data=str(data), **common, **endless)
    poll(lambda: training(db) == {0}, "trial 0 training, with a heartbeat", first)
    kill_and_age(first, db)
    assert [t.state.name for t in trials_of(common["storage"], "h")] == ["RUNNING"]  # left behind

    second = start_worker(data=str(data), **common, **endless)  # fails trial 0, runs it again
    poll(lambda: training(db) == {1}, "the retry of trial 0 training", second)
    kill_and_age(second, db)
    zero, one = trials_of(common["storage"], "h")
    assert zero.state.name == "FAIL" and one.state.name == "RUNNING"
    assert one.system_attrs["failed_trial"] == 0 and one.params == zero.params  # the same trial again

    summary = run_search(str(data), out=tmp_path / "o", pruner="none", **common, **FAST)
    trials = trials_of(common["storage"], "h")
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert "failed_trial" not in trials[2].system_attrs  # a retry that died too is not retried again
    assert summary["best_trial"] == 2 and summary["counts"] == {"complete": 1, "fail": 2}
    rows = json.loads((tmp_path / "o" / "search" / "trials.json").read_text())["trials"]
    assert [row["retry_of"] for row in rows] == [None, 0, None]
    assert "heartbeats (retried)" in rows[0]["error"] and "heartbeats" in rows[1]["error"]


def test_the_best_trial_of_another_worker_is_retrained_into_out(data, tmp_path, caplog) -> None:
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    space = space_file(tmp_path, "params:\n  train.lr: {type: categorical, choices: [0.03, 1.0e-7]}\n")
    study = optuna.create_study(study_name="r", storage=storage, direction="maximize")
    study.enqueue_trial({"train.lr": 0.03})  # the other worker gets the good trial
    other = start_worker(
        data=str(data), space=str(space), trials=1, storage=storage, study="r", pruner="none", **FAST
    )
    assert other.wait(300) == 0
    study.enqueue_trial({"train.lr": 1e-7})  # this one a hopeless one
    out = tmp_path / "best"
    with caplog.at_level(logging.INFO, logger="textcls.search"):
        summary = run_search(
            str(data), space=space, trials=2, storage=storage, study="r", out=out, pruner="none", **FAST
        )
    first, second = trials_of(storage, "r")
    assert first.value > second.value and summary["best_trial"] == 0
    assert "retraining trial 0" in caplog.text
    assert json.loads((out / "search_trial.json").read_text()) == {
        "study": "r",
        "trial": 0,
        "accuracy": first.value,
    }
    classifier = textcls.load(out)
    assert classifier.config.train.lr == 0.03
    retrained = json.loads((out / "train_result.json").read_text())["best_metric"]
    assert retrained == pytest.approx(first.value)  # the same seed and config: the same model
    assert classifier.predict(["song album guitar band"])[0]["label"] == "music"


def test_timeout_stops_starting_new_trials(data, tmp_path, capsys) -> None:
    code = main(
        ["search", "--data", str(data), "--space", str(space_file(tmp_path)), "--model", "cnn",
         "--trials", "5", "--timeout", "0", "--out", str(tmp_path / "t0"), "--study", "t0", "--epochs", "1"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and ": 0 trials" in out and "no trial completed" in out
    summary = run_search(
        str(data), space=space_file(tmp_path), trials=1000, timeout=1.0, out=tmp_path / "t1", study="t1",
        **FAST,
    )  # fmt: skip
    trials = trials_of(summary["storage"], "t1")
    assert 1 <= len(trials) < 1000
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)  # the one under way finished


def test_hyperband_prunes_hopeless_trials(data, tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'hb.db'}"
    space = space_file(tmp_path, "params:\n  train.lr: {type: categorical, choices: [0.03, 1.0e-7]}\n")
    study = optuna.create_study(study_name="hyper", storage=storage, direction="maximize")
    for lr in (0.03, 0.03, 0.03, 1e-7, 1e-7, 1e-7):  # brackets follow the study name and trial number
        study.enqueue_trial({"train.lr": lr})
    summary = run_search(
        str(data), space=space, trials=6, storage=storage, study="hyper", pruner="hyperband",
        **{**FAST, "epochs": 9},
    )  # fmt: skip
    trials = trials_of(storage, "hyper")
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned and all(t.params["train.lr"] == 1e-7 for t in pruned)
    assert all(len(t.intermediate_values) < 9 for t in pruned)  # stopped before the last epoch
    assert all("completed_rung_0" in t.system_attrs for t in pruned)  # Hyperband's rungs, not a median
    assert trials[summary["best_trial"]].params["train.lr"] == 0.03


def test_metric_loss_is_minimised(data, tmp_path) -> None:
    out = tmp_path / "loss"
    summary = run_search(
        str(data), space=space_file(tmp_path), trials=3, out=out, study="l", metric="loss", pruner="none",
        **FAST,
    )  # fmt: skip
    study = optuna.load_study(study_name="l", storage=summary["storage"])
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    values = {t.number: t.value for t in study.trials}
    assert len(set(values.values())) == 3  # distinct, so the best is one trial
    assert summary["best_trial"] == min(values, key=values.get)
    assert summary["best_value"] == min(values.values())
    for trial in study.trials:  # a trial's value is its lowest validation loss, not its last
        assert trial.value == pytest.approx(min(trial.intermediate_values.values()))
    result = json.loads((out / "train_result.json").read_text())
    assert result["metric"] == "loss" and result["best_metric"] == pytest.approx(summary["best_value"])
    assert json.loads((out / "search_trial.json").read_text())["trial"] == summary["best_trial"]
    assert "loss (minimize)" in (out / "search" / "trials.md").read_text()


# ---------------------------------------------------------------------- JSON categorical choices
JSON_CHOICES = """params:
  model.encoder.params.kernel_sizes: {type: categorical, choices: [[2], [2, 3]]}
  model.embedding.trainable: {type: categorical, choices: [true, false]}
  train.class_weight: {type: categorical, choices: [null, balanced]}
  train.lr: {type: categorical, choices: [0.03, 1.0e-7]}
"""


def cell(value) -> str:
    """A value as the report writes it: as in the space file."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def report_rows(out: Path) -> dict[int, dict[str, str]]:
    """trials.md → {trial number: {column: cell}}."""
    lines = [line for line in (out / "search" / "trials.md").read_text().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split(" | ")))) for line in lines[2:]]
    return {int(row["trial"]): row for row in rows}


def dig(config: dict, path: str):
    for part in path.split("."):
        config = config[part]
    return config


def test_choices_are_encoded_only_when_optuna_cannot_hold_them() -> None:
    def param(choices):
        return Param("p", {"type": "categorical", "choices": choices})

    assert not param([32, 64]).encoded and not param([None, "balanced"]).encoded
    assert not param([True, False]).encoded
    assert param([[2, 3], [3, 4]]).encoded and param([{"a": 1}, None]).encoded
    assert param([1, True]).encoded  # equal in Python: Optuna would confuse them
    study = optuna.create_study()
    trial = study.ask()
    assert param([[2, 3], [3, 4]]).suggest(trial) in ([2, 3], [3, 4])
    assert trial.params["p"] in ("[2, 3]", "[3, 4]")
    for bad, message in (("[1, 1]", "repeat"), ("[2020-01-01]", "JSON values")):
        with pytest.raises(ConfigError, match=message):
            read_space_text(f"params:\n  p: {{type: categorical, choices: {bad}}}\n")


def read_space_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return read_space(space_file(Path(tmp), text))


def test_categorical_choices_may_be_lists_nulls_and_booleans(data, tmp_path) -> None:
    out, storage = tmp_path / "j", f"sqlite:///{tmp_path / 'j.db'}"
    study = optuna.create_study(study_name="j", storage=storage, direction="maximize")
    for lr in (0.03, 1e-7, 0.03, 1e-7):  # values that differ, so that importances can be computed
        study.enqueue_trial({"train.lr": lr})
    summary = run_search(
        str(data), space=space_file(tmp_path, JSON_CHOICES), trials=4, out=out, study="j", storage=storage,
        pruner="none", **FAST,
    )  # fmt: skip
    trials = trials_of(summary["storage"], "j")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    rows = report_rows(out)
    reported = {
        r["number"]: r["params"] for r in json.loads((out / "search" / "trials.json").read_text())["trials"]
    }
    for t in trials:
        sampled = t.user_attrs["params"]
        assert sampled["model.encoder.params.kernel_sizes"] in ([2], [2, 3])
        assert sampled["model.embedding.trainable"] in (True, False)
        assert sampled["train.class_weight"] in (None, "balanced")
        for path, value in sampled.items():  # the config trained is the one sampled
            assert dig(t.user_attrs["config"], path) == value
            assert rows[t.number][path] == cell(value)  # the report names the real values
        assert reported[t.number] == sampled
        assert t.params["model.encoder.params.kernel_sizes"] in ("[2]", "[2, 3]")  # JSON text in Optuna
    best = summary["best_params"]
    assert (
        textcls.load(out).config.model.encoder.params["kernel_sizes"]
        == best["model.encoder.params.kernel_sizes"]
    )
    assert (out / "search" / "importances.png").read_bytes()[:4] == b"\x89PNG"  # optuna 5 crashed here


def test_a_failing_report_step_is_a_warning(data, tmp_path, monkeypatch, caplog) -> None:
    from optuna.visualization import matplotlib as views

    def broken(study):
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(views, "plot_param_importances", broken)
    out = tmp_path / "w"
    with caplog.at_level(logging.WARNING, logger="textcls.search"):
        summary = run_search(str(data), space=space_file(tmp_path), trials=2, out=out, study="w", **FAST)
    assert summary["best_trial"] is not None and summary["counts"] == {"complete": 2}
    assert "no importances plot: TypeError" in caplog.text
    assert (out / "search" / "trials.md").is_file() and (out / "search" / "history.png").is_file()
    assert not (out / "search" / "importances.png").exists()
    assert textcls.load(out).predict(["song album guitar band"])[0]["label"] == "music"


# --------------------------------------------------------------------------- the shipped spaces
WITHOUT_MODEL = {k: v for k, v in FAST.items() if k != "model"}  # the base config names the model


@pytest.mark.parametrize("space", sorted(REPO_SPACES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_space_runs(space, data, tmp_path) -> None:
    """Two trials of each configs/search/*.yaml over its base config (configs/<same name> when
    there is one), one epoch, small encoder sizes where the space leaves them to the base."""
    from textcls.api import build_config

    config = REPO_SPACES.parent / space.name
    config = config if config.is_file() else None
    encoder = build_config(None if config else "cnn", config=config).model.encoder.name
    out = tmp_path / "out"
    summary = run_search(
        str(data), space=space, config=config, model=None if config else "cnn", trials=2, out=out,
        study=space.stem, pruner="none", **{**WITHOUT_MODEL, "epochs": 1},
        encoder_params=SMALL_ENCODER_PARAMS[encoder],
    )  # fmt: skip
    trials = trials_of(summary["storage"], space.stem)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"], [
        t.user_attrs.get("error") for t in trials
    ]
    params = read_space(space)
    rows = report_rows(out)
    reported = {
        r["number"]: r["params"] for r in json.loads((out / "search" / "trials.json").read_text())["trials"]
    }
    for t in trials:
        sampled = t.user_attrs["params"]
        applies: dict = {}
        for param in params:
            if param.applies(applies):
                applies[param.path] = sampled[param.path]
        assert sampled == applies  # every parameter that applies, nothing else
        for path, value in sampled.items():
            assert dig(t.user_attrs["config"], path) == value
            assert rows[t.number][path] == cell(value)
        assert reported[t.number] == sampled
    assert textcls.load(out).predict(["song album guitar band"])[0]["label"] in ("music", "sports", "weather")
