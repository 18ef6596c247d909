"""The feature transforms inside the pipeline, against slow, obvious reference versions."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

import dataset
from features import PRODUCT_FROM, Deskew, GradientHistograms, Loops, RBFKernel, SideBySide


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


def reference_deskew(image: np.ndarray) -> np.ndarray:
    """Deskew the slow way: the slant from the ink's moments, then each row shifted by
    interpolating along it, paper beyond the frame."""
    rows, cols = np.mgrid[0:28, 0:28]
    mass = image.sum() or 1.0
    cy, cx = (image * rows).sum() / mass, (image * cols).sum() / mass
    var_y = (image * (rows - cy) ** 2).sum() / mass
    slant = (image * (rows - cy) * (cols - cx)).sum() / mass / max(var_y, 1e-3)
    out = np.zeros_like(image)
    for r in range(28):
        source = np.arange(28) + slant * (r - cy)
        out[r] = np.interp(source, np.arange(-1, 29), np.pad(image[r], 1), left=0, right=0)
    return out


def test_deskew_matches_the_reference(holdout: dataset.Digits) -> None:
    images = holdout.images[:20] / np.float32(255)
    fast = Deskew().transform(images.reshape(20, -1)).reshape(20, 28, 28)
    for image, row in zip(images, fast, strict=True):
        assert np.allclose(row, reference_deskew(image.astype(np.float64)), atol=1e-4)


def test_transforms_of_a_batch_equal_those_one_at_a_time(holdout: dataset.Digits) -> None:
    """Each transform reads a batch with one set of whole-array operations (for one image,
    numpy's cost per call is most of the cost): no image's result depends on the others'.
    (Deskew's products may be summed in another order by BLAS for a batch: the last bit.)"""
    images = (holdout.images[:30] / np.float32(255)).reshape(30, -1)
    images[7] = 0  # a blank among them
    for transform in (Deskew(), GradientHistograms(), Loops()):
        together = transform.transform(images)
        alone = np.concatenate([transform.transform(image[None]) for image in images])
        assert np.allclose(together, alone, rtol=0, atol=1e-5), type(transform).__name__
        assert isinstance(transform, Deskew) or np.array_equal(together, alone)


def test_transforms_are_not_wrapped_by_set_output() -> None:
    """scikit-learn wraps a transformer's `transform` (functools.wraps) for set_output unless
    the class opts out; the wrapper cost more per call than one digit's arithmetic, and a
    pipeline ending in a classifier never uses it."""
    for transform in (Deskew, GradientHistograms, Loops, RBFKernel, SideBySide):
        assert not hasattr(transform.transform, "__wrapped__"), transform.__name__


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


def test_rbf_kernel_of_a_small_pass_is_each_digit_alone_bit_for_bit() -> None:
    """Passes under PRODUCT_FROM digits take one matrix-vector product per digit: each row is
    exactly the digit's row alone. From PRODUCT_FROM on, one matrix product: the same within
    float32 rounding (1e-5)."""
    rng = np.random.default_rng(1)
    kernel = RBFKernel(rng.random((3000, 592)), gamma=0.002)
    points = rng.random((PRODUCT_FROM + 1, 592)).astype(np.float32)
    alone = np.concatenate([kernel.transform(point[None]) for point in points])
    for size in range(2, PRODUCT_FROM + 2):
        together = kernel.transform(points[:size])
        if size < PRODUCT_FROM:
            assert np.array_equal(together, alone[:size]), size
        else:
            assert np.allclose(together, alone[:size], rtol=0, atol=1e-5), size


def drawing(shapes: list[tuple[str, tuple[int, int, int, int]]]) -> np.ndarray:
    """A 28x28 digit-like image (ink 1) of outlined ellipses and lines, 2 px wide."""
    canvas = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(canvas)
    for kind, box in shapes:
        if kind == "ellipse":
            draw.ellipse(box, outline=255, width=2)
        else:
            draw.line(box, fill=255, width=2)
    return np.asarray(canvas, dtype=np.float32) / 255


def holes(features: np.ndarray, weight: float = 8.0) -> np.ndarray:
    """Loops' 4x4 map back as the share of each 7x7 block that is enclosed paper."""
    return (features.reshape(4, 4) / weight) ** 2


def test_loops_find_where_a_digit_encloses_paper() -> None:
    zero = drawing([("ellipse", (7, 4, 20, 23))])
    six = drawing([("ellipse", (7, 14, 20, 25)), ("line", (8, 19, 16, 3))])
    five = drawing([("line", (18, 4, 9, 4)), ("line", (9, 4, 8, 13)), ("line", (8, 13, 19, 17))])
    eight = drawing([("ellipse", (9, 3, 19, 13)), ("ellipse", (8, 13, 20, 24))])
    maps = [holes(row) for row in Loops().transform(np.stack([zero, six, five, eight]))]
    zero_map, six_map, five_map, eight_map = maps
    assert zero_map[1:3, 1:3].min() > 0.5  # the middle of a 0 is enclosed
    assert six_map[:2].sum() == 0 and six_map[2:].sum() > 0.5  # a 6's loop is below
    assert five_map.sum() == 0  # an open 5 encloses nothing
    assert eight_map[:2].sum() > 0 and eight_map[2:].sum() > 0  # an 8: above and below
    # exact: the paper no 4-connected path joins to the frame, counted by hand for the 0
    enclosed = zero < 0.3
    outside = np.zeros_like(enclosed)
    outside[0, :] = outside[-1, :] = outside[:, 0] = outside[:, -1] = True
    outside &= enclosed
    for _ in range(56):  # flood fill from the frame, 4-connected
        grown = outside.copy()
        grown[1:] |= outside[:-1]
        grown[:-1] |= outside[1:]
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        outside = grown & enclosed
    expected = (enclosed & ~outside).reshape(4, 7, 4, 7).mean(axis=(1, 3))
    assert np.allclose(zero_map, expected, atol=1e-6)


def test_loops_of_a_batch_equal_those_one_at_a_time(holdout: dataset.Digits) -> None:
    """One labelling serves the whole batch: holes never leak from one image into another."""
    images = (holdout.images[:50] / np.float32(255)).reshape(50, -1)
    together = Loops().transform(images)
    alone = np.concatenate([Loops().transform(image[None]) for image in images])
    assert np.array_equal(together, alone)
    assert (together.sum(axis=1) > 0).sum() > 10  # 0s, 6s, 8s, 9s... enclose paper


def test_side_by_side_concatenates_its_parts(holdout: dataset.Digits) -> None:
    images = (holdout.images[:5] / np.float32(255)).reshape(5, -1)
    hog, loops = GradientHistograms(), Loops(weight=2.0)
    joined = SideBySide([("gradients", hog), ("loops", loops)]).transform(images)
    assert np.array_equal(joined, np.hstack([hog.transform(images), loops.transform(images)]))
