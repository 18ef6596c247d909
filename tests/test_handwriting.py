"""Drawings from stroke templates: seeded, framed as uploads are, every style drawable."""

from __future__ import annotations

import numpy as np

import dataset
import handwriting
import model
import preprocessing


def test_the_same_seed_gives_the_same_drawings() -> None:
    first, labels = handwriting.drawings(30, seed=4)
    again, _ = handwriting.drawings(30, seed=4)
    other, _ = handwriting.drawings(30, seed=5)
    assert first.shape == (30, 784) and first.dtype == np.float32
    assert labels.tolist() == [n % 10 for n in range(30)]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_every_style_of_every_digit_is_framed_as_an_upload() -> None:
    """Each template, drawn many times, gives a digit as preprocessing frames uploads: the
    longer side of its ink 20 px, its mass at the centre of the 28x28 frame."""
    rng = np.random.default_rng(0)
    for digit, styles in handwriting.TEMPLATES.items():
        for style in range(len(styles)):
            for _ in range(5):
                image = handwriting.draw(digit, rng, style)
                rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
                assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == preprocessing.BOX
                mass = image.sum()
                centre = (
                    np.arange(28) @ image.sum(axis=1) / mass,
                    np.arange(28) @ image.sum(0) / mass,
                )
                assert np.abs(np.array(centre) - preprocessing.CENTRE).max() <= 0.5, (digit, style)
                assert image.max() == 1.0


def test_training_inputs_hold_mnist_three_ways_and_three_drawings_for_every_eight(
    mnist: dataset.Mnist,
) -> None:
    training, _ = dataset.split(mnist)
    inputs, labels, written = model.training_inputs(training)
    drawn = round(model.DRAWN_SHARE * len(training))
    assert written == 3 * len(training) + drawn
    assert (len(training), drawn) == (802, 301)  # the test sample: 3 for every 8
    assert np.array_equal(labels[: len(training)], training.labels)
    assert np.array_equal(
        inputs[written - drawn : written], handwriting.drawings(drawn, model.SEED)[0]
    )
    assert len(inputs) == len(labels) > written  # then digits with slivers of a neighbour
