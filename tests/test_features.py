"""The feature transforms inside the pipeline, against slow, obvious reference versions."""

from __future__ import annotations

import numpy as np

import dataset
from features import Deskew, GradientHistograms, RBFKernel


def reference_histograms(image: np.ndarray, bins: int, cell: int, stride: int) -> np.ndarray:
    """Gradient histograms the slow way: loop over windows and pixels."""
    gy = np.zeros_like(image)
    gx = np.zeros_like(image)
    gy[1:-1] = image[2:] - image[:-2]
    gx[:, 1:-1] = image[:, 2:] - image[:, :-2]
    features: list[float] = []
    for top in range(0, 28 - cell + 1, stride):
        for left in range(0, 28 - cell + 1, stride):
            histogram = np.zeros(bins)
            for r in range(top, top + cell):
                for c in range(left, left + cell):
                    magnitude = np.hypot(gx[r, c], gy[r, c])
                    position = (np.arctan2(gy[r, c], gx[r, c]) % np.pi) / np.pi * bins
                    low = int(np.floor(position)) % bins
                    share = position - np.floor(position)
                    histogram[low] += magnitude * (1 - share)
                    histogram[(low + 1) % bins] += magnitude * share
            features.extend(np.sqrt(histogram))
    return np.array(features)


def test_gradient_histograms_match_the_reference(holdout: dataset.Digits) -> None:
    images = holdout.images[:3] / np.float32(255)
    fast = GradientHistograms(bins=9, cell=7, stride=3).transform(images.reshape(3, -1))
    assert fast.shape == (3, 8 * 8 * 9)
    for image, row in zip(images, fast, strict=True):
        assert np.allclose(row, reference_histograms(image, 9, 7, 3), atol=1e-4)


def test_deskew_makes_a_slanted_stroke_upright() -> None:
    slanted = np.zeros((28, 28), np.float32)
    for row in range(4, 24):  # a line leaning right by 1 px every 2 rows
        slanted[row, 8 + (24 - row) // 2 : 11 + (24 - row) // 2] = 1.0
    upright = Deskew().transform(slanted.reshape(1, -1)).reshape(28, 28)
    columns = [np.average(np.arange(28), weights=row) for row in upright[5:23]]
    assert np.ptp(columns) < 1.0  # every row's ink at the same column
    assert abs(upright.sum() - slanted.sum()) < 0.05 * slanted.sum()  # no ink lost


def test_deskew_leaves_an_upright_digit_and_a_blank_alone() -> None:
    bar = np.zeros((28, 28), np.float32)
    bar[4:24, 13:15] = 1.0
    assert np.allclose(Deskew().transform(bar.reshape(1, -1)), bar.reshape(1, -1), atol=1e-6)
    blank = np.zeros((1, 784), np.float32)
    assert np.array_equal(Deskew().transform(blank), blank)


def test_rbf_kernel_matches_the_definition() -> None:
    rng = np.random.default_rng(0)
    centres, points = rng.random((5, 7)), rng.random((3, 7))
    expected = np.exp(-0.3 * ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2))
    assert np.allclose(RBFKernel(centres, gamma=0.3).transform(points), expected, atol=1e-5)
