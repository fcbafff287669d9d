"""The FastAPI application behind ``textcls serve``.

Inference (TorchServe-compatible): ``GET /ping``, ``POST /predictions/{model}`` (form field
``data=``, a raw text body, or JSON ``{"text": ...}`` / ``{"texts": [...], "top_k": k, "threshold": t}``).
Each answer lists labels with scores; multi-label models answer every label above its threshold,
and an out-of-scope answer carries ``"out_of_scope": true`` (and ``"abstained": true`` when a
threshold decided it), in the JSON answer's first entry and beside the TorchServe-style
``{label: probability}`` mapping alike (:func:`torchserve_answer`).
``GET /served`` lists model names for the web page.
Management (bearer token): ``GET /models``, ``GET /models/{name}``, ``POST /models?url=&model_name=``
(directories under ``--model-store`` only, at most ``--max-models``), ``DELETE /models/{name}``.
Also ``GET /metrics`` (Prometheus), ``GET /docs`` (OpenAPI) and ``GET /`` (a web page to try the models).

Every request passes ``Guard`` first: its ``Host`` must name this server (DNS rebinding), its body
must fit ``max_body_bytes`` (chunked or not), and a management request must not come from another
web page (``Origin`` / ``Sec-Fetch-Site``) nor, without a configured token, from a browser at all.
Every refusal is a JSON ``{"code", "type", "message"}``.
"""

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import re
import reprlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from textcls.errors import ConfigError, MissingDependencyError
from textcls.serve.batching import DynamicBatcher

log = logging.getLogger(__name__)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ANY_ADDRESS = {"0.0.0.0", "::", ""}  # bound to every interface: the Host can be any name
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
FORM_TYPES = {"multipart/form-data", "application/x-www-form-urlencoded"}
DRAIN_FACTOR = 8  # an oversized body is read (and dropped) up to this many limits, so the 413 arrives
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


def short(value: Any) -> str:
    """A bounded repr for error messages (a request may send megabytes or deep nesting)."""
    try:
        return _short.repr(value)
    except RecursionError:
        return f"<a deeply nested {type(value).__name__}>"


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
    max_models: int = 16  # models served at once; POST /models beyond it is refused (409)
    allowed_hosts: list[str] = field(default_factory=list)  # Host names accepted besides the bound one
    allow_origins: list[str] = field(default_factory=list)  # other web origins trusted (CORS, management)
    max_batch_size: int = 32  # 1: batching off
    max_delay_ms: float = 5.0
    predict_batch_size: int = 16  # a served batch runs as length-sorted sub-batches (less padding)
    max_body_bytes: int = 1_000_000
    max_texts: int = 256
    max_text_chars: int = 20_000
    default_top_k: int = 5  # TorchServe-style responses (form / raw body)
    graceful_timeout: float = 30.0  # on shutdown, seconds for work a client still waits for

    def check(self) -> None:
        if self.management and not self.token and not is_loopback(self.host):
            raise ConfigError(
                f"the management API on {self.host} (not loopback) needs a token: --token or the "
                "TEXTCLS_TOKEN environment variable, or --no-management"
            )
        for name in self.models:
            if not NAME.match(name):
                raise ConfigError(f"model name '{name}': use letters, digits, '.', '_' or '-' (max 64)")
        if self.max_batch_size < 1 or self.max_texts < 1 or self.max_text_chars < 1:
            raise ConfigError("--max-batch-size, --max-texts and --max-text-chars must be at least 1")
        if self.max_models < 1 or len(self.models) > self.max_models:
            raise ConfigError(f"{len(self.models)} models to serve, --max-models is {self.max_models}")
        for host in self.allowed_hosts:
            if not re.fullmatch(r"\*|(\*\.)?[A-Za-z0-9._:\[\]-]+", host):
                raise ConfigError(f"--allowed-hosts {host!r}: a host name, '*.domain' or '*'")
        for origin in self.allow_origins:
            if origin != "*" and normalize_origin(origin) is None:
                raise ConfigError(
                    f"--allow-origin {origin!r}: write scheme://host[:port], e.g. http://localhost:3000"
                )


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
            fields = model.predictor.fields
            warm_up = {name: "warm up" for name in fields} if len(fields) > 1 else "warm up"
            model.predictor.predict_proba([warm_up])  # first-call costs are paid before serving
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

    async def remove(self, name: str, timeout: float | None = None) -> None:
        model = self.get(name)
        del self.models[name]
        if model.batcher is not None:
            await model.batcher.close(timeout)

    async def close(self, timeout: float) -> None:
        """Shutdown: every model's awaited work finishes, all models together within ``timeout``."""
        deadline = time.perf_counter() + timeout
        for name in list(self.models):
            await self.remove(name, max(0.0, deadline - time.perf_counter()))

    def check_capacity(self) -> None:
        if len(self.models) >= self.settings.max_models:
            raise ApiError(
                409,
                "ConflictStatusException",
                f"{len(self.models)} models are registered, the limit (--max-models): "
                "unregister one (DELETE /models/NAME) first",
            )

    def resolve_registration(self, url: str) -> Path:
        """A model directory under the store root, with safetensors weights; else a 400. A url
        the file system cannot take (a NUL byte, a name too long, a symlink loop) is a 400 too."""
        try:
            return self._resolve_registration(url)
        except (ValueError, OSError, RuntimeError) as error:
            raise ApiError(
                400, "BadRequestException", f"url {short(url)} is not a usable path: {type(error).__name__}"
            ) from None

    def _resolve_registration(self, url: str) -> Path:
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


def parse_json(body: bytes) -> Any:
    """The request body as JSON; anything json cannot read (bad syntax, bad UTF-8, nesting past
    the recursion limit, integers past Python's digit limit) is a 400."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ApiError(400, "BadRequestException", "malformed JSON: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        message = str(error)
        raise ApiError(400, "BadRequestException", f"malformed JSON: {message[:200]}") from None


def parse_inputs(payload: Any, settings: ServeSettings, fields: list[str]) -> list[Any]:
    """The model's inputs from a JSON body. A model trained with ``--fields`` takes its fields by
    name, ``{"title": ..., "body": ...}`` (one input) or ``{"texts": [{...}, ...]}``; a one-field
    model also takes plain texts. A missing, unexpected or non-string field is a 422."""
    from textcls.data.fields import field_inputs
    from textcls.errors import InputError

    if not fields:
        return parse_texts(payload, settings)
    if not isinstance(payload, dict):
        raise ApiError(422, "InvalidInputException", _fields_hint(fields))
    if "texts" in payload:
        items = payload["texts"]
        if not isinstance(items, list) or not items:
            raise ApiError(422, "InvalidInputException", '"texts" must be a non-empty list')
    elif "text" in payload and len(fields) == 1 and fields[0] not in payload:
        items = [payload["text"]]
    else:
        items = [{k: v for k, v in payload.items() if k not in ("top_k", "threshold")}]
    check_count(len(items), settings)
    try:
        inputs = field_inputs(items, fields)
    except InputError as error:
        raise ApiError(422, "InvalidInputException", str(error)) from None
    for i, item in enumerate(inputs):
        values = list(item) if isinstance(item, tuple) else [item]
        if not any(v.strip() for v in values):
            raise ApiError(422, "InvalidInputException", f"text {i} is empty")
        for value in values:
            if len(value) > settings.max_text_chars:
                raise ApiError(
                    413,
                    "PayloadTooLargeException",
                    f"text {i} has a field of {len(value)} characters; "
                    f"the limit is {settings.max_text_chars}",
                )
    return inputs


def _fields_hint(fields: list[str]) -> str:
    from textcls.data.fields import describe

    return f'this model reads named fields: send a JSON object {describe(fields)} or {{"texts": [...]}}'


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


def check_count(count: int, settings: ServeSettings) -> None:
    if count > settings.max_texts:
        raise ApiError(
            413,
            "PayloadTooLargeException",
            f"{count} texts in one request; the limit is {settings.max_texts}",
        )


def check_texts(texts: list[Any], settings: ServeSettings) -> list[str]:
    check_count(len(texts), settings)
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


def parse_top_k(value: Any, default: int | None, labels: int) -> int | None:
    """An integer ≥ 1 (a JSON integer, or digits in a query string / JSON string); capped at the
    number of labels. Floats (``1e400``, ``2.5``), booleans, lists and the like are a 422. None
    (a multi-label model's default): every label above its threshold."""
    if value is None:
        return None if default is None else min(default, labels)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9]{1,18}\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(422, "InvalidInputException", f"top_k must be an integer, got {short(value)}")
    if value < 1:
        raise ApiError(422, "InvalidInputException", f"top_k must be at least 1, got {value}")
    return min(value, labels)


def parse_threshold(value: Any) -> float | None:
    """A number in [0, 1] (JSON, or a query string): replaces the model's thresholds (multi-label:
    each label's; one label per text: the abstention's). Anything else is a 422."""
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]*\.?[0-9]+\s*", value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ApiError(
            422, "InvalidInputException", f"threshold must be a number from 0 to 1, got {short(value)}"
        )
    return float(value)


# ----------------------------------------------------------------------------- Host and Origin
def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(header: str | None) -> tuple[str, int | None] | None:
    """``Host`` header → (lower-case name without brackets, port or None); None when malformed."""
    if not header:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return None
        name, rest = header[1:end], header[end + 1 :]
    else:
        name, colon, port = header.partition(":")
        rest = colon + port
    if not name or (rest and not re.fullmatch(r":[0-9]{1,5}", rest)):
        return None
    return name.rstrip("."), int(rest[1:]) if rest else None


def accepted_hosts(settings: ServeSettings) -> frozenset[str] | None:
    """The Host names this server answers (None: any). Bound to loopback: the bound name plus
    localhost, 127.0.0.1 and ::1; bound to one address: that one; bound to 0.0.0.0 / ::: any,
    unless ``allowed_hosts`` lists names. ``allowed_hosts`` adds to the first two."""
    extra = {h.strip().lower().strip("[]").rstrip(".") for h in settings.allowed_hosts}
    if "*" in extra:
        return None
    bound = settings.host.strip().lower().strip("[]")
    if bound in ANY_ADDRESS:
        return frozenset(extra) or None
    names = {bound} | extra
    if is_loopback(bound):
        names |= LOOPBACK
    return frozenset(names)


def host_allowed(name: str, accepted: frozenset[str] | None) -> bool:
    if accepted is None or name in accepted:
        return True
    return any(p.startswith("*.") and name.endswith(p[1:]) for p in accepted)


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` lower-cased with the default port dropped; None if not one."""
    parts = urlsplit(origin.strip().lower())
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = 80 if parts.scheme == "http" else 443
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def same_origin(origin: str, host_header: str | None) -> bool:
    """Does ``Origin`` name the host and port the request was sent to (its ``Host``)?"""
    normalized, host = normalize_origin(origin), split_host(host_header)
    if normalized is None or host is None:
        return False
    parts = urlsplit(normalized)
    default = 80 if parts.scheme == "http" else 443
    return parts.hostname == host[0] and (parts.port or default) == (host[1] or default)


def check_management(method: str, headers: Any, settings: ServeSettings) -> None:
    """A management request from another web page is refused (CSRF): an ``Origin`` that is
    neither this server nor listed in ``allow_origins``, or ``Sec-Fetch-Site`` cross-site /
    same-site (another port of the same host). A browser (``Origin`` or ``Sec-Fetch-*`` sent)
    may change models only when a token is configured, even on loopback."""
    origin = headers.get("origin")
    trusted = origin is not None and normalize_origin(origin) in {
        normalize_origin(o) for o in settings.allow_origins if o != "*"
    }
    if origin is not None and not trusted and not same_origin(origin, headers.get("host")):
        raise ApiError(
            403,
            "ForbiddenException",
            f"cross-origin management request from {short(origin)} refused "
            "(list trusted web origins with --allow-origin)",
        )
    fetch_site = headers.get("sec-fetch-site", "").lower()
    if fetch_site in ("cross-site", "same-site") and not trusted:
        raise ApiError(
            403, "ForbiddenException", f"management request with Sec-Fetch-Site: {fetch_site} refused"
        )
    browser = origin is not None or any(key.startswith("sec-fetch-") for key in headers)
    if browser and method not in SAFE_METHODS and not settings.token:
        raise ApiError(
            403,
            "ForbiddenException",
            "changing models from a browser needs a token: start the server with --token "
            "(or $TEXTCLS_TOKEN) and send 'Authorization: Bearer <token>'",
        )


def is_management(path: str) -> bool:
    return path == "/models" or path.startswith("/models/")


async def send_error(send: Callable, error: ApiError, close: bool = False) -> None:
    body = json.dumps({"code": error.code, "type": error.kind, "message": error.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware in front of every route: the Host check (all routes: DNS rebinding), the
    management origin rules (``check_management``), and the body limit.

    The body is read whole here, before the app runs, so an oversized one (declared, or chunked
    with no Content-Length) is a 413 from this layer rather than an exception inside the app.
    An oversized body is still read and dropped up to ``DRAIN_FACTOR`` limits so the client,
    which may still be sending, receives the 413 instead of a connection reset."""

    def __init__(self, app: Any, settings: ServeSettings) -> None:
        from starlette.datastructures import Headers

        self.app, self.settings, self.headers_of = app, settings, Headers
        self.hosts = accepted_hosts(settings)
        self.limit = settings.max_body_bytes or None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = self.headers_of(scope=scope)
        try:
            self.check_host(headers.get("host"))
            if is_management(scope["path"]):
                check_management(scope["method"], headers, self.settings)
        except ApiError as error:
            return await send_error(send, error)
        if self.limit is None:
            return await self.app(scope, receive, send)
        try:
            body = await self.read_body(headers, receive)
        except ApiError as error:
            return await send_error(send, error, close=True)
        if body is None:
            return  # the client went away
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()  # waits for http.disconnect, as the app expects
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def check_host(self, header: str | None) -> None:
        host = split_host(header)
        if host is None:
            raise ApiError(400, "BadRequestException", f"missing or malformed Host header: {short(header)}")
        if not host_allowed(host[0], self.hosts):
            raise ApiError(
                400,
                "BadRequestException",
                f"Host {short(header)} is not this server ({self.settings.host}); "
                "start it with --allowed-hosts to accept that name",
            )

    async def read_body(self, headers: Any, receive: Callable) -> bytes | None:
        limit = self.limit
        too_large = ApiError(413, "PayloadTooLargeException", f"body over {limit} bytes")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            waiting = "100-continue" in headers.get("expect", "").lower()  # it has sent nothing yet
            if not waiting and int(declared) <= DRAIN_FACTOR * limit:
                await self.drain(receive, 0)
            raise too_large
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body"):
                    await self.drain(receive, size)
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def drain(self, receive: Callable, size: int) -> None:
        while size <= DRAIN_FACTOR * self.limit:
            message = await receive()
            size += len(message.get("body", b""))
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                return


def create_app(settings: ServeSettings) -> Any:
    """The FastAPI app; models in ``settings.models`` load at startup (failures stay FAILED)."""
    try:
        from contextlib import asynccontextmanager

        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.middleware.cors import CORSMiddleware
        from fastapi.responses import HTMLResponse, JSONResponse, Response
        from starlette.exceptions import HTTPException
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
        # uvicorn has let in-flight requests finish (or cancelled them at --graceful-timeout);
        # what a client still waits for finishes here, bounded by the same timeout
        await store.close(settings.graceful_timeout)

    app = FastAPI(
        title="textcls model server",
        description="Text classification over HTTP; TorchServe-compatible inference and management routes.",
        lifespan=lifespan,
    )
    app.state.store, app.state.settings, app.state.metrics = store, settings, metrics
    if settings.allow_origins:  # cross-origin reads only for the listed web origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o if o == "*" else normalize_origin(o) for o in settings.allow_origins],
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type"],
        )

    def error_response(request: Request, error: ApiError) -> JSONResponse:
        route = request.scope.get("route")
        metrics.requests.labels(
            getattr(route, "path", "?"), request.path_params.get("name", ""), error.code
        ).inc()
        return JSONResponse({"code": error.code, "type": error.kind, "message": error.message}, error.code)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(request, error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        kinds = {404: "NotFoundException", 405: "MethodNotAllowedException", 413: "PayloadTooLargeException"}
        kind = kinds.get(error.status_code, "BadRequestException")
        return error_response(request, ApiError(error.status_code, kind, str(error.detail)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{' '.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg', 'invalid')}"
            for problem in error.errors()
        )
        return error_response(request, ApiError(400, "BadRequestException", problems[:500]))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        # the last resort: every expected failure above is a 4xx; this one is logged as a bug
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        message = f"unexpected {type(error).__name__}; see the server log"
        return error_response(request, ApiError(500, "InternalServerException", message))

    def authorize(request: Request) -> None:
        if not settings.management:
            raise ApiError(403, "ForbiddenException", "the management API is off (--no-management)")
        if settings.token is None:
            return  # loopback only (checked at startup), and no browser may change models (Guard)
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
        decision = model.predictor.decider()
        start = time.perf_counter()
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        top_k_param = request.query_params.get("top_k")
        threshold_param = request.query_params.get("threshold")
        style = body_style(kind)
        if style == "json":
            payload = parse_json(await request.body())
            texts = parse_inputs(payload, settings, model.predictor.fields)
            default = None if decision.multi_label else 1
            top_k = parse_top_k(payload.get("top_k", top_k_param), default, len(labels))
            threshold = parse_threshold(payload.get("threshold", threshold_param))
        else:
            if len(model.predictor.fields) > 1:
                raise ApiError(422, "InvalidInputException", _fields_hint(model.predictor.fields))
            texts = check_texts([await _raw_text(request, kind)], settings)
            default = None if decision.multi_label else settings.default_top_k
            top_k = parse_top_k(top_k_param, default, len(labels))
            threshold = parse_threshold(threshold_param)
        try:
            probabilities = await model.batcher.submit(texts)
        except RuntimeError as error:
            raise ApiError(503, "ServiceUnavailableException", str(error)) from None
        seconds = time.perf_counter() - start
        metrics.latency.labels(name).observe(seconds)
        metrics.texts.labels(name).inc(len(texts))
        metrics.requests.labels("/predictions/{name}", name, 200).inc()
        results = decision.answers(probabilities, top_k, threshold)
        if style == "torchserve":
            return torchserve_answer(results[0])
        return {"model": name, "predictions": results, "latency_ms": seconds * 1000}

    @app.get("/served", summary="served model names, status and labels (public; the web page uses it)")
    async def served() -> dict[str, Any]:
        return {
            "models": [
                {
                    "modelName": m.name,
                    "status": m.status,
                    "labels": list(m.predictor.labels) if m.predictor is not None else [],
                    "fields": m.predictor.fields if m.predictor is not None else [],
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
            raise ApiError(
                400, "BadRequestException", f"model_name {short(name)}: letters, digits, '.', '_', '-'"
            )
        if name in store.models:
            raise ApiError(409, "ConflictStatusException", f"Model {name} is already registered")
        from textcls.registry import BACKENDS

        chosen = backend or settings.backend
        if chosen not in BACKENDS:
            raise ApiError(
                400, "BadRequestException", f"unknown backend {short(chosen)}: {', '.join(BACKENDS.names())}"
            )
        store.check_capacity()  # no await since the checks above: two requests cannot both pass
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

    return Guard(app, settings)


OUT_OF_SCOPE_FLAGS = ("out_of_scope", "abstained")


def torchserve_answer(answer: list[dict[str, Any]]) -> dict[str, Any]:
    """One text's answer as TorchServe's text classifier gives it: ``{label: probability}``, best
    first (multi-label: every label answered, possibly none). An out-of-scope answer keeps that
    mapping, its out-of-scope label first, and adds the flags the JSON answer's first entry
    carries, as JSON booleans: ``{"oos": 0.41, "music": 0.41, "out_of_scope": true, "abstained":
    true}`` (``abstained`` only when a threshold decided it, not a trained class). A score is never
    a boolean, so ``answer.get("out_of_scope") is True`` tells an out-of-scope answer even for a
    model with a label named like a flag (that label's score then gives way to the flag; the JSON
    answer has no such clash)."""
    mapping: dict[str, Any] = {entry["label"]: entry["score"] for entry in answer}
    if answer and answer[0].get("out_of_scope"):
        mapping.update({flag: True for flag in OUT_OF_SCOPE_FLAGS if answer[0].get(flag)})
    return mapping


def body_style(kind: str) -> str:
    """JSON bodies answer ``{"model", "predictions", ...}``; form fields and raw text answer
    TorchServe-style ``{label: probability}``; any other media type is a 415."""
    if kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json")):
        return "json"
    if kind in FORM_TYPES or kind in ("", "application/octet-stream") or kind.startswith("text/"):
        return "torchserve"
    raise ApiError(
        415,
        "UnsupportedMediaTypeException",
        f"content-type {short(kind)}: send application/json, a form (data=), or text/plain",
    )


async def _raw_text(request: Any, kind: str) -> str:
    """TorchServe-style input: form field ``data`` (text or file), else the raw body as UTF-8."""
    if kind in FORM_TYPES:
        from starlette.exceptions import HTTPException

        try:
            form = await request.form()
        except HTTPException:
            raise  # starlette's own 400 for a malformed form (answered in the JSON shape)
        except Exception as error:  # the multipart parser on input it does not expect
            raise ApiError(400, "BadRequestException", f"malformed form body: {short(str(error))}") from None
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
    """Run the server with uvicorn until SIGTERM / Ctrl-C, then shut down gracefully: new
    connections are refused, requests in flight get up to ``graceful_timeout`` seconds to be
    answered (then they are cancelled), and this function returns normally."""
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("uvicorn", "serve", "textcls serve") from None
    settings.graceful_timeout = graceful_timeout
    settings.check()
    options = {
        "host": settings.host,
        "port": port,
        "timeout_graceful_shutdown": graceful_timeout,
        "access_log": access_log,
    }
    with _signals_end_the_server():
        if workers > 1:
            import dataclasses
            import os

            if settings.management:
                log.warning(
                    "--workers %d: each worker has its own models, so the management API is off", workers
                )
                settings.management = False
            os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
            uvicorn.run("textcls.serve.app:app_from_env", factory=True, workers=workers, **options)
        else:
            uvicorn.run(create_app(settings), **options)


@contextlib.contextmanager
def _signals_end_the_server() -> Iterator[None]:
    """uvicorn handles SIGTERM / SIGINT itself, then raises the signal again once it has shut
    down, which under the default handlers kills the process (exit -15) or raises
    KeyboardInterrupt. A graceful shutdown is a normal end: the re-raised signals land in these
    no-op handlers, and the process exits 0."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only; nothing to absorb
        return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
