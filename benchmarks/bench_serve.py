"""Serving benchmark (issue 5): a bounded load test on loopback with wrk (fixed duration, fixed
concurrency) against `textcls serve`, for the word CNN (onnx) and MiniLM-L6 (onnx-int8), dynamic
batching on vs off, at concurrency 1, 8 and 32. Each request is one SNIPS test text as JSON
(`{"text": ...}`), cycling through the test set. Zero errors allowed: non-2xx answers or socket
errors are reported and fail the row.

    .venv/bin/python benchmarks/bench_serve.py --out BENCHMARKS.md

Needs wrk (Debian package `wrk`) and the models of `make bench-inference` (runs/bench-inference,
exported to ONNX); the server and wrk share this machine's cores, which the table states.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, header, write_section

RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = " ".join([".venv/bin/python", "benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]])
# model -> (backend, inference threads in the server): the CNN is too small to split over threads;
# MiniLM's batches are not.
MODELS = {"snips-cnn": ("onnx", 1), "snips-minilm": ("onnx-int8", 2)}
LUA = """
bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
counter = 0
request = function()
  counter = counter %% #bodies + 1
  return wrk.format("POST", "/predictions/%s", {["content-type"] = "application/json"}, bodies[counter])
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_dir: Path, name: str, backend: str, batching: bool, threads: int, port: int):
    command = [
        str(REPO / ".venv" / "bin" / "textcls"),
        "serve",
        f"{name}={model_dir}",
        "--backend",
        backend,
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--no-management",
    ]
    if not batching:
        command.append("--no-batching")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as response:
                if json.load(response)["status"] == "Healthy":
                    return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start: {process.stderr.read()[-2000:]}")


def unit_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(port: int, script: Path, concurrency: int, seconds: int) -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": unit_ms(latency["50"]),
        "p99_ms": unit_ms(latency["99"]),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "errors": errors,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| model | backend | threads | batching | concurrency | requests/s | p50 ms | p99 ms "
        "| requests | errors |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        batching = "on" if r["batching"] else "off"
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['threads']} | {batching} | {r['concurrency']} "
            f"| {r['requests_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['requests']:,} "
            f"| {r['errors']} |"
        )
    return "\n".join(lines)


def find(rows: list[dict], model: str, batching: bool, concurrency: int) -> dict | None:
    for r in rows:
        if (r["model"], r["batching"], r["concurrency"]) == (model, batching, concurrency):
            return r
    return None


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def targets(rows: list[dict]) -> str:
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    cnn = [r for r in (find(rows, "snips-cnn", True, 32), find(rows, "snips-cnn", False, 32)) if r]
    if cnn:
        best = max(cnn, key=lambda r: r["requests_per_s"])
        met = best["requests_per_s"] >= 1500 and best["p99_ms"] <= 50 and best["errors"] == 0
        batching = "on" if best["batching"] else "off"
        lines.append(
            f"| word CNN ≥ 1,500 req/s at concurrency 32, p99 ≤ 50 ms | {best['requests_per_s']:,.0f} "
            f"req/s, p99 {best['p99_ms']:.1f} ms (batching {batching}) | {verdict(met)} |"
        )
    on, off = find(rows, "snips-minilm", True, 32), find(rows, "snips-minilm", False, 32)
    if on and off:
        ratio = on["requests_per_s"] / off["requests_per_s"]
        lines.append(
            "| MiniLM-L6 int8: batching ≥ 2× the req/s of no batching at concurrency 32 "
            f"| {on['requests_per_s']:,.0f} vs {off['requests_per_s']:,.0f} req/s: {ratio:.2f}× "
            f"| {verdict(ratio >= 2)} |"
        )
    errors = sum(r["errors"] for r in rows)
    total = sum(r["requests"] for r in rows)
    lines.append(f"| zero errors | {errors} errors in {total:,} requests | {verdict(errors == 0)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, default=REPO / "runs" / "bench-inference")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "snips" / "test.txt")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    results = RESULTS / "serve.json"
    if not args.render_only:
        if shutil.which("wrk") is None:
            raise SystemExit("wrk is not installed: apt-get install wrk")
        texts = [line.split("\t")[0] for line in args.data.read_text(encoding="utf-8").splitlines() if line]
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            bodies = Path(tmp) / "bodies.jsonl"
            bodies.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
            for name, (backend, threads) in MODELS.items():
                script = Path(tmp) / f"{name}.lua"
                script.write_text(LUA % (bodies, name), encoding="utf-8")
                for batching in (True, False):
                    port = free_port()
                    server = start_server(args.models / name, name, backend, batching, threads, port)
                    try:
                        run_wrk(port, script, 8, 2)  # warm-up
                        for concurrency in [int(c) for c in args.concurrency.split(",")]:
                            row = {
                                "model": name,
                                "backend": backend,
                                "batching": batching,
                                "concurrency": concurrency,
                                "threads": threads,
                                **run_wrk(port, script, concurrency, args.seconds),
                            }
                            rows.append(row)
                            print(json.dumps(row), flush=True)
                    finally:
                        server.terminate()
                        server.wait(30)
        RESULTS.mkdir(exist_ok=True)
        results.write_text(
            json.dumps({"rows": rows, "seconds": args.seconds, "command": COMMAND}, indent=2) + "\n"
        )
    saved = json.loads(results.read_text())
    rows = saved["rows"]
    print(table(rows))
    print(targets(rows))
    if args.out:
        command = saved.get("command") or "(unknown)"
        body = "\n\n".join(
            [
                "## Serving (issue 5)",
                header(command),
                "wrk (1 thread) against `textcls serve` on loopback (inference threads: the table), "
                f"{saved['seconds']} s per row after a 2 s warm-up; one SNIPS test text per request "
                f"(JSON), cycling through the test set. Batching on: `--max-batch-size 32 --max-delay-ms 5`; "
                f"off: `--no-batching`. The server and wrk share the {os.cpu_count()} cores.",
                targets(rows),
                table(rows),
            ]
        )
        write_section(args.out, "bench-serve", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
