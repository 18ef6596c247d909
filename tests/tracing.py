"""Pen strokes traced from MNIST digits, for drawing real handwriting on the page's canvas.

A digit's ink is thinned to a one-pixel skeleton (Zhang-Suen), and the skeleton is walked into
strokes: polylines a pen would follow, starting at loose ends, going straight on where it can.
"""

from __future__ import annotations

import numpy as np

Point = tuple[int, int]  # (row, column)

STEPS = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # clockwise


def thin(mask: np.ndarray) -> np.ndarray:
    """The one-pixel-wide skeleton of a boolean image (Zhang & Suen, 1984)."""
    image = mask.astype(np.uint8)
    while True:
        changed = False
        for second_pass in (False, True):
            p = np.pad(image, 1)
            # neighbours P2..P9, clockwise from north
            ring = [
                p[1 + dr : p.shape[0] - 1 + dr, 1 + dc : p.shape[1] - 1 + dc] for dr, dc in STEPS
            ]
            north, east, south, west = ring[0], ring[2], ring[4], ring[6]
            count = sum(n.astype(int) for n in ring)
            transitions = sum(
                ((ring[i] == 0) & (ring[(i + 1) % 8] == 1)).astype(int) for i in range(8)
            )
            if second_pass:
                sides = (north * east * west == 0) & (north * south * west == 0)
            else:
                sides = (north * east * south == 0) & (east * south * west == 0)
            remove = (image == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & sides
            if remove.any():
                image[remove] = 0
                changed = True
        if not changed:
            return image.astype(bool)


def _links(skeleton: np.ndarray) -> dict[Point, set[Point]]:
    """Neighbouring skeleton pixels; a diagonal link is left out where two straight ones
    already join the same pixels, so corners do not turn into little triangles."""
    on = {(int(r), int(c)) for r, c in zip(*np.nonzero(skeleton), strict=True)}
    links: dict[Point, set[Point]] = {point: set() for point in on}
    for r, c in on:
        for dr, dc in STEPS:
            other = (r + dr, c + dc)
            if other not in on:
                continue
            if dr and dc and ((r + dr, c) in on or (r, c + dc) in on):
                continue
            links[(r, c)].add(other)
    return links


def strokes(skeleton: np.ndarray) -> list[list[Point]]:
    """Walk every link of the skeleton once: each walk is one pen stroke."""
    links = _links(skeleton)
    result: list[list[Point]] = []
    while any(links.values()):
        loose_ends = [p for p, others in links.items() if len(others) % 2 == 1]
        start = min(loose_ends or [p for p, others in links.items() if others])
        path, here = [start], start
        while links[here]:
            if len(path) > 1:  # go as straight on as possible
                heading = (here[0] - path[-2][0], here[1] - path[-2][1])
                step = min(
                    links[here],
                    key=lambda p: -(heading[0] * (p[0] - here[0]) + heading[1] * (p[1] - here[1])),
                )
            else:
                step = min(links[here])
            links[here].discard(step)
            links[step].discard(here)
            path.append(step)
            here = step
        result.append(path)
    lone = [p for p, others in links.items() if not others and not any(p in s for s in result)]
    result.extend([p] for p in sorted(lone))
    return result


def smooth(path: list[Point]) -> list[tuple[float, float]]:
    """A pixel staircase made into a hand's line: each point averaged with its neighbours."""
    if len(path) < 3:
        return [(float(r), float(c)) for r, c in path]
    points = np.array(path, dtype=float)
    inner = (points[:-2] + points[1:-1] + points[2:]) / 3
    return [tuple(points[0])] + [tuple(p) for p in inner] + [tuple(points[-1])]


def trace(digit: np.ndarray, threshold: int = 128) -> list[list[tuple[float, float]]]:
    """The strokes of an MNIST digit (28x28, white ink on black), in pixel coordinates."""
    return [smooth(path) for path in strokes(thin(digit >= threshold))]
