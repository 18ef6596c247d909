"""Accounts under load, against a real server: concurrency and login timing.

Starts gunicorn with 2 uvicorn workers on 127.0.0.1 (a temporary SQLite database; the model trained
once beforehand on 2,000 digits, which is all this needs), then:

1. 4 users send 200 authenticated predictions at once, each a different real digit; every
   request must answer 201 and the database must hold exactly 200 history rows, each owned
   by the user who sent that image (matched by its SHA-256).
2. Failed logins: wrong password for a real user versus an unknown username, interleaved,
   --logins of each; the two must take the same time (the medians are compared).

    python -m bench.accounts [--requests 200] [--logins 40]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa

import dataset
import db
import styles
from bench.boot import free_port
from bench.common import ROOT, load_mnist, mnist_dir, table

USERS = ["ada", "bob", "cyd", "dee"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--logins", type=int, default=40)
    args = parser.parse_args()
    _, holdout = dataset.split(load_mnist())

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "MNIST_DATA_DIR": str(mnist_dir()),
            "MODEL_PATH": f"{tmp}/model.joblib",
            "DATABASE_URL": f"sqlite:///{tmp}/digits.db",
            "LOG_LEVEL": "WARNING",
        }
        train = [sys.executable, "-m", "model", "train", "--limit", "2000"]
        subprocess.run(train, cwd=ROOT, env=env, check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen(
            # gunicorn's uvicorn workers: `uvicorn --workers` leaves Nagle's algorithm on (40 ms
            # a response; see bench/load.py)
            [sys.executable, "-m", "gunicorn", "main:app", "-k", "timeouts.UvicornWorker",
             "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=60) as http:
                for _ in range(300):
                    try:
                        if http.get("/ready").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.1)
                tokens = {}
                for name in USERS:
                    account = {
                        "username": name,
                        "email": f"{name}@example.com",
                        "password": "correct horse",
                    }
                    tokens[name] = http.post("/api/register/", json=account).json()["token"]

                # 1. simultaneous predictions
                jobs = [
                    (USERS[i % len(USERS)], styles.mnist_png(holdout.images[i], None))
                    for i in range(args.requests)
                ]

                def send(job: tuple[str, bytes]) -> int:
                    user, image = job
                    answer = http.post(
                        "/api/predict/",
                        files={"image": ("digit.png", image, "image/png")},
                        headers={"Authorization": f"Token {tokens[user]}"},
                    )
                    return answer.status_code

                start = time.perf_counter()
                with ThreadPoolExecutor(args.requests) as pool:
                    statuses = list(pool.map(send, jobs))
                seconds = time.perf_counter() - start

                # 2. failed logins: wrong password vs unknown user, interleaved
                wrong, unknown = [], []
                for i in range(args.logins):
                    for name, times in (("ada", wrong), (f"nobody{i}", unknown)):
                        t0 = time.perf_counter()
                        http.post("/api/login/", json={"username": name, "password": f"wrong {i}"})
                        times.append(time.perf_counter() - t0)
                        if name == "ada" and i % 4 == 3:  # stay under the throttle
                            http.post(
                                "/api/login/", json={"username": "ada", "password": "correct horse"}
                            )
        finally:
            server.terminate()
            server.wait()

        engine = db.connect(env["DATABASE_URL"])
        with engine.connect() as connection:
            stored = connection.execute(
                sa.select(db.predictions.c.image_sha256, db.users.c.username).join(db.users)
            ).all()
        engine.dispose()

    expected = {hashlib.sha256(image).hexdigest(): user for user, image in jobs}
    owners_right = sum(expected.get(sha) == user for sha, user in stored)
    print(table(
        ["simultaneous authenticated predictions, 2 workers", "figure"],
        [["requests", args.requests], ["answered 201", statuses.count(201)],
         ["history rows", len(stored)], ["rows owned by the user who sent the image", owners_right],
         ["wall time, s", f"{seconds:.1f}"]],
    ))  # fmt: skip
    w, u = statistics.median(wrong) * 1000, statistics.median(unknown) * 1000
    print()
    print(table(
        ["failed login", "median ms", "ratio to wrong password"],
        [["wrong password, real user", f"{w:.1f}", "1.00"],
         ["unknown username", f"{u:.1f}", f"{u / w:.2f}"]],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
