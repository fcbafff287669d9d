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
BASE = "http://127.0.0.1:8080"  # the Host the in-process client sends: the server's bound address
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
    with local_client(create_app(settings(store))) as test_client:
        yield test_client


def local_client(app) -> TestClient:
    """An in-process client that addresses the server by its loopback name, as curl would."""
    return TestClient(app, base_url=BASE)


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
    with local_client(create_app(settings(store, models={"tiny": str(store / "tiny")}))) as c:
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
    with local_client(create_app(limited)) as c:
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


# ---------------------------------------------------------------- malformed input is a 4xx, never a 500
def chunked(total: int, size: int = 4096):
    """A body sent with Transfer-Encoding: chunked (no Content-Length)."""
    for start in range(0, total, size):
        yield b"y" * min(size, total - start)


def test_oversized_chunked_body_is_413_not_500(store) -> None:
    # before: the limit raised inside the app, which had answered 500 ("Unexpected ASGI message")
    with local_client(create_app(settings(store, max_body_bytes=2000))) as c:
        response = c.post(
            "/predictions/tiny", content=chunked(10_000), headers={"content-type": "text/plain"}
        )
        assert response.status_code == 413 and error_of(response)["type"] == "PayloadTooLargeException"
        small = c.post(
            "/predictions/tiny", content=chunked(len(MUSIC), 5), headers={"content-type": "text/plain"}
        )
        assert small.status_code == 200 and max(small.json(), key=small.json().get) == "music"


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "code", "kind"),
    [
        (b"[" * 400_000, 400, "BadRequestException"),  # RecursionError before
        (b'{"texts": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", 400, "BadRequestException"),
        (b'{"text": "x", "top_k": 1e400}', 422, "InvalidInputException"),  # OverflowError before
        (b'{"text": "x", "top_k": ' + b"9" * 5000 + b"}", 400, "BadRequestException"),  # int digit limit
        (b'{"text": "x", "top_k": 2.5}', 422, "InvalidInputException"),
        (b'{"text": "x", "top_k": true}', 422, "InvalidInputException"),
        (b'{"text": "x", "top_k": -3}', 422, "InvalidInputException"),
        (b'{"text": "x", "top_k": "-3"}', 422, "InvalidInputException"),
        (b'{"text": "x", "top_k": [[[1]]]}', 422, "InvalidInputException"),
        (b'{"text": "x", "top_k": NaN}', 422, "InvalidInputException"),
        (b'{"texts": "not a list"}', 422, "InvalidInputException"),
        (b'{"texts": {"a": "b"}}', 422, "InvalidInputException"),
        (b'{"texts": null}', 422, "InvalidInputException"),
        (b'{"texts": [null]}', 422, "InvalidInputException"),
        (b'{"texts": [["nested"]]}', 422, "InvalidInputException"),
        (b'{"text": {"a": 1}}', 422, "InvalidInputException"),
        (b'{"text": "\xff\xfe bad utf-8"}', 400, "BadRequestException"),
        (b"", 400, "BadRequestException"),
    ],
    ids=lambda value: value[:24].decode("latin-1") if isinstance(value, bytes) else str(value),
)
def test_malformed_json_gets_its_4xx(client, body, code, kind) -> None:
    response = client.post("/predictions/tiny", content=body, headers=JSON)
    assert response.status_code == code, response.text[:300]
    assert error_of(response)["type"] == kind
    assert len(response.content) < 1000  # the message never echoes the request back


def test_top_k_forms_that_are_accepted(client) -> None:
    labels = ["music", "sports", "weather"]
    huge = client.post(
        "/predictions/tiny", content=b'{"text": "x", "top_k": ' + b"9" * 40 + b"}", headers=JSON
    )
    assert huge.status_code == 200 and [p["label"] for p in huge.json()["predictions"][0]] != []
    assert len(huge.json()["predictions"][0]) == len(labels)  # capped at the number of labels
    as_string = client.post("/predictions/tiny", json={"text": MUSIC, "top_k": "2"})
    assert as_string.status_code == 200 and len(as_string.json()["predictions"][0]) == 2
    query = client.post("/predictions/tiny?top_k=1", data={"data": MUSIC})
    assert query.status_code == 200 and list(query.json()) == ["music"]
    for bad in ("9" * 5000, "1e400", "-1", "two"):
        response = client.post("/predictions/tiny", params={"top_k": bad}, data={"data": MUSIC})
        assert response.status_code == 422 and len(response.content) < 1000, bad


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"content": b"<text>hi</text>", "headers": {"content-type": "application/xml"}}, 415),
        ({"content": b"\x89PNG", "headers": {"content-type": "image/png"}}, 415),
        ({"content": b"data=x", "headers": {"content-type": "multipart/form-data"}}, 400),  # no boundary
        (
            {"content": b"--b\r\ngarbage", "headers": {"content-type": "multipart/form-data; boundary=b"}},
            422,  # parsed as a form without parts: no 'data' field
        ),
        ({"data": {"other": "field"}}, 422),
        ({"content": b"\xff\xfe\xfa", "headers": {"content-type": "application/octet-stream"}}, 400),
    ],
    ids=["xml", "png", "multipart-no-boundary", "multipart-truncated", "form-no-data", "octets-not-utf8"],
)
def test_bad_bodies_of_other_content_types(client, kwargs, code) -> None:
    response = client.post("/predictions/tiny", **kwargs)
    assert response.status_code == code, response.text[:300]
    error_of(response)


def test_framework_errors_answer_in_the_server_error_shape(client) -> None:
    assert error_of(client.get("/predictions/tiny"))["type"] == "MethodNotAllowedException"  # 405
    assert error_of(client.get("/no/such/route"))["code"] == 404
    missing_url = client.post("/models", headers=AUTH)
    assert missing_url.status_code == 400 and "url" in error_of(missing_url)["message"]
    assert client.get("/ping").status_code == 200  # after all of that


def test_unexpected_errors_are_a_json_500_as_a_last_resort(store, monkeypatch) -> None:
    monkeypatch.setattr("textcls.decision.Decision.answers", lambda *args: 1 / 0)  # a bug, not bad input
    with TestClient(create_app(settings(store)), base_url=BASE, raise_server_exceptions=False) as c:
        response = c.post("/predictions/tiny", json={"text": MUSIC})
    assert response.status_code == 500 and "ZeroDivisionError" in error_of(response)["message"]


# ------------------------------------------------------------------------ Host and Origin checks
BAD_HOSTS = ["attacker.example", "attacker.example:8080", "127.0.0.1.nip.io:8080", "[::2]:8080", "a b", ""]
ROUTES = [
    ("GET", "/ping"),
    ("POST", "/predictions/tiny"),
    ("GET", "/served"),
    ("GET", "/"),
    ("GET", "/metrics"),
    ("GET", "/models"),
    ("POST", "/models?url=tiny-copy&model_name=via-rebinding"),
    ("DELETE", "/models/tiny"),
]


def test_a_host_that_is_not_this_server_is_refused_on_every_route(store) -> None:
    """DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1 reaches the
    server with ``Host: attacker.example``; no route may answer it."""
    with local_client(create_app(settings(store, token=None))) as c:
        for host in BAD_HOSTS:
            for method, path in ROUTES:
                response = c.request(method, path, json={"text": MUSIC}, headers={"host": host})
                assert response.status_code == 400, (host, method, path, response.text)
                assert error_of(response)["type"] == "BadRequestException"
        assert [m["modelName"] for m in c.get("/models").json()["models"]] == ["tiny", "broken"]


def test_loopback_aliases_with_or_without_port_are_accepted(client) -> None:
    for host in [
        "127.0.0.1",
        "127.0.0.1:8080",
        "localhost",
        "LOCALHOST:1234",
        "localhost.",
        "[::1]",
        "[::1]:8080",
    ]:
        assert client.get("/ping", headers={"host": host}).status_code == 200, host


def test_hosts_when_bound_to_every_interface_or_one_address(store) -> None:
    public = settings(store, host="0.0.0.0")
    with local_client(create_app(public)) as c:
        assert c.get("/ping", headers={"host": "anything.example:8080"}).status_code == 200
    narrowed = settings(store, host="0.0.0.0", allowed_hosts=["models.example.com", "*.internal"])
    with local_client(create_app(narrowed)) as c:
        for host, code in [
            ("models.example.com:8080", 200),
            ("a.b.internal", 200),
            ("internal", 400),
            ("attacker.example", 400),
            ("localhost", 400),
        ]:
            assert c.get("/ping", headers={"host": host}).status_code == code, host
    one_address = settings(store, host="10.1.2.3", allowed_hosts=["models.lan"])
    with local_client(create_app(one_address)) as c:
        for host, code in [("10.1.2.3:8080", 200), ("models.lan", 200), ("localhost", 400)]:
            assert c.get("/ping", headers={"host": host}).status_code == code, host


def registered(c, auth=None) -> list[str]:
    return [m["modelName"] for m in c.get("/models", headers=auth or {}).json()["models"]]


def test_cross_origin_management_is_refused_without_a_token_on_loopback(store) -> None:
    """CSRF: any web page can make the browser POST to 127.0.0.1; the Host is right then."""
    with local_client(create_app(settings(store, token=None))) as c:
        cross = [
            {"origin": "http://attacker.example"},
            {"origin": "http://localhost:3000"},  # same site, another port: another origin
            {"origin": "null"},  # sandboxed frames and file:// pages
            {"sec-fetch-site": "cross-site"},
            {"sec-fetch-site": "same-site"},
        ]
        for headers in cross:
            for method, path in ROUTES[-3:]:
                response = c.request(method, path, headers=headers)
                assert response.status_code == 403, (headers, method, path, response.text)
                assert error_of(response)["type"] == "ForbiddenException"
        assert registered(c) == ["tiny", "broken"]
        page = {"origin": BASE, "sec-fetch-site": "same-origin"}  # this server's own page
        assert c.get("/models", headers=page).status_code == 200  # reading is fine
        for method, path in ROUTES[-2:]:  # changing models from a browser needs a token
            response = c.request(method, path, headers=page)
            assert response.status_code == 403 and "--token" in error_of(response)["message"]
        sec_fetch_only = c.post("/models?url=tiny-copy&model_name=x", headers={"sec-fetch-mode": "no-cors"})
        assert sec_fetch_only.status_code == 403
        assert registered(c) == ["tiny", "broken"]
        curl = c.post("/models?url=tiny-copy&model_name=from-curl")  # no browser headers: loopback tools
        assert curl.status_code == 200 and "from-curl" in registered(c)


def test_cross_origin_management_is_refused_even_with_the_token(client) -> None:
    for headers in ({"origin": "http://attacker.example"}, {"sec-fetch-site": "cross-site"}):
        response = client.post("/models?url=tiny-copy&model_name=x", headers={**AUTH, **headers})
        assert response.status_code == 403
    page = {"origin": BASE, "sec-fetch-site": "same-origin"}
    assert client.post("/models?url=tiny-copy&model_name=x", headers=page).status_code == 401
    added = client.post("/models?url=tiny-copy&model_name=from-page", headers={**AUTH, **page})
    assert added.status_code == 200
    assert client.delete("/models/from-page", headers={**AUTH, **page}).status_code == 200


def test_allow_origin_admits_listed_origins_for_cors_and_management(store) -> None:
    trusted = "http://localhost:3000"
    with local_client(create_app(settings(store, allow_origins=[trusted + "/"]))) as c:
        read = c.post("/predictions/tiny", json={"text": MUSIC}, headers={"origin": trusted})
        assert read.status_code == 200 and read.headers["access-control-allow-origin"] == trusted
        other = c.post(
            "/predictions/tiny", json={"text": MUSIC}, headers={"origin": "http://attacker.example"}
        )
        assert "access-control-allow-origin" not in other.headers  # the browser will not let it read
        preflight = c.options(
            "/predictions/tiny",
            headers={
                "origin": trusted,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == trusted
        listed = {"origin": trusted, "sec-fetch-site": "same-site"}
        assert c.post("/models?url=tiny-copy&model_name=x", headers=listed).status_code == 401  # token still
        added = c.post("/models?url=tiny-copy&model_name=from-3000", headers={**AUTH, **listed})
        assert added.status_code == 200
    with local_client(create_app(settings(store, allow_origins=["*"]))) as c:
        read = c.post("/predictions/tiny", json={"text": MUSIC}, headers={"origin": "http://any.example"})
        assert read.headers["access-control-allow-origin"] == "*"
        managed = c.post(
            "/models?url=tiny-copy&model_name=y", headers={**AUTH, "origin": "http://any.example"}
        )
        assert managed.status_code == 403  # '*' never opens management
    with pytest.raises(ConfigError, match="allow-origin"):
        create_app(settings(store, allow_origins=["localhost:3000"]))


def test_no_cors_headers_unless_an_origin_is_listed(client) -> None:
    response = client.post(
        "/predictions/tiny", json={"text": MUSIC}, headers={"origin": "http://attacker.example"}
    )
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_registered_models_are_capped(store) -> None:
    with local_client(create_app(settings(store, max_models=2))) as c:  # tiny + broken: full
        full = c.post("/models?url=tiny-copy&model_name=third", headers=AUTH)
        assert full.status_code == 409 and "--max-models" in error_of(full)["message"]
        assert c.delete("/models/broken", headers=AUTH).status_code == 200
        assert c.post("/models?url=tiny-copy&model_name=third", headers=AUTH).status_code == 200
        assert c.post("/models?url=tiny-copy&model_name=fourth", headers=AUTH).status_code == 409
        assert registered(c, AUTH) == ["tiny", "third"]
    with pytest.raises(ConfigError, match="max-models"):
        create_app(settings(store, max_models=1))


def test_cli_serve_passes_the_safety_flags(monkeypatch, store) -> None:
    from textcls import cli

    seen = {}
    monkeypatch.setattr("textcls.serve.app.serve", lambda s, **kw: seen.update(settings=s, **kw))
    argv = [
        "serve",
        str(store / "tiny"),
        "--allowed-hosts",
        "a.example, *.lan",
        "--allowed-hosts",
        "b.example",
    ]
    argv += ["--allow-origin", "http://x.example:3000,https://y.example", "--max-models", "3"]
    assert cli.main([*argv, "--graceful-timeout", "4"]) == 0
    assert seen["settings"].allowed_hosts == ["a.example", "*.lan", "b.example"]
    assert seen["settings"].allow_origins == ["http://x.example:3000", "https://y.example"]
    assert seen["settings"].max_models == 3 and seen["graceful_timeout"] == 4


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
    with local_client(create_app(settings(store))) as c:
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
    with local_client(create_app(settings(store))) as c:
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
    with local_client(create_app(settings(store))) as c:
        response = c.post("/models?url=bad-weights", headers=AUTH)
        assert response.status_code == 500 and "failed to load" in error_of(response)["message"]
        assert c.post("/predictions/tiny", json={"text": MUSIC}).status_code == 200
        names = [m["modelName"] for m in c.get("/models", headers=AUTH).json()["models"]]
        assert "bad-weights" not in names


def test_management_refused_off_loopback_without_token(store) -> None:
    with pytest.raises(ConfigError, match="needs a token"):
        create_app(settings(store, host="0.0.0.0", token=None))
    create_app(settings(store, host="0.0.0.0", token=None, management=False))  # inference only is fine
    with local_client(create_app(settings(store, management=False))) as c:
        assert c.get("/models", headers=AUTH).status_code == 403


def test_loopback_without_token_leaves_management_open(store) -> None:
    with local_client(create_app(settings(store, token=None))) as c:
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


def test_batcher_close_gives_up_on_a_stuck_predictor_after_its_timeout() -> None:
    entered, release = threading.Event(), threading.Event()

    def predict(texts):
        entered.set()
        release.wait(60)  # stuck until the test lets it go
        return np.ones((len(texts), 2))

    async def scenario():
        batcher = DynamicBatcher(predict, max_batch_size=1, max_delay_ms=0)
        pending = asyncio.ensure_future(batcher.submit(["stuck"]))
        while not entered.is_set():
            await asyncio.sleep(0.005)
        await batcher.close(timeout=0.05)  # before: no timeout, it waited for the call forever
        with pytest.raises(RuntimeError, match="unloaded"):
            await pending
        return batcher.executor

    executor = asyncio.run(scenario())
    assert executor._thread.daemon and executor._thread.is_alive()  # cannot keep the process alive
    release.set()
    executor._thread.join(30)
    assert not executor._thread.is_alive()  # and it ends once its call returns


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


def test_oversized_bodies_get_413_over_a_real_socket(store) -> None:
    """Through uvicorn, the client (still sending) must read the 413, not a connection reset."""
    import httpx

    app = create_app(settings(store, max_body_bytes=64 * 1024))
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        text = {"content-type": "text/plain"}
        streamed = http.post("/predictions/tiny", content=chunked(200_000), headers=text)
        declared = http.post("/predictions/tiny", content=b"y" * 200_000, headers=text)
        fine = http.post("/predictions/tiny", json={"text": MUSIC})
    assert streamed.status_code == 413 and error_of(streamed)["type"] == "PayloadTooLargeException"
    assert declared.status_code == 413 and error_of(declared)["type"] == "PayloadTooLargeException"
    assert fine.status_code == 200


# ------------------------------------------------------------- the real `textcls serve` process
# Runs `textcls serve` (cli.main) in a child process whose predictor holds any batch containing
# a text "HOLD <name> ..." until the file GATE/release exists, after touching GATE/entered-<name>:
# the test then knows the request is inside the predictor, with no sleeps.
GATED_SERVE = """
import os, sys, time
from pathlib import Path

import textcls.inference.predictor as predictors

gate = Path(os.environ["TEXTCLS_TEST_GATE"])
load_predictor = predictors.load_predictor


def gated_load(*args, **kwargs):
    predictor = load_predictor(*args, **kwargs)
    predict_proba = predictor.predict_proba

    def gated(texts, *rest, **options):
        held = [text.split()[1] for text in texts if text.startswith("HOLD ")]
        for name in held:
            (gate / f"entered-{name}").touch()
        deadline = time.monotonic() + 300  # never an orphan for long
        while held and not (gate / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return predict_proba(texts, *rest, **options)

    predictor.predict_proba = gated
    return predictor


predictors.load_predictor = gated_load
from textcls.cli import main

sys.exit(main(sys.argv[1:]))
"""


def wait_until(condition, what: str, process=None, seconds: float = 120) -> None:
    """Poll ``condition`` (a liveness bound, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def accepting(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class CliServer:
    """``textcls serve ARGS --port P`` as a child process (gated: through GATED_SERVE)."""

    def __init__(self, args: list[str], tmp_path: Path, env: dict | None = None, gate: Path | None = None):
        import os
        import sys

        self.port = free_port()
        self.log_path = tmp_path / f"serve-{self.port}.log"
        environment = {k: v for k, v in os.environ.items() if k != "TEXTCLS_TOKEN"}  # only what env says
        environment.update({"OMP_NUM_THREADS": "1", **(env or {})})
        if gate is not None:
            script = tmp_path / "gated_serve.py"
            script.write_text(GATED_SERVE, encoding="utf-8")
            environment["TEXTCLS_TEST_GATE"] = str(gate)
            command = [sys.executable, str(script)]
        else:
            command = [sys.executable, "-m", "textcls"]
        self.command = [*command, "serve", *args, "--port", str(self.port)]
        self.environment = environment

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """The end of the server's output, whitespace collapsed (the log handler wraps lines)."""
        return " ".join(self.log_path.read_text(encoding="utf-8", errors="replace").split())[-3000:]

    def __enter__(self) -> CliServer:
        import subprocess

        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command, env=self.environment, stdout=self.log_file, stderr=subprocess.STDOUT
        )

        def ready() -> bool:
            import httpx

            try:
                return httpx.get(self.url + "/ping", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, "the server to answer /ping", self.process, seconds=180)
        except AssertionError as error:
            self.__exit__()
            raise AssertionError(f"{error}\n{self.log()}") from None
        return self

    def terminate(self) -> None:
        import signal

        self.process.send_signal(signal.SIGTERM)

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self.log_file.close()


def post_in_thread(url: str, payload: dict, results: dict, key: str) -> threading.Thread:
    import httpx

    def call() -> None:
        try:
            response = httpx.post(url, json=payload, timeout=300)
            results[key] = (response.status_code, response.text)
        except httpx.HTTPError as error:  # a dropped connection is an answer too
            results[key] = (None, repr(error))

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def test_sigterm_answers_requests_in_flight_then_exits_0(store, tmp_path) -> None:
    import subprocess

    gate = tmp_path / "gate"
    gate.mkdir()
    names = ["a", "b", "c"]  # one model each: three predictor calls in flight at once
    args = [f"{name}={store / 'tiny'}" for name in names] + ["--graceful-timeout", "120"]
    with CliServer(args, tmp_path, gate=gate) as server:
        results: dict = {}
        threads = [
            post_in_thread(f"{server.url}/predictions/{n}", {"text": f"HOLD {n} {MUSIC}"}, results, n)
            for n in names
        ]
        wait_until(lambda: all((gate / f"entered-{n}").exists() for n in names), "3 requests in flight")
        server.terminate()
        wait_until(lambda: not accepting(server.port), "shutdown to begin", server.process)
        assert all(thread.is_alive() for thread in threads)  # all three still waiting for answers
        assert results == {}
        (gate / "release").touch()
        for thread in threads:
            thread.join(120)
        try:
            code = server.process.wait(120)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit after the requests were answered\n{server.log()}") from None
        log = server.log()
    assert {n: results[n][0] for n in names} == {n: 200 for n in names}, results
    for name in names:
        assert json.loads(results[name][1])["predictions"][0][0]["label"] == "music"
    assert code == 0, log  # before: uvicorn re-raised SIGTERM into the default handler (-15)
    assert "timeout graceful shutdown exceeded" not in log


def test_a_graceful_timeout_shorter_than_the_work_still_ends_the_process(store, tmp_path) -> None:
    import subprocess

    gate = tmp_path / "gate"
    gate.mkdir()
    with CliServer([f"a={store / 'tiny'}", "--graceful-timeout", "1"], tmp_path, gate=gate) as server:
        results: dict = {}
        thread = post_in_thread(f"{server.url}/predictions/a", {"text": f"HOLD a {MUSIC}"}, results, "a")
        wait_until(lambda: (gate / "entered-a").exists(), "the request to be in flight")
        server.terminate()  # the gate is never opened: the predictor call outlives the timeout
        try:
            code = server.process.wait(60)  # before: the unload waited for the stuck batch forever
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after --graceful-timeout 1\n{server.log()}") from None
        thread.join(60)
        log = server.log()
    assert code == 0, log
    assert "timeout graceful shutdown exceeded" in log
    assert results["a"][0] != 200, results  # the request was cut off, not answered


def test_textcls_token_from_the_environment_guards_management(store, tmp_path) -> None:
    import httpx

    args = [f"tiny={store / 'tiny'}", "--model-store", str(store)]
    with CliServer(args, tmp_path, env={"TEXTCLS_TOKEN": "from-the-env"}) as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.get("/models").status_code == 401
            assert http.get("/models", headers={"Authorization": "Bearer wrong"}).status_code == 403
            assert http.post("/models?url=tiny-copy&model_name=t2").status_code == 401
            good = {"Authorization": "Bearer from-the-env"}
            assert http.get("/models", headers=good).status_code == 200
            assert http.post("/models?url=tiny-copy&model_name=t2", headers=good).status_code == 200
            assert "t2" in [m["modelName"] for m in http.get("/models", headers=good).json()["models"]]
        server.terminate()
        assert server.process.wait(60) == 0


def test_workers_turn_management_off_in_the_real_server(store, tmp_path) -> None:
    import httpx

    args = [f"tiny={store / 'tiny'}", "--model-store", str(store), "--workers", "2"]
    with CliServer(args, tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            added = http.post("/models?url=tiny-copy&model_name=w")
            listed = http.get("/models")
            predicted = http.post("/predictions/tiny", json={"text": MUSIC})
            served = [m["modelName"] for m in http.get("/served").json()["models"]]
        server.terminate()
        code = server.process.wait(60)
        log = server.log()
    assert added.status_code == 403 and "management API is off" in error_of(added)["message"]
    assert listed.status_code == 403
    assert predicted.status_code == 200 and predicted.json()["predictions"][0][0]["label"] == "music"
    assert served == ["tiny"]
    assert "management API is off" in log and code == 0


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
    with local_client(app_from_env()) as c:
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
