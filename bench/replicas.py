"""Replicas: the service as several identical processes on one PostgreSQL database, behind
Debian's haproxy, all on 127.0.0.1.

1. A throwaway PostgreSQL server (bench/postgres.py), three replicas on it and one replica on
   its own SQLite file, each started as the image starts it (uvicorn with the timeouts
   protocol), each with its own data folder; the model is trained once and shared.
2. haproxy (round robin, health checks on /ready every 0.5 s) with one front end per set-up:
   1 replica on SQLite (the baseline: today's one-machine service), 1, 2 and 3 replicas on
   PostgreSQL. `hey` drives `POST /api/predict/` (a real user's token, a held-out MNIST
   digit as a 28x28 PNG) through each at 8 and 32 connections, --duration seconds a run,
   set-ups interleaved, --repeats rounds: requests/s (median), per replica, the ratio to the
   SQLite baseline (median of the ratios of runs made side by side), p99; no answer but 201.
   Then exactly 3,200 requests per set-up (`hey -n`, none cut off) by a user of their own:
   3,200 answers 201 and exactly 3,200 history rows.
3. kill -9 one of three replicas (its whole process group) while 8 clients post through the
   balancer: only requests in that replica's hands fail, every acknowledged prediction is in
   the database, and the balancer stops sending to it within its health-check interval.

    python -m bench.replicas [--duration 10] [--repeats 3] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

import dataset
import styles
from bench.boot import free_port
from bench.common import load_mnist, table, trained_model
from bench.faults import Load, server
from bench.load import _body, hey
from bench.postgres import Cluster

PASSWORD = "correct horse battery"
CONNECTIONS = (8, 32)
SETUPS = {"sqlite x1": 1, "postgresql x1": 1, "postgresql x2": 2, "postgresql x3": 3}
KILL_CLIENTS = 8
EXACT = 3200  # a multiple of 32: hey -n sends n // c per connection


@contextmanager
def haproxy(home: Path, backends: dict[str, list[str]]) -> Iterator[dict[str, str]]:
    """haproxy with one front end per named list of replica URLs; yields each front end's URL.
    Health checks on /ready every 0.5 s; a request is re-sent elsewhere only when its
    connection could not be made (never once the replica may have seen it)."""
    ports = {name: free_port() for name in backends}
    lines = [
        "global", "    maxconn 4096",
        "defaults", "    mode http", "    timeout connect 2s", "    timeout client 60s",
        "    timeout server 60s", "    retries 2", "    option redispatch",
        "    default-server inter 500ms fall 1 rise 2",
    ]  # fmt: skip
    for number, (name, urls) in enumerate(backends.items()):
        lines += [f"frontend f{number}", f"    bind 127.0.0.1:{ports[name]}",
                  f"    default_backend b{number}", f"backend b{number}", "    balance roundrobin",
                  "    option httpchk GET /ready", "    http-check expect status 200"]  # fmt: skip
        lines += [
            f"    server r{i} {url.removeprefix('http://')} check" for i, url in enumerate(urls)
        ]
    config = home / "haproxy.cfg"
    config.write_text("\n".join(lines) + "\n")
    log = (home / "haproxy.log").open("wb")
    process = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdout=log, stderr=log)
    fronts = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        time.sleep(1.5)  # every server checked up (rise 2 x 0.5 s)
        for url in fronts.values():
            assert httpx.get(url + "/health", timeout=5).status_code == 200, url
        yield fronts
    finally:
        process.terminate()
        process.wait(10)
        log.close()


class ConnectionCount:
    """The most connections the replicas held to the database at once while in the block
    (pg_stat_activity, polled every 50 ms by a connection of its own, not counted)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster, self.most = cluster, 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._poll)

    def __enter__(self) -> ConnectionCount:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join()

    def _poll(self) -> None:
        engine = sa.create_engine(self.cluster.url("postgres"))
        query = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'digits' "
            "AND backend_type = 'client backend'"
        )
        with engine.connect() as connection:
            while not self.stopping.wait(0.05):
                self.most = max(self.most, connection.execute(query).scalar_one())
        engine.dispose()


def account(url: str, name: str) -> tuple[str, int]:
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    answer = httpx.post(url + "/api/register/", json=body, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["token"], answer.json()["user_id"]


def history_rows(url: str, user_id: int) -> list[int]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        ids = connection.exec_driver_sql(
            "SELECT id FROM predictions WHERE user_id = %s" if url.startswith("postgresql")
            else "SELECT id FROM predictions WHERE user_id = ?", (user_id,),
        ).scalars().all()  # fmt: skip
    engine.dispose()
    return list(ids)


def kill_one_of_three(front: str, victim: subprocess.Popen[bytes], database: str,
                      digit: bytes) -> dict[str, Any]:  # fmt: skip
    token, user_id = account(front, "killed")
    with Load(front, token, digit, KILL_CLIENTS) as clients:
        time.sleep(3)
        killed_at = time.monotonic()
        os.killpg(victim.pid, signal.SIGKILL)
        time.sleep(4)
    outcomes = clients.outcomes
    created = [outcome for _, _, status, outcome in outcomes if status == 201]
    failed = [(start, end, status, text) for start, end, status, text in outcomes if status != 201]
    kept = history_rows(database, user_id)
    last_failure = max((end for _, end, _, _ in failed), default=killed_at) - killed_at
    return {
        "requests": len(outcomes),
        "201": len(created),
        "failed": len(failed),
        "failed_statuses": sorted({str(status) for _, _, status, _ in failed}),
        # when each failed request was sent, and when it ended, in seconds from the kill
        "failed_sent_s": sorted(round(start - killed_at, 3) for start, _, _, _ in failed),
        "last_failure_after_kill_s": round(last_failure, 3),
        "acknowledged_lost": len(set(created) - set(kept)),
        "duplicate_ids": len(created) - len(set(created)),
        "rows_without_201": len(set(kept) - set(created)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, help="a trained model file (else train one)")
    args = parser.parse_args()
    for tool in ("haproxy", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}: apt-get install haproxy hey")
    _, holdout = dataset.split(load_mnist())
    digit = styles.mnist_png(holdout.images[0], np.random.default_rng(0))

    with tempfile.TemporaryDirectory() as tmp, Cluster.start() as cluster, ExitStack() as stack:
        home = Path(tmp)
        (home / "digit.png").write_bytes(digit)
        trained = trained_model(home / "model.joblib", args.model)
        postgres = cluster.create_database("digits")
        sqlite = f"sqlite:///{home / 'digits.db'}"

        def replica(name: str, database: str) -> tuple[subprocess.Popen[bytes], str]:
            """One replica as the image runs it, with a data folder of its own."""
            started = server(home / name, trained, home / f"{name}.log",
                             DATABASE_URL=database, LOG_LEVEL="WARNING")  # fmt: skip
            return stack.enter_context(started)

        replicas = [replica(f"pg{n}", postgres) for n in range(3)]
        alone = replica("sqlite", sqlite)
        urls = [url for _, url in replicas]
        backends = {"sqlite x1": [alone[1]], "postgresql x1": urls[:1],
                    "postgresql x2": urls[:2], "postgresql x3": urls}  # fmt: skip
        fronts = stack.enter_context(haproxy(home, backends))
        users = {name: account(front, name.replace(" ", "_")) for name, front in fronts.items()}
        body = str(_body(home / "digit.png", "image", 1, home))

        def options(token: str) -> list[str]:
            boundary = "multipart/form-data; boundary=----digit-bench-7d1f"
            return ["-m", "POST", "-H", f"Authorization: Token {token}", "-T", boundary, "-D", body]

        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        statuses: dict[str, dict[str, int]] = {name: {} for name in SETUPS}
        for round_number in range(args.repeats):
            for connections in CONNECTIONS:
                for name in SETUPS:
                    load = options(users[name][0])
                    url = fronts[name] + "/api/predict/"
                    if round_number == 0 and connections == CONNECTIONS[0]:
                        hey(url, *load, "-z", f"{args.warmup}s", "-c", "8")
                    started = time.monotonic()
                    with ConnectionCount(cluster) as held:
                        counts, percentiles = hey(url, *load, "-z", f"{args.duration}s",
                                                  "-c", str(connections))  # fmt: skip
                    seconds = time.monotonic() - started
                    for code, count in counts.items():
                        statuses[name][code] = statuses[name].get(code, 0) + count
                    runs.setdefault((name, connections), []).append({
                        "rps": sum(counts.values()) / seconds,
                        "p50": percentiles["50"], "p99": percentiles["99"],
                        "connections": held.most,
                    })  # fmt: skip
                    print(
                        name,
                        connections,
                        round(runs[name, connections][-1]["rps"]),
                        counts,
                        flush=True,
                    )

        rows = []
        for name, count in SETUPS.items():
            for connections in CONNECTIONS:
                done = runs[name, connections]
                base = runs["sqlite x1", connections]
                ratios = [run["rps"] / b["rps"] for run, b in zip(done, base, strict=True)]
                rps = statistics.median(run["rps"] for run in done)
                rows.append([
                    name, connections, f"{rps:.0f}", f"{rps / count:.0f}",
                    f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]",
                    f"{statistics.median(run['p50'] for run in done):.1f}",
                    f"{statistics.median(run['p99'] for run in done):.1f}",
                    "" if name.startswith("sqlite") else max(run["connections"] for run in done),
                ])  # fmt: skip
        print(table(["set-up", "connections", "requests/s", "per replica", "ratio to sqlite x1",
                     "p50 ms", "p99 ms", "most database connections (3 replicas)"],
                    rows))  # fmt: skip
        # exactly EXACT requests per set-up (hey -n: none cut off when the run ends), by a
        # user of their own: every answer a 201, and exactly one history row for each
        check = []
        for name, front in fronts.items():
            _, user_id = checker = account(front, name.replace(" ", "_") + "_exact")
            counts, _ = hey(front + "/api/predict/", *options(checker[0]), "-n", str(EXACT),
                            "-c", "32")  # fmt: skip
            database = sqlite if name.startswith("sqlite") else postgres
            kept = len(history_rows(database, user_id))
            timed_errors = {code: n for code, n in statuses[name].items() if code != "201"}
            check.append([
                name, counts.get("201", 0), kept, "yes" if kept == counts.get("201") == EXACT
                else "NO", timed_errors or "none",
            ])  # fmt: skip
        print(table([f"set-up ({EXACT} requests, 32 connections)", "201 answers",
                     "history rows", "one row per 201", "other answers (timed runs)"],
                    check))  # fmt: skip

        killed = kill_one_of_three(fronts["postgresql x3"], replicas[2][0], postgres, digit)
        print("kill -9 of one replica of three under 8 clients:", killed)
        ok = all(row[3] == "yes" and row[4] == "none" for row in check) and (
            killed["acknowledged_lost"] == 0 and killed["duplicate_ids"] == 0
            and killed["failed"] <= KILL_CLIENTS
        )  # fmt: skip
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
