"""Feature transforms that run inside the model pipeline, before the SGDClassifier.

They take digits as float arrays of shape (n, 784) in 0..1 (MNIST layout, ink = 1) and are
plain scikit-learn transformers, so they are fitted, saved and loaded with the pipeline.
"""

from __future__ import annotations

import numpy as np
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
        mass = images.sum(axis=(1, 2))
        safe = np.where(mass > 0, mass, 1.0)
        row_profile = images.sum(axis=2)  # (n, 28)
        col_profile = images.sum(axis=1)
        cy = row_profile @ _ROWS / safe
        cx = col_profile @ _ROWS / safe
        dy = _ROWS[None, :] - cy[:, None]  # (n, 28)
        dx = _ROWS[None, :] - cx[:, None]
        var_y = (row_profile * dy**2).sum(axis=1) / safe
        cov_xy = np.einsum("nij,ni,nj->n", images, dy, dx) / safe
        slant = np.where(var_y > 1e-3, cov_xy / np.where(var_y > 1e-3, var_y, 1.0), 0.0)

        # out[n, y, x] = in[n, y, x + slant * (y - cy)]
        source = _ROWS[None, None, :] + (slant[:, None] * dy)[:, :, None]  # (n, 28, 28)
        left = np.floor(source)
        weight = (source - left).astype(np.float32)
        left = left.astype(np.intp)
        rows = np.arange(SIDE)[None, :, None]
        batch = np.arange(len(images))[:, None, None]
        padded = np.pad(images, ((0, 0), (0, 0), (1, 2)))  # reads outside the frame are 0
        lo = padded[batch, rows, np.clip(left + 1, 0, SIDE + 2)]
        hi = padded[batch, rows, np.clip(left + 2, 0, SIDE + 2)]
        return ((1 - weight) * lo + weight * hi).reshape(len(images), -1)
