"""Several named text fields (title, body): reading them, the three modes, every backend, predict
with fields (CLI and Python), the HTTP API and the web page."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

import textcls
from conftest import CLASS_WORDS, TINY
from textcls.data.splits import read_data_file
from textcls.errors import DataError, InputError
from textcls.inference.predictor import load_predictor

LABELS = list(CLASS_WORDS)


def field_examples(count: int, seed: int) -> list[tuple[str, str, str]]:
    """(title, body, label): the title holds the label's words, the body another class's words,
    so only a model that reads the title (and knows which field is which) is right."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = LABELS[i % len(LABELS)]
        other = rng.choice([name for name in LABELS if name != label])
        title = " ".join(rng.choices(CLASS_WORDS[label], k=rng.randint(2, 4)))
        body = " ".join(rng.choices(CLASS_WORDS[other], k=rng.randint(4, 9)))
        rows.append((title, body, label))
    rng.shuffle(rows)
    return rows


def write_fields(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, (count, seed) in {"train": (120, 0), "valid": (30, 1), "test": (30, 2)}.items():
        lines = "".join(f"{t}\t{b}\t{label}\n" for t, b, label in field_examples(count, seed))
        (folder / f"{split}.txt").write_text(lines, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_fields(tmp_path_factory.mktemp("fields") / "data")


def train(data: Path, out: Path, fields: str, **overrides):
    settings = {
        **TINY,
        "epochs": 6,
        "lr": 3e-2,
        "text_columns": ["title", "body"],
        "fields": fields.split(","),
    }
    settings.update(overrides)
    textcls.TextClassifier(**settings).fit(data, out_dir=out, progress=False)
    return out


@pytest.fixture(scope="module")
def both(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "both"
    train(data, out, "title,body")
    return out


def accuracy(predictor, rows, fields=("title", "body")) -> float:
    inputs = [dict(zip(("title", "body"), (t, b), strict=True)) for t, b, _ in rows]
    inputs = [{k: v for k, v in item.items() if k in fields} for item in inputs]
    predicted = [p["label"] for p in predictor.predict(inputs)]
    return float(np.mean([p == label for p, (_, _, label) in zip(predicted, rows, strict=True)]))


# ------------------------------------------------------------------------------------- reading
def test_fields_pick_named_columns_of_a_headerless_tsv(data) -> None:
    first = data.joinpath("train.txt").read_text(encoding="utf-8").splitlines()[0].split("\t")
    for fields, text, pair in (
        (["body"], first[1], None),
        (["title"], first[0], None),
        (["title", "body"], first[0], first[1]),
        (["body", "title"], first[1], first[0]),
    ):
        example = read_data_file(data / "train.txt", text_columns=["title", "body"], fields=fields)[0]
        assert (example.text, example.text_pair, example.label) == (text, pair, first[2])


def test_fields_of_csv_and_jsonl_need_no_text_columns(tmp_path) -> None:
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"title": "T", "body": "B", "label": "x"})
        + "\n"
        + json.dumps({"title": "U", "body": "C", "label": "y"})
        + "\n",
        encoding="utf-8",
    )
    (tmp_path / "a.csv").write_text("body,title,label\nB,T,x\nC,U,y\n", encoding="utf-8")
    for name in ("a.jsonl", "a.csv"):
        rows = read_data_file(tmp_path / name, fields=["title", "body"])
        assert [(e.text, e.text_pair) for e in rows] == [("T", "B"), ("U", "C")]
        assert [e.text for e in read_data_file(tmp_path / name, fields=["body"])] == ["B", "C"]


def test_an_unknown_field_names_the_file_line_and_the_columns(data, tmp_path) -> None:
    with pytest.raises(DataError) as error:
        read_data_file(data / "train.txt", fields=["title"])  # columns unnamed: text, text_pair
    message = str(error.value)
    assert "train.txt:1" in message and "'title'" in message and "--text-columns" in message
    (tmp_path / "h.tsv").write_text("subject\tbody\tlabel\nhi\tthere\tx\nyo\tyou\ty\n", encoding="utf-8")
    assert [e.text for e in read_data_file(tmp_path / "h.tsv", fields=["subject"])] == ["hi", "yo"]
    with pytest.raises(DataError, match="'title'"):
        read_data_file(tmp_path / "h.tsv", fields=["title", "body"])


def test_more_than_two_fields_is_a_config_error() -> None:
    with pytest.raises(textcls.errors.ConfigError, match="one or two"):
        textcls.TextClassifier(fields=["a", "b", "c"])


# ---------------------------------------------------------------------------- word models
def test_the_three_modes_read_what_they_are_told(data, both, tmp_path) -> None:
    rows = field_examples(60, 7)
    title_model = load_predictor(train(data, tmp_path / "title", "title"))
    body_model = load_predictor(train(data, tmp_path / "body", "body"))
    two = load_predictor(both)
    assert title_model.fields == ["title"] and two.fields == ["title", "body"]
    assert accuracy(title_model, rows, ("title",)) >= 0.9
    # the body holds one of the two other classes' words: at best a coin toss between them
    assert accuracy(body_model, rows, ("body",)) <= 0.7
    assert accuracy(two, rows) >= 0.9
    # a one-field model also takes the bare text
    assert title_model.predict([rows[0][0]])[0] == title_model.predict([{"title": rows[0][0]}])[0]


def test_fields_are_encoded_apart_not_joined(both) -> None:
    """Swapping title and body swaps the answer: the model knows which field a word came from."""
    predictor = load_predictor(both)
    music, sports = "song album guitar", "goal match team score player"
    assert predictor.predict([{"title": music, "body": sports}])[0]["label"] == "music"
    assert predictor.predict([{"title": sports, "body": music}])[0]["label"] == "sports"
    model = predictor.model
    assert model.parts == 2 and model.head.linear.in_features == 2 * model.encoder.output_dim


def test_separate_weights_give_one_encoder_per_field(data, tmp_path) -> None:
    classifier = train(data, tmp_path / "sep", "title,body", field_weights="separate", epochs=12)
    model = load_predictor(classifier).model
    assert len(model.encoder) == 2
    first, second = (dict(e.named_parameters()) for e in model.encoder)
    assert any(not np.allclose(first[k].detach(), second[k].detach()) for k in first)
    assert json.loads((tmp_path / "sep" / "config.json").read_text())["model"]["field_weights"] == "separate"
    assert accuracy(load_predictor(classifier), field_examples(30, 8)) >= 0.8  # chance: 0.33


def test_missing_or_extra_fields_are_clear_errors(both) -> None:
    predictor = load_predictor(both)
    for bad, words in (
        ({"title": "song"}, "missing field(s) body"),
        ({"title": "song", "body": "x", "author": "me"}, "unexpected field(s) author"),
        ("song album", "reads the fields title, body"),
        ({"title": "song", "body": 3}, "'body' is int"),
    ):
        with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
            predictor.predict([bad])


def test_fields_survive_reload_onnx_and_evaluation(both, data) -> None:
    from textcls.inference.export import export_model

    export_model(both, quantize="int8")
    rows = field_examples(20, 9)
    inputs = [{"title": t, "body": b} for t, b, _ in rows]
    torch_logits = load_predictor(both).logits(inputs)
    for backend in ("onnx", "onnx-int8", "torch-int8"):
        logits = load_predictor(both, backend=backend).logits(inputs)
        tolerance = 1e-4 if backend == "onnx" else 0.5
        assert np.abs(logits - torch_logits).max() < tolerance, backend
    report = textcls.load(both).evaluate(data / "test.txt", latency=False)
    assert report["accuracy"] >= 0.9  # the test file is read with the model's fields


@pytest.mark.parametrize("model", ["fasttext", "linear"])
def test_bag_models_with_fields_on_the_numpy_backend(data, tmp_path, model) -> None:
    lr = {"fasttext": 1.0, "linear": 1e-3}[model]  # fastText's SGD takes a large rate
    classifier = train(data, tmp_path / model, "title,body", model=model, encoder_params={}, epochs=8, lr=lr)
    rows = field_examples(30, 10)
    inputs = [{"title": t, "body": b} for t, b, _ in rows]
    torch_logits = load_predictor(classifier).logits(inputs)
    numpy_logits = load_predictor(classifier, backend="numpy").logits(inputs)
    assert np.abs(numpy_logits - torch_logits).max() < 1e-4
    assert accuracy(load_predictor(classifier, backend="numpy"), rows) >= 0.9


# ---------------------------------------------------------------------------- transformers
def test_a_transformer_pair_keeps_the_title_whole(tmp_path) -> None:
    from textcls.config import BackboneConfig
    from textcls.embeddings.transformer import TransformerFeaturizer, import_transformers
    from tiny_backbones import build

    tokenizer = import_transformers().AutoTokenizer.from_pretrained(build("bert", tmp_path / "bert"))
    named = TransformerFeaturizer(tokenizer, 32, BackboneConfig(name_or_path="x"), ["title", "body"])
    unnamed = TransformerFeaturizer(tokenizer, 32, BackboneConfig(name_or_path="x"))
    title, body = " ".join(["song"] * 12), " ".join(["goal"] * 60)
    title_ids = tokenizer(title, add_special_tokens=False)["input_ids"]
    kept = named.encode([{"title": title, "body": body}])[0][0]["input_ids"]
    assert len(kept) == 32 and kept[1 : 1 + len(title_ids)] == title_ids  # after [CLS]
    cut = unnamed.encode([(title, body)])[0][0]["input_ids"]
    assert len(cut) == 32  # the unnamed pair cuts the longest segment first
    with pytest.raises(InputError, match="missing field"):
        named.encode([{"title": title}])


def test_a_transformer_trains_and_serves_with_fields(data, tmp_path) -> None:
    from tiny_backbones import build

    backbone = build("bert", tmp_path / "bert", [t for t, _, _ in field_examples(60, 0)])
    classifier = textcls.TextClassifier(
        model=str(backbone),
        epochs=2,
        batch_size=16,
        lr=1e-3,
        tensorboard=False,
        cpu=True,
        text_columns=["title", "body"],
        fields=["title", "body"],
        max_length=32,
        patience=0,
    )
    classifier.fit(data, out_dir=tmp_path / "tf", progress=False)
    predictor = load_predictor(tmp_path / "tf")
    assert predictor.fields == ["title", "body"]
    inputs = [{"title": t, "body": b} for t, b, _ in field_examples(10, 3)]
    from textcls.inference.export import export_model

    export_model(tmp_path / "tf")
    assert (
        np.abs(
            load_predictor(tmp_path / "tf", backend="onnx").logits(inputs) - predictor.logits(inputs)
        ).max()
        < 1e-3
    )


# ------------------------------------------------------------------------------------- CLI
def test_cli_predict_with_fields(both, tmp_path, capsys, monkeypatch) -> None:
    from textcls import cli

    assert (
        cli.main(["predict", str(both), "--field", "title=song album guitar", "--field", "body=goal match"])
        == 0
    )
    assert capsys.readouterr().out.startswith("music ")
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        '{"title": "goal match team", "body": "song"}\n{"title": "rain snow", "body": "song"}\n', "utf-8"
    )
    assert cli.main(["predict", str(both), "--file", str(lines), "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["predictions"][0]["label"] for o in out] == ["sports", "weather"]
    assert out[0]["text"] == {"title": "goal match team", "body": "song"}
    lines.write_text("just a text\n", "utf-8")
    assert cli.main(["predict", str(both), "--file", str(lines)]) == 2
    assert "in.jsonl:1" in capsys.readouterr().err
    assert cli.main(["predict", str(both), "--field", "title=song"]) == 2
    assert "missing field(s) body" in capsys.readouterr().err


def test_cli_train_modes(data, tmp_path, capsys) -> None:
    from textcls import cli

    args = [
        "train",
        "--data",
        str(data),
        "--vectors",
        "random",
        "--vectors-dim",
        "8",
        "--epochs",
        "1",
        "--no-tensorboard",
        "--text-columns",
        "title,body",
    ]
    assert cli.main([*args, "--fields", "body", "--out", str(tmp_path / "m1")]) == 0
    assert json.loads((tmp_path / "m1" / "config.json").read_text())["data"]["fields"] == ["body"]
    assert cli.main([*args, "--fields", "title,nope", "--out", str(tmp_path / "m2")]) == 2
    assert "'nope'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- serving
@pytest.fixture(scope="module")
def store(both, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store")
    shutil.copytree(both, root / "news")
    return root


def settings(store: Path):
    from textcls.serve.app import ServeSettings

    return ServeSettings(models={"news": str(store / "news")}, model_store=str(store), max_delay_ms=2.0)


def test_http_api_takes_fields_by_name(store) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from textcls.serve.app import create_app

    with TestClient(create_app(settings(store)), base_url="http://127.0.0.1:8080") as client:
        ok = client.post("/predictions/news", json={"title": "song album guitar", "body": "goal match"})
        assert ok.status_code == 200 and ok.json()["predictions"][0][0]["label"] == "music"
        many = client.post(
            "/predictions/news",
            json={"texts": [{"title": "goal team", "body": "song"}, {"title": "rain snow", "body": "song"}]},
        )
        assert [p[0]["label"] for p in many.json()["predictions"]] == ["sports", "weather"]
        missing = client.post("/predictions/news", json={"title": "song"})
        assert missing.status_code == 422 and "missing field(s) body" in missing.json()["message"]
        extra = client.post("/predictions/news", json={"title": "a", "body": "b", "x": "c"})
        assert extra.status_code == 422 and "unexpected field(s) x" in extra.json()["message"]
        plain = client.post("/predictions/news", content="song", headers={"content-type": "text/plain"})
        assert plain.status_code == 422 and '"title"' in plain.json()["message"]
        empty = client.post("/predictions/news", json={"title": " ", "body": ""})
        assert empty.status_code == 422
        assert client.get("/served").json()["models"][0]["fields"] == ["title", "body"]


def test_web_page_shows_one_box_per_field(store, tmp_path) -> None:
    from test_serve import CHROMIUM, LiveServer
    from textcls.serve.app import create_app

    if not CHROMIUM.exists():
        if shutil.which("apt-get"):
            pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
        pytest.skip(
            "LOUD SKIP: no /usr/bin/chromium and no apt-get to install it; the browser test did not run"
        )
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install 'textcls[browser-test]'")
    with LiveServer(create_app(settings(store))) as live, playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        page = browser.new_page()
        page.goto(live.url + "/")
        page.wait_for_selector("#field-title")
        assert page.locator("#input").is_hidden()
        assert page.locator("#fields textarea").count() == 2
        page.fill("#field-title", "goal match team")
        page.fill("#field-body", "song album")
        page.click("#go")
        page.wait_for_selector(".result")
        assert page.locator(".result .label").first.inner_text() == "sports"
        assert "title: goal match team" in page.inner_text(".result .text")
        browser.close()


def test_auto_chooses_among_models_that_read_the_fields(data, tmp_path) -> None:
    from test_auto import FAST, LADDER
    from textcls.auto import train_auto

    board = train_auto(
        data, tmp_path / "auto", time_budget=300, candidates=LADDER[:2],
        text_columns=["title", "body"], fields=["title", "body"], **FAST,
    )  # fmt: skip
    rows = {r["candidate"]: r for r in board["rows"]}
    assert {rows["linear"]["status"], rows["mean"]["status"]} <= {"ok", "winner"}
    winner_row = rows[board["winner"]]
    assert winner_row["test_accuracy"] >= 0.9  # read with the fields: only the title decides
    assert load_predictor(tmp_path / "auto" / "candidates" / "mean").fields == ["title", "body"]
    winner = load_predictor(tmp_path / "auto", backend=board["backend"])
    assert winner.fields == ["title", "body"]
    assert winner.predict([{"title": "goal match team", "body": "song album"}])[0]["label"] == "sports"
