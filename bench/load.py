"""Load: the service against the framework's own ceiling for the same request shape.

In one run, on 127.0.0.1, with the same uvicorn options as the Docker image (`uvicorn APP
--host ... --port ... --loop uvloop --http timeouts:TimedHttpToolsProtocol`, access log on,
sent to /dev/null), the bare app included. `--runs service` (1-5 below):

1. a bare app (`bench/bare_app.py`, `POST /upload`: read a multipart upload, answer a
   constant) and the service are started side by side; `wrk` (one thread, a Lua script posting
   the multipart body `curl -F` would) drives the bare endpoint, `POST /predict/mnist` and
   `POST /api/predict/` (a real user's token; the upload and a history row stored) and
   `POST /predict/number` (a 4-digit number drawn on a canvas, `styles.canvas_png`), one at a
   time, at concurrency 1, 8 and 32, --duration seconds each, after a warm-up. --repeats
   interleaved rounds; each row gives medians, and its ratio is the median of the ratios of
   runs made side by side (their range in brackets);
2. `/api/predict/` once more with `hey -n` (a fixed number of requests, so none is cut off
   at the end): every answer 201 and exactly that many new history rows;
3. `POST /predict/mnist/batch` with 256 files per request: images/s end to end;
4. `GET /health` probed 20 times a second with `hey` while `wrk` saturates /predict/mnist;
5. gunicorn with uvicorn workers, one and then two: /predict/mnist throughput of each, and
   each worker's memory, its prediction process included. (Not `uvicorn --workers`: its
   spawned workers leave Nagle's algorithm on, and every response waits 40 ms for an ACK.)

The upload is a held-out MNIST digit as a 28x28 PNG (`styles.mnist_png`), the service's
model the real one (trained once at the start on MNIST_DATA_DIR, or --model). The other runs:

- `stack`: the bare app and the service under asyncio + h11 and under uvloop + httptools, all
  four side by side, at 8 and 32 connections, with each request's CPU time in the server
  process and in its prediction processes;
- `pool`: PREDICTION_PROCESSES=1 beside =2, 12 MP phone JPEGs and MNIST PNGs at 8
  connections, and each server's memory (PSS);
- `real`: the uploads of ../shared/realdigits-dev posted in turn at 8 and 32 connections,
  `/health` probed meanwhile;
- `slow`: MNIST PNGs at 8 connections alone, and beside SLOW_CLIENTS slow 5 MB uploads;
- `batch`: batches of 256 beside single uploads, images/s.

    python -m bench.load [--duration 10] [--warmup 3] [--repeats 3] [--model PATH]
                         [--runs service,stack,pool,real,slow,batch]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

import dataset
import styles
from bench.boot import free_port
from bench.common import ROOT, Clients, load_mnist, mnist_dir, table, trained_model

LUA = ROOT / "bench" / "lua" / "multipart.lua"
CONCURRENCY = (1, 8, 32)
# uvicorn's event loop and HTTP parser: the pure-Python pair, and uvicorn[standard]'s (uvloop,
# httptools), each with the header and body timeouts of timeouts.py
STACKS = {
    "asyncio + h11": ("--loop", "asyncio", "--http", "timeouts:TimedH11Protocol"),
    "uvloop + httptools": ("--loop", "uvloop", "--http", "timeouts:TimedHttpToolsProtocol"),
}
IMAGE_STACK = STACKS["uvloop + httptools"]  # as the Dockerfile's CMD
KIND = "prediction process"
RUNS = ("service", "stack", "pool", "real", "slow", "batch")
REAL = ROOT.parent / "shared" / "realdigits-dev"
SLOW_CLIENTS = 4
SLOW_CHUNK, SLOW_PAUSE = 64 * 1024, 0.05  # bytes, seconds: about 1.3 MB/s per slow client
BATCH = 256


@dataclass
class Load:
    """What wrk measured in one run."""

    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors and answers other than 2xx/3xx


def _milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(url: str, connections: int, seconds: float, upload: dict[str, str]) -> Load:
    command = [
        "wrk", "--threads", "1", "--connections", str(connections),
        "--duration", f"{round(seconds)}s", "--timeout", "10s", "--latency",
        "--script", str(LUA), url,
    ]  # fmt: skip
    out = subprocess.run(
        command, env={**os.environ, **upload}, capture_output=True, text=True, check=True
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+[a-z]+)", out, re.MULTILINE))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(
        requests=int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_milliseconds(latency["50"]),
        p99_ms=_milliseconds(latency["99"]),
        errors=(sum(map(int, socket_errors.groups())) if socket_errors else 0)
        + (int(bad.group(1)) if bad else 0),
    )


def hey(url: str, *options: str) -> tuple[dict[str, int], dict[str, float]]:
    """Status counts and latency percentiles (ms: "50", "99") from one `hey` run, computed from
    each request's own time (hey's summary leaves out percentiles it holds too few requests for).
    """
    out = subprocess.run(
        ["hey", *options, "-o", "csv", url], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split(",") for line in out.splitlines()[1:] if line]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row[6]] = statuses.get(row[6], 0) + 1
    times = np.array([float(row[0]) * 1e3 for row in rows])
    return statuses, {p: float(np.percentile(times, int(p))) for p in ("50", "99")}


@contextmanager
def serve(
    app: str, env: dict[str, str], workers: int = 0, stack: tuple[str, ...] = IMAGE_STACK
) -> Iterator[tuple[str, int]]:
    """The app on a free port, by uvicorn with the image's options (or `stack`, uvicorn's
    --loop and --http options), or with `workers` by gunicorn's uvicorn workers; yields its URL
    and process id."""
    port = free_port()
    if workers:
        command = [sys.executable, "-m", "gunicorn", app, "-k", "timeouts.UvicornWorker",
                   "-w", str(workers), "-b", f"127.0.0.1:{port}"]  # fmt: skip
    else:
        command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                   *stack]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"{app} exited with {server.returncode}")
            time.sleep(0.05)
        else:
            raise TimeoutError(app)
        time.sleep(1)  # every worker up, not only the first to answer
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(30)


def measure(url: str, upload: dict[str, str], args: argparse.Namespace) -> dict[int, Load]:
    wrk(url, 8, args.warmup, upload)
    return {c: wrk(url, c, args.duration, upload) for c in CONCURRENCY}


def _median(loads: list[Load]) -> Load:
    return Load(
        requests=sum(load.requests for load in loads),
        per_second=statistics.median(load.per_second for load in loads),
        p50_ms=statistics.median(load.p50_ms for load in loads),
        p99_ms=statistics.median(load.p99_ms for load in loads),
        errors=sum(load.errors for load in loads),
    )


def _row(name: str, connections: int, loads: list[Load], bare: list[Load]) -> list[object]:
    """Medians over the repeats; the ratio is the median of the side-by-side ratios."""
    middle = _median(loads)
    ratios = [load.per_second / base.per_second for load, base in zip(loads, bare, strict=True)]
    spread = f"{min(ratios):.0%}-{max(ratios):.0%}"
    ratio = "—" if loads is bare else f"{statistics.median(ratios):.0%} ({spread})"
    return [
        name, connections, f"{middle.per_second:,.0f}", f"{middle.p50_ms:.2f}",
        f"{middle.p99_ms:.2f}", middle.errors, ratio,
    ]  # fmt: skip


def memory_mib(pid: int) -> tuple[float, float]:
    """Resident and proportional (shared pages split between their users) memory, MiB."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    kib = dict(re.findall(r"^(Rss|Pss):\s+(\d+) kB", rollup, re.MULTILINE))
    return int(kib["Rss"]) / 1024, int(kib["Pss"]) / 1024


def children(pid: int) -> list[int]:
    """A process's children, whichever of its threads started them."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def descendants(pid: int) -> list[int]:
    """Children, grandchildren...: a server's fork server, its prediction processes, and
    multiprocessing's resource tracker."""
    found = children(pid)
    return found + [grandchild for child in found for grandchild in descendants(child)]


def tree_memory(pid: int, name: str) -> str:
    """A server process and everything it started: RSS each, and their PSS together."""
    helpers = descendants(pid)
    (rss, pss) = memory_mib(pid)
    kinds = [(command(h, pid), memory_mib(h)) for h in helpers]
    return (
        f"{name} {pid}: {rss:.0f} MiB resident"
        + "".join(f", {kind} {o[0]:.0f} MiB" for kind, o in kinds)
        + f"; {pss + sum(o[1] for _, o in kinds):.0f} MiB proportional (PSS) in all"
    )


def command(pid: int, server: int) -> str:
    """What a process the server started is (a prediction process is forked by the fork
    server without exec: it has the fork server's command line, but not its parent)."""
    line = Path(f"/proc/{pid}/cmdline").read_bytes()
    if b"resource_tracker" in line:
        return "resource tracker"
    if b"forkserver" in line and pid in children(server):
        return "fork server"
    return "prediction process"


def worker_memory(pid: int) -> list[str]:
    """Per gunicorn worker and what it started."""
    return [tree_memory(worker, "worker") for worker in children(pid)]


def history_rows(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM predictions").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per row")
    parser.add_argument("--model", type=Path, help="a trained model file (else train one)")
    parser.add_argument(
        "--runs", default=",".join(RUNS), help=f"which runs, comma-separated: {', '.join(RUNS)}"
    )
    args = parser.parse_args()
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}: apt-get install wrk hey")

    _, holdout = dataset.split(load_mnist())
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        image = home / "digit.png"
        image.write_bytes(styles.mnist_png(holdout.images[0], np.random.default_rng(0)))
        number = home / "number.png"  # a 4-digit number drawn on a canvas
        rng = np.random.default_rng(4)
        number.write_bytes(styles.canvas_png(styles.number(list(holdout.images[:4]), rng), rng))
        env = {
            **os.environ,
            "MNIST_DATA_DIR": str(mnist_dir()),
            "MODEL_PATH": str(home / "model.joblib"),
            "DATA_DIR": str(home / "data"),
        }
        trained_model(home / "model.joblib", args.model)
        runs = {
            "service": lambda: service_run(home, env, image, number, args),
            "stack": lambda: stack_run(env, image, args),
            "pool": lambda: pool_run(home, env, image, holdout, args),
            "real": lambda: real_run(env, args),
            "slow": lambda: slow_run(home, env, image, holdout, args),
            "batch": lambda: batch_run(env, image, args),
        }
        for name in args.runs.split(","):
            print(f"== {name}", flush=True)
            runs[name]()


def service_run(
    home: Path, env: dict[str, str], image: Path, number: Path, args: argparse.Namespace
) -> None:
    """Runs 1-5 of the module's docstring: the service beside the bare app, history, batch,
    /health under load, gunicorn."""
    file_upload = {"UPLOAD_FILE": str(image), "UPLOAD_FIELD": "file"}
    rows: list[list[object]] = []

    with (
        serve("bench.bare_app:app", env) as (bare_url, _),
        serve("main:app", env) as (url, pid),
    ):
        account = {
            "username": "bench",
            "email": "bench@example.com",
            "password": "bench load 1",
        }
        token = httpx.post(f"{url}/api/register/", json=account).json()["token"]
        user_upload = {
            "UPLOAD_FILE": str(image),
            "UPLOAD_FIELD": "image",
            "UPLOAD_TOKEN": token,
        }
        targets = {
            "bare FastAPI upload": (f"{bare_url}/upload", file_upload),
            "/predict/mnist": (f"{url}/predict/mnist", file_upload),
            "/api/predict/": (f"{url}/api/predict/", user_upload),
            "/predict/number (4-digit canvas)": (
                f"{url}/predict/number",
                {"UPLOAD_FILE": str(number), "UPLOAD_FIELD": "file"},
            ),
        }
        before = history_rows(home / "data" / "digits.db")
        for target, upload in targets.values():
            wrk(target, 8, args.warmup, upload)
        # Interleaved: each repeat runs every target at every concurrency in turn, so a
        # slow minute of this shared machine lands on all of them, and each ratio compares
        # runs made side by side. Medians over the repeats.
        runs: dict[tuple[str, int], list[Load]] = {}
        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1} of {args.repeats}", flush=True)
            for c in CONCURRENCY:
                for name, (target, upload) in targets.items():
                    runs.setdefault((name, c), []).append(wrk(target, c, args.duration, upload))
        for name in targets:
            for c in CONCURRENCY:
                rows.append(_row(name, c, runs[(name, c)], runs[("bare FastAPI upload", c)]))
        single = {c: _median(runs[("/predict/mnist", c)]) for c in CONCURRENCY}
        kept = {c: _median(runs[("/api/predict/", c)]) for c in CONCURRENCY}

        # a fixed number of requests, so each one's history row can be accounted for
        time.sleep(1)  # requests wrk left in flight when it stopped are still answered
        counted = history_rows(home / "data" / "digits.db")
        exact = int(kept[8].per_second * 5) // 8 * 8  # hey sends n // c per connection
        statuses, _ = hey(
            f"{url}/api/predict/", "-n", str(exact), "-c", "8", "-m", "POST",
            "-T", "multipart/form-data; boundary=----digit-bench-7d1f",
            "-H", f"Authorization: Token {token}", "-D", str(_body(image, "image", 1, home)),
        )  # fmt: skip
        new_rows = history_rows(home / "data" / "digits.db") - counted
        history_line = (
            f"history: {exact} requests by hey -n, answers {statuses}; {new_rows} new "
            f"history rows (the wrk runs before: {counted - before} rows)"
        )
        print(history_line, flush=True)

        print("batch", flush=True)
        batch_upload = {**file_upload, "UPLOAD_COUNT": str(BATCH), "UPLOAD_FIELD": "files"}
        batches = {}
        wrk(f"{url}/predict/mnist/batch", 1, args.warmup, batch_upload)
        for c in (1, 2):
            batches[c] = wrk(f"{url}/predict/mnist/batch", c, args.duration, batch_upload)

        print("health under load", flush=True)
        probe: dict[str, object] = {}
        saturate = threading.Thread(
            target=lambda: probe.update(
                load=wrk(f"{url}/predict/mnist", 32, args.duration + 2, file_upload)
            )
        )
        saturate.start()
        time.sleep(1)
        health_statuses, health = hey(
            f"{url}/health", "-z", f"{args.duration}s", "-c", "1", "-q", "20"
        )
        saturate.join()
        uvicorn_memory = tree_memory(pid, "server")

    print("gunicorn, one and two workers", flush=True)
    gunicorn = {}
    for workers in (1, 2):
        with serve("main:app", env, workers=workers) as (url, pid):
            gunicorn[workers] = measure(f"{url}/predict/mnist", file_upload, args)
            if workers == 2:
                memory_lines = worker_memory(pid)

    print()
    print(table(["endpoint", "connections", "requests/s", "p50 ms", "p99 ms", "errors",
                 "of bare"], rows))  # fmt: skip
    print()
    print(table(
        ["batch of 256, connections", "requests/s", "images/s", "p50 ms", "p99 ms", "errors"],
        [[c, f"{b.per_second:.1f}", f"{b.per_second * BATCH:,.0f}", f"{b.p50_ms:.1f}",
          f"{b.p99_ms:.1f}", b.errors] for c, b in batches.items()],
    ))  # fmt: skip
    print()
    load = probe["load"]
    assert isinstance(load, Load)
    print(history_line)
    print(f"/health at 20/s while /predict/mnist runs at 32 connections "
          f"({load.per_second:,.0f}/s, {load.errors} errors): {health_statuses}, "
          f"p50 {health['50']:.2f} ms, p99 {health['99']:.2f} ms")  # fmt: skip
    print()
    print(table(
        ["/predict/mnist, connections", "uvicorn/s", "gunicorn 1 worker/s",
         "gunicorn 2 workers/s", "2 workers / 1"],
        [[c, f"{single[c].per_second:,.0f}", f"{gunicorn[1][c].per_second:,.0f}",
          f"{gunicorn[2][c].per_second:,.0f}",
          f"{gunicorn[2][c].per_second / gunicorn[1][c].per_second:.2f}"]
         for c in CONCURRENCY],
    ))  # fmt: skip
    print(f"memory, uvicorn after the load above: {uvicorn_memory}")
    for line in memory_lines:
        print("memory, gunicorn " + line)


def cpu_ms(pid: int) -> float:
    """CPU time a process has used, user and system, in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def stack_run(env: dict[str, str], image: Path, args: argparse.Namespace) -> None:
    """The bare endpoint and /predict/mnist under each server stack, side by side, with the CPU
    time each request cost the server process and, for the service, its prediction processes."""
    upload = {"UPLOAD_FILE": str(image), "UPLOAD_FIELD": "file"}
    with contextlib.ExitStack() as servers:
        targets = {}
        for name, stack in STACKS.items():
            bare_url, bare_pid = servers.enter_context(
                serve("bench.bare_app:app", env, stack=stack)
            )
            url, pid = servers.enter_context(serve("main:app", env, stack=stack))
            targets[(name, "bare")] = (f"{bare_url}/upload", bare_pid)
            targets[(name, "service")] = (f"{url}/predict/mnist", pid)
        for target, _ in targets.values():
            wrk(target, 8, args.warmup, upload)
        runs: dict[tuple[str, str, int], list[Load]] = {}
        cpu: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
        for _ in range(args.repeats):
            for c in (8, 32):
                for (name, app), (target, pid) in targets.items():
                    helpers = [p for p in descendants(pid) if command(p, pid) == KIND]
                    before = cpu_ms(pid), sum(map(cpu_ms, helpers))
                    load = wrk(target, c, args.duration, upload)
                    after = cpu_ms(pid), sum(map(cpu_ms, helpers))
                    runs.setdefault((name, app, c), []).append(load)
                    cpu.setdefault((name, app, c), []).append(
                        ((after[0] - before[0]) / load.requests,
                         (after[1] - before[1]) / load.requests)
                    )  # fmt: skip
    rows = []
    for c in (8, 32):
        base = [runs[("asyncio + h11", "bare", c)], runs[("asyncio + h11", "service", c)]]
        for name in STACKS:
            bare, service = runs[(name, "bare", c)], runs[(name, "service", c)]
            loop_bare = statistics.median(t[0] for t in cpu[(name, "bare", c)])
            loop, model_time = (
                statistics.median(t[i] for t in cpu[(name, "service", c)]) for i in (0, 1)
            )
            rows.append([
                name, c, f"{_median(bare).per_second:,.0f}", f"{_median(service).per_second:,.0f}",
                f"{_median(service).p99_ms:.1f}", _ratio(service, bare),
                _ratio(bare, base[0]), _ratio(service, base[1]),
                f"{loop_bare:.2f} / {loop:.2f} / {model_time:.2f}",
                _median(bare).errors + _median(service).errors,
            ])  # fmt: skip
    print(table(["stack", "connections", "bare/s", "/predict/mnist/s", "p99 ms", "of bare",
                 "bare vs asyncio + h11", "service vs asyncio + h11",
                 "CPU ms a request: bare / service / its prediction processes", "errors"],
                rows))  # fmt: skip


def batch_run(env: dict[str, str], image: Path, args: argparse.Namespace) -> None:
    """Batches of 256 beside single uploads, interleaved: images/s of each."""
    single = {"UPLOAD_FILE": str(image), "UPLOAD_FIELD": "file"}
    batch = {**single, "UPLOAD_COUNT": str(BATCH), "UPLOAD_FIELD": "files"}
    targets = {
        ("/predict/mnist", 1): ("/predict/mnist", single, 1),
        ("/predict/mnist", 8): ("/predict/mnist", single, 1),
        ("/predict/mnist/batch of 256", 1): ("/predict/mnist/batch", batch, BATCH),
        ("/predict/mnist/batch of 256", 2): ("/predict/mnist/batch", batch, BATCH),
    }
    runs: dict[tuple[str, int], list[Load]] = {}
    with serve("main:app", env) as (url, _):
        for path, upload, _ in targets.values():
            wrk(url + path, 1, args.warmup, upload)
        for _ in range(args.repeats):
            for (name, c), (path, upload, _) in targets.items():
                runs.setdefault((name, c), []).append(wrk(url + path, c, args.duration, upload))
    rows: list[list[object]] = []
    for (name, c), (_, _, images) in targets.items():
        middle = _median(runs[(name, c)])
        per_second = [load.per_second * images for load in runs[(name, c)]]
        rows.append([name, c, f"{statistics.median(per_second):,.0f}",
                     f"{middle.p50_ms:.1f}", f"{middle.p99_ms:.1f}", middle.errors])  # fmt: skip
    print(table(["endpoint", "connections", "images/s", "p50 ms", "p99 ms", "errors"], rows))


def _ratio(loads: list[Load], bases: list[Load]) -> str:
    """The median of side-by-side ratios, their range in brackets."""
    ratios = [load.per_second / base.per_second for load, base in zip(loads, bases, strict=True)]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def sheet(digit: np.ndarray, rng: np.random.Generator, noise: float = 0.03) -> Image.Image:
    """The digit written on paper, photographed upright: 3000x4000, the digit about 900 px
    high, uneven light and sensor noise (`noise`)."""
    ink = Image.fromarray(digit).resize((900, 900), Image.Resampling.BICUBIC)
    paper = np.zeros((4000, 3000), np.float32)
    paper[1500:2400, 1000:1900] = np.asarray(ink, np.float32) / 255
    rows = np.linspace(0, 1, 4000, dtype=np.float32)[:, None]
    light = 0.93 - 0.25 * rows + rng.normal(0, noise, paper.shape).astype(np.float32)
    grey = np.clip((light * (1 - 0.8 * paper)) * 255, 0, 255).astype(np.uint8)
    return Image.merge("RGB", [Image.fromarray(grey)] * 3)


def phone_photo(
    digit: np.ndarray, rng: np.random.Generator, limit: int, noise: float = 0.03
) -> bytes:
    """A 12 MP JPEG of the digit written on paper, as a phone takes it (`sheet`), at the
    highest quality that stays under `limit` bytes."""
    photo = sheet(digit, rng, noise)
    for quality in range(100, 50, -5):
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=quality)
        if buffer.tell() < limit:
            return buffer.getvalue()
    raise ValueError("no quality fits")


def pool_run(
    home: Path, env: dict[str, str], image: Path, holdout: dataset.Digits,
    args: argparse.Namespace,
) -> None:  # fmt: skip
    """12 MP phone photos and MNIST-format PNGs, one and two prediction processes, side by
    side; each server's memory, the extra process's PSS."""
    photo = home / "photo.jpg"
    photo.write_bytes(phone_photo(holdout.images[1], np.random.default_rng(1), 5_000_000))
    uploads = {
        "12 MP phone JPEG": {"UPLOAD_FILE": str(photo), "UPLOAD_FIELD": "file"},
        "MNIST-format PNG": {"UPLOAD_FILE": str(image), "UPLOAD_FIELD": "file"},
    }
    with contextlib.ExitStack() as servers:
        urls, memory = {}, {}
        for size in (1, 2):
            url, pid = servers.enter_context(
                serve("main:app", {**env, "PREDICTION_PROCESSES": str(size)})
            )
            answer = httpx.post(f"{url}/predict/mnist", files={"file": photo.read_bytes()})
            print(f"{size} process(es): the photo ({photo.stat().st_size:,} bytes) is read as",
                  answer.json().get("prediction"), flush=True)  # fmt: skip
            urls[size] = (url, pid)
        runs: dict[tuple[str, int], list[Load]] = {}
        for upload in uploads.values():
            for url, _ in urls.values():
                wrk(f"{url}/predict/mnist", 8, args.warmup, upload)
        for _ in range(args.repeats):
            for kind, upload in uploads.items():
                for size, (url, _) in urls.items():
                    runs.setdefault((kind, size), []).append(
                        wrk(f"{url}/predict/mnist", 8, args.duration, upload)
                    )
        for size, (_, pid) in urls.items():
            memory[size] = tree_memory(pid, f"server with {size} prediction process(es)")
            pss = [memory_mib(p)[1] for p in descendants(pid) if command(p, pid) == KIND]
            memory[size] += "; prediction processes' PSS: " + ", ".join(f"{m:.0f} MiB" for m in pss)
    rows = []
    for kind in uploads:
        one, two = runs[(kind, 1)], runs[(kind, 2)]
        rows.append([
            kind, f"{_median(one).per_second:,.1f}", f"{_median(one).p99_ms:.0f}",
            f"{_median(two).per_second:,.1f}", f"{_median(two).p99_ms:.0f}", _ratio(two, one),
            _median(one).errors + _median(two).errors,
        ])  # fmt: skip
    print(table(["/predict/mnist at 8 connections", "1 process/s", "p99 ms", "2 processes/s",
                 "p99 ms", "2 / 1", "errors"], rows))  # fmt: skip
    for line in memory.values():
        print("memory, " + line)


def real_run(env: dict[str, str], args: argparse.Namespace) -> None:
    """Every upload of ../shared/realdigits-dev in turn, at 8 and 32 connections; /health
    probed 20 times a second during the 32."""
    if not REAL.is_dir():
        print(f"no {REAL}: skipped")
        return
    listing = Path(env["DATA_DIR"]).parent / "real-uploads.txt"
    files = sorted(f for f in REAL.iterdir() if f.suffix.lower() not in {".md", ".csv"})
    listing.write_text("".join(f"{f}\n" for f in files))
    upload = {"UPLOAD_LIST": str(listing), "UPLOAD_FIELD": "file"}
    rows: list[list[object]] = []
    with serve("main:app", env) as (url, _):
        wrk(f"{url}/predict/mnist", 8, args.warmup, upload)
        for c in (8, 32):
            loads: list[Load] = []
            probes: list[dict[str, float]] = []
            statuses: dict[str, int] = {}
            for _ in range(args.repeats):
                if c == 32:
                    load, (answers, health) = _with_health(url, c, args.duration, upload)
                    probes.append(health)
                    for code, n in answers.items():
                        statuses[code] = statuses.get(code, 0) + n
                else:
                    load = wrk(f"{url}/predict/mnist", c, args.duration, upload)
                loads.append(load)
            middle = _median(loads)
            health_p99 = (
                f"{statistics.median(p['99'] for p in probes):.1f} {statuses}" if probes else "—"
            )
            rows.append([c, f"{middle.per_second:,.0f}", f"{middle.p50_ms:.1f}",
                         f"{middle.p99_ms:.1f}", middle.errors, health_p99])  # fmt: skip
    print(f"{len(files)} real uploads, {sum(f.stat().st_size for f in files) / len(files):,.0f} "
          "bytes on average")  # fmt: skip
    print(table(["connections", "requests/s", "p50 ms", "p99 ms", "errors",
                 "/health p99 ms at 20/s (statuses)"], rows))  # fmt: skip


def _with_health(
    url: str, connections: int, seconds: float, upload: dict[str, str]
) -> tuple[Load, tuple[dict[str, int], dict[str, float]]]:
    """wrk on /predict/mnist while hey probes /health 20 times a second."""
    result: dict[str, Load] = {}
    load = threading.Thread(
        target=lambda: result.update(
            load=wrk(f"{url}/predict/mnist", connections, seconds + 2, upload)
        )
    )
    load.start()
    time.sleep(1)
    health = hey(f"{url}/health", "-z", f"{seconds:g}s", "-c", "1", "-q", "20")
    load.join()
    return result["load"], health


class SlowClients(Clients):
    """Clients uploading a 5 MB photo to /predict/mnist slowly (SLOW_CHUNK every SLOW_PAUSE),
    one after another, until stopped; the statuses they got."""

    def __init__(self, url: str, body: bytes, boundary: str, clients: int) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.request = (
            f"POST /predict/mnist HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; "
            f"boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.statuses: list[str] = []
        super().__init__(clients)

    def _client(self) -> None:
        while not self.stopping.is_set():
            with socket.create_connection(self.address, timeout=30) as connection:
                for start in range(0, len(self.request), SLOW_CHUNK):
                    connection.sendall(self.request[start : start + SLOW_CHUNK])
                    time.sleep(SLOW_PAUSE)
                answer = connection.recv(4096)
                self.statuses.append(answer.split(b" ", 2)[1].decode() if answer else "closed")


def slow_run(
    home: Path, env: dict[str, str], image: Path, holdout: dataset.Digits,
    args: argparse.Namespace,
) -> None:  # fmt: skip
    """Small uploads at 8 connections alone, and beside SLOW_CLIENTS slow 5 MB uploads,
    interleaved: the small requests' p99 in both."""
    big = phone_photo(holdout.images[2], np.random.default_rng(2), 5_000_000 - 1000, noise=0.05)
    boundary = "----digit-bench-slow"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )
    small = {"UPLOAD_FILE": str(image), "UPLOAD_FIELD": "file"}
    alone: list[Load] = []
    beside: list[Load] = []
    statuses: list[str] = []
    with serve("main:app", env) as (url, _):
        wrk(f"{url}/predict/mnist", 8, args.warmup, small)
        for _ in range(args.repeats):
            alone.append(wrk(f"{url}/predict/mnist", 8, args.duration, small))
            with SlowClients(url, body, boundary, SLOW_CLIENTS) as slow:
                time.sleep(1)  # all of them streaming
                beside.append(wrk(f"{url}/predict/mnist", 8, args.duration, small))
            statuses += slow.statuses
    rows: list[list[object]] = [
        [name, f"{_median(loads).per_second:,.0f}", f"{_median(loads).p50_ms:.2f}",
         f"{_median(loads).p99_ms:.2f}", _median(loads).errors]
        for name, loads in (("alone", alone), (f"beside {SLOW_CLIENTS} slow uploads", beside))
    ]  # fmt: skip
    ratios = [b.p99_ms / a.p99_ms for a, b in zip(alone, beside, strict=True)]
    print(f"slow uploads: {len(big):,} bytes each at about "
          f"{SLOW_CHUNK / SLOW_PAUSE / 1e6:.1f} MB/s; answers "
          f"{ {s: statuses.count(s) for s in set(statuses)} }")  # fmt: skip
    print(table(["MNIST-format /predict/mnist, 8 connections", "requests/s", "p50 ms", "p99 ms",
                 "errors"], rows))  # fmt: skip
    print(
        f"p99 beside / alone: median {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )


def _body(image: Path, field: str, count: int, home: Path) -> Path:
    """The multipart body the Lua script sends, as a file for hey."""
    data = image.read_bytes()
    part = (
        (
            f'------digit-bench-7d1f\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="digit.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
    )
    path = home / f"body-{field}-{count}"
    path.write_bytes(part * count + b"------digit-bench-7d1f--\r\n")
    return path


if __name__ == "__main__":
    main()
