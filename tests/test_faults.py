"""kill -9 of the prediction process while /api/predict/ is under load, through a real uvicorn
and SQLite file (bench/faults.py measures the same with timings; this checks the outcomes)."""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
from pathlib import Path

import dataset
import model
from bench.faults import (
    ALLOWED_503,
    Load,
    account,
    prediction_process,
    prediction_processes,
    ready_again,
    rows,
    server,
)
from conftest import png


def test_killing_the_prediction_process_under_load_fails_clearly_and_loses_nothing(
    tmp_path: Path, model_file: Path, holdout: dataset.Digits
) -> None:
    served = tmp_path / "model.joblib"
    shutil.copy(model_file, served)
    shutil.copy(model.run_note_path(model_file), model.run_note_path(served))
    with server(tmp_path / "data", served, tmp_path / "server.log") as (process, base):
        token = account(base, "ada")
        with Load(base, token, png(holdout.images[1])) as load:
            for _ in range(3):
                time.sleep(0.5)
                size = len(prediction_processes(process.pid))
                victim = prediction_process(process.pid)
                os.kill(victim, signal.SIGKILL)
                assert math.isfinite(ready_again(base, process, victim, size))
            time.sleep(0.5)
    statuses = [(status, outcome) for _, _, status, outcome in load.outcomes]
    created = [outcome for status, outcome in statuses if status == 201]
    assert {(s, o) for s, o in statuses if s != 201} <= {(503, detail) for detail in ALLOWED_503}
    assert created, "nothing was served between the kills"
    stored = rows(tmp_path / "data" / "digits.db")
    assert len(set(created)) == len(created) and set(created) <= set(stored)  # one row per 201
    # A process killed after its commit but before its answer leaves a row whose request got
    # 503: never more of those than requests it had in hand.
    stopped = sum(1 for status, _ in statuses if status == 503)
    assert len(stored) - len(created) <= stopped
