"""Pillow's own corpus of odd, broken and exotic images against the running service.

    python -m bench.bad_images [--cache DIR] [--json reports/bad_images.json]

Downloads Pillow's source distribution once (pip download, into the cache), and posts every
file under Tests/images smaller than the upload limit to POST /predict/mnist, then all of them
in batches to POST /predict/mnist/batch, then one at a time to POST /predict/number (which
reads them another way: at a larger size, as marks of a line, split where they may touch),
then once more to /predict/mnist from 8 clients at once with a good digit between every two
bad files. The server is a real uvicorn with the image's options, its address space capped at
4 GB (ulimit -v). It must give no 5xx, no reset connection, no answer over 2 s, every good
digit read right, stay alive, and hold its memory within 50 MB. Exit status 1 when any of that
fails (CI runs this).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from bench.common import ROOT, mnist_dir, table

PILLOW = "12.0.0"
UPLOAD_LIMIT = 5_000_000
ADDRESS_SPACE_KB = 4 * 1024 * 1024  # 4 GB
SLOW = 2.0  # seconds
MEMORY_SLACK = 50 * 1024 * 1024
BATCH = 32


def corpus(cache: Path) -> list[tuple[str, bytes]]:
    archive = cache / f"pillow-{PILLOW}.tar.gz"
    if not archive.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", f"pillow=={PILLOW}", "--dest", str(cache)],
            check=True,
        )  # fmt: skip
    files = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if member.isfile() and parts[1:3] == ["Tests", "images"] and member.size < UPLOAD_LIMIT:
                data = tar.extractfile(member)
                assert data is not None
                files.append(("/".join(parts[3:]), data.read()))
    return sorted(files)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children(pid: int) -> list[int]:
    """A process's children, whichever of its threads started them."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree_rss(pid: int) -> dict[int, int]:
    """Resident bytes of a process and each of its descendants (the fork server, the
    prediction process, multiprocessing's resource tracker), by pid."""
    found, todo = {}, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            todo += children(current)
        except FileNotFoundError:
            continue
        found[current] = next(int(line.split()[1]) * 1024 for line in status.splitlines()
                              if line.startswith("VmRSS:"))  # fmt: skip
    return found


def good_digit() -> bytes:
    sys.path.insert(0, str(ROOT))
    import dataset
    import styles

    holdout = dataset.split(dataset.read_folder(mnist_dir()))[1]
    return styles.mnist_png(holdout.images[1], np.random.default_rng(0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "digit-bench")
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "bad_images.json")
    args = parser.parse_args()
    files = corpus(args.cache)
    print(f"{len(files)} files of Pillow {PILLOW}'s Tests/images under 5 MB", file=sys.stderr)

    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="bad-images-"))
    environment = {
        **os.environ, "MNIST_DATA_DIR": str(mnist_dir()), "DATA_DIR": str(work / "data"),
        "MODEL_PATH": str(work / "model.joblib"), "TRAIN_LIMIT": "3000", "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    command = (f"ulimit -v {ADDRESS_SPACE_KB} && exec {sys.executable} -m uvicorn main:app "
               f"--port {port} --loop uvloop --http timeouts:TimedHttpToolsProtocol "
               "--log-level warning")  # fmt: skip
    server = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=environment)
    base = f"http://127.0.0.1:{port}"
    failures: list[str] = []
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not become ready")
                time.sleep(0.2)
            digit = good_digit()
            # what the service reads in the good digit before anything bad is sent
            expected = client.post("/predict/mnist", files={"file": digit}).json()["prediction"]
            before = tree_rss(server.pid)
            results = run(client, files, digit, expected)
            alive = client.get("/health").status_code == 200 and server.poll() is None
            after = tree_rss(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    rows = []
    for phase, outcomes in results.items():
        statuses: dict[str, int] = {}
        for status, _ in outcomes:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        times = sorted(seconds for _, seconds in outcomes)
        errors = sum(1 for status, _ in outcomes if not isinstance(status, int) or status >= 500)
        slow = sum(1 for seconds in times if seconds > SLOW)
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
        median, longest = times[len(times) // 2] * 1000, times[-1] * 1000
        rows.append(
            [phase, len(outcomes), answers, errors, slow, f"{median:.1f}", f"{longest:.0f}"]
        )
        if errors:
            failures.append(f"{phase}: {errors} server errors or broken connections")
        if slow:
            failures.append(f"{phase}: {slow} answers over {SLOW} s")
    if not alive:
        failures.append("the server died")
    growth = sum(after.values()) - sum(before.values())
    if growth > MEMORY_SLACK:
        failures.append(f"memory grew by {growth / 1e6:.0f} MB")
    print(table(["phase", "requests", "answers", "5xx or reset", f"over {SLOW:g} s",
                 "median ms", "max ms"], rows))  # fmt: skip
    print(
        f"\nserver alive after: {alive}; resident memory of the server and what it started "
        f"(MB, by pid): before {mb(before)}, after {mb(after)}; grew {growth / 1e6:.0f} MB"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"rows": rows, "alive": alive, "rss": [before, after], "failures": failures}
    args.json.write_text(json.dumps(report, indent=1))
    for failure in failures:
        print("FAILED:", failure, file=sys.stderr)
    return 1 if failures else 0


Outcome = tuple[int | str, float]


def mb(rss: dict[int, int]) -> str:
    return (
        f"{sum(rss.values()) / 1e6:.0f} ("
        + ", ".join(f"{pid}: {size / 1e6:.0f}" for pid, size in rss.items())
        + ")"
    )


def post(client: httpx.Client, path: str, files: list[tuple[str, tuple[str, bytes]]]) -> Outcome:
    started = time.monotonic()
    try:
        answer = client.post(path, files=files)
        status: int | str = answer.status_code
    except httpx.TransportError as error:
        status = type(error).__name__
    return status, time.monotonic() - started


def run(
    client: httpx.Client, files: list[tuple[str, bytes]], digit: bytes, expected: str
) -> dict[str, list[Outcome]]:
    results: dict[str, list[Outcome]] = {
        "one at a time": [], "in batches of 32": [], "/predict/number, one at a time": []
    }  # fmt: skip
    for name, data in files:
        results["one at a time"].append(post(client, "/predict/mnist", [("file", (name, data))]))
    for start in range(0, len(files), BATCH):
        chunk = [("files", (name, data)) for name, data in files[start : start + BATCH]]
        results["in batches of 32"].append(post(client, "/predict/mnist/batch", chunk))
    for name, data in files:
        outcome = post(client, "/predict/number", [("file", (name, data))])
        results["/predict/number, one at a time"].append(outcome)

    def good(_: int) -> Outcome:
        """A good digit: 200 with the answer it had before, or what went wrong."""
        started = time.monotonic()
        try:
            answer = client.post("/predict/mnist", files={"file": ("digit.png", digit)})
        except httpx.TransportError as error:
            return type(error).__name__, time.monotonic() - started
        right = answer.status_code == 200 and answer.json()["prediction"] == expected
        status = answer.status_code if answer.status_code != 200 or right else "wrong digit"
        return status, time.monotonic() - started

    def bad(item: tuple[str, bytes]) -> Outcome:
        return post(client, "/predict/mnist", [("file", item)])

    with ThreadPoolExecutor(8) as pool:
        goods = [pool.submit(good, i) for i in range(len(files) // 2)]
        bads = [pool.submit(bad, item) for item in files]
        results["8 clients at once"] = [future.result() for future in bads]
        results["good digits among them"] = [future.result() for future in goods]
    return results


if __name__ == "__main__":
    sys.exit(main())
