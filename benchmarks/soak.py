"""Soak test of `textcls serve` (issue 20): a real server process under a fixed-duration mixed load.

Starts `textcls serve NAME=MODEL_DIR` (uvicorn, loopback, a free port, --max-body-kb and
--max-texts small enough to reach), then for --duration seconds keeps --concurrency requests in
flight (httpx, asyncio) with a seeded mix of

- valid requests: JSON {"text"} and {"texts"}, form data=, raw text/plain, GET /ping, GET /models;
- malformed ones: broken JSON, wrong types, an empty text, a bad top_k, an unknown model, the wrong
  method, an unsupported media type, bytes that are not UTF-8;
- oversized ones: a body over --max-body-kb, more texts than --max-texts.

It records the requests sent, the answers by kind and status, p50/p99 latency of the valid ones,
and the server's resident memory (VmRSS of /proc/PID/status, sampled every 0.5 s: at the start
before any load, after the warm-up tenth of the run, at the end, and the peak). It prints a JSON
summary and exits 1 when any valid request failed (a non-200 answer, a timeout or a connection
error), when any bad request was not refused with its expected 4xx as a JSON
{"code", "type", "message"} whose code is the status, or when RSS grew by more than
--max-rss-growth-mb from start to end.

    .venv/bin/python benchmarks/soak.py --model-dir runs/soak-snips-cnn                # 60 s, 64 in flight
    .venv/bin/python benchmarks/soak.py --model-dir DIR --duration 5 --concurrency 16

The client shares the machine with the server, so requests/s is a floor, not the server's capacity.
The same `soak()` runs, shorter, in tests/test_serve_fuzz.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNIPS_TEST = REPO / "data" / "snips" / "test.txt"
FALLBACK_TEXTS = ["play some jazz", "will it rain tomorrow", "book a table for two", "add this song"]
NAME = "soak"


@dataclass(frozen=True)
class Kind:
    """One kind of request: how to build it, its class, and the statuses that answer it correctly."""

    name: str
    group: str  # valid | malformed | oversized
    weight: int
    expected: frozenset[int]


KINDS = [
    Kind("json_text", "valid", 20, frozenset({200})),
    Kind("json_texts", "valid", 10, frozenset({200})),
    Kind("form_data", "valid", 8, frozenset({200})),
    Kind("raw_text", "valid", 8, frozenset({200})),
    Kind("ping", "valid", 3, frozenset({200})),
    Kind("list_models", "valid", 2, frozenset({200})),
    Kind("bad_json", "malformed", 4, frozenset({400})),
    Kind("wrong_type", "malformed", 4, frozenset({422})),
    Kind("empty_text", "malformed", 2, frozenset({422})),
    Kind("bad_top_k", "malformed", 2, frozenset({422})),
    Kind("unknown_model", "malformed", 4, frozenset({404})),
    Kind("wrong_method", "malformed", 3, frozenset({405})),
    Kind("unsupported_media", "malformed", 2, frozenset({415})),
    Kind("not_utf8", "malformed", 2, frozenset({400})),
    Kind("body_too_large", "oversized", 3, frozenset({413})),
    Kind("too_many_texts", "oversized", 3, frozenset({413})),
]
JSON = {"content-type": "application/json"}


def build_request(kind: str, rng: random.Random, texts: list[str], limits: dict) -> tuple[str, str, dict]:
    """(method, path, httpx keyword arguments) of one request of ``kind``."""
    text = rng.choice(texts)
    path = f"/predictions/{NAME}"
    if kind == "json_text":
        return "POST", path, {"json": {"text": text, "top_k": rng.randint(1, 3)}}
    if kind == "json_texts":
        return "POST", path, {"json": {"texts": rng.sample(texts, min(len(texts), rng.randint(2, 8)))}}
    if kind == "form_data":
        return "POST", path, {"data": {"data": text}}
    if kind == "raw_text":
        return "POST", path, {"content": text.encode(), "headers": {"content-type": "text/plain"}}
    if kind == "ping":
        return "GET", "/ping", {}
    if kind == "list_models":
        return "GET", "/models", {}
    if kind == "bad_json":
        broken = rng.choice([b"{not json", b'{"text": "unterminated', b"[" * 2000, b'{"texts": [1,]}', b""])
        return "POST", path, {"content": broken, "headers": JSON}
    if kind == "wrong_type":
        payload = rng.choice([{"text": 3}, {"texts": [text, 7]}, {"texts": text}, [text], {"text": None}])
        return "POST", path, {"json": payload}
    if kind == "empty_text":
        return "POST", path, {"json": {"texts": [text, "   "]}}
    if kind == "bad_top_k":
        return "POST", path, {"json": {"text": text, "top_k": rng.choice([0, -1, "x", 2.5, True])}}
    if kind == "unknown_model":
        return "POST", f"/predictions/no-such-model-{rng.randint(0, 99)}", {"json": {"text": text}}
    if kind == "wrong_method":
        method, where = rng.choice([("GET", path), ("PUT", path), ("DELETE", "/ping"), ("PATCH", "/models")])
        return method, where, {}
    if kind == "unsupported_media":
        return "POST", path, {"content": b"<x/>", "headers": {"content-type": "application/xml"}}
    if kind == "not_utf8":
        return "POST", path, {"content": b"\xff\xfe caf\xe9", "headers": {"content-type": "text/plain"}}
    if kind == "body_too_large":
        size = limits["max_body_bytes"] + rng.randint(1, limits["max_body_bytes"])
        return "POST", path, {"content": b"y" * size, "headers": {"content-type": "text/plain"}}
    if kind == "too_many_texts":
        return "POST", path, {"json": {"texts": [text] * (limits["max_texts"] + rng.randint(1, 8))}}
    raise ValueError(kind)


def refusal_problem(status: int, content: bytes) -> str | None:
    """Why an error answer is not a JSON {"code", "type", "message"} with code == status (None: it is)."""
    try:
        body = json.loads(content)
    except ValueError:
        return "not JSON"
    if not isinstance(body, dict) or set(body) != {"code", "type", "message"}:
        return f"keys {sorted(body) if isinstance(body, dict) else type(body).__name__}"
    if body["code"] != status:
        return f"code {body['code']} != status {status}"
    return None


# ------------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """The process's resident set size (VmRSS) in MiB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Server:
    """`textcls serve` as a child process on a free loopback port (no token: loopback management)."""

    def __init__(self, model_dir: Path, max_body_kb: int, max_texts: int, backend: str, log: Path):
        self.port = free_port()
        self.log_path = log
        self.command = [
            sys.executable,
            "-m",
            "textcls",
            "serve",
            f"{NAME}={model_dir}",
            "--port",
            str(self.port),
            "--backend",
            backend,
            "--threads",
            "1",
            "--max-body-kb",
            str(max_body_kb),
            "--max-texts",
            str(max_texts),
            "--model-store",
            str(Path(model_dir).resolve().parent),
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        import httpx

        env = {k: v for k, v in os.environ.items() if k != "TEXTCLS_TOKEN"}
        env.setdefault("OMP_NUM_THREADS", "1")
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(self.command, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(self.url + "/ping", timeout=5).json().get("status") == "Healthy":
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self.log_file.close()


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def sample(self) -> None:
        value = rss_mb(self.pid)
        if value is not None:
            self.samples.append((time.monotonic() - self.t0, value))

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()


# ------------------------------------------------------------------------------- the load
async def load(url: str, duration: float, concurrency: int, texts: list[str], limits: dict, seed: int):
    import httpx

    kinds = {k.name: k for k in KINDS}
    names, weights = [k.name for k in KINDS], [k.weight for k in KINDS]
    statuses: dict[str, Counter] = defaultdict(Counter)  # kind -> status (or exception name) -> n
    bad: list[str] = []  # the first wrong answers, for the report
    latencies: list[float] = []
    deadline = time.monotonic() + duration

    async def worker(index: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.monotonic() < deadline:
            kind = kinds[rng.choices(names, weights)[0]]
            method, path, options = build_request(kind.name, rng, texts, limits)
            start = time.perf_counter()
            try:
                response = await http.request(method, path, **options)
            except httpx.HTTPError as error:
                statuses[kind.name][type(error).__name__] += 1
                if len(bad) < 20:
                    bad.append(f"{kind.name}: {type(error).__name__}: {error}")
                continue
            seconds = time.perf_counter() - start
            status = response.status_code
            statuses[kind.name][status] += 1
            problem = None
            if status not in kind.expected:
                problem = f"status {status}"
            elif status >= 400:
                problem = refusal_problem(status, response.content)
            if problem is not None:
                statuses[kind.name]["wrong: " + problem] += 1
                if len(bad) < 20:
                    bad.append(f"{kind.name} {method} {path}: {problem}: {response.text[:200]}")
            elif kind.group == "valid":
                latencies.append(seconds * 1000)

    limits_ = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits_) as http:
        await asyncio.gather(*(worker(i, http) for i in range(concurrency)))
    return statuses, latencies, bad


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def soak(
    model_dir: str | Path,
    duration: float = 60,
    concurrency: int = 64,
    max_body_kb: int = 64,
    max_texts: int = 16,
    backend: str = "torch",
    max_rss_growth_mb: float = 100,
    texts: list[str] | None = None,
    seed: int = 0,
    log_dir: str | Path | None = None,
) -> dict:
    """Run the soak; returns the summary (``summary["ok"]``: no failure and RSS within bound)."""
    texts = texts or read_texts(SNIPS_TEST)
    limits = {"max_body_bytes": max_body_kb * 1024, "max_texts": max_texts}
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="textcls-soak-"))
    with Server(Path(model_dir), max_body_kb, max_texts, backend, log_dir / "serve.log") as server:
        sampler = RssSampler(server.process.pid)
        sampler.sample()  # start: loaded and warmed up, before any load
        sampler.start()
        started = time.monotonic()
        statuses, latencies, bad = asyncio.run(load(server.url, duration, concurrency, texts, limits, seed))
        elapsed = time.monotonic() - started
        sampler.stop.set()
        sampler.join()
        sampler.sample()  # end: the load is over, the process still up
        alive = server.process.poll() is None
        server_log = server.log()

    groups = {k.name: k.group for k in KINDS}
    valid = {"sent": 0, "failed": 0}
    refused_by_status: Counter = Counter()
    wrong_refusals = 0
    by_kind = {}
    for name, counter in sorted(statuses.items()):
        sent = sum(n for key, n in counter.items() if not str(key).startswith("wrong: "))
        wrong = sum(n for key, n in counter.items() if str(key).startswith("wrong: "))
        errors = sum(
            n for key, n in counter.items() if isinstance(key, str) and not key.startswith("wrong: ")
        )
        by_kind[name] = {str(key): n for key, n in sorted(counter.items(), key=lambda kv: str(kv[0]))}
        if groups[name] == "valid":
            valid["sent"] += sent
            valid["failed"] += wrong + errors
        else:
            wrong_refusals += wrong + errors
            refused_by_status.update({str(k): n for k, n in counter.items() if isinstance(k, int)})
    total = sum(sum(n for k, n in c.items() if not str(k).startswith("wrong: ")) for c in statuses.values())
    samples = [mb for _, mb in sampler.samples]
    warm = [mb for t, mb in sampler.samples if t >= 0.1 * duration]
    rss = {
        "start_mb": round(samples[0], 1),
        "after_warmup_mb": round(warm[0], 1) if warm else None,
        "end_mb": round(samples[-1], 1),
        "max_mb": round(max(samples), 1),
        "growth_mb": round(samples[-1] - samples[0], 1),
        "bound_mb": max_rss_growth_mb,
        "samples": len(samples),
    }
    problems = []
    if valid["failed"]:
        problems.append(f"{valid['failed']} valid requests failed")
    if wrong_refusals:
        problems.append(f"{wrong_refusals} bad requests not refused as a JSON 4xx of the expected status")
    if rss["growth_mb"] > max_rss_growth_mb:
        problems.append(f"RSS grew {rss['growth_mb']} MiB > {max_rss_growth_mb}")
    if not alive:
        problems.append("the server died")
    summary = {
        "model_dir": str(model_dir),
        "backend": backend,
        "duration_s": round(elapsed, 1),
        "concurrency": concurrency,
        "limits": {"max_body_kb": max_body_kb, "max_texts": max_texts},
        "requests": total,
        "requests_per_s": round(total / elapsed, 1),
        "valid": {
            **valid,
            "p50_ms": round(percentile(latencies, 50), 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 99), 2) if latencies else None,
        },
        "refused": {
            "sent": total - valid["sent"],
            "by_status": dict(sorted(refused_by_status.items())),
            "wrong": wrong_refusals,
        },
        "by_kind": by_kind,
        "rss": rss,
        "first_wrong_answers": bad,
        "problems": problems,
        "ok": not problems,
    }
    if problems:
        summary["server_log_tail"] = server_log[-2000:]
    return summary


def read_texts(path: Path, limit: int = 2000) -> list[str]:
    if not path.is_file():
        return list(FALLBACK_TEXTS)
    lines = path.read_text(encoding="utf-8").splitlines()[:limit]
    return [line.split("\t")[0].strip() for line in lines if line.split("\t")[0].strip()] or FALLBACK_TEXTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="a trained model directory")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--max-body-kb", type=int, default=64, help="the server's body limit (default 64)")
    parser.add_argument("--max-texts", type=int, default=16, help="the server's texts per request (16)")
    parser.add_argument("--backend", default="torch")
    parser.add_argument(
        "--max-rss-growth-mb",
        type=float,
        default=100,
        help="fail when the server's RSS at the end exceeds its RSS at the start by more (default 100)",
    )
    parser.add_argument("--texts", type=Path, default=SNIPS_TEST, help="valid texts: a text<TAB>label file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the summary here (JSON)")
    args = parser.parse_args(argv)
    summary = soak(
        args.model_dir,
        duration=args.duration,
        concurrency=args.concurrency,
        max_body_kb=args.max_body_kb,
        max_texts=args.max_texts,
        backend=args.backend,
        max_rss_growth_mb=args.max_rss_growth_mb,
        texts=read_texts(args.texts),
        seed=args.seed,
    )
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
