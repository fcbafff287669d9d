"""The server under fuzzing and load (issue 20, item 5).

- Schemathesis fuzzes every route of the OpenAPI schema in process (positive and negative cases,
  management routes with the token): no 5xx, no hang, and every error a JSON
  ``{"code", "type", "message"}`` whose code is the HTTP status.
- A short soak of a real ``textcls serve`` process (benchmarks/soak.py, the same code as
  ``make bench-reliability-serve``): valid requests never fail, every refusal is in that shape.
- Two replicas started from one model store answer the same requests identically.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

import test_serve
from test_serve import AUTH, BASE, MUSIC, SPORTS, CliServer, create_app, error_of, local_client, settings

store = test_serve.store  # the module fixture: two tiny trained models, a broken and a pickled one

schemathesis = pytest.importorskip("schemathesis", reason="pip install 'textcls[dev]'")
hypothesis = pytest.importorskip("hypothesis")

REPO = Path(__file__).resolve().parents[1]
# Cases per route and generation mode: the whole fuzz run stays well under a minute. The seed is
# fixed so the suite is reproducible; TEXTCLS_FUZZ_SEED=random (and more TEXTCLS_FUZZ_EXAMPLES)
# explores further.
EXAMPLES = int(os.environ.get("TEXTCLS_FUZZ_EXAMPLES", "100"))
SEED = os.environ.get("TEXTCLS_FUZZ_SEED", "20")
TIMEOUT = 20  # seconds for one in-process request: a hang fails the case instead of the suite
# Every route the server documents; a new route fails test_every_route_is_fuzzed until listed here.
ROUTES = [
    "GET /ping",
    "POST /predictions/{name}",
    "GET /served",
    "GET /models",
    "POST /models",
    "GET /models/{name}",
    "DELETE /models/{name}",
    "GET /metrics",
]
# The prediction route reads its body from the raw request (JSON, form, raw text), so FastAPI's
# schema has no requestBody for it; the fuzzer gets one, with the query parameters, from here.
PREDICTION_INPUTS = {
    "parameters": [
        {"name": "top_k", "in": "query", "required": False, "schema": {"type": "integer"}},
        {"name": "threshold", "in": "query", "required": False, "schema": {"type": "number"}},
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "texts": {"type": "array", "items": {"type": "string"}},
                        "top_k": {"type": "integer"},
                        "threshold": {"type": "number"},
                    },
                }
            },
            "text/plain": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"data": {"type": "string"}}, "required": ["data"]}
            },
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": {"data": {"type": "string"}}, "required": ["data"]}
            },
        },
    },
}


def load_module(name: str, path: Path):
    """A benchmarks/ script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------- fuzzing
@pytest.fixture(scope="module")
def fuzz_app(store: Path):
    """One app for the module (schemathesis keeps its lifespan running), with small limits so the
    fuzzer reaches them, and the broken model served as FAILED (its 503 path)."""
    app = create_app(settings(store, max_texts=8, max_text_chars=200, max_body_bytes=4096))
    yield app
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # the models' batcher threads end with the module


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app):
    from schemathesis.python.asgi import get_client

    with get_client(fuzz_app) as client:
        raw = client.get(BASE + "/openapi.json").json()
    prediction = raw["paths"]["/predictions/{name}"]["post"]
    prediction["parameters"] = prediction.get("parameters", []) + PREDICTION_INPUTS["parameters"]
    prediction["requestBody"] = PREDICTION_INPUTS["requestBody"]
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = fuzz_app
    return schema


def check_answer(route: str, case, response) -> None:
    where = f"{route}: {case.as_curl_command()}"
    assert response.status_code < 500, f"{response.status_code} {response.text[:300]}\n{where}"
    if response.status_code >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            raise AssertionError(f"non-JSON {response.status_code}: {response.text[:300]}\n{where}") from None
        assert isinstance(body, dict) and set(body) == {"code", "type", "message"}, f"{body}\n{where}"
        assert body["code"] == response.status_code, f"{body}\n{where}"
        assert isinstance(body["type"], str) and isinstance(body["message"], str), f"{body}\n{where}"


def fuzz(schema, route: str, mode: str, **fixed) -> Counter:
    """Run up to EXAMPLES generated cases of one route; returns the answers' status counts."""
    from hypothesis import HealthCheck, given, seed
    from hypothesis import settings as hypothesis_settings
    from schemathesis import GenerationMode

    method, path = route.split(" ")
    operation = schema[path][method]
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode), **fixed)
    statuses: Counter = Counter()

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,  # shared CI cores: the per-request TIMEOUT is the hang check
        database=None,  # no .hypothesis/ directory in the checkout
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(case=strategy)
    def run(case) -> None:
        response = case.call(base_url=BASE, headers=dict(AUTH), timeout=TIMEOUT)
        statuses[response.status_code] += 1
        check_answer(route, case, response)

    if SEED != "random":
        run = seed(int(SEED))(run)
    run()
    return statuses


def test_every_route_is_fuzzed(fuzz_schema) -> None:
    documented = sorted(
        f"{operation.method.upper()} {operation.path}"
        for operation in (result.ok() for result in fuzz_schema.get_all_operations())
    )
    assert documented == sorted(ROUTES)


# Negative cases need an input that can break its schema (a path segment is always a string).
WITH_INPUTS = ["POST /predictions/{name}", "POST /models"]


# DELETE goes last: a name it guesses right unregisters that model for the routes after it.
RUNS = [(r, "positive") for r in ROUTES if not r.startswith("DELETE")] + [
    (r, "negative") for r in WITH_INPUTS
]


@pytest.mark.parametrize(("route", "mode"), [*RUNS, ("DELETE /models/{name}", "positive")])
def test_fuzzed_requests_never_get_a_5xx_and_errors_keep_their_shape(fuzz_schema, route, mode) -> None:
    statuses = fuzz(fuzz_schema, route, mode)
    # the same route on a served model: the fuzzer rarely names one (DELETE would unregister it)
    if route in ("POST /predictions/{name}", "GET /models/{name}"):
        statuses += fuzz(fuzz_schema, route, mode, path_parameters={"name": "tiny"})
    elif route == "POST /models":  # a real model directory, fuzzed names and backends
        statuses += fuzz(fuzz_schema, route, mode, query={"url": "tiny-copy"})
    print(f"{route} {mode}: {statuses.total()} cases, statuses {dict(sorted(statuses.items()))}")
    assert statuses.total() >= 1


def test_registration_urls_the_file_system_refuses_are_a_400(store: Path, tmp_path: Path) -> None:
    """Found by the fuzzer: a NUL byte in ?url= (ValueError) or a name too long for the file system
    (OSError) was a 500; a symlink loop (RuntimeError) too."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    app = create_app(settings(store, model_store=str(tmp_path)))
    with local_client(app) as client:
        for url in ["%00", "tiny%00x", "a" * 5000, "loop", "loop/config.json"]:
            response = client.post(f"/models?url={url}", headers=AUTH)
            assert response.status_code == 400, (url[:20], response.text)
            assert error_of(response)["type"] == "BadRequestException"


# ----------------------------------------------------------------------------------------- soak
def test_short_soak_of_a_real_server_fails_no_valid_request(store: Path, tmp_path: Path) -> None:
    """benchmarks/soak.py's code path, 5 s at 16 in flight: valid requests all answered 200,
    every malformed or oversized one refused with its 4xx as a JSON {code, type, message}."""
    soak = load_module("soak", REPO / "benchmarks" / "soak.py")
    texts = [MUSIC, SPORTS, "rain storm cold wind", "song jazz melody", "team win league"]
    summary = soak.soak(store / "tiny", duration=5, concurrency=16, texts=texts, log_dir=tmp_path)
    print(json.dumps({k: summary[k] for k in ("requests", "valid", "refused", "rss")}))
    assert summary["problems"] == [], summary
    assert summary["valid"]["failed"] == 0 and summary["valid"]["sent"] > 0
    assert summary["refused"]["wrong"] == 0
    assert set(summary["by_kind"]) == {kind.name for kind in soak.KINDS}  # every kind was sent
    assert {"400", "404", "405", "413", "415", "422"} <= set(summary["refused"]["by_status"])
    assert summary["rss"]["samples"] >= 2 and summary["rss"]["start_mb"] > 0


# ------------------------------------------------------------------------------------- replicas
REPLICA_REQUESTS = [
    ("POST", "/predictions/tiny", {"json": {"text": MUSIC, "top_k": 3}}),
    ("POST", "/predictions/tiny", {"json": {"texts": [MUSIC, SPORTS, "rain storm cold", "jazz win"]}}),
    ("POST", "/predictions/tiny", {"json": {"texts": ["song goal rain", "cloud"], "top_k": 2}}),
    ("POST", "/predictions/tiny", {"json": {"text": "storm band", "threshold": 0.9}}),
    ("POST", "/predictions/tiny", {"data": {"data": SPORTS}}),
    (
        "POST",
        "/predictions/tiny?top_k=2",
        {"content": b"snow forecast", "headers": {"content-type": "text/plain"}},
    ),
    ("POST", "/predictions/copy", {"json": {"texts": [MUSIC, "wind drum"], "top_k": 3}}),
    ("POST", "/predictions/tiny", {"json": {"texts": ["ok", 3]}}),
    ("POST", "/predictions/nope", {"json": {"text": MUSIC}}),
    ("GET", "/served", {}),
]


def comparable(response) -> tuple[int, object]:
    body = response.json()
    if isinstance(body, dict):
        body.pop("latency_ms", None)
    return response.status_code, body


def test_two_replicas_from_one_model_store_answer_identically(store: Path, tmp_path: Path) -> None:
    import asyncio
    import threading

    import httpx

    args = ["tiny=" + str(store / "tiny"), "--model-store", str(store), "--token", "replica-token"]
    replicas = [CliServer(args, tmp_path / name) for name in ("a", "b")]
    for replica in replicas:
        replica.log_path.parent.mkdir()
    failures: list[BaseException] = []

    def start(replica) -> None:
        try:
            replica.__enter__()
        except BaseException as error:  # reported below, with the server's log
            failures.append(error)

    started = [threading.Thread(target=start, args=(replica,)) for replica in replicas]  # both at once
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    try:
        assert not failures, failures
        answers = []
        for replica in replicas:
            with httpx.Client(base_url=replica.url, timeout=60) as http:
                auth = {"Authorization": "Bearer replica-token"}
                registered = http.post("/models?url=tiny-copy&model_name=copy", headers=auth)
                assert registered.status_code == 200, registered.text  # POST /models, same store
                answers.append([comparable(http.request(m, p, **kw)) for m, p, kw in REPLICA_REQUESTS])
        assert [status for status, _ in answers[0]] == [200] * 7 + [422, 404, 200]
        assert answers[0] == answers[1]  # one request at a time: the same bodies, scores included

        async def concurrently(url: str) -> list:
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                calls = [http.request(m, p, **kw) for m, p, kw in REPLICA_REQUESTS[:7] * 4]
                return [comparable(r) for r in await asyncio.gather(*calls)]

        together = [asyncio.run(concurrently(replica.url)) for replica in replicas]
        for one, other in zip(*together):  # batched with other requests: same labels, scores to 1e-6
            assert one[0] == other[0] == 200
            (labels, scores), (other_labels, other_scores) = (
                labels_and_scores(one[1]),
                labels_and_scores(other[1]),
            )
            assert labels == other_labels
            assert scores == pytest.approx(other_scores, abs=1e-6)
    finally:
        for replica in replicas:
            if hasattr(replica, "process"):
                replica.__exit__()


def labels_and_scores(body) -> tuple[list[str], list[float]]:
    """The labels and the scores of a JSON or a TorchServe-style answer, in order."""
    pairs = (
        [(p["label"], p["score"]) for text in body["predictions"] for p in text]
        if "predictions" in body
        else list(body.items())
    )
    return [label for label, _ in pairs], [score for _, score in pairs]
