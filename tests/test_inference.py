"""The prediction processes: framing, batching, the pool, and the server surviving their death."""

from __future__ import annotations

import asyncio
import io
import multiprocessing.forkserver
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvloop
from fastapi.testclient import TestClient
from PIL import Image

import config
import dataset
import inference
import styles
from config import Settings
from conftest import make_settings
from errors import InvalidImage
from main import create_app


def test_frames_arriving_in_pieces_and_together_are_all_read() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        first, second = inference._frame((1, [b"a"])), inference._frame((2, [b"bb", b"c"]))
        frames = inference._Frames(theirs)
        ours.sendall(first[:3])  # a header cut in two
        ours.sendall(first[3:] + second[:-1])
        ours.sendall(second[-1:])
        received: list[object] = []
        while len(received) < 2:
            received += frames.wait() or []
        assert received == [(1, [b"a"]), (2, [b"bb", b"c"])]
        ours.close()
        assert frames.wait() is None  # the server went away


def test_jobs_waiting_together_are_done_in_one_pass_each_with_its_own_outcome() -> None:
    passes: list[list[str]] = []

    def work(jobs: list[str]) -> list[object]:
        passes.append(jobs)
        return [job.upper() for job in jobs]

    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(inference._frame((7, "ab")) + inference._frame((8, "c")))
        ours.shutdown(socket.SHUT_WR)
        inference._serve(theirs, work)
        answers = inference._Frames(ours).wait()
    assert passes == [["ab", "c"]]
    assert answers == [(7, "AB"), (8, "C")]


def test_small_jobs_are_done_before_large_ones_that_arrived_with_them() -> None:
    large, small = inference.SPILL_BYTES, 100
    jobs = ["photo", "digit", "photo 2", "digit 2"]
    assert inference._passes(jobs, [large, small, large, small]) == [
        ["digit", "digit 2"],
        ["photo", "photo 2"],
    ]
    many = list(range(inference.MAX_JOBS + 1))
    assert inference._passes(many, [small] * len(many)) == [many[:-1], many[-1:]]


def test_a_failing_pass_is_done_again_job_by_job_so_only_the_bad_one_fails() -> None:
    passes: list[list[str]] = []

    def work(jobs: list[str]) -> list[object]:
        passes.append(jobs)
        if "bad" in jobs:
            raise NotImplementedError("a decoder variant nobody wrote")
        return [job.upper() for job in jobs]

    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(b"".join(inference._frame(job) for job in [(1, "a"), (2, "bad"), (3, "c")]))
        ours.shutdown(socket.SHUT_WR)
        inference._serve(theirs, work)
        answers = inference._Frames(ours).wait() or []
    assert passes == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    assert answers[0] == (1, "A") and answers[2] == (3, "C")
    job, error = answers[1]
    assert (job, type(error), str(error)) == (
        2,
        InvalidImage,
        "The image could not be processed (NotImplementedError: a decoder variant nobody wrote).",
    )


def test_an_outcome_that_cannot_be_sent_fails_its_request_only() -> None:
    def unsendable() -> InvalidImage:
        error = InvalidImage("bad")
        error.view = memoryview(b"x")  # type: ignore[attr-defined]
        return error

    def work(jobs: list[str]) -> list[object]:
        return [unsendable() if job == "bad" else job for job in jobs]

    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(inference._frame((1, "bad")) + inference._frame((2, "good")))
        ours.shutdown(socket.SHUT_WR)
        inference._serve(theirs, work)
        answers = inference._Frames(ours).wait() or []
    assert [job for job, _ in answers] == [1, 2]
    assert isinstance(answers[0][1], InvalidImage)
    assert str(answers[0][1]).startswith("The image could not be processed (TypeError: cannot")
    assert answers[1][1] == "good"


def digit_png(holdout: dataset.Digits, index: int) -> bytes:
    return styles.mnist_png(holdout.images[index], np.random.default_rng(index))


@pytest.fixture
def one_process(settings: Settings) -> Iterator[TestClient]:
    """The service with a pool of one prediction process."""
    with TestClient(create_app(settings.model_copy(update={"prediction_processes": 1}))) as client:
        assert client.app.state.predictor.wait(60)  # type: ignore[attr-defined]
        yield client


def only_pid(client: TestClient) -> int:
    (pid,) = client.app.state.predictor.pool.pids  # type: ignore[attr-defined]
    return int(pid)


def test_the_server_predicts_in_its_prediction_processes(
    client: TestClient, holdout: dataset.Digits
) -> None:
    pool = client.app.state.predictor.pool  # type: ignore[attr-defined]
    assert pool.size == len(os.sched_getaffinity(0))  # by default, a process per usable core
    assert len(pool.pids) == pool.size and os.getpid() not in pool.pids
    response = client.post("/predict/mnist", files={"file": digit_png(holdout, 1)})
    assert response.status_code == 200
    assert response.json()["prediction"] == "3"
    # an error made in the prediction process reaches the client as itself
    blank = styles.mnist_png(np.zeros((28, 28), np.uint8), np.random.default_rng(0))
    response = client.post("/predict/mnist", files={"file": blank})
    assert (response.status_code, response.json()) == (
        400,
        {"detail": "No digit found in the image."},
    )


def test_a_killed_prediction_process_is_replaced_and_nothing_is_retried_meanwhile(
    one_process: TestClient, holdout: dataset.Digits
) -> None:
    client = one_process
    predictor = client.app.state.predictor  # type: ignore[attr-defined]
    child = only_pid(client)
    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 10
    answers = set()
    # meanwhile: 503 with Retry-After, /ready says so; within seconds a new process serves
    while time.monotonic() < deadline:
        response = client.post("/predict/mnist", files={"file": digit_png(holdout, 1)})
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            answers.add((503, response.json()["detail"]))
        else:
            answers.add((response.status_code, response.json()["prediction"]))
        if predictor.pool.pids not in ([], [child]):
            break
        time.sleep(0.01)
    else:
        pytest.fail("no new prediction process within 10 s")
    assert answers <= {
        (200, "3"),  # before the server saw it die
        (503, "The prediction process stopped; try again in a moment."),
        (503, "The prediction process is restarting; try again in a moment."),
    }
    assert client.get("/ready").status_code == 200
    response = client.post("/predict/mnist", files={"file": digit_png(holdout, 1)})
    assert response.json()["prediction"] == "3"


def test_ready_is_false_while_no_prediction_process_serves(one_process: TestClient) -> None:
    client = one_process
    predictor = client.app.state.predictor  # type: ignore[attr-defined]
    predictor.pool._delays[0] = predictor.pool._started[0] = 0  # so the next waits 0.2 s
    os.kill(only_pid(client), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while predictor.pool.running:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    answer = client.get("/ready")
    assert (answer.status_code, answer.json()) == (
        503,
        {"detail": "The prediction process is starting; try again in a moment."},
    )
    assert predictor.wait(10)
    assert client.get("/ready").status_code == 200


def test_the_fork_server_has_no_threads_to_copy(client: TestClient) -> None:
    server = multiprocessing.forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    assert server is not None
    assert os.listdir(f"/proc/{server}/task") == [str(server)]  # one thread: its main thread
    for pid in client.app.state.predictor.pool.pids:  # type: ignore[attr-defined]
        status = Path(f"/proc/{pid}/status").read_text()
        assert f"PPid:\t{server}\n" in status  # forked by the fork server, not by this process


def sleepy(jobs: list[float]) -> list[float]:
    """A work function for the watchdog test (module level: it travels to the process)."""
    time.sleep(jobs[0])
    return jobs


def test_the_watchdog_kills_a_silent_process_and_fails_its_requests_with_503() -> None:
    exits: list[float] = []

    async def scenario() -> None:
        process = inference.PredictionProcess(
            sleepy,
            inference.Limits(seconds=60, memory=1 << 30),
            timeout=0.5,
            on_exit=lambda: exits.append(time.monotonic()),
        )
        await process.start()
        assert await process.run(0.0) == 0.0
        started = time.monotonic()
        with pytest.raises(inference.ProcessStopped) as stopped:
            await process.run(60.0)
        assert stopped.value.status_code == 503
        assert stopped.value.detail == (
            "The prediction took too long and was stopped; try again later."
        )
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.1)
        assert not process.running
        await process.stop()

    asyncio.run(scenario())
    assert len(exits) == 1


def test_a_job_for_a_process_whose_connection_just_broke_gets_503_under_uvloop() -> None:
    """A killed process resets its socket; until the server's reader sees that, the process
    still looks alive, and uvloop (unlike asyncio) raises RuntimeError on a write to the closed
    transport: that was a 500 under load (bench/faults.py)."""

    async def scenario() -> None:
        process = inference.PredictionProcess(
            sleepy, inference.Limits(seconds=60, memory=1 << 30), timeout=10
        )
        await process.start()
        try:
            assert await process.run(0.0) == 0.0
            assert process.pid is not None
            os.kill(process.pid, signal.SIGKILL)
            # the moment between the transport closing and the reader's turn, held open
            disconnect, process._disconnect = process._disconnect, lambda: None  # type: ignore[method-assign]
            assert process._writer is not None
            process._writer.write(b"\0" * 100_000)  # an earlier job's write meets the reset
            while not process._writer.is_closing():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            assert process.running  # as far as the server can tell
            with pytest.raises(inference.ProcessStopped) as stopped:
                await process.run(0.0)
            assert stopped.value.status_code == 503
            process._disconnect = disconnect  # type: ignore[method-assign]
        finally:
            await process.stop()

    uvloop.run(scenario())


@pytest.mark.parametrize(
    ("limit", "detail"),
    [
        ({"max_upload_memory": 50_000_000}, "The image needs more memory to decode than one"),
        ({"max_upload_seconds": 0.05}, "The image took over 0.05 s to decode and prepare;"),
    ],
)
def test_an_upload_over_its_memory_or_time_fails_alone_and_the_process_goes_on(
    tmp_path: Path,
    model_file: Path,
    holdout: dataset.Digits,
    limit: dict[str, float],
    detail: str,
) -> None:
    settings = make_settings(tmp_path, model_path=model_file, **limit)
    # 6000 x 6000 white pixels: a 100 kB PNG, 144 MB once decoded (RGBX), ~0.2 s to decode
    costly = io.BytesIO()
    Image.new("RGB", (6000, 6000), "white").save(costly, format="PNG")
    with TestClient(create_app(settings)) as client:
        assert client.app.state.predictor.wait(30)  # type: ignore[attr-defined]
        pids = client.app.state.predictor.pool.pids  # type: ignore[attr-defined]
        answer = client.post("/predict/mnist", files={"file": costly.getvalue()})
        assert answer.status_code == 413
        assert answer.json()["detail"].startswith(detail)
        answer = client.post("/predict/mnist", files={"file": digit_png(holdout, 1)})
        assert (answer.status_code, answer.json()["prediction"]) == (200, "3")
        assert client.app.state.predictor.pool.pids == pids  # type: ignore[attr-defined]


def test_without_the_prediction_process_the_thread_pool_predicts(
    tmp_path: Path, model_file: Path, holdout: dataset.Digits
) -> None:
    settings = make_settings(tmp_path, model_path=model_file, prediction_process=False)
    with TestClient(create_app(settings)) as client:
        assert client.app.state.predictor.pool is None  # type: ignore[attr-defined]
        response = client.post("/predict/mnist", files={"file": digit_png(holdout, 1)})
        assert response.json()["prediction"] == "3"


def whose(jobs: list[tuple[float, bytes]]) -> list[int]:
    """A work function for the pool tests: each job takes its seconds; answers who did it."""
    time.sleep(sum(seconds for seconds, _ in jobs))
    return [os.getpid()] * len(jobs)


def test_the_pool_fills_one_process_and_spills_over_when_it_falls_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inference, "SPILL_SECONDS", 0.2)  # a margin for a slow machine

    async def scenario() -> None:
        pool = inference.PredictionPool(
            whose, inference.Limits(seconds=60, memory=1 << 30), timeout=10, size=2
        )
        await pool.start()
        try:
            first, second = pool.pids
            assert first != second
            # quick small jobs arriving together: one process, in shared passes
            quick = await asyncio.gather(*(pool.run((0.001, b""), 0) for _ in range(8)))
            assert set(quick) == {first}
            # a slow job: one arriving after it waited SPILL_SECONDS goes to the other process
            slow = asyncio.ensure_future(pool.run((1.0, b""), 0))
            await asyncio.sleep(inference.SPILL_SECONDS * 4)
            assert await pool.run((0.0, b""), 0) == second
            assert await slow == first
            # a costly job (a large upload, a number): the next job spills over at once
            costly = asyncio.ensure_future(pool.run((0.5, b""), inference.COSTLY))
            await asyncio.sleep(0)
            assert await pool.run((0.0, b""), 0) == second
            assert await costly == first
            # ...and a costly job goes to an idle process, not to one busy with small jobs
            busy = asyncio.ensure_future(pool.run((0.5, b""), 0))
            await asyncio.sleep(0)
            assert await pool.run((0.0, b""), inference.COSTLY) == second
            assert await busy == first
        finally:
            await pool.stop()
        assert not pool.running

    asyncio.run(scenario())


def test_a_killed_process_of_the_pool_is_replaced_while_the_others_serve_on(
    client: TestClient, holdout: dataset.Digits
) -> None:
    pool = client.app.state.predictor.pool  # type: ignore[attr-defined]
    victim, survivor = pool.pids
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while victim in pool.pids:  # the server sees the socket close
        assert time.monotonic() < deadline
        time.sleep(0.005)
    # meanwhile the other one serves: no 503, and /ready stays 200
    assert client.get("/ready").status_code == 200
    answer = client.post("/predict/mnist", files={"file": digit_png(holdout, 1)})
    assert (answer.status_code, answer.json()["prediction"]) == (200, "3")
    while len(pool.pids) < 2:
        assert time.monotonic() < deadline, "the dead process was not replaced"
        time.sleep(0.01)
    assert survivor in pool.pids and victim not in pool.pids


@pytest.mark.parametrize(
    ("cpu_max", "cores"),
    [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1), ("", None)],
)
def test_the_pool_is_as_large_as_the_cores_the_process_may_use(
    tmp_path: Path, cpu_max: str, cores: int | None
) -> None:
    """Its CPU affinity, capped by a container's CPU quota (cgroup v2 cpu.max), rounded up."""
    quota = tmp_path / "cpu.max"
    quota.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if cores is None else min(affinity, cores)
    assert config.usable_cores(quota) == expected
    assert make_settings(tmp_path, prediction_processes=3).pool_size == 3
