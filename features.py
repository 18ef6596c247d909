"""Feature transforms that run inside the model pipeline, before the SGDClassifier.

They take digits as float arrays of shape (n, 784) in 0..1 (MNIST layout, ink = 1) and are
plain scikit-learn transformers, so they are fitted, saved and loaded with the pipeline.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin

SIDE = 28
_ROWS = np.arange(SIDE, dtype=np.float32)


class Deskew(TransformerMixin, BaseEstimator):
    """Undo the slant of handwriting: shear each digit so its principal axis is upright.

    The slant is read from the image's second moments (the covariance of ink positions); each
    row is then shifted sideways, with linear interpolation, in proportion to its distance from
    the centre of mass. Stateless: `fit` learns nothing.
    """

    def fit(self, X: np.ndarray, y: object = None) -> Deskew:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        images = np.asarray(X, dtype=np.float32).reshape(-1, SIDE, SIDE)
        row_profile = images.sum(axis=2)  # (n, 28)
        col_profile = images.sum(axis=1)
        mass = row_profile.sum(axis=1)
        mass[mass == 0] = 1.0
        dy = _ROWS - (row_profile @ _ROWS / mass)[:, None]  # (n, 28): row offsets from centre
        dx = _ROWS - (col_profile @ _ROWS / mass)[:, None]
        var_y = (row_profile * dy * dy).sum(axis=1) / mass
        cov_xy = ((images @ dx[:, :, None])[:, :, 0] * dy).sum(axis=1) / mass
        slant = cov_xy / np.maximum(var_y, 1e-3)

        # out[n, y, x] = in[n, y, x + slant * (y - cy)], linear interpolation, 0 outside
        source = _ROWS + (slant[:, None] * dy)[:, :, None] + 1  # +1: one column of padding
        left = np.clip(np.floor(source), 0, SIDE + 1)
        weight = np.clip(source - left, 0, 1)
        left_index = left.astype(np.intp)
        padded = np.zeros((len(images), SIDE, SIDE + 3), dtype=np.float32)
        padded[:, :, 1 : SIDE + 1] = images
        lo = np.take_along_axis(padded, left_index, axis=2)
        hi = np.take_along_axis(padded, left_index + 1, axis=2)
        return (lo + weight * (hi - lo)).reshape(len(images), -1)


class GradientHistograms(TransformerMixin, BaseEstimator):
    """Histograms of oriented gradients (HOG-like) over overlapping cells of the digit.

    Edges and their directions say more about a digit's shape than raw intensities and are less
    sensitive to stroke width and small shifts. Each pixel's gradient magnitude is split
    between the two nearest of `bins` orientations (unsigned, 0-180 degrees), summed over
    `cell` x `cell` windows every `stride` pixels, and square-root compressed. Stateless.
    """

    def __init__(self, bins: int = 9, cell: int = 7, stride: int = 3) -> None:
        self.bins = bins
        self.cell = cell
        self.stride = stride

    def fit(self, X: np.ndarray, y: object = None) -> GradientHistograms:
        return self

    def _pooling(self) -> np.ndarray:
        starts = np.arange(0, SIDE - self.cell + 1, self.stride)
        offsets = np.arange(SIDE) - starts[:, None]
        return ((offsets >= 0) & (offsets < self.cell)).astype(np.float32)

    def transform(self, X: np.ndarray) -> np.ndarray:
        images = np.asarray(X, dtype=np.float32).reshape(-1, SIDE, SIDE)
        gy = np.zeros_like(images)
        gx = np.zeros_like(images)
        gy[:, 1:-1] = images[:, 2:] - images[:, :-2]
        gx[:, :, 1:-1] = images[:, :, 2:] - images[:, :, :-2]
        magnitude = np.sqrt(gx * gx + gy * gy)
        angle = np.mod(np.arctan2(gy, gx), np.pi) / np.pi * self.bins  # 0..bins
        lower = np.floor(angle).astype(np.intp) % self.bins
        upper = (lower + 1) % self.bins
        share = (angle - np.floor(angle)).astype(np.float32)
        # each pixel votes for its two neighbouring orientations (never the same bin, so the
        # second write never lands on the first)
        votes = np.zeros((*images.shape, self.bins), dtype=np.float32)
        np.put_along_axis(votes, lower[..., None], (magnitude * (1 - share))[..., None], axis=3)
        np.put_along_axis(votes, upper[..., None], (magnitude * share)[..., None], axis=3)
        # window sums: pool rows and columns with a 0/1 matrix, one window per row of it
        pool = self._pooling()
        cells = pool @ np.moveaxis(votes, 3, 1) @ pool.T  # (n, bins, windows, windows)
        return np.sqrt(np.moveaxis(cells, 1, 3).reshape(len(images), -1))


class RBFKernel(TransformerMixin, BaseEstimator):
    """exp(-gamma * |x - c|^2) against fixed centres: a fitted Nystroem map, minus its matrix.

    Nystroem's transform is K(x, centres) @ N.T with an n x n normalisation N. Followed by a
    linear classifier, N can be folded into the classifier's weights once after training
    (`model.fold_kernel_map`), leaving this cheaper map to compute per request.
    """

    def __init__(self, centres: np.ndarray, gamma: float) -> None:
        self.centres = centres
        self.gamma = gamma

    def fit(self, X: np.ndarray, y: object = None) -> RBFKernel:
        return self

    def _prepared(self) -> tuple[np.ndarray, np.ndarray]:
        """The centres transposed for the product, and their squared norms: computed once."""
        prepared = self.__dict__.get("_prepared_arrays")
        if prepared is None:
            centres = np.asarray(self.centres, dtype=np.float32)
            prepared = (np.ascontiguousarray(centres.T), (centres * centres).sum(axis=1))
            self._prepared_arrays = prepared
        return prepared

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        state.pop("_prepared_arrays", None)  # derived; not worth storing twice
        return state

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        centres_t, centre_norms = self._prepared()
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, computed in place on the one product matrix
        kernel = X @ centres_t
        kernel *= -2.0
        kernel += centre_norms
        kernel += (X * X).sum(axis=1, keepdims=True)
        np.maximum(kernel, 0.0, out=kernel)
        kernel *= -self.gamma
        return np.exp(kernel, out=kernel)


# one labelling for a whole batch: 4-connected within an image, never across images
_WITHIN_AN_IMAGE = np.zeros((3, 3, 3), dtype=bool)
_WITHIN_AN_IMAGE[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


class Loops(TransformerMixin, BaseEstimator):
    """Where a digit encloses paper: its holes (a 0's, a 6's below, a 9's above, an 8's two),
    pooled over `cell` x `cell` blocks and square-root compressed, times `weight`.

    Whether a loop is closed, and where, is what tells a 6 from a 5, a 9 from a 3 and a box
    drawn as a 0 from a 1, yet it is a few pixels of gradient among hundreds. A hole is paper
    (below `level`) that no 4-connected path joins to the frame. Stateless.
    """

    def __init__(self, cell: int = 7, level: float = 0.3, weight: float = 8.0) -> None:
        self.cell = cell
        self.level = level
        self.weight = weight

    def fit(self, X: np.ndarray, y: object = None) -> Loops:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        paper = np.asarray(X, dtype=np.float32).reshape(-1, SIDE, SIDE) < self.level
        labels, count = ndimage.label(paper, structure=_WITHIN_AN_IMAGE)
        enclosed = np.ones(count + 1, dtype=np.float32)
        enclosed[labels[:, [0, -1], :]] = 0  # paper that reaches the frame
        enclosed[labels[:, :, [0, -1]]] = 0
        enclosed[0] = 0  # ink
        holes = enclosed[labels]
        blocks = SIDE // self.cell
        pooled = holes.reshape(len(holes), blocks, self.cell, blocks, self.cell).mean(axis=(2, 4))
        return np.sqrt(pooled.reshape(len(holes), -1)) * np.float32(self.weight)


class SideBySide(TransformerMixin, BaseEstimator):
    """The outputs of several stateless transforms of the same input, concatenated."""

    def __init__(self, parts: list[tuple[str, TransformerMixin]]) -> None:
        self.parts = parts

    def fit(self, X: np.ndarray, y: object = None) -> SideBySide:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.hstack([part.transform(X) for _, part in self.parts])
