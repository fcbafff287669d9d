"""Hyper-parameter search (Optuna) and experiment tracking (MLflow): resuming, several workers on
one study, pruning, failed trials, the kept best model, the report, and runs read back through
the MLflow client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import textcls
from conftest import make_examples, write_tsv
from textcls.cli import main
from textcls.errors import ConfigError
from textcls.search import read_space, run_search, trial_config

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
