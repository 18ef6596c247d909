"""Evaluation figures, checked on small cases worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import reports


def one_hot(predicted: list[int], confidence: float) -> np.ndarray:
    """Probabilities that give each prediction `confidence`, the rest spread evenly."""
    probabilities = np.full((len(predicted), 10), (1 - confidence) / 9)
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_calibration_error_of_honest_and_overconfident_models() -> None:
    labels = np.array([0, 1, 2, 3])
    # 90% confident and 3 of 4 right (75%): off by 0.15 in the one bin used
    assert reports.calibration_error(one_hot([0, 1, 2, 9], 0.9), labels) == pytest.approx(0.15)
    # 75% confident and 3 of 4 right: perfectly calibrated
    assert reports.calibration_error(one_hot([0, 1, 2, 9], 0.75), labels) == pytest.approx(0.0)


def test_evaluate_counts_precision_recall_and_confusion() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    evaluation = reports.evaluate(one_hot([0, 1, 1, 1, 2], 0.8), labels)
    assert evaluation.digits == 5
    assert evaluation.accuracy == pytest.approx(0.8)
    assert evaluation.precision[:3] == pytest.approx([1.0, 2 / 3, 1.0])
    assert evaluation.recall[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert evaluation.precision[3:] == [0.0] * 7  # digits never predicted nor present
    assert evaluation.confusion[0].tolist()[:3] == [1, 1, 0]
    assert evaluation.confusion.sum() == 5
    assert evaluation.mean_confidence == pytest.approx(0.8)
    assert "5 held-out digits: accuracy 0.8000" in evaluation.summary()


def test_pictures(tmp_path: Path) -> None:
    labels = np.array([3, 5, 7])
    probabilities = one_hot([3, 6, 1], 0.9)
    images = np.zeros((3, 28, 28), np.uint8)
    reports.confusion_png(reports.evaluate(probabilities, labels), tmp_path / "c.png")
    drawn = reports.mistakes_png(images, labels, probabilities, tmp_path / "m.png")
    assert drawn == 2  # two of the three are wrong
    with Image.open(tmp_path / "c.png") as confusion, Image.open(tmp_path / "m.png") as mistakes:
        assert confusion.size == (600, 630)
        assert mistakes.size == (6 * 122 + 10, 1 * 144 + 10)
