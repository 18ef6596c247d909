"""The prediction process: framing, batching, and the server surviving its death."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import dataset
import inference
import styles
from conftest import make_settings
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


def test_a_failing_pass_fails_each_of_its_jobs() -> None:
    def work(jobs: list[bytes]) -> list[object]:
        raise ValueError("broken")

    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(inference._frame((1, [b"a"])) + inference._frame((2, [b"b"])))
        ours.shutdown(socket.SHUT_WR)
        inference._serve(theirs, work)
        answers = inference._Frames(ours).wait()
    assert [(job, type(error), str(error)) for job, error in answers or []] == [
        (1, ValueError, "broken"),
        (2, ValueError, "broken"),
    ]


def test_an_outcome_that_cannot_be_sent_fails_its_request_only() -> None:
    def work(jobs: list[str]) -> list[object]:
        return [ValueError(memoryview(b"x")) if job == "bad" else job for job in jobs]

    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(inference._frame((1, "bad")) + inference._frame((2, "good")))
        ours.shutdown(socket.SHUT_WR)
        inference._serve(theirs, work)
        answers = inference._Frames(ours).wait() or []
    assert [job for job, _ in answers] == [1, 2]
    assert isinstance(answers[0][1], RuntimeError)
    assert str(answers[0][1]).startswith("ValueError could not be sent back")
    assert answers[1][1] == "good"


def digit_png(holdout: dataset.Digits, index: int) -> bytes:
    return styles.mnist_png(holdout.images[index], np.random.default_rng(index))


def test_the_server_predicts_in_its_prediction_process(
    client: TestClient, holdout: dataset.Digits
) -> None:
    predictor = client.app.state.predictor  # type: ignore[attr-defined]
    assert predictor._process is not None and predictor._process.running
    child = predictor._process._pid
    assert child != os.getpid()
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


def test_a_killed_prediction_process_is_replaced_and_no_request_fails(
    client: TestClient, holdout: dataset.Digits
) -> None:
    predictor = client.app.state.predictor  # type: ignore[attr-defined]
    child = predictor._process._pid
    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 10
    answers = []
    # meanwhile the thread pool answers; within seconds a new process takes over
    while time.monotonic() < deadline:
        response = client.post("/predict/mnist", files={"file": digit_png(holdout, 1)})
        answers.append((response.status_code, response.json().get("prediction")))
        process = predictor._process
        if process is not None and process.running and process._pid != child:
            break
        time.sleep(0.05)
    else:
        pytest.fail("no new prediction process within 10 s")
    assert set(answers) == {(200, "3")}
    response = client.post("/predict/mnist", files={"file": digit_png(holdout, 1)})
    assert response.json()["prediction"] == "3"


def test_without_the_prediction_process_the_thread_pool_predicts(
    tmp_path: Path, model_file: Path, holdout: dataset.Digits
) -> None:
    settings = make_settings(tmp_path, model_path=model_file, prediction_process=False)
    with TestClient(create_app(settings)) as client:
        assert client.app.state.predictor._process is None  # type: ignore[attr-defined]
        response = client.post("/predict/mnist", files={"file": digit_png(holdout, 1)})
        assert response.json()["prediction"] == "3"
