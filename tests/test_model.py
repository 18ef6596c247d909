"""The model: training, the joblib cache and its validation, the cross-process lock, the CLI."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
from PIL import Image

import dataset
import model
import segmentation
from config import Settings
from conftest import ROOT, SAMPLE_DIR, make_settings


def test_training_fills_in_the_metadata(trained: model.DigitModel) -> None:
    info = trained.info
    assert info.version.startswith("sgd-") and len(info.version) == 16
    assert (info.training_digits, info.holdout_digits) == (802, 198)
    assert info.sklearn_version == sklearn.__version__
    assert info.data_source == str(SAMPLE_DIR)
    assert info.holdout_accuracy >= 0.9  # 800 training digits; the full figures are benchmarks
    assert type(trained.pipeline[-1]).__name__ == "SGDClassifier"


def test_the_version_covers_the_whole_digit_head(trained: model.DigitModel) -> None:
    """/predict/number answers with the version too: a head trained anew is a new model."""
    assert trained.whole is not None
    assert model._version(trained.pipeline, trained.whole) == trained.info.version
    other = copy.deepcopy(trained.whole)
    other.intercept_ = other.intercept_ + 1.0
    assert model._version(trained.pipeline, other) != trained.info.version


def test_same_data_gives_the_same_model_file(
    mnist: dataset.Mnist, trained: model.DigitModel, model_file: Path, tmp_path: Path
) -> None:
    again = model.train(mnist, progress=lambda message: None)
    assert again.info.version == trained.info.version
    model.save(again, tmp_path / "again.joblib")
    assert (tmp_path / "again.joblib").read_bytes() == model_file.read_bytes()
    # when and how long it trained is kept beside the model file, not in it
    note = json.loads((tmp_path / "again.joblib.run.json").read_text())
    assert set(note) == {"version", "trained_at", "training_seconds"}
    assert note["version"] == trained.info.version


def test_a_lost_or_foreign_run_note_only_blanks_the_run_facts(
    model_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(model_file.read_bytes())
    assert model.load(path).info.trained_at is None  # no note copied
    model.run_note_path(path).write_text('{"version": "sgd-someotherone", "trained_at": "x"}')
    assert model.load(path).info.trained_at is None
    model.run_note_path(path).write_text("{not json")
    loaded = model.load(path)
    assert (loaded.info.trained_at, loaded.info.training_seconds) == (None, None)
    assert loaded.info.training_digits == 802


def test_probabilities_are_a_distribution(
    trained: model.DigitModel, holdout: dataset.Digits
) -> None:
    probabilities = trained.probabilities(holdout.images[:50] / np.float32(255))
    assert probabilities.shape == (50, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities >= 0).all()


def test_served_probabilities_are_the_classifiers_own(
    trained: model.DigitModel, holdout: dataset.Digits
) -> None:
    """DigitModel skips scikit-learn's input checks but computes exactly predict_proba."""
    digits = holdout.images / np.float32(255)
    ours = trained.probabilities(digits)
    theirs = trained.pipeline.predict_proba(digits.reshape(len(digits), -1))
    assert np.abs(ours - theirs).max() < 1e-5  # ours is computed in float32
    assert np.array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))


def test_folding_the_kernel_map_changes_no_prediction(
    mnist: dataset.Mnist, holdout: dataset.Digits
) -> None:
    training, _ = dataset.split(mnist)
    pipeline = model.build_pipeline().set_params(rbf__n_components=300)
    pipeline.fit(model.as_inputs(training), training.labels)
    inputs = model.as_inputs(holdout)
    before = pipeline.predict_proba(inputs)
    folded = model.fold_kernel_map(pipeline)
    assert [name for name, _ in folded.steps] == ["deskew", "shape", "rbf", "classifier"]
    assert type(folded.named_steps["rbf"]).__name__ == "RBFKernel"
    assert type(folded[-1]).__name__ == "SGDClassifier"
    assert np.abs(folded.predict_proba(inputs) - before).max() < 1e-4
    assert np.array_equal(folded.predict(inputs), before.argmax(axis=1))


def test_save_and_load_round_trip(
    trained: model.DigitModel, tmp_path: Path, holdout: dataset.Digits
) -> None:
    path = tmp_path / "deep" / "model.joblib"
    model.save(trained, path)
    # no temporary files left behind
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "model.joblib",
        "model.joblib.run.json",
    ]
    loaded = model.load(path)
    assert loaded.info == trained.info
    digits = holdout.images[:20] / np.float32(255)
    assert np.array_equal(loaded.probabilities(digits), trained.probabilities(digits))
    loaded_whole, trained_whole = loaded.read_pieces(digits)[1], trained.read_pieces(digits)[1]
    assert loaded_whole is not None and trained_whole is not None
    assert np.array_equal(loaded_whole, trained_whole)


def test_the_whole_digit_head_tells_digits_from_fragments_and_pairs(
    trained: model.DigitModel, holdout: dataset.Digits
) -> None:
    """On held-out digits, framed whole, as fragments and run together (never trained on):
    well above chance (a balanced accuracy of 0.5), even for the small test model."""
    pieces, whole = segmentation.training_pieces(holdout.images, np.random.default_rng(1))
    assert 0.35 < whole.mean() < 0.45  # two in five are whole: alone, or cut where two meet
    probabilities, wholeness = trained.read_pieces(pieces)
    assert wholeness is not None and wholeness.shape == (len(pieces),)
    assert np.array_equal(probabilities, trained.probabilities(pieces))
    said_whole = wholeness > 0.5
    balanced = (said_whole[whole == 1].mean() + (~said_whole[whole == 0]).mean()) / 2
    assert balanced > 0.65, balanced


def test_whole_digit_pieces_of_digits_a_pixel_wide(holdout: dataset.Digits) -> None:
    """A 1 drawn one pixel wide, on either side of a pair run together, is overlapped by at
    most its own width (a wider overlap once cut the pair wrong and stopped the training)."""
    thin = np.zeros((28, 28), dtype=np.uint8)
    thin[4:24, 14] = 255
    images = np.stack([thin, thin, thin, holdout.images[0], thin])
    for seed in range(8):
        pieces, whole = segmentation.training_pieces(images, np.random.default_rng(seed))
        assert pieces.shape[1:] == (28, 28) and len(pieces) == len(whole) >= 3


def test_missing_cache(tmp_path: Path) -> None:
    with pytest.raises(model.UnusableCache, match="no model file at"):
        model.load(tmp_path / "model.joblib")


def damage(path: Path, how: str, trained: model.DigitModel) -> None:
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(b"not a pickle at all")
    elif how == "other format":
        joblib.dump({"format": 0, "pipeline": trained.pipeline}, path)
    elif how == "other scikit-learn":
        payload = joblib.load(path)
        payload["info"]["sklearn_version"] = "0.24.2"
        joblib.dump(payload, path)
    elif how == "bad metadata":
        payload = joblib.load(path)
        del payload["info"]["version"]
        joblib.dump(payload, path)
    elif how == "unfitted":
        payload = joblib.load(path)
        payload["pipeline"] = model.build_pipeline()
        joblib.dump(payload, path)
    elif how == "no whole-digit head":
        payload = joblib.load(path)
        del payload["whole"]
        joblib.dump(payload, path)


DAMAGES = [
    ("truncated", "cannot be read"),
    ("garbage", "cannot be read"),
    ("other format", f"is not a model cache of format {model.FORMAT}"),
    ("other scikit-learn", f"written by scikit-learn 0.24.2; this is {sklearn.__version__}"),
    ("bad metadata", "has malformed metadata"),
    ("unfitted", "does not hold a fitted digit classifier"),
    ("no whole-digit head", "does not hold the whole-digit head"),
]


@pytest.mark.parametrize(("how", "message"), DAMAGES)
def test_damaged_caches_are_refused(
    how: str, message: str, model_file: Path, tmp_path: Path, trained: model.DigitModel
) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(model_file.read_bytes())
    damage(path, how, trained)
    with pytest.raises(model.UnusableCache, match=message):
        model.load(path)


def test_load_or_train_serves_a_good_cache(settings: Settings) -> None:
    """...and writes nothing, not even its training lock: a replica whose image carries the
    model may have a read-only MODEL_PATH."""
    before = sorted(settings.model_path.parent.iterdir())
    served, trained_here = model.load_or_train(settings)
    assert not trained_here
    assert served.info.training_digits == 802
    assert sorted(settings.model_path.parent.iterdir()) == before


def test_load_or_train_retrains_over_a_damaged_cache(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.model_path.write_bytes(b"\x00" * 100)
    with caplog.at_level(logging.WARNING, logger="model"):
        served, trained_here = model.load_or_train(settings)
    assert trained_here
    assert "retraining:" in caplog.text and "cannot be read" in caplog.text
    assert model.load(settings.model_path).info == served.info


def test_load_or_train_trains_when_there_is_no_cache(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, train_limit=300)
    served, trained_here = model.load_or_train(settings)
    assert trained_here
    assert served.info.training_digits == 300
    assert settings.model_path.is_file()


def test_concurrent_workers_train_exactly_once(tmp_path: Path) -> None:
    """Three processes boot at once with no cache: one trains, two wait and load its file."""
    env = {
        **os.environ,
        "MODEL_PATH": str(tmp_path / "model.joblib"),
        "MNIST_DATA_DIR": str(SAMPLE_DIR),
        "TRAIN_LIMIT": "400",
    }
    script = "import model, config; print(model.load_or_train(config.Settings())[1])"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [worker.communicate(timeout=120)[0].strip() for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0]
    assert sorted(outputs) == ["False", "False", "True"]


def test_cli_train_then_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "model.joblib"))
    monkeypatch.setenv("MNIST_DATA_DIR", str(SAMPLE_DIR))
    assert model.main(["train", "--limit", "500"]) == 0
    out, err = capsys.readouterr()
    assert "training on 500 digits" in err
    assert out.startswith("held-out accuracy: 0.")

    reports = tmp_path / "reports"
    assert model.main(["evaluate", "--report-dir", str(reports)]) == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("model sgd-")
    assert lines[1].startswith("198 held-out digits: accuracy 0.")
    assert "expected calibration error 0.0" in lines[1]
    assert lines[2] == "digit  precision  recall"
    assert [line.split()[0] for line in lines[3:13]] == [str(d) for d in range(10)]
    assert lines[13].startswith(f"wrote {reports / 'confusion.png'} and {reports / 'mistakes.png'}")
    for name in ("confusion.png", "mistakes.png"):
        with Image.open(reports / name) as picture:
            assert picture.format == "PNG" and picture.width > 300


def test_cli_reports_missing_model_and_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "model.joblib"))
    monkeypatch.setenv("MNIST_DATA_DIR", str(SAMPLE_DIR))
    assert model.main(["evaluate"]) == 2
    assert "run `python -m model train` first" in capsys.readouterr().err

    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "nowhere"))
    assert model.main(["train"]) == 2
    assert (
        f"error: MNIST_DATA_DIR={tmp_path / 'nowhere'} is not a folder" in capsys.readouterr().err
    )
