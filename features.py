"""Feature transforms that run inside the model pipeline, before the SGDClassifier.

They take digits as float arrays of shape (n, 784) in 0..1 (MNIST layout, ink = 1) and are
plain scikit-learn transformers, so they are fitted, saved and loaded with the pipeline.

They are run on one upload at a time as often as on batches, so each is written as few whole-
array operations as it can be: for one digit, numpy's cost per call is most of the cost. They
opt out of scikit-learn's output wrapping (`set_output`), which costs more per call than the
arithmetic for one digit and which a pipeline that ends in a classifier never uses.
"""

from __future__ import annotations

import functools
from typing import Any, Self

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin

SIDE = 28
_ROWS = np.arange(SIDE, dtype=np.float32)
_PIXELS = np.arange(SIDE * SIDE).reshape(SIDE, SIDE)


class _Stateless(TransformerMixin, BaseEstimator):
    """A transform that learns nothing: `fit` returns it as it is."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # every subclass, not only this one, opts out of set_output's wrapping of `transform`
        super().__init_subclass__(auto_wrap_output_keys=None, **kwargs)

    def fit(self, X: np.ndarray, y: object = None) -> Self:
        return self


class Deskew(_Stateless):
    """Undo the slant of handwriting: shear each digit so its principal axis is upright.

    The slant is read from the image's second moments (the covariance of ink positions); each
    row is then shifted sideways, with linear interpolation, in proportion to its distance from
    the centre of mass.
    """

    def transform(self, X: np.ndarray) -> np.ndarray:
        images = np.asarray(X, dtype=np.float32).reshape(-1, SIDE, SIDE)
        n = len(images)
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
        left = np.maximum(np.minimum(np.floor(source), SIDE + 1), 0)
        weight = np.maximum(np.minimum(source - left, 1), 0)
        width = SIDE + 3
        padded = np.zeros((n, SIDE, width), dtype=np.float32)
        padded[:, :, 1 : SIDE + 1] = images
        # where each output pixel reads, as an index into all the padded rows end to end
        index = left.astype(np.intp)
        index += (np.arange(n * SIDE) * width).reshape(n, SIDE, 1)
        rows = padded.reshape(-1)
        lo = rows[index]
        index += 1
        out = rows[index]  # lo + weight * (hi - lo), in place
        out -= lo
        out *= weight
        out += lo
        return out.reshape(n, -1)


class GradientHistograms(_Stateless):
    """Histograms of oriented gradients (HOG-like) over overlapping cells of the digit.

    Edges and their directions say more about a digit's shape than raw intensities and are less
    sensitive to stroke width and small shifts. Each pixel's gradient magnitude is split
    between the two nearest of `bins` orientations (unsigned, 0-180 degrees), summed over
    `cell` x `cell` windows every `stride` pixels, and square-root compressed.
    """

    def __init__(self, bins: int = 9, cell: int = 7, stride: int = 3) -> None:
        self.bins = bins
        self.cell = cell
        self.stride = stride

    def transform(self, X: np.ndarray) -> np.ndarray:
        images = np.asarray(X, dtype=np.float32).reshape(-1, SIDE, SIDE)
        n, bins, pixels = len(images), self.bins, SIDE * SIDE
        gy = np.zeros_like(images)
        gx = np.zeros_like(images)
        np.subtract(images[:, 2:], images[:, :-2], out=gy[:, 1:-1])
        np.subtract(images[:, :, 2:], images[:, :, :-2], out=gx[:, :, 1:-1])
        magnitude = np.sqrt(gx * gx + gy * gy)
        angle = np.mod(np.arctan2(gy, gx), np.pi) / np.pi * bins  # 0..bins
        floor = np.floor(angle)
        share = angle - floor
        lower = floor.astype(np.intp) % bins
        upper = lower + 1
        upper[upper == bins] = 0
        # Each pixel votes for its two neighbouring orientations, written straight into a
        # (n, bins, 28, 28) array by flat index. The two never share a bin, so the second
        # write never lands on the first.
        votes = np.zeros((n, bins, SIDE, SIDE), dtype=np.float32)
        flat = votes.reshape(-1)
        pixel = (np.arange(n) * (bins * pixels))[:, None, None] + _PIXELS
        flat[pixel + lower * pixels] = magnitude * (1 - share)
        flat[pixel + upper * pixels] = magnitude * share
        # window sums: pool rows and columns with a 0/1 matrix, one window per row of it
        pool, pool_t = _pooling(self.cell, self.stride)
        cells = pool @ votes @ pool_t  # (n, bins, windows, windows)
        return np.sqrt(np.moveaxis(cells, 1, 3).reshape(n, -1))


@functools.cache
def _pooling(cell: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The 0/1 matrix whose rows are the windows (`cell` wide, every `stride`), and its
    transpose, made contiguous for the product."""
    starts = np.arange(0, SIDE - cell + 1, stride)
    offsets = np.arange(SIDE) - starts[:, None]
    pool = ((offsets >= 0) & (offsets < cell)).astype(np.float32)
    return pool, np.ascontiguousarray(pool.T)


PRODUCT_FROM = 4  # digits from which one matrix product beats one product per digit


class RBFKernel(_Stateless):
    """exp(-gamma * |x - c|^2) against fixed centres: a fitted Nystroem map, minus its matrix.

    Nystroem's transform is K(x, centres) @ N.T with an n x n normalisation N. Followed by a
    linear classifier, N can be folded into the classifier's weights once after training
    (`model.fold_kernel_map`), leaving this cheaper map to compute per request.
    """

    def __init__(self, centres: np.ndarray, gamma: float) -> None:
        self.centres = centres
        self.gamma = gamma

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
        if 0 < len(X) < PRODUCT_FROM:
            # One matrix-vector product per digit: a matrix product copies all the centres
            # (7 MB) into its own layout first, and for 2 or 3 digits that copy costs more
            # than reading them once per digit (0.36 ms against 0.21 for 2; the prediction
            # process's passes under load are mostly of 1-3 uploads). A digit's row is then
            # also exactly what it would be alone.
            kernel = np.stack([x @ centres_t for x in X])
        else:
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


class Loops(_Stateless):
    """Where a digit encloses paper: its holes (a 0's, a 6's below, a 9's above, an 8's two),
    pooled over `cell` x `cell` blocks and square-root compressed, times `weight`.

    Whether a loop is closed, and where, is what tells a 6 from a 5, a 9 from a 3 and a box
    drawn as a 0 from a 1, yet it is a few pixels of gradient among hundreds. A hole is paper
    (below `level`) that no 4-connected path joins to the frame.
    """

    def __init__(self, cell: int = 7, level: float = 0.3, weight: float = 8.0) -> None:
        self.cell = cell
        self.level = level
        self.weight = weight

    def transform(self, X: np.ndarray) -> np.ndarray:
        paper = np.asarray(X, dtype=np.float32).reshape(-1, SIDE, SIDE) < self.level
        n, cell = len(paper), self.cell
        labels, count = ndimage.label(paper, structure=_WITHIN_AN_IMAGE)
        enclosed = np.ones(count + 1, dtype=np.float32)
        for edge in (labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]):
            enclosed[edge] = 0  # paper that reaches the frame
        enclosed[0] = 0  # ink
        holes = enclosed[labels]
        blocks = SIDE // cell
        pooled = holes.reshape(n, blocks, cell, blocks, cell).sum(axis=(2, 4)) / (cell * cell)
        return np.sqrt(pooled.reshape(n, -1)) * np.float32(self.weight)


class SideBySide(_Stateless):
    """The outputs of several stateless transforms of the same input, concatenated."""

    def __init__(self, parts: list[tuple[str, TransformerMixin]]) -> None:
        self.parts = parts

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.concatenate([part.transform(X) for _, part in self.parts], axis=1)
