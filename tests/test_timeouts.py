"""Slow and idle clients are cut off (timeouts.py), through a real uvicorn on a real socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 0.5  # header and body timeouts of the server under test, in seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module", params=["uvicorn", "uvicorn-h11", "gunicorn"])
def server(request: pytest.FixtureRequest) -> Iterator[int]:
    """The bare app served as the README says: uvicorn with the protocol (httptools, or h11),
    or gunicorn with the worker class."""
    port = free_port()
    environment = {**os.environ, "HEADER_TIMEOUT": str(TIMEOUT), "BODY_TIMEOUT": str(TIMEOUT)}
    commands = {
        "uvicorn": ["uvicorn", "bench.bare_app:app", "--port", str(port),
                    "--http", "timeouts:TimedHttpToolsProtocol", "--log-level", "warning"],
        "uvicorn-h11": ["uvicorn", "bench.bare_app:app", "--port", str(port),
                        "--http", "timeouts:TimedH11Protocol", "--log-level", "warning"],
        "gunicorn": ["gunicorn", "bench.bare_app:app", "-k", "timeouts.UvicornWorker",
                     "-b", f"127.0.0.1:{port}", "--log-level", "warning"],
    }  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", *commands[request.param]], cwd=ROOT, env=environment
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def closed_after(connection: socket.socket, trickle: bytes = b"") -> float:
    """Seconds until the server closes the connection (sending `trickle` a byte at a time)."""
    started = time.monotonic()
    connection.settimeout(0.1)
    for byte in trickle:
        connection.sendall(bytes([byte]))
        try:
            if connection.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
    connection.settimeout(10)
    while connection.recv(1024):  # a response (none is expected) would be read past here
        pass
    return time.monotonic() - started


def test_a_silent_connection_is_closed(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        assert TIMEOUT * 0.8 < closed_after(connection) < 5


def test_headers_trickled_a_byte_at_a_time_do_not_extend_the_deadline(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        endless = b"GET /ready HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        assert closed_after(connection, endless) < 5


def test_a_stalled_body_is_cut_off(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        connection.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: 1000\r\n\r\n--b\r\n"
        )
        assert TIMEOUT * 0.8 < closed_after(connection) < 5


def test_requests_on_a_kept_alive_connection_are_answered(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as connection:
        for _ in range(3):
            connection.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = connection.recv(4096)
            while not answer.endswith(b"}"):
                answer += connection.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'"ready"}')
            time.sleep(TIMEOUT / 2)  # idle between requests: uvicorn's keep-alive (5 s) rules


def test_a_slow_body_that_keeps_coming_is_answered(server: int) -> None:
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n\r\n'
    body = part + b"x" * 40 + b"\r\n--b--\r\n"
    with socket.create_connection(("127.0.0.1", server)) as connection:
        connection.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        started = time.monotonic()
        for start in range(0, len(body), 10):  # over 3 timeouts in all, never silent for one
            connection.sendall(body[start : start + 10])
            time.sleep(TIMEOUT / 3)
        assert time.monotonic() - started > 3 * TIMEOUT
        connection.settimeout(10)
        answer = connection.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer
