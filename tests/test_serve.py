"""The model server: every route with good and bad input, management safety, dynamic batching,
concurrency, graceful shutdown, and the web page in a real browser (Debian chromium + Playwright)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import textcls
from conftest import TINY, make_examples
from textcls.errors import ConfigError
from textcls.serve.app import ServeSettings, create_app
from textcls.serve.batching import DynamicBatcher

fastapi = pytest.importorskip("fastapi", reason="pip install 'textcls[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MUSIC, SPORTS = "song album guitar band", "goal match team score"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A model store with two tiny trained word models, a broken one, and a pickle-only one."""
    root = tmp_path_factory.mktemp("store")
    train, valid = make_examples(30, 0), make_examples(8, 1)
    textcls.TextClassifier(**{**TINY, "epochs": 8, "lr": 3e-2}).fit(
        train, valid, out_dir=root / "tiny", progress=False
    )
    shutil.copytree(root / "tiny", root / "tiny-copy")
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json", encoding="utf-8")
    (root / "pickled").mkdir()
    (root / "pickled" / "config.json").write_text((root / "tiny" / "config.json").read_text(), "utf-8")
    (root / "pickled" / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    return root


def settings(store: Path, **overrides) -> ServeSettings:
    base = {
        "models": {"tiny": str(store / "tiny"), "broken": str(store / "broken")},
        "model_store": str(store),
        "token": TOKEN,
        "max_delay_ms": 2.0,
    }
    return ServeSettings(**{**base, **overrides})


@pytest.fixture(scope="module")
def client(store: Path):
    with TestClient(create_app(settings(store))) as test_client:
        yield test_client


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"code", "type", "message"}
    assert body["code"] == response.status_code
    return body


# ----------------------------------------------------------------------------------- inference
def test_ping_reports_partial_health_when_a_model_failed(client) -> None:
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.json() == {"status": "Partial Healthy"}


def test_ping_is_healthy_when_every_model_loaded(store) -> None:
    with TestClient(create_app(settings(store, models={"tiny": str(store / "tiny")}))) as c:
        assert c.get("/ping").json() == {"status": "Healthy"}


def test_torchserve_form_data_returns_label_probabilities(client) -> None:
    response = client.post("/predictions/tiny", data={"data": MUSIC})
    assert response.status_code == 200
    scores = response.json()
    assert set(scores) == {"music", "sports", "weather"}
    assert max(scores, key=scores.get) == "music"
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_torchserve_file_upload_and_raw_body(client) -> None:
    upload = client.post("/predictions/tiny", files={"data": ("input.txt", SPORTS.encode(), "text/plain")})
    assert upload.status_code == 200 and max(upload.json(), key=upload.json().get) == "sports"
    raw = client.post(
        "/predictions/tiny?top_k=1", content=MUSIC.encode(), headers={"content-type": "text/plain"}
    )
    assert raw.status_code == 200 and list(raw.json()) == ["music"]


def test_json_texts_keep_their_order_and_top_k(client) -> None:
    response = client.post(
        "/predictions/tiny", json={"texts": [MUSIC, SPORTS, "rain storm cold"], "top_k": 2}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "tiny" and body["latency_ms"] > 0
    assert [p[0]["label"] for p in body["predictions"]] == ["music", "sports", "weather"]
    assert all(len(p) == 2 and p[0]["score"] >= p[1]["score"] for p in body["predictions"])


def test_json_single_text_matches_the_python_api(client, store) -> None:
    body = client.post("/predictions/tiny", json={"text": MUSIC, "top_k": 3}).json()
    expected = textcls.load(store / "tiny").predict([MUSIC], top_k=3)[0]
    assert [p["label"] for p in body["predictions"][0]] == [p["label"] for p in expected]
    np.testing.assert_allclose(
        [p["score"] for p in body["predictions"][0]], [p["score"] for p in expected], atol=1e-6
    )


@pytest.mark.parametrize(
    ("kwargs", "code", "kind"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "BadRequestException",
        ),
        ({"json": {"texts": []}}, 422, "InvalidInputException"),
        ({"json": {"texts": ["ok", "   "]}}, 422, "InvalidInputException"),
        ({"json": {"texts": ["ok", 3]}}, 422, "InvalidInputException"),
        ({"json": {"text": "a", "texts": ["b"]}}, 422, "InvalidInputException"),
        ({"json": ["a list"]}, 422, "InvalidInputException"),
        ({"json": {"text": "ok", "top_k": 0}}, 422, "InvalidInputException"),
        ({"json": {"text": "ok", "top_k": "many"}}, 422, "InvalidInputException"),
        ({"data": {"data": ""}}, 422, "InvalidInputException"),
        ({"data": {"other": "field"}}, 422, "InvalidInputException"),
        ({"content": b"\xff\xfe\xfa", "headers": {"content-type": "text/plain"}}, 400, "BadRequestException"),
    ],
)
def test_bad_prediction_requests_get_clear_4xx(client, kwargs, code, kind) -> None:
    response = client.post("/predictions/tiny", **kwargs)
    assert response.status_code == code, response.text
    assert error_of(response)["type"] == kind


def test_limits_on_texts_text_length_and_body(store) -> None:
    limited = settings(store, max_texts=3, max_text_chars=50, max_body_bytes=2000)
    with TestClient(create_app(limited)) as c:
        too_many = c.post("/predictions/tiny", json={"texts": ["a"] * 4})
        assert too_many.status_code == 413 and "limit is 3" in error_of(too_many)["message"]
        too_long = c.post("/predictions/tiny", json={"text": "x" * 51})
        assert too_long.status_code == 413 and "51 characters" in error_of(too_long)["message"]
        too_big = c.post("/predictions/tiny", content=b"y" * 3000, headers={"content-type": "text/plain"})
        assert too_big.status_code == 413 and error_of(too_big)["type"] == "PayloadTooLargeException"
        assert c.post("/predictions/tiny", json={"texts": ["a", "b", "c"]}).status_code == 200


def test_unknown_and_failed_models(client) -> None:
    unknown = client.post("/predictions/nope", json={"text": "hi"})
    assert unknown.status_code == 404 and error_of(unknown)["type"] == "ModelNotFoundException"
    broken = client.post("/predictions/broken", json={"text": "hi"})
    assert broken.status_code == 503 and "FAILED" in error_of(broken)["message"]


def test_served_lists_names_for_the_page_without_a_token(client) -> None:
    models = {m["modelName"]: m for m in client.get("/served").json()["models"]}
    assert models["tiny"]["status"] == "READY" and models["tiny"]["labels"] == ["music", "sports", "weather"]
    assert models["broken"]["status"] == "FAILED"
    assert "modelUrl" not in models["tiny"]  # no paths without the token


def test_web_page_and_openapi_are_served(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<textarea" in page.text and "/served" in page.text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ping", "/predictions/{name}", "/models", "/models/{name}", "/metrics"} <= set(paths)


def test_metrics_count_requests_latency_and_batch_sizes(client) -> None:
    client.post("/predictions/tiny", json={"texts": [MUSIC, SPORTS]})
    client.post("/predictions/nope", json={"text": "x"})
    text = client.get("/metrics").text
    assert 'textcls_requests_total{code="200",model="tiny",route="/predictions/{name}"}' in text
    assert 'code="404"' in text
    assert 'textcls_batch_size_bucket{le="2.0",model="tiny"}' in text
    assert "textcls_request_latency_seconds_count" in text


# ---------------------------------------------------------------------------------- management
def test_management_needs_the_bearer_token(client) -> None:
    assert client.get("/models").status_code == 401
    assert client.get("/models", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/models", headers={"Authorization": TOKEN}).status_code == 401  # no scheme
    assert client.delete("/models/tiny").status_code == 401
    assert client.post("/models?url=tiny-copy").status_code == 401
    listed = client.get("/models", headers=AUTH)
    assert listed.status_code == 200
    statuses = {m["modelName"]: m["status"] for m in listed.json()["models"]}
    assert statuses == {"tiny": "READY", "broken": "FAILED"}


def test_describe_model(client) -> None:
    [info] = client.get("/models/tiny", headers=AUTH).json()
    assert info["modelName"] == "tiny" and info["status"] == "READY" and info["backend"] == "torch"
    assert info["labels"] == ["music", "sports", "weather"] and info["batching"]["max_batch_size"] == 32
    [broken] = client.get("/models/broken", headers=AUTH).json()
    assert broken["status"] == "FAILED" and broken["error"]
    assert client.get("/models/nope", headers=AUTH).status_code == 404


def test_register_predict_and_unregister(store) -> None:
    with TestClient(create_app(settings(store))) as c:
        added = c.post("/models?url=tiny-copy&model_name=copy&backend=torch-int8", headers=AUTH)
        assert added.status_code == 200 and "copy" in added.json()["status"]
        body = c.post("/predictions/copy", json={"text": MUSIC}).json()
        assert body["predictions"][0][0]["label"] == "music"
        [info] = c.get("/models/copy", headers=AUTH).json()
        assert info["backend"] == "torch-int8"
        assert c.post("/models?url=tiny-copy&model_name=copy", headers=AUTH).status_code == 409
        assert c.delete("/models/copy", headers=AUTH).json() == {"status": 'Model "copy" unregistered'}
        assert c.post("/predictions/copy", json={"text": MUSIC}).status_code == 404
        assert c.delete("/models/copy", headers=AUTH).status_code == 404


def test_registration_refuses_traversal_outside_paths_and_pickles(store, tmp_path) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(store / "tiny", outside)
    link = store / "sneaky-link"
    if not link.exists():
        link.symlink_to(outside, target_is_directory=True)
    with TestClient(create_app(settings(store))) as c:
        for url in ("../outside", str(outside), "sneaky-link", "tiny/../../outside"):
            response = c.post("/models", params={"url": url, "model_name": "x"}, headers=AUTH)
            assert response.status_code == 400, url
            assert "outside the model store" in error_of(response)["message"]
        pickled = c.post("/models?url=pickled", headers=AUTH)
        assert pickled.status_code == 400 and "pytorch_model.bin" in error_of(pickled)["message"]
        missing = c.post("/models?url=does-not-exist", headers=AUTH)
        assert missing.status_code == 400
        bad_name = c.post("/models", params={"url": "tiny-copy", "model_name": "../x"}, headers=AUTH)
        assert bad_name.status_code == 400
        bad_backend = c.post("/models?url=tiny-copy&model_name=b&backend=gpu9", headers=AUTH)
        assert bad_backend.status_code == 400
        failing = c.post("/models?url=broken&model_name=b2", headers=AUTH)
        assert failing.status_code == 400  # no model.safetensors
        assert c.get("/ping").status_code == 200  # the server is still up


def test_registration_of_a_model_that_fails_to_load_keeps_the_server_up(store, tmp_path) -> None:
    bad = store / "bad-weights"
    if not bad.exists():
        shutil.copytree(store / "tiny", bad)
        (bad / "model.safetensors").write_bytes(b"garbage")
    with TestClient(create_app(settings(store))) as c:
        response = c.post("/models?url=bad-weights", headers=AUTH)
        assert response.status_code == 500 and "failed to load" in error_of(response)["message"]
        assert c.post("/predictions/tiny", json={"text": MUSIC}).status_code == 200
        names = [m["modelName"] for m in c.get("/models", headers=AUTH).json()["models"]]
        assert "bad-weights" not in names


def test_management_refused_off_loopback_without_token(store) -> None:
    with pytest.raises(ConfigError, match="needs a token"):
        create_app(settings(store, host="0.0.0.0", token=None))
    create_app(settings(store, host="0.0.0.0", token=None, management=False))  # inference only is fine
    with TestClient(create_app(settings(store, management=False))) as c:
        assert c.get("/models", headers=AUTH).status_code == 403


def test_loopback_without_token_leaves_management_open(store) -> None:
    with TestClient(create_app(settings(store, token=None))) as c:
        assert c.get("/models").status_code == 200


def test_cli_serve_refuses_public_host_without_token(capsys, monkeypatch) -> None:
    from textcls.cli import main

    monkeypatch.delenv("TEXTCLS_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "needs a token" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ batching
def test_batcher_groups_concurrent_requests_and_answers_each() -> None:
    sizes: list[int] = []

    def predict(texts):
        return np.asarray([[float(len(t)), 0.0] for t in texts])

    async def scenario():
        batcher = DynamicBatcher(predict, max_batch_size=8, max_delay_ms=50, on_batch=sizes.append)
        texts = [[("x" * n)] for n in range(1, 21)]
        results = await asyncio.gather(*(batcher.submit(t) for t in texts))
        await batcher.close()
        return results

    results = asyncio.run(scenario())
    assert [float(r[0, 0]) for r in results] == [float(n) for n in range(1, 21)]
    assert sum(sizes) == 20 and max(sizes) <= 8 and len(sizes) < 20  # grouped, never over the limit


def test_batcher_off_runs_one_request_at_a_time() -> None:
    sizes: list[int] = []

    async def scenario():
        batcher = DynamicBatcher(
            lambda t: np.zeros((len(t), 2)), max_batch_size=1, max_delay_ms=0, on_batch=sizes.append
        )
        await asyncio.gather(*(batcher.submit(["a"]) for _ in range(5)))
        await batcher.close()

    asyncio.run(scenario())
    assert sizes == [1] * 5


def test_batcher_failure_fails_only_that_batch_and_keeps_running() -> None:
    def predict(texts):
        if "boom" in texts:
            raise ValueError("bad batch")
        return np.ones((len(texts), 2))

    async def scenario():
        batcher = DynamicBatcher(predict, max_batch_size=1, max_delay_ms=0)
        with pytest.raises(ValueError, match="bad batch"):
            await batcher.submit(["boom"])
        result = await batcher.submit(["fine"])
        await batcher.close()
        return result

    assert asyncio.run(scenario()).shape == (1, 2)


def test_batcher_close_finishes_queued_work() -> None:
    def predict(texts):
        time.sleep(0.02)
        return np.ones((len(texts), 2))

    async def scenario():
        batcher = DynamicBatcher(predict, max_batch_size=2, max_delay_ms=1)
        pending = [asyncio.ensure_future(batcher.submit([str(i)])) for i in range(6)]
        await asyncio.sleep(0)  # let them queue
        await batcher.close()
        return [p.done() and not p.cancelled() and p.exception() is None for p in pending]

    assert all(asyncio.run(scenario()))


# --------------------------------------------------------------------------------- live server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn in a background thread on a free loopback port."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=10
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def test_parallel_requests_each_get_their_own_answer_in_batches(store) -> None:
    import httpx

    texts = [
        f"{MUSIC} {i}" if i % 3 == 0 else (f"{SPORTS} {i}" if i % 3 == 1 else f"rain storm {i}")
        for i in range(48)
    ]
    expected = [p["label"] for p in textcls.load(store / "tiny").predict(texts)]
    with LiveServer(create_app(settings(store, max_delay_ms=20, max_batch_size=16))) as live:

        async def run():
            async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
                responses = await asyncio.gather(
                    *(http.post("/predictions/tiny", json={"text": t}) for t in texts)
                )
                metrics = (await http.get("/metrics")).text
                return responses, metrics

        responses, metrics = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    assert [r.json()["predictions"][0][0]["label"] for r in responses] == expected
    count = float(
        next(
            l for l in metrics.splitlines() if l.startswith('textcls_batch_size_count{model="tiny"}')
        ).split()[-1]
    )
    assert count < len(texts)  # some requests shared a predictor call


def test_graceful_shutdown_finishes_in_flight_requests(store) -> None:
    import httpx

    live = LiveServer(create_app(settings(store, max_delay_ms=500, max_batch_size=64)))
    with live:
        results: list[int] = []

        def call() -> None:
            results.append(
                httpx.post(f"{live.url}/predictions/tiny", json={"text": MUSIC}, timeout=30).status_code
            )

        workers = [threading.Thread(target=call) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(0.2)  # the requests are waiting in the 500 ms batch window
        live.server.should_exit = True
        for worker in workers:
            worker.join(30)
    assert results == [200, 200, 200, 200]


# ------------------------------------------------------------------------------------- browser
CHROMIUM = Path("/usr/bin/chromium")


def test_web_page_in_a_real_browser(store, tmp_path) -> None:
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
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        page = browser.new_page()
        page.goto(live.url + "/")
        page.wait_for_selector("#model option[value=tiny]", state="attached")
        assert page.locator("#model option[value=broken]").is_disabled()
        page.select_option("#model", "tiny")
        page.fill("#input", f"{MUSIC}\n{SPORTS}")
        page.click("#go")
        page.wait_for_selector(".result >> nth=1")
        results = page.locator(".result")
        assert results.count() == 2
        assert results.nth(0).locator(".label").first.inner_text() == "music"
        assert results.nth(1).locator(".label").first.inner_text() == "sports"
        width = results.nth(0).locator(".fill").first.evaluate("e => parseFloat(e.style.width)")
        assert 33 < width <= 100
        assert "ms" in page.inner_text("#latency")
        page.fill("#input", "   ")
        page.click("#go")
        assert "at least one text" in page.inner_text("#error")
        page.screenshot(path=str(tmp_path / "page.png"))
        browser.close()
    assert (tmp_path / "page.png").stat().st_size > 1000


def test_workers_build_their_app_from_the_environment(store, monkeypatch) -> None:
    import dataclasses

    from textcls.serve.app import SETTINGS_ENV, app_from_env

    monkeypatch.setenv(SETTINGS_ENV, json.dumps(dataclasses.asdict(settings(store, management=False))))
    with TestClient(app_from_env()) as c:
        assert (
            c.post("/predictions/tiny", json={"text": MUSIC}).json()["predictions"][0][0]["label"] == "music"
        )
        assert c.get("/models", headers=AUTH).status_code == 403


def test_cli_serve_model_names(monkeypatch, store, capsys) -> None:
    from textcls import cli

    seen = {}
    monkeypatch.setattr("textcls.serve.app.serve", lambda s, **kw: seen.update(settings=s, **kw))
    assert (
        cli.main(["serve", f"a={store / 'tiny'}", str(store / "tiny-copy"), "--no-batching", "--port", "9"])
        == 0
    )
    assert seen["settings"].models == {"a": str(store / "tiny"), "tiny-copy": str(store / "tiny-copy")}
    assert seen["settings"].max_batch_size == 1 and seen["port"] == 9
    assert cli.main(["serve", str(store / "tiny"), f"tiny={store / 'tiny-copy'}"]) == 2
    assert "two models are named 'tiny'" in capsys.readouterr().err
