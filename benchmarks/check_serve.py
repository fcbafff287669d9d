"""Check the server's refusals (issue 13): start `textcls serve` on a loopback port, send a fixed,
bounded list of malformed, oversized (chunked and with Content-Length), deeply nested JSON,
cross-origin and wrong-Host requests, print a table of request → status, and exit 1 if any answer
is not the expected one (every refusal must be a JSON `{"code", "type", "message"}` 4xx).

    .venv/bin/python benchmarks/check_serve.py                          # trains a tiny model first
    .venv/bin/python benchmarks/check_serve.py --model-dir runs/snips-cnn

Loopback only; about 45 requests; the server runs without a token (loopback, management open
to non-browser clients) and with --max-models 1, --max-body-kb 512.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_BODY_KB = 512
LIMIT = MAX_BODY_KB * 1024


@dataclass
class Case:
    name: str
    expected: int
    method: str = "POST"
    path: str = "/predictions/tiny"
    body: bytes | Iterable[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    host: str | None = "default"  # None: no Host header at all
    check: Callable[[http.client.HTTPResponse, bytes], str | None] | None = None  # extra condition


def json_body(payload: object) -> tuple[bytes, dict[str, str]]:
    return json.dumps(payload).encode(), {"content-type": "application/json"}


def chunks(total: int, size: int = 16 * 1024) -> Iterable[bytes]:
    for start in range(0, total, size):
        yield b"y" * min(size, total - start)


def no_cors_header(response: http.client.HTTPResponse, body: bytes) -> str | None:
    if response.getheader("access-control-allow-origin"):
        return "has Access-Control-Allow-Origin"
    return None


def cases(model_dir: Path) -> list[Case]:
    raw = {"content-type": "text/plain"}
    js = {"content-type": "application/json"}
    ok, _ = json_body({"text": "song album guitar band"})
    register = f"/models?url={model_dir.name}&model_name=again"
    return [
        Case("GET /ping", 200, "GET", "/ping"),
        Case("JSON text", 200, body=ok, headers=js),
        Case("JSON, broken syntax", 400, body=b"{not json", headers=js),
        Case("JSON nested 400 KB deep [[[[…", 400, body=b"[" * 400_000, headers=js),
        Case(
            'JSON {"texts": [[[[… 2×150 KB',
            400,
            body=b'{"texts": ' + b"[" * 150_000 + b"]" * 150_000 + b"}",
            headers=js,
        ),
        Case("top_k 1e400 (inf)", 422, body=b'{"text": "x", "top_k": 1e400}', headers=js),
        Case("top_k 5000 digits", 400, body=b'{"text": "x", "top_k": ' + b"9" * 5000 + b"}", headers=js),
        Case("top_k true", 422, body=b'{"text": "x", "top_k": true}', headers=js),
        Case('top_k "many"', 422, body=b'{"text": "x", "top_k": "many"}', headers=js),
        Case("top_k -1", 422, body=b'{"text": "x", "top_k": -1}', headers=js),
        Case("top_k 2.5", 422, body=b'{"text": "x", "top_k": 2.5}', headers=js),
        Case(
            "?top_k=abc (form)",
            422,
            path="/predictions/tiny?top_k=abc",
            body=b"data=hi",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        Case('texts "a string"', 422, body=b'{"texts": "a string"}', headers=js),
        Case("texts [1, null]", 422, body=b'{"texts": [1, null]}', headers=js),
        Case("texts []", 422, body=b'{"texts": []}', headers=js),
        Case('text "   "', 422, body=b'{"text": "   "}', headers=js),
        Case("JSON array, not an object", 422, body=b'["a"]', headers=js),
        Case("JSON, invalid UTF-8", 400, body=b'{"text": "\xff\xfe"}', headers=js),
        Case("raw text, invalid UTF-8", 400, body=b"\xff\xfe\xfa", headers=raw),
        Case(
            "form without data=",
            422,
            body=b"other=x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        Case("multipart without boundary", 400, body=b"x", headers={"content-type": "multipart/form-data"}),
        Case(
            "content-type application/xml",
            415,
            body=b"<t>hi</t>",
            headers={"content-type": "application/xml"},
        ),
        Case("300 texts (limit 256)", 413, body=json_body({"texts": ["a"] * 300})[0], headers=js),
        Case("one text of 20001 chars", 413, body=json_body({"text": "a" * 20_001})[0], headers=js),
        Case("chunked body 2× the limit", 413, body=chunks(2 * LIMIT), headers=raw),
        Case("Content-Length body 2× the limit", 413, body=b"y" * (2 * LIMIT), headers=raw),
        Case(
            "Content-Length 1 GB + Expect: 100-continue",
            413,
            body=None,
            headers={**raw, "content-length": str(10**9), "expect": "100-continue"},
        ),
        Case("unknown model", 404, path="/predictions/nope", body=ok, headers=js),
        Case("GET /predictions/tiny", 405, "GET"),
        Case("POST /models without url", 400, path="/models"),
        Case("Host: attacker.example /ping", 400, "GET", "/ping", host="attacker.example"),
        Case(
            "Host: attacker.example:PORT predictions",
            400,
            body=ok,
            headers=js,
            host="attacker.example:{port}",
        ),
        Case("Host: attacker.example GET /models", 400, "GET", "/models", host="attacker.example"),
        Case("Host: attacker.example POST /models", 400, path=register, host="attacker.example"),
        Case("no Host header", 400, "GET", "/ping", host=None),
        Case("Host: localhost:PORT", 200, "GET", "/ping", host="localhost:{port}"),
        Case("Host: [::1]:PORT", 200, "GET", "/ping", host="[::1]:{port}"),
        Case(
            "Origin attacker POST /models", 403, path=register, headers={"origin": "http://attacker.example"}
        ),
        Case(
            "Origin attacker GET /models",
            403,
            "GET",
            "/models",
            headers={"origin": "http://attacker.example"},
        ),
        Case("Origin null DELETE /models/tiny", 403, "DELETE", "/models/tiny", headers={"origin": "null"}),
        Case(
            "Sec-Fetch-Site cross-site GET /models",
            403,
            "GET",
            "/models",
            headers={"sec-fetch-site": "cross-site"},
        ),
        Case(
            "same-origin page POST /models, no token",
            403,
            path=register,
            headers={"origin": "http://127.0.0.1:{port}", "sec-fetch-site": "same-origin"},
        ),
        Case(
            "Origin attacker predictions: no CORS header",
            200,
            body=ok,
            headers={**js, "origin": "http://attacker.example"},
            check=no_cors_header,
        ),
        Case("POST /models over --max-models 1 (curl)", 409, path=register),
        Case("GET /ping (still up)", 200, "GET", "/ping"),
    ]


def send(port: int, case: Case) -> tuple[int | None, str]:
    """Send one request; (status, note). The note says what is wrong, or is empty."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {k: v.format(port=port) for k, v in case.headers.items()}
    try:
        connection.putrequest(case.method, case.path, skip_host=True, skip_accept_encoding=True)
        if case.host is not None:
            connection.putheader(
                "Host", f"127.0.0.1:{port}" if case.host == "default" else case.host.format(port=port)
            )
        body = case.body
        streamed = body is not None and not isinstance(body, bytes)
        if isinstance(body, bytes) and "content-length" not in headers:
            headers["content-length"] = str(len(body))
        if streamed:
            headers["transfer-encoding"] = "chunked"
        if body is None and "content-length" not in headers and case.method in ("POST", "PUT"):
            headers["content-length"] = "0"
        for key, value in headers.items():
            connection.putheader(key, value)
        connection.endheaders()
        try:
            if isinstance(body, bytes):
                connection.send(body)
            elif streamed:
                for chunk in body:
                    connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                connection.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before taking the whole body: read that answer
        response = connection.getresponse()
        content = response.read()
    except (OSError, http.client.HTTPException) as error:
        return None, f"{type(error).__name__}: {error}"
    finally:
        connection.close()
    if case.check is not None and (problem := case.check(response, content)):
        return response.status, problem
    if response.status >= 400:
        try:
            error = json.loads(content)
        except ValueError:
            return response.status, f"not JSON: {content[:60]!r}"
        if (
            not isinstance(error, dict)
            or set(error) != {"code", "type", "message"}
            or error["code"] != response.status
        ):
            return response.status, f"not the error shape: {content[:80]!r}"
        return response.status, error["type"]
    return response.status, ""


def train_tiny(out: Path) -> Path:
    """A 3-class word CNN on synthetic text (seconds on a CPU)."""
    import textcls

    words = {  # three classes whose words never overlap
        "music": "song album guitar band playlist jazz singer concert melody drum",
        "sports": "goal match team score player coach league ball win stadium",
        "weather": "rain sunny cloud storm wind forecast snow cold warm temperature",
    }
    rng = random.Random(0)

    def examples(n: int) -> list[tuple[str, str]]:
        return [
            (" ".join(rng.choices(w.split(), k=rng.randint(3, 8))), label)
            for label, w in words.items()
            for _ in range(n)
        ]

    textcls.TextClassifier(
        model="cnn",
        vectors="random",
        vectors_dim=16,
        epochs=4,
        lr=3e-2,
        patience=0,
        tensorboard=False,
        cpu=True,
        encoder_params={"num_filters": 8, "kernel_sizes": [2, 3]},
    ).fit(examples(30), examples(8), out_dir=out, progress=False)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(model_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    textcls = REPO / ".venv" / "bin" / "textcls"
    command = [str(textcls)] if textcls.exists() else [sys.executable, "-m", "textcls"]
    command += [
        "serve",
        f"tiny={model_dir}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model-store",
        str(model_dir.parent),
        "--max-models",
        "1",
        "--max-body-kb",
        str(MAX_BODY_KB),
        "--graceful-timeout",
        "10",
    ]
    env = {k: v for k, v in os.environ.items() if k != "TEXTCLS_TOKEN"}  # no token: the loopback rules
    process = subprocess.Popen(command, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        status, _ = send(port, Case("ping", 200, "GET", "/ping"))
        if status == 200:
            return process
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the server did not start:\n{log_path.read_text(errors='replace')[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", help="a model directory to serve (default: train a tiny one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="check-serve-") as scratch:
        model_dir = Path(args.model_dir).resolve() if args.model_dir else train_tiny(Path(scratch) / "tiny")
        port = free_port()
        log_path = Path(scratch) / "serve.log"
        process = start(model_dir, port, log_path)
        rows, failures = [], 0
        try:
            for case in cases(model_dir):
                status, note = send(port, case)
                ok = status == case.expected and (case.check is None or note == "")
                failures += not ok
                rows.append((case.method, case.name, case.expected, status, note, ok))
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(60)
            except subprocess.TimeoutExpired:
                code = None
            rows.append(("SIGTERM", "server exits", 0, code, "exit code", code == 0))
            failures += code != 0
        finally:
            if process.poll() is None:
                process.kill()
        print(
            f"textcls serve on 127.0.0.1:{port}, model {model_dir}, "
            f"--max-body-kb {MAX_BODY_KB}, --max-models 1\n"
        )
        print("| method | request | expected | got | answer | ok |")
        print("|---|---|---|---|---|---|")
        for method, name, expected, status, note, ok in rows:
            print(f"| {method} | {name} | {expected} | {status} | {note} | {'yes' if ok else '**NO**'} |")
        log = log_path.read_text(errors="replace")
        if "Traceback" in log:
            print("\nthe server logged a traceback:\n" + log[-3000:])
            failures += 1
    print(
        f"\n{len(rows) - failures} of {len(rows)} as expected" + ("" if not failures else f"; {failures} NOT")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
