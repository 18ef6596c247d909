"""Boot time to /ready: cold (no cached model: obtain MNIST, train, save) and warm (from the
cache), each against uvicorn serving an empty FastAPI app, measured in the same run.

    python -m bench.boot [--cold 3] [--warm 7]

Each boot is a fresh `uvicorn` process on 127.0.0.1; the clock runs from process start to
the first 200 from /ready, polled every 20 ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import ROOT, mnist_dir, table


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def boot(app: str, env: dict[str, str], cwd: Path) -> float:
    """Seconds from starting uvicorn to the first 200 from /ready."""
    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"],
        cwd=cwd,
        env=env,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            if server.poll() is not None:
                raise RuntimeError(f"{app} exited with {server.returncode}")
            if time.perf_counter() - start > 600:
                raise TimeoutError(app)
            time.sleep(0.02)
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--warm", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "model.joblib"
        env = {**os.environ, "MNIST_DATA_DIR": str(mnist_dir()), "MODEL_PATH": str(model_path)}
        bare = [boot("bare_app:app", env, ROOT / "bench") for _ in range(args.warm)]
        cold = []
        for _ in range(args.cold):
            model_path.unlink(missing_ok=True)
            cold.append(boot("main:app", env, ROOT))
        warm = [boot("main:app", env, ROOT) for _ in range(args.warm)]

    def row(name: str, times: list[float]) -> list[object]:
        median = statistics.median(times)
        return [name, len(times), f"{median:.2f}", f"{min(times):.2f}", f"{max(times):.2f}",
                f"{median / statistics.median(bare):.1f}x"]  # fmt: skip

    runs = [("bare FastAPI app (baseline)", bare), ("cold: train on MNIST_DATA_DIR", cold),
            ("warm: from the cached model", warm)]  # fmt: skip
    print(table(
        ["boot to /ready", "runs", "median s", "min s", "max s", "vs bare FastAPI"],
        [row(name, times) for name, times in runs if times],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
