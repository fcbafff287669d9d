"""The FastAPI application behind ``textcls serve``.

Inference (TorchServe-compatible): ``GET /ping``, ``POST /predictions/{model}`` (form field
``data=``, a raw text body, or JSON ``{"text": ...}`` / ``{"texts": [...], "top_k": k}``).
``GET /served`` lists model names for the web page.
Management (bearer token): ``GET /models``, ``GET /models/{name}``, ``POST /models?url=&model_name=``
(directories under ``--model-store`` only), ``DELETE /models/{name}``. Also ``GET /metrics``
(Prometheus), ``GET /docs`` (OpenAPI) and ``GET /`` (a web page to try the models).
"""

import asyncio
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from textcls.errors import ConfigError, MissingDependencyError
from textcls.serve.batching import DynamicBatcher

log = logging.getLogger(__name__)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


@dataclass
class ServeSettings:
    """Everything ``textcls serve`` configures (the CLI fills it; tests build it directly)."""

    models: dict[str, str] = field(default_factory=dict)  # name -> model directory
    backend: str = "torch"
    threads: int | None = None
    host: str = "127.0.0.1"
    model_store: str = "."  # POST /models registers directories under this root only
    token: str | None = None
    management: bool = True
    max_batch_size: int = 32  # 1: batching off
    max_delay_ms: float = 5.0
    predict_batch_size: int = 16  # a served batch runs as length-sorted sub-batches (less padding)
    max_body_bytes: int = 1_000_000
    max_texts: int = 256
    max_text_chars: int = 20_000
    default_top_k: int = 5  # TorchServe-style responses (form / raw body)

    def check(self) -> None:
        if self.management and not self.token and self.host not in LOOPBACK:
            raise ConfigError(
                f"the management API on {self.host} (not loopback) needs a token: --token or the "
                "TEXTCLS_TOKEN environment variable, or --no-management"
            )
        for name in self.models:
            if not NAME.match(name):
                raise ConfigError(f"model name '{name}': use letters, digits, '.', '_' or '-' (max 64)")
        if self.max_batch_size < 1 or self.max_texts < 1 or self.max_text_chars < 1:
            raise ConfigError("--max-batch-size, --max-texts and --max-text-chars must be at least 1")


class ApiError(Exception):
    """An error answered as TorchServe does: ``{"code", "type", "message"}``."""

    def __init__(self, code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.code, self.kind, self.message = code, kind, message


@dataclass
class ServedModel:
    name: str
    path: Path
    backend: str
    status: str = "LOADING"  # LOADING | READY | FAILED
    error: str | None = None
    predictor: Any = None
    batcher: DynamicBatcher | None = None
    loaded_at: float | None = None

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "modelName": self.name,
            "modelVersion": "1.0",
            "modelUrl": str(self.path),
            "backend": self.backend,
            "status": self.status,
        }
        if self.error:
            info["error"] = self.error
        if self.predictor is not None:
            info["labels"] = list(self.predictor.labels)
            info["threads"] = self.predictor.threads
        if self.batcher is not None:
            info["batching"] = {
                "max_batch_size": self.batcher.max_batch_size,
                "max_delay_ms": self.batcher.max_delay * 1000,
            }
        return info


class Metrics:
    """Prometheus counters and histograms in a registry of this app's own."""

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            raise MissingDependencyError("prometheus-client", "serve", "textcls serve") from None
        self.prom = prom
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "textcls_requests", "HTTP requests", ["route", "model", "code"], registry=self.registry
        )
        self.latency = prom.Histogram(
            "textcls_request_latency_seconds",
            "prediction request latency",
            ["model"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.batch_size = prom.Histogram(
            "textcls_batch_size",
            "texts per predictor call",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.texts = prom.Counter("textcls_texts", "texts classified", ["model"], registry=self.registry)

    def render(self) -> bytes:
        return self.prom.generate_latest(self.registry)


class ModelStore:
    """The served models by name; a model that fails to load is kept as FAILED, never fatal."""

    def __init__(self, settings: ServeSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.models: dict[str, ServedModel] = {}
        self.root = Path(settings.model_store).resolve()

    def _load(self, model: ServedModel) -> None:
        from textcls.inference.predictor import load_predictor

        try:
            model.predictor = load_predictor(model.path, backend=model.backend, threads=self.settings.threads)
            model.predictor.predict_proba(["warm up"])  # first-call costs are paid before serving
        except Exception as error:  # one model failing to load never takes the server down
            model.status, model.error = "FAILED", f"{type(error).__name__}: {error}"
            log.error("model %s failed to load: %s", model.name, model.error)
            return
        histogram = self.metrics.batch_size.labels(model.name)
        predictor, size = model.predictor, self.settings.predict_batch_size
        model.batcher = DynamicBatcher(
            lambda texts: predictor.predict_proba(texts, size),
            self.settings.max_batch_size,
            self.settings.max_delay_ms,
            on_batch=histogram.observe,
            name=model.name,
        )
        model.status, model.loaded_at = "READY", time.time()
        log.info("model %s ready (%s, %s)", model.name, model.backend, model.path)

    async def add(self, name: str, path: Path, backend: str) -> ServedModel:
        model = ServedModel(name, path, backend)
        self.models[name] = model
        await asyncio.get_running_loop().run_in_executor(None, self._load, model)
        if model.batcher is not None:
            model.batcher.start()
        return model

    def get(self, name: str) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise ApiError(404, "ModelNotFoundException", f"Model not found: {name} (served: {known})")
        return model

    async def remove(self, name: str) -> None:
        model = self.get(name)
        del self.models[name]
        if model.batcher is not None:
            await model.batcher.close()

    def resolve_registration(self, url: str) -> Path:
        """A model directory under the store root, with safetensors weights; else a 400."""
        candidate = Path(url)
        path = (candidate if candidate.is_absolute() else self.root / candidate).resolve()
        if not path.is_relative_to(self.root):
            raise ApiError(400, "BadRequestException", f"url {url!r} is outside the model store {self.root}")
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ApiError(
                400, "BadRequestException", f"url {url!r} is not a model directory under the store"
            )
        if not (path / "model.safetensors").is_file():
            pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
            found = f" (found {', '.join(pickles)}: pickled weights are never loaded)" if pickles else ""
            raise ApiError(400, "BadRequestException", f"url {url!r} has no model.safetensors{found}")
        return path


def parse_texts(payload: Any, settings: ServeSettings) -> list[str]:
    """JSON ``{"text": str}`` or ``{"texts": [str, ...]}`` → texts, with the limits applied."""
    if not isinstance(payload, dict) or ("text" in payload) == ("texts" in payload):
        raise ApiError(
            422, "InvalidInputException", 'send a JSON object with "text": "..." or "texts": [...]'
        )
    texts = [payload["text"]] if "text" in payload else payload["texts"]
    if not isinstance(texts, list) or not texts:
        raise ApiError(422, "InvalidInputException", '"texts" must be a non-empty list of strings')
    return check_texts(texts, settings)


def check_texts(texts: list[Any], settings: ServeSettings) -> list[str]:
    if len(texts) > settings.max_texts:
        raise ApiError(
            413,
            "PayloadTooLargeException",
            f"{len(texts)} texts in one request; the limit is {settings.max_texts}",
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ApiError(422, "InvalidInputException", f"text {i} is {type(text).__name__}, not a string")
        if not text.strip():
            raise ApiError(422, "InvalidInputException", f"text {i} is empty")
        if len(text) > settings.max_text_chars:
            raise ApiError(
                413,
                "PayloadTooLargeException",
                f"text {i} has {len(text)} characters; the limit is {settings.max_text_chars}",
            )
    return texts


def parse_top_k(value: Any, default: int, labels: int) -> int:
    if value is None:
        return min(default, labels)
    try:
        top_k = int(value)
    except (TypeError, ValueError):
        raise ApiError(422, "InvalidInputException", f"top_k must be an integer, got {value!r}") from None
    if isinstance(value, bool) or top_k < 1:
        raise ApiError(422, "InvalidInputException", f"top_k must be at least 1, got {value!r}")
    return min(top_k, labels)


def ranked(probabilities: np.ndarray, labels: list[str], top_k: int) -> list[list[dict[str, Any]]]:
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    return [
        [{"label": labels[j], "score": float(row[j])} for j in indices]
        for row, indices in zip(probabilities, order, strict=True)
    ]


class BodyLimit:
    """ASGI middleware: request bodies over ``limit`` bytes get a 413 before they are read whole."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(send)
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = json.dumps(
            {"code": 413, "type": "PayloadTooLargeException", "message": f"body over {self.limit} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(settings: ServeSettings) -> Any:
    """The FastAPI app; models in ``settings.models`` load at startup (failures stay FAILED)."""
    try:
        from contextlib import asynccontextmanager

        from fastapi import FastAPI, Request
        from fastapi.responses import HTMLResponse, JSONResponse, Response
    except ImportError:
        raise MissingDependencyError("fastapi", "serve", "textcls serve") from None

    settings.check()
    metrics = Metrics()
    store = ModelStore(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        for name, path in settings.models.items():
            await store.add(name, Path(path), settings.backend)
        import gc

        gc.collect()
        gc.freeze()  # the loaded models' objects leave the collector's view: shorter GC pauses
        yield
        for name in list(store.models):  # graceful: queued and running batches finish first
            await store.remove(name)

    app = FastAPI(
        title="textcls model server",
        description="Text classification over HTTP; TorchServe-compatible inference and management routes.",
        lifespan=lifespan,
    )
    app.state.store, app.state.settings, app.state.metrics = store, settings, metrics

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        route = request.scope.get("route")
        metrics.requests.labels(
            getattr(route, "path", "?"), request.path_params.get("name", ""), error.code
        ).inc()
        return JSONResponse({"code": error.code, "type": error.kind, "message": error.message}, error.code)

    def authorize(request: Request) -> None:
        if not settings.management:
            raise ApiError(403, "ForbiddenException", "the management API is off (--no-management)")
        if settings.token is None:
            return  # loopback only (checked at startup)
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "UnauthorizedException", "management needs 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(given.strip().encode(), settings.token.encode()):
            raise ApiError(403, "ForbiddenException", "wrong token")

    @app.get("/ping", summary="health check")
    async def ping() -> dict[str, str]:
        healthy = all(m.status == "READY" for m in store.models.values())
        return {"status": "Healthy" if healthy else "Partial Healthy"}

    @app.post("/predictions/{name}", summary="classify texts (form data=, raw text body, or JSON)")
    async def predictions(name: str, request: Request) -> Any:
        model = store.get(name)
        if model.status != "READY" or model.batcher is None:
            raise ApiError(
                503, "ServiceUnavailableException", f"model {name} is {model.status}: {model.error}"
            )
        labels = list(model.predictor.labels)
        start = time.perf_counter()
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        style = "json" if kind == "application/json" else "torchserve"
        top_k_param = request.query_params.get("top_k")
        if style == "json":
            try:
                payload = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ApiError(400, "BadRequestException", f"malformed JSON: {error}") from None
            texts = parse_texts(payload, settings)
            top_k = parse_top_k(payload.get("top_k", top_k_param), 1, len(labels))
        else:
            texts = check_texts([await _raw_text(request, kind)], settings)
            top_k = parse_top_k(top_k_param, settings.default_top_k, len(labels))
        try:
            probabilities = await model.batcher.submit(texts)
        except RuntimeError as error:
            raise ApiError(503, "ServiceUnavailableException", str(error)) from None
        seconds = time.perf_counter() - start
        metrics.latency.labels(name).observe(seconds)
        metrics.texts.labels(name).inc(len(texts))
        metrics.requests.labels("/predictions/{name}", name, 200).inc()
        results = ranked(probabilities, labels, top_k)
        if style == "torchserve":  # TorchServe's text classifier answers {label: probability}
            return {r["label"]: r["score"] for r in results[0]}
        return {"model": name, "predictions": results, "latency_ms": seconds * 1000}

    @app.get("/served", summary="served model names, status and labels (public; the web page uses it)")
    async def served() -> dict[str, Any]:
        return {
            "models": [
                {
                    "modelName": m.name,
                    "status": m.status,
                    "labels": list(m.predictor.labels) if m.predictor is not None else [],
                }
                for m in store.models.values()
            ]
        }

    @app.get("/models", summary="list models (management)")
    async def list_models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {
            "models": [
                {"modelName": m.name, "modelUrl": str(m.path), "status": m.status, "backend": m.backend}
                for m in store.models.values()
            ]
        }

    @app.get("/models/{name}", summary="describe a model (management)")
    async def describe_model(name: str, request: Request) -> list[dict[str, Any]]:
        authorize(request)
        return [store.get(name).describe()]

    @app.post("/models", summary="register a model directory under the model store (management)")
    async def register_model(
        request: Request, url: str, model_name: str | None = None, backend: str | None = None
    ) -> Any:
        authorize(request)
        path = store.resolve_registration(url)
        name = model_name or path.name
        if not NAME.match(name):
            raise ApiError(400, "BadRequestException", f"model_name {name!r}: letters, digits, '.', '_', '-'")
        if name in store.models:
            raise ApiError(409, "ConflictStatusException", f"Model {name} is already registered")
        from textcls.registry import BACKENDS

        chosen = backend or settings.backend
        if chosen not in BACKENDS:
            raise ApiError(
                400, "BadRequestException", f"unknown backend {chosen!r}: {', '.join(BACKENDS.names())}"
            )
        model = await store.add(name, path, chosen)
        if model.status != "READY":
            await store.remove(name)
            raise ApiError(500, "InternalServerException", f"Model {name} failed to load: {model.error}")
        return {"status": f'Model "{name}" Version: 1.0 registered with 1 initial workers'}

    @app.delete("/models/{name}", summary="unregister a model (management)")
    async def unregister_model(name: str, request: Request) -> dict[str, str]:
        authorize(request)
        await store.remove(name)
        return {"status": f'Model "{name}" unregistered'}

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("textcls.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    return BodyLimit(app, settings.max_body_bytes) if settings.max_body_bytes else app


async def _raw_text(request: Any, kind: str) -> str:
    """TorchServe-style input: form field ``data`` (text or file), else the raw body as UTF-8."""
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form()
        data = form.get("data")
        if data is None:
            raise ApiError(422, "InvalidInputException", "form requests need a 'data' field")
        if not isinstance(data, str):  # an uploaded file
            data = await data.read()
    else:
        data = await request.body()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "BadRequestException", "the body is not UTF-8 text") from None
    return data


SETTINGS_ENV = "TEXTCLS_SERVE_SETTINGS"


def app_from_env() -> Any:
    """uvicorn factory for ``--workers N``: each worker process builds the app from the settings
    the parent put in the environment."""
    import os

    return create_app(ServeSettings(**json.loads(os.environ[SETTINGS_ENV])))


def serve(
    settings: ServeSettings,
    port: int = 8080,
    workers: int = 1,
    graceful_timeout: float = 30,
    access_log: bool = False,
) -> None:
    """Run the server with uvicorn until interrupted; in-flight requests finish on shutdown."""
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("uvicorn", "serve", "textcls serve") from None
    settings.check()
    options = {
        "host": settings.host,
        "port": port,
        "timeout_graceful_shutdown": graceful_timeout,
        "access_log": access_log,
    }
    if workers > 1:
        import dataclasses
        import os

        if settings.management:
            log.warning("--workers %d: each worker has its own models, so the management API is off", workers)
            settings.management = False
        os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
        uvicorn.run("textcls.serve.app:app_from_env", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(settings), **options)
