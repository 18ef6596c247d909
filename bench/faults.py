"""Faults: the prediction process killed under load, the server killed and restarted, a full
disk, read-only folders. A real uvicorn (the image's options) and SQLite file on 127.0.0.1.

    python -m bench.faults [--kills 5] [--json reports/faults.json]

1. Under POST /api/predict/ load from 8 clients, kill -9 a prediction process (one of the
   server's pool) 5 times: every request succeeds or fails within 5 s with a clear 503; /ready
   is 200 and the pool full again within 3 s each time; every 201 has exactly one history row.
2. Kill -9 the server under the same load, start it again: every acknowledged (201)
   prediction is in the history.
3. (root: tmpfs mounts) A full disk under the database: 507s that say so, /ready 503, and
   predictions without a token still answered; back to normal once space is freed. A
   read-only data folder: one log line, anonymous predictions work, accounts 503. A read-only
   model folder: trained in memory, served.
Exit status 1 when any of that fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from bench.bad_images import children, free_port, good_digit, tree_rss
from bench.common import ROOT, Clients, mnist_dir

CLIENTS = 8
IDLE = 3000
ALLOWED_503 = {
    "The prediction process stopped; try again in a moment.",
    "The prediction process is restarting; try again in a moment.",
    "The prediction process is starting; try again in a moment.",
}
PASSWORD = "correct horse battery"


@contextmanager
def server(folder: Path, model: Path, log: Path, **extra: str) -> Iterator[tuple[Any, str]]:
    port = free_port()
    environment = {
        **os.environ, "MNIST_DATA_DIR": str(mnist_dir()), "DATA_DIR": str(folder),
        "MODEL_PATH": str(model), "TRAIN_LIMIT": "3000", "LOG_LEVEL": "INFO", **extra,
    }  # fmt: skip
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--port", str(port),
             "--loop", "uvloop", "--http", "timeouts:TimedHttpToolsProtocol", "--no-access-log"],
            # a process group of its own: a kill -9 of the group takes the fork server and the
            # prediction process along, as a container's death does (bench/replicas.py)
            cwd=ROOT, env=environment, stdout=output, stderr=output, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        ready(base, process, 300)
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def ready(base: str, process: Any, wait: float) -> float:
    """Seconds until /ready answers 200."""
    started = time.monotonic()
    while True:
        try:
            if httpx.get(base + "/ready", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        if time.monotonic() - started > wait or process.poll() is not None:
            raise SystemExit(f"{base} not ready after {wait} s")
        time.sleep(0.01)


def prediction_processes(server_pid: int) -> list[int]:
    """The pids of the prediction processes: the children of the fork server the server
    started."""
    for child in children(server_pid):
        if b"forkserver" in Path(f"/proc/{child}/cmdline").read_bytes():
            return children(child)
    return []


def prediction_process(server_pid: int) -> int:
    """The pid of one prediction process, the one to kill."""
    found = prediction_processes(server_pid)
    if not found:
        raise RuntimeError("no prediction process")
    return found[0]


def account(base: str, name: str) -> str:
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    answer = httpx.post(base + "/api/register/", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


class Load(Clients):
    """`clients` threads posting to /api/predict/ until stopped; every outcome recorded:
    (started, ended, status or error name, the new id for a 201, else what the answer said)."""

    def __init__(self, base: str, token: str, digit: bytes, clients: int = CLIENTS) -> None:
        self.base, self.token, self.digit = base, token, digit
        self.outcomes: list[tuple[float, float, int | str, Any]] = []
        super().__init__(clients)

    def _client(self) -> None:
        headers = {"Authorization": f"Token {self.token}"}
        with httpx.Client(base_url=self.base, timeout=30, headers=headers) as client:
            while not self.stopping.is_set():
                started = time.monotonic()
                try:
                    answer = client.post("/api/predict/", files={"image": ("d.png", self.digit)})
                    status: int | str = answer.status_code
                    outcome = _said(answer)
                except httpx.TransportError as error:
                    status, outcome = type(error).__name__, str(error)
                    time.sleep(0.05)
                self.outcomes.append((started, time.monotonic(), status, outcome))


def _said(answer: httpx.Response) -> Any:
    """A 201's new id; otherwise the service's `detail`, or the start of a balancer's page."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:80]
    return body.get("id") if answer.status_code == 201 else body.get("detail", body)


def rows(database: Path) -> list[int]:
    with sqlite3.connect(database) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM predictions")]


def kills_under_load(
    work: Path, model: Path, digit: bytes, kills: int, failures: list[str]
) -> dict[str, Any]:
    folder = work / "kills"
    with server(folder, model, work / "kills.log") as (process, base):
        token = account(base, "kills")
        recoveries = []
        with Load(base, token, digit) as load:
            for _ in range(kills):
                time.sleep(1.5)
                size = len(prediction_processes(process.pid))
                victim = prediction_process(process.pid)
                os.kill(victim, signal.SIGKILL)
                recoveries.append(ready_again(base, process, victim, size))
            time.sleep(1.0)
        outcomes = load.outcomes
        kept = rows(folder / "digits.db")
    created = [outcome for _, _, status, outcome in outcomes if status == 201]
    refused = [(status, outcome) for _, _, status, outcome in outcomes if status != 201]
    longest = max(end - start for start, end, _, _ in outcomes)
    unclear = [r for r in refused if r[0] != 503 or r[1] not in ALLOWED_503]
    if unclear:
        failures.append(f"kills: {len(unclear)} answers other than a clear 503: {unclear[:3]}")
    if longest > 5:
        failures.append(f"kills: a request took {longest:.1f} s")
    if max(recoveries) > 3:
        failures.append(f"kills: served again only after {max(recoveries):.2f} s")
    # every 201 has exactly one row; a process killed between its commit and its answer leaves
    # rows whose requests got 503 (at most the requests it had in hand)
    if len(set(created)) != len(created) or not set(created) <= set(kept):
        failures.append(f"kills: {len(created)} x 201 but {len(kept)} history rows")
    return {
        "requests": len(outcomes), "201": len(created), "503": len(refused),
        "other": len(unclear), "longest_s": round(longest, 3),
        "recovery_s": [round(r, 3) for r in recoveries], "history_rows": len(kept),
        "rows_of_503_answers": len(kept) - len(created),
    }  # fmt: skip


def ready_again(base: str, process: Any, victim: int, size: int) -> float:
    """Seconds from a kill until /ready is 200 with the pool full again (`size` prediction
    processes), a new one in the victim's place."""
    started = time.monotonic()
    while True:
        try:
            answer = httpx.get(base + "/ready", timeout=2)
            pool = prediction_processes(process.pid)
            if answer.status_code == 200 and victim not in pool and len(pool) == size:
                return time.monotonic() - started
        except (httpx.TransportError, RuntimeError, FileNotFoundError):
            pass
        if time.monotonic() - started > 30:
            return float("inf")
        time.sleep(0.005)


def server_killed(work: Path, model: Path, digit: bytes, failures: list[str]) -> dict[str, Any]:
    folder = work / "restart"
    with server(folder, model, work / "restart.log") as (process, base):
        token = account(base, "restart")
        with Load(base, token, digit) as load:
            time.sleep(3)
            process.send_signal(signal.SIGKILL)
            process.wait()
            time.sleep(0.5)
        acknowledged = {o for _, _, status, o in load.outcomes if status == 201}
    with server(folder, model, work / "restart.log") as (process, base):
        stored = set(rows(folder / "digits.db"))
        answer = httpx.get(base + "/api/profile/", headers={"Authorization": f"Token {token}"})
        count = answer.json()["predictions"]
    lost = acknowledged - stored
    if lost or count != len(stored):
        failures.append(f"restart: {len(lost)} acknowledged predictions lost")
    return {"acknowledged": len(acknowledged), "stored_after_restart": len(stored),
            "lost": len(lost), "profile_count": count}  # fmt: skip


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def answers(base: str, token: str, digit: bytes) -> dict[str, Any]:
    auth = {"Authorization": f"Token {token}"}

    def show(answer: httpx.Response) -> str:
        detail = answer.json().get("detail", "") if answer.status_code >= 400 else ""
        return f"{answer.status_code} {detail}".strip()

    late = {"username": "late", "email": "late@example.com", "password": PASSWORD}
    login = {"username": "disk", "password": PASSWORD}
    return {
        "/api/predict/": show(
            httpx.post(f"{base}/api/predict/", headers=auth, files={"image": digit})
        ),
        "/api/register/": show(httpx.post(f"{base}/api/register/", json=late)),
        "/api/login/ (right password)": show(httpx.post(f"{base}/api/login/", json=login)),
        "/predict/mnist (no token)": show(
            httpx.post(f"{base}/predict/mnist", files={"file": digit})
        ),
        "/ready": show(httpx.get(f"{base}/ready")),
    }


def storage(work: Path, model: Path, digit: bytes, failures: list[str]) -> dict[str, Any]:
    if os.geteuid() != 0:
        return {"skipped": "needs root for tmpfs mounts"}
    report: dict[str, Any] = {}
    with (
        tmpfs(work / "full", "size=64m") as folder,
        server(folder, model, work / "full.log") as (_, base),
    ):
        token = account(base, "disk")
        filler = folder / "filler"
        with filler.open("wb") as stream:
            try:
                while True:
                    stream.write(b"\0" * 65536)
                    stream.flush()
            except OSError:
                pass
        report["full disk"] = answers(base, token, digit)
        filler.unlink()
        report["space freed"] = answers(base, token, digit)
    full, freed = report["full disk"], report["space freed"]
    if not (
        full["/api/predict/"].startswith("507")
        and full["/ready"].startswith("503 The server's storage is full")
        and full["/predict/mnist (no token)"] == "200"
        and freed["/api/predict/"] == "201"
    ):
        failures.append(f"full disk: {report}")
    with tmpfs(work / "ro", "ro,size=1m") as folder:
        log = work / "readonly-data.log"
        with server(folder / "data", model, log) as (_, base):
            report["read-only data folder"] = answers(base, "none", digit)
        said = "cannot be reached or written"
        lines = [line for line in log.read_text().splitlines() if said in line]
        report["read-only data folder"]["log lines"] = lines
        if len(lines) != 1 or report["read-only data folder"]["/predict/mnist (no token)"] != "200":
            failures.append(f"read-only data: {report['read-only data folder']}")
        log = work / "readonly-model.log"
        with server(work / "rw", folder / "models" / "model.joblib", log) as (_, base):
            report["read-only model folder"] = {
                "/predict/mnist (no token)": answers(base, "none", digit)[
                    "/predict/mnist (no token)"
                ]
            }
        lines = [line for line in log.read_text().splitlines() if "cannot be cached" in line]
        report["read-only model folder"]["log lines"] = lines
        if (
            len(lines) != 1
            or report["read-only model folder"]["/predict/mnist (no token)"] != "200"
        ):
            failures.append(f"read-only model: {report['read-only model folder']}")
    return report


def idle_clients(work: Path, model: Path, failures: list[str]) -> dict[str, Any]:
    """IDLE sockets that connect and send nothing or half a request line: all closed once
    HEADER_TIMEOUT has passed, and the server's memory with them."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit[1], limit[1]))  # the server inherits it
    with server(work / "idle", model, work / "idle.log", HEADER_TIMEOUT="5") as (process, base):
        port = int(base.rsplit(":", 1)[1])
        before = tree_rss(process.pid)[process.pid]
        sockets = []
        for n in range(IDLE):
            connection = socket.create_connection(("127.0.0.1", port))
            if n % 2:
                connection.sendall(b"POST /predict/mnist HTTP/1.1\r\nHost: x\r\n")
            sockets.append(connection)
        time.sleep(1)
        holding = tree_rss(process.pid)[process.pid]
        time.sleep(6)  # past HEADER_TIMEOUT
        closed = 0
        for connection in sockets:
            connection.setblocking(False)
            with suppress(BlockingIOError):
                closed += connection.recv(1) == b""
            connection.close()
        time.sleep(1)
        after = tree_rss(process.pid)[process.pid]
        health = httpx.get(base + "/health").status_code
    if closed != IDLE or health != 200:
        failures.append(f"idle clients: {closed} of {IDLE} closed, /health {health}")
    return {"sockets": IDLE, "closed_by_the_server": closed, "server_rss_mb": [
        round(before / 1e6), round(holding / 1e6), round(after / 1e6)]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "faults.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="faults-"))
    model = work / "model.joblib"
    digit = good_digit()
    failures: list[str] = []
    report = {
        "kill -9 the prediction process under load": kills_under_load(
            work, model, digit, args.kills, failures
        ),
        "kill -9 the server under load, restart": server_killed(work, model, digit, failures),
        "storage": storage(work, model, digit, failures),
        "idle clients": idle_clients(work, model, failures),
    }
    print(json.dumps(report, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({**report, "failures": failures}, indent=1))
    for failure in failures:
        print("FAILED:", failure, file=sys.stderr)
    print(f"logs in {work}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
