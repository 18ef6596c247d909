"""Digits drawn from stroke templates: ways of writing digits that MNIST's writers rarely used.

MNIST's digits come from American students and clerks of the early 1990s. People drawing on a
canvas or writing on paper today often write otherwise: a 1 with a flag (and a foot), a 7 with
a bar, a closed 4, a 6 whose top curls like a printed one, a 9 whose tail hooks, a 0 drawn as
a rectangle. A model that never saw those shapes reads them as their nearest MNIST neighbours
(a curled 6 as a 5, a hooked 9 as an 8 or a 3; BENCHMARKS.md, "Real uploads").

Each template is a digit's strokes in a unit box (x right, y down), written as polylines and
elliptic arcs. A drawing bends the template smoothly, turns, shears and stretches it, draws it
with a round pen of random width and frames it exactly as preprocessing frames an upload. The
model trains on such drawings beside MNIST (`model.training_inputs`); they are seeded, so the
same seed gives the same drawings and the same model.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

import preprocessing

Point = tuple[float, float]
Stroke = list[Point]

CANVAS = 96  # px: large enough for preprocessing to redraw the strokes at MNIST's pen width
EXTENT = 64  # px the unit box spans on the canvas
BEND = 0.035  # spread of the smooth bending, in units of the digit's height


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> Stroke:
    """Points along an ellipse from `start` to `end` degrees, counter-clockwise as seen (y down)."""
    angles = np.deg2rad(np.linspace(start, end, max(4, round(abs(end - start) / 12))))
    return [(cx + rx * float(np.cos(a)), cy - ry * float(np.sin(a))) for a in angles]


def line(*points: Point) -> Stroke:
    return list(points)


# Each digit's styles; each style a list of strokes (one pen movement each).
TEMPLATES: dict[int, list[list[Stroke]]] = {
    0: [
        [arc(0.5, 0.5, 0.38, 0.5, 90, 450)],
        [arc(0.5, 0.5, 0.3, 0.5, 100, 460)],
        [line((0.2, 0.08), (0.8, 0.05), (0.82, 0.95), (0.18, 0.95), (0.2, 0.08))],  # a box
    ],
    1: [
        [line((0.5, 0), (0.5, 1))],
        [line((0.25, 0.25), (0.55, 0), (0.55, 1))],  # a flag
        [line((0.25, 0.25), (0.55, 0), (0.55, 1)), line((0.25, 1), (0.85, 1))],  # and a foot
        [line((0.45, 0.15), (0.55, 0), (0.5, 1))],
        [line((0.1, 0.4), (0.6, 0), (0.6, 1))],  # a long flag
    ],
    2: [
        [arc(0.5, 0.3, 0.35, 0.3, 160, -40) + line((0.1, 1), (0.9, 1))],
        [arc(0.5, 0.28, 0.35, 0.28, 170, -30) + line((0.15, 0.95), (0.25, 0.78), (0.9, 0.95))],
        [line((0.15, 0.2), (0.5, 0), (0.85, 0.2), (0.1, 1), (0.9, 1))],
    ],
    3: [
        [arc(0.5, 0.25, 0.32, 0.25, 150, -90) + arc(0.5, 0.73, 0.38, 0.27, 90, -150)],
        [line((0.15, 0), (0.85, 0), (0.45, 0.4)) + arc(0.5, 0.7, 0.38, 0.3, 90, -150)],
    ],
    4: [
        [line((0.6, 0), (0.1, 0.65), (0.9, 0.65)), line((0.65, 0.3), (0.65, 1))],
        [line((0.15, 0), (0.15, 0.6), (0.9, 0.6)), line((0.7, 0), (0.7, 1))],
        [line((0.15, 0), (0.1, 0.6), (0.85, 0.55)), line((0.7, 0.05), (0.75, 1))],
    ],
    5: [
        [line((0.85, 0), (0.25, 0), (0.2, 0.45)) + arc(0.5, 0.7, 0.38, 0.3, 140, -150)],
        [  # the bar drawn apart
            line((0.25, 0), (0.2, 0.45)) + arc(0.5, 0.7, 0.38, 0.3, 140, -150),
            line((0.25, 0), (0.85, 0)),
        ],
    ],
    6: [
        [line((0.7, 0), (0.25, 0.6)) + arc(0.5, 0.73, 0.3, 0.27, 180, 540)],
        [arc(0.6, 0.4, 0.4, 0.4, 60, 180) + arc(0.5, 0.72, 0.35, 0.28, 180, 540)],  # curled
        [arc(0.55, 0.35, 0.35, 0.35, 45, 180) + arc(0.5, 0.72, 0.32, 0.28, 180, 500)],
    ],
    7: [
        [line((0.1, 0), (0.9, 0), (0.4, 1))],
        [line((0.1, 0), (0.9, 0), (0.4, 1)), line((0.35, 0.5), (0.85, 0.5))],  # a bar
        [line((0.1, 0.15), (0.15, 0), (0.9, 0), (0.45, 1))],
        [line((0.1, 0), (0.9, 0), (0.55, 0.5), (0.5, 1))],
    ],
    8: [
        [arc(0.5, 0.25, 0.28, 0.25, -90, 270) + arc(0.5, 0.73, 0.35, 0.27, 90, 450)],
        [arc(0.5, 0.25, 0.3, 0.25, 0, 360), arc(0.5, 0.74, 0.36, 0.26, 90, 450)],
    ],
    9: [
        [arc(0.5, 0.3, 0.35, 0.3, 0, 360), line((0.85, 0.3), (0.85, 1))],
        [
            arc(0.5, 0.3, 0.35, 0.3, -10, 350)
            + line((0.84, 0.35), (0.8, 0.8))
            + arc(0.55, 0.8, 0.25, 0.2, 0, -120)  # a hooked tail
        ],
        [arc(0.5, 0.28, 0.33, 0.28, 0, 360), line((0.83, 0.3), (0.6, 1))],
        [
            arc(0.5, 0.25, 0.35, 0.25, 10, 370)
            + line((0.85, 0.25), (0.85, 0.75))
            + arc(0.6, 0.75, 0.25, 0.25, 0, -140)
        ],
        [arc(0.45, 0.3, 0.35, 0.3, -20, 340) + arc(0.2, 0.3, 0.65, 0.7, 0, -75)],
    ],
}

# a coarse grid of bumps whose random shifts bend a template smoothly
_BUMPS = np.array([(x, y) for y in (0.0, 0.5, 1.0) for x in (0.0, 0.5, 1.0)])


def draw(digit: int, rng: np.random.Generator, style: int | None = None) -> np.ndarray:
    """One drawing of `digit` in the given style (else a random one), framed as an upload:
    (28, 28) float32 in 0..1."""
    styles = TEMPLATES[digit]
    strokes = styles[int(rng.integers(len(styles))) if style is None else style]
    angle = np.deg2rad(rng.uniform(-10, 10))
    shear = rng.uniform(-0.25, 0.25)
    stretch = rng.uniform(0.75, 1.2) * (0.5 if digit == 1 and len(strokes) == 1 else 1.0)
    width = round(rng.uniform(3, 12))
    shifts = rng.normal(0, BEND, _BUMPS.shape)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    image = Image.new("L", (CANVAS, CANVAS), 0)
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        points = np.array(stroke)
        near = np.exp(-((points[:, None, :] - _BUMPS[None]) ** 2).sum(axis=2) / 0.15)
        points = points + near @ shifts + rng.normal(0, 0.005, points.shape) - 0.5
        points[:, 0] = points[:, 0] * stretch - shear * points[:, 1]
        placed = points @ rotation.T * EXTENT + CANVAS / 2
        xy = [(float(x), float(y)) for x, y in placed]
        pen.line(xy, fill=255, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round pen ends
            pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    return preprocessing.frame_digit(np.asarray(image, dtype=np.float32) / 255)


def drawings(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` drawings, the digits in turn: (count, 784) float32 inputs and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    images = (
        np.stack([draw(int(label), rng) for label in labels]) if count else np.zeros((0, 28, 28))
    )
    return images.reshape(count, -1).astype(np.float32), labels
