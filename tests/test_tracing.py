"""The stroke tracer the browser test draws with."""

from __future__ import annotations

import numpy as np

import dataset
import tracing


def test_a_thick_bar_thins_to_a_line_one_pixel_wide() -> None:
    bar = np.zeros((12, 20), dtype=bool)
    bar[4:8, 2:18] = True
    skeleton = tracing.thin(bar)
    assert skeleton.sum(axis=0).max() == 1  # never two pixels in a column
    columns = np.nonzero(skeleton.any(axis=0))[0]
    assert columns.min() <= 4 and columns.max() >= 15  # and it still spans the bar


def test_an_l_is_one_stroke_from_one_end_to_the_other() -> None:
    shape = np.zeros((8, 8), dtype=bool)
    shape[1:7, 2] = True
    shape[6, 2:7] = True
    (stroke,) = tracing.strokes(shape)
    assert stroke[0] == (1, 2) and stroke[-1] == (6, 6)
    assert sorted(stroke) == sorted(zip(*np.nonzero(shape), strict=True))


def test_a_ring_is_one_closed_stroke() -> None:
    ring = np.zeros((7, 7), dtype=bool)
    ring[1, 1:6] = ring[5, 1:6] = ring[1:6, 1] = ring[1:6, 5] = True
    (stroke,) = tracing.strokes(ring)
    assert stroke[0] == stroke[-1] and len(stroke) == 17


def test_a_lone_dot_is_a_stroke_of_one_point() -> None:
    dot = np.zeros((5, 5), dtype=bool)
    dot[2, 2] = True
    assert tracing.strokes(dot) == [[(2, 2)]]


def test_mnist_digits_trace_to_a_few_strokes_a_pen_could_draw(mnist: dataset.Mnist) -> None:
    traced = [tracing.trace(image) for image in mnist.train.images[:100]]
    counts = [len(strokes) for strokes in traced]
    assert min(counts) >= 1 and max(counts) <= 4
    # every point stays on the 28x28 grid
    assert all(0 <= r <= 27 and 0 <= c <= 27 for s in traced for st in s for r, c in st)
