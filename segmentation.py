"""Read a handwritten number: the digits of one line of handwriting, left to right.

The ink is told from the paper exactly as for one digit (preprocessing.ink_map), at a larger
working size, since a number is wider than a digit. Then:

1. `_line`: the separate marks of ink (marks a line of a pixel apart are one: a grid drawn
   across the digits, a pen that skipped). Specks, filled blobs and ruled lines are no digits.
   Lines are grown from the heaviest marks by the marks beside them (near enough, at about
   their height: a baseline may drift) and by those right above or below one of them (the
   pieces of a digit parted across); the line with the most ink is the number, and marks
   off it are clutter (a badge in a corner, a label). Lettering (an app's name knocked out
   of its badge) is no digit, nor a piece of one. Digits taller than need be are read
   reduced (`_reduced`): what the line left out stays out, and a pen too thin for the
   reduction's pixels keeps its strength.
   A round mark on the digits' baseline, alone in the paper between two of them, is a point
   (`_points`: a decimal point), taken off the line and placed among the digits read.
2. `_groups`: marks that overlap by half the narrower one's width are pieces of one digit (the
   detached bar of a 5, a 4 or a 7 drawn in two strokes), as are marks much lower than the
   line's digits beside one; neighbours with hardly any paper between them are read together.
   Neighbours a little farther apart that are together no wider than a digit are read as one
   when the model is surer of that (`_pieces_apart`: a digit a pen skipped across).
3. `_cuts`, `_cut_paths`, `_best_path`: a group wider than one digit can be may be touching
   digits. Its parts between cuts (from the columns of least ink, and a grid, each cut
   running down the path of least ink near its column) are framed and classified, and the
   group is read as the run of parts, left edge to right, that is likeliest: each part's
   class probability, the model's probability that it is one whole digit (not a fragment,
   not two run together: `training_pieces`), how usual its width is for its class among
   MNIST's digits, and its height for the line's (a part much lower is likelier a stroke of
   one: the arm of an open 4). The probability of being whole counts for no less than
   WHOLE_FLOOR for the group read whole, so that a digit of a shape the model rarely saw (a
   4 with crossing strokes) is not split into parts it doubts as well. Only the parts that
   can change that choice are framed (`_Search`). Groups read whole with certainty are not
   split at all.

Each digit is framed as MNIST's normalisation would (preprocessing.frame_digit); the number's
confidence is the product of its digits' (each is calibrated). A digit's box is given in the
upload's own pixels, after EXIF orientation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

import preprocessing
from errors import NoDigitFound, ServiceError
from preprocessing import NO_DIGIT

SIDE = 768  # a number is read at up to this many pixels on its longer side...
GLANCE = 384  # ...after a first look at this many (large digits are read from that look)
SPECK_FRACTION = 0.05  # marks lighter than 5% of the heaviest are specks, never a digit alone
FLAT = 6.0  # a mark this many times wider than tall...
RULED = 2.5  # ...and wider than 2.5 digit heights is a ruled line, not a digit's bar
LINE_GAP = 2.0  # a mark joins the line within 2 digit heights of its nearest mark...
LINE_DRIFT = 0.5  # ...with its middle within half that mark's height of it (a drifting line),
STACK = 2.0  # ...or right above or below a mark of it, the two together less than 2 heights
OVERLAP = 0.5  # marks overlapping by half the narrower one's width are pieces of one digit
PIECE_HEIGHT = 0.5  # a mark lower than half the line's digits is a piece of one...
PIECE_GAP = 0.3  # ...of the one it comes within 30% of a digit height of; else a dash or dot
CLOSE = 0.05  # neighbours closer than this (times a digit's height) are read together
PIECES_APART = 0.15  # neighbours closer than this, together no wider than PIECES_WIDTH times
PIECES_WIDTH = 1.0  # their height, are also read as one digit if the model is surer of that
DIGIT_ASPECT = 0.8  # an MNIST digit's median width / height
DOT = 0.7  # a mark whose strokes hold a disc this much of its longer side across is a dot...
DOT_FILL = 0.5  # ...measured only if its ink fills this much of its box
# A point written between two digits on their baseline (a decimal point, the dots of a date)
POINT_SMALLEST = 0.7  # is at least this wide (times the digits' pen: paper's grain is finer)...
POINT_LARGEST = 0.45  # ...at most this wide and tall (times its neighbours' height)...
POINT_ROUND = 0.6  # ...its strokes hold a disc this much of its longer side across...
POINT_ABOVE = 0.3  # ...its middle at most this far above its neighbours' baseline (times their
POINT_BELOW = 0.2  # height) and this far below it, the only mark in the paper between them
DASH_FLAT = 1.5  # a dash between two digits is a mark at least this many times wider than tall,
DASH_SHORTEST = 0.15  # ...at least this long and at most this long (times its neighbours'
DASH_LONGEST = 1.0  # height), its middle at least this far from each one's top and baseline
DASH_MIDDLE = 0.3  # (times its height), the only mark in the paper between them...
DASH_UNDER = 0.25  # ...but for this much of its length at each end, under a neighbour's edge
ACROSS = 0.9  # rows or columns inked across this much of the image are ruling...
TILT = 6.0  # ...also when they run aslant by up to this many degrees
ASLANT_PASSES = 3  # lines aslant are looked for at most this many times in one map...
PROBES = 32  # ...on this many columns first
OUTLINE = 0.1  # a box is ruled this near (times its side) to each of its four sides...
BOX_ACROSS = 0.8  # ...across this much of it (a digit touching a side may overhang it)
BOX_INSIDE = 0.5  # ...its inside inked no more than this
BOX_NARROWEST = 0.3  # ...and its sides this far apart (times its height) at least...
BOX_LINE = 0.1  # ...each no thicker than this (times the width they span)
PARTITION = 3.0  # a row of boxes' partitions are at most this many times as thick as a side
STRAIGHT = 0.15  # a mark whose ink spreads this little across (times along) is straight
WIDEST = 1.5  # the widest single digits (a 0, 2 or 5): 99th percentile of MNIST's
# How wide MNIST's digits of each class are for their height: the median of the 8,000 training
# digits' ink box width / height, and the spread (1.4826 MAD) of its logarithm, at least
# MIN_SPREAD (MNIST's 20 px boxes quantise it; other pens widen it).
ASPECTS = [(0.95, 0.08), (0.5, 0.5), (1.0, 0.16), (0.85, 0.24), (0.85, 0.24),
           (1.0, 0.24), (0.75, 0.21), (0.8, 0.2), (0.8, 0.2), (0.7, 0.2)]  # fmt: skip
MIN_SPREAD = 0.15
# A digit is rarely lower than 3/4 of its line's digits; a part of a group much lower is
# likelier a stroke of one (the arm of an open 4 cut from its stem, read as a 1)
SHORT = 0.75
SHORT_SPREAD = 0.15
SPLIT_FROM = 0.8  # a group wider than this (times its height) may be touching digits (a 1
# run into its neighbour can be as narrow as that)
WHOLE = 2.0  # the log odds that a group as narrow as one digit can be is one digit
# The `whole` head's doubt that a group read whole is one digit counts for no more than this.
# Taught on 1,600 whole training digits, it gives a rarer shape of a digit (a 4 written open,
# or with crossing strokes) odds of 1e-9 and less, and a split with a fragment it doubts less
# won on the classifier's confidence (a 4 read as 72 or 61). Its doubt of a split's parts
# keeps its full weight: it was taught on such fragments and pairs (with a floor there too,
# touching digits were read as one more often).
WHOLE_FLOOR = 1e-6
# Nor can it tell a 1 from a straight stroke cut from another digit (the stem of a 4, the side
# of a 0), the fragments it was taught to doubt: it gives 1s cut from touching neighbours odds
# of 1e-12 and less, and a 1 run into its neighbour was read as part of it (8971 as 897). In a
# group too wide to be one digit, its doubt of a part read as a 1 counts for no more than this.
# (Where the group may be one digit, that doubt keeps a 4 it doubts from being read as 61.)
ONE_FLOOR = 1e-3
GRID = 6  # cuts are also tried every sixth of a group's height
CUTS_PER_DIGIT = 3  # cut columns tried for each digit a group's width suggests...
MAX_CUTS = 24  # ...and on the grid, at most this many of each in one group (what bounds the
# cost of a long run of touching digits: the parts between cuts are framed and classified)
REACH = 0.25  # a cut may wander this far from its column (times the group's height)...
BEND = 0.05  # ...each step sideways costing this much ink...
STRAY = 0.02  # ...and each pixel away from its column this much, a row
PAST = 0.03  # each part keeps the ink this far past its cuts (times its height): a stroke
# drawn over a neighbour's is read with both digits (the classifier knows slivers: touching_parts)
COLUMNS_AT_ONCE = 2  # the search of a group's parts frames those starting at this many columns
# at once (all framed at once are classified in one pass)
THINNEST = 0.2  # no part of a split is narrower than this (times its height): a 1 is wider
# Digits are read at this height (px): taller ones are reduced to it (the cuts tried in
# touching digits cost less). The classifier's 20 px box needs no more than 48, but a thick
# marker's small loops and gaps close when reduced that far (bench/numbers.py: 4 separate
# digits in marker 89.5% -> 92.5%, their count 97.0% -> 99.5%).
DIGIT_HEIGHT = 64
REDUCE_ABOVE = 1.5  # ...reduced when over 1.5 times that
# A first look's digits are read from it when over REDUCE_ABOVE times SHARP; digits lower
# than SHARP in a reduced frame are read again from the full image...
SHARP = 48
ZOOM_MARGIN = 0.25  # ...with this much context around it (times its height)

# (n, 28, 28) digits -> (n, 10) class probabilities and, if known, (n,) the probability that
# each is one whole digit (model.DigitModel.read_pieces)
Classifier = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class Box:
    """Where a digit is, in the upload's pixels."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Reading:
    """The digits of a number, left to right."""

    digits: np.ndarray  # (n, 28, 28) float32 in 0..1, white on black: what was classified
    probabilities: np.ndarray  # (n, 10)
    boxes: list[Box]
    # the points and the dashes written between digits: how many digits come before each, and
    # where it is
    points: list[tuple[int, Box]] = field(default_factory=list)
    dashes: list[tuple[int, Box]] = field(default_factory=list)


class TooManyDigits(ServiceError):
    status_code = 400


@dataclass(frozen=True)
class _Frame:
    """How an ink map's pixels map to the upload's: offset, then scale."""

    x: float
    y: float
    sx: float
    sy: float

    def box(self, top: int, bottom: int, left: int, right: int) -> Box:
        x0, y0 = int(self.x + left * self.sx), int(self.y + top * self.sy)
        x1, y1 = round(self.x + right * self.sx), round(self.y + bottom * self.sy)
        return Box(x=x0, y=y0, width=max(1, x1 - x0), height=max(1, y1 - y0))


def read(image: Image.Image, classify: Classifier, max_digits: int) -> Reading:
    """The number in a decoded upload. NoDigitFound when there is none, TooManyDigits beyond
    `max_digits`."""
    line = locate(image, max_digits)
    reading = _classify(line.ink, line.labels, line.groups, classify, line.frame, max_digits)
    return _with_separators(reading, line)


@dataclass(frozen=True)
class Line:
    """What `read` finds before it reads: the ink map its digits are read from, the map's
    labelled marks, the line's groups of marks (each a digit or touching digits), left to
    right, and how the map's pixels map to the upload's."""

    ink: np.ndarray
    labels: np.ndarray
    groups: list[_Group]
    frame: _Frame
    points: list[Span] = field(default_factory=list)  # points between digits (`_points`)
    dashes: list[Span] = field(default_factory=list)  # dashes between digits (`_dashes`)

    def box(self, group: _Group) -> Box:
        """Where a group is, in the upload's pixels."""
        return self.frame.box(*group.span)


def locate(image: Image.Image, max_digits: int) -> Line:
    """The line of digits in a decoded upload, as `read` reads it. NoDigitFound when there is
    none, TooManyDigits beyond `max_digits` groups."""
    full_width = image.info.get("full_size", image.size)[0]
    to_upload = full_width / image.width  # a JPEG may have been decoded at a reduced scale
    # A first look at a smaller size: digits with more than enough pixels even there (a
    # canvas, a page photo of a large number) are read from this look, as they would have been
    # from the working size (reduced to DIGIT_HEIGHT when they are taller than REDUCE_ABOVE
    # times it); the rest are read at the working size.
    shrunk = max(image.size) > GLANCE  # the look is reduced: the working size has more
    try:
        ink = preprocessing.ink_map(image, GLANCE)
        labels, marks, spans = _line(ink, max_digits)
        large = _height(marks) > REDUCE_ABOVE * SHARP
    except NoDigitFound:  # too little of it at this size: the working size decides
        if not shrunk:
            raise  # the look was the working size
        large = False
    if not large and shrunk:
        ink = preprocessing.ink_map(image, SIDE)
        labels, marks, spans = _line(ink, max_digits)
    frame = _frame(ink, image.size, (0, 0), to_upload)
    height = _height(marks)
    pixels = image.width / ink.shape[1]  # decoded pixels per ink map pixel
    if height < SHARP and pixels > 1.01:  # reduced for speed: read it again, sharper
        top, bottom, left, right = _extent(list(marks.values()))
        margin = ZOOM_MARGIN * height
        crop = (
            max(0, int((left - margin) * pixels)),
            max(0, int((top - margin) * pixels)),
            min(image.width, int((right + margin) * pixels) + 1),
            min(image.height, int((bottom + margin) * pixels) + 1),
        )
        region = image.crop(crop)
        ink = preprocessing.ink_map(region, SIDE)
        frame = _frame(ink, region.size, crop[:2], to_upload)
        labels, marks, spans = _line(ink, max_digits)
        height = _height(marks)
    if height > REDUCE_ABOVE * DIGIT_HEIGHT:  # more pixels than needed: fewer, faster
        ink, frame = _reduced(_off_line_erased(ink, labels, marks), height, frame)
        labels, marks, spans = _line(ink, max_digits)
    points, marks = _points(ink, labels, marks, spans)
    dashes, marks = _dashes(marks)
    groups = _groups(marks)
    if len(groups) > max_digits:
        raise TooManyDigits(_too_many(max_digits))
    return Line(ink, labels, groups, frame, points, dashes)


def line_of(ink: np.ndarray, max_digits: int) -> Line:
    """The line of digits of an ink map, read at its own size (its pixels the upload's)."""
    labels, marks, _ = _line(ink, max_digits)
    return Line(ink, labels, _groups(marks), _Frame(0.0, 0.0, 1.0, 1.0))


def candidates(line: Line) -> list[tuple[Span, list[tuple[tuple[int, int], np.ndarray]]]]:
    """What the search of `read` chooses among (bench/cuts.py asks how often the right reading
    is among it): each group of the line, left to right, with its box in the ink map and the
    parts of it that may be read as digits, each a (start, stop) cut of the box's columns and
    its ink in the box: the whole group and every part between cuts (`_parts`)."""
    inks = _group_inks(line.ink, line.labels, line.groups)
    return [
        (group.span, [((0, values.shape[1]), values), *_parts(values)])
        for group, values in zip(line.groups, inks, strict=True)
    ]


def _off_line_erased(ink: np.ndarray, labels: np.ndarray, marks: dict[int, Span]) -> np.ndarray:
    """The ink map with its heavy marks (SPECK_FRACTION) that are off the line erased, to be
    reduced: what was left out at this size stays out (a badge's lettering, seen here, is a
    blot once reduced), and specks on the digits stay on them."""
    masses = np.bincount(labels.ravel(), weights=ink.ravel())
    masses[0] = 0.0
    off = masses >= SPECK_FRACTION * masses.max()
    off[list(marks)] = False
    return np.where(off[labels], np.float32(0.0), ink)


def _reduced(ink: np.ndarray, height: int, frame: _Frame) -> tuple[np.ndarray, _Frame]:
    """An ink map whose digits are `height` px tall, reduced so they are DIGIT_HEIGHT, and how
    its pixels map to the upload's."""
    scale = DIGIT_HEIGHT / height
    shape = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    reduced = Image.fromarray(ink, "F").resize(shape, Image.Resampling.BOX)
    x_scale, y_scale = ink.shape[1] / shape[0], ink.shape[0] / shape[1]
    values = np.clip(np.asarray(reduced), 0.0, 1.0)
    # A pen thinner than the pixels it is reduced into comes out faint (a 1 px line reduced 3x
    # is a third as dark), too faint for a stroke: its cores are brought back to 1, as ink_map
    # leaves them.
    core = preprocessing.stroke_core(values)
    if 0.0 < core < 1.0:
        values = np.minimum(values / np.float32(core), np.float32(1.0))
    return values, _Frame(frame.x, frame.y, frame.sx * x_scale, frame.sy * y_scale)


def _frame(
    ink: np.ndarray, size: tuple[int, int], offset: tuple[int, int], to_upload: float
) -> _Frame:
    """How the pixels of the ink map of a region of `size` decoded pixels at `offset` map to
    the upload's."""
    return _Frame(
        offset[0] * to_upload,
        offset[1] * to_upload,
        size[0] * to_upload / ink.shape[1],
        size[1] * to_upload / ink.shape[0],
    )


def _height(marks: dict[int, Span]) -> int:
    """The height of the line's marks (their median)."""
    return int(np.median([bottom - top for top, bottom, _, _ in marks.values()]))


def _too_many(max_digits: int) -> str:
    return f"The image holds more than {max_digits} digits; send at most {max_digits}."


Span = tuple[int, int, int, int]  # top, bottom, left, right (end-exclusive)


def _line(
    ink: np.ndarray, max_digits: int, unframed: bool = False
) -> tuple[np.ndarray, dict[int, Span], np.ndarray]:
    """The labelled marks of the ink, the heavy ones that make up the line of digits, and every
    mark's box ((count + 1, 4), by label: top, bottom, left, right; the paper's zeros). The
    lines of boxes are taken out (`_box_lines`) and the marks found again (`unframed`), so
    that digits that touch their box come apart from it; a frame around digits that is no
    box (drawn by hand) is left out (`_frames`)."""
    if float((ink > 0.5).mean()) > preprocessing.MAX_COVERAGE:
        raise NoDigitFound(NO_DIGIT)  # ink over most of the frame: a texture or a photo
    inked = _unruled(ink > 0)
    # marks a line of a pixel apart are one (a grid drawn across the digits cuts their strokes)
    labels, count = ndimage.label(preprocessing.closed(inked) | inked, structure=np.ones((3, 3)))
    if count == 0:
        raise NoDigitFound(NO_DIGIT)
    masses = np.bincount(labels[inked], weights=ink[inked], minlength=count + 1)
    strong = np.zeros(count + 1, dtype=bool)  # a mark without a strong stroke is a shadow
    strong[labels[ink > 0.5]] = True
    strong[0] = False
    if not strong.any():
        raise NoDigitFound(NO_DIGIT)
    heavy = strong & (masses >= SPECK_FRACTION * masses[strong].max())
    spans = np.zeros((count + 1, 4), dtype=np.intp)
    for label, found in enumerate(ndimage.find_objects(labels), start=1):
        spans[label] = found[0].start, found[0].stop, found[1].start, found[1].stop
    heights, widths = spans[:, 1] - spans[:, 0], spans[:, 3] - spans[:, 2]
    flat = widths >= FLAT * heights
    # a filled blob is no digit (a "1" is filled but thin): as preprocessing's rule; but a flat
    # one lower than half the tallest mark may be a dash a thick pen drew (`_dashes` tells)
    solid = masses / np.maximum(heights * widths, 1) > preprocessing.MAX_SOLIDITY
    blob = solid & (
        np.maximum(heights, widths) < preprocessing.MAX_BLOB_ASPECT * np.minimum(heights, widths)
    )
    blob &= (widths < DASH_FLAT * heights) | (heights >= PIECE_HEIGHT * heights[heavy].max())
    heavy &= ~blob
    # Ruling (`_ruling`) is left out, but a lone straight mark with nothing else upright is a 1
    # cropped to its ink; a frame around digits is left out, and a dot never starts a line.
    ruling = _ruling(labels, spans, heavy)
    upright = heavy & ~flat
    if ruling.sum() > 1 or (upright & ~ruling).any():
        heavy &= ~ruling
        upright &= ~ruling
    own = labels * inked  # each mark's own ink (not its closing's)
    boxes = {} if unframed else _boxes(own, spans, upright)
    if boxes:
        return _line(_boxes_erased(ink, own, spans, boxes), max_digits, unframed=True)
    frames = _frames(labels, spans, heavy, upright)
    heavy &= ~frames
    upright &= ~frames
    upright[upright] = ~_dots(ink, labels, spans, np.flatnonzero(upright), masses)
    if not upright.any():
        raise NoDigitFound(NO_DIGIT)  # only lines and dots: no digit
    # Lettering (a badge with an app's name knocked out of it) never starts a line. As tall as
    # the digits, it is not told from them (touching digits can enclose a third small hole);
    # lower than PIECE_HEIGHT of them it is no piece of one either (a badge right under the
    # last digit), and is left out.
    lettering = np.concatenate([[False], preprocessing.lettering_marks(own, upright[1:])])
    if (upright & ~lettering).any():
        upright &= ~lettering
        heavy &= ~(lettering & (heights < PIECE_HEIGHT * heights[upright].max()))
    first = int(np.argmax(np.where(upright, masses, -1.0)))  # the heaviest mark
    heavy &= ~(flat & (widths >= RULED * heights[first]))  # ruled lines
    if heavy.sum() > 4 * max_digits:  # noise, a texture, a page of text: not one number
        raise TooManyDigits(_too_many(max_digits))
    # the height of a digit, to measure gaps and drift by: the heaviest mark may be a piece
    reach = int(heights[upright].max())
    # Lines, each grown from the heaviest mark not yet in one by the marks beside it; the
    # number is the line with the most ink (not a badge in a corner, a label, a doodle).
    free = set(np.flatnonzero(heavy).tolist())
    seeds = [label for label in np.argsort(-masses).tolist() if upright[label]]
    line: set[int] = set()
    for seed in seeds:
        if seed not in free:
            continue
        grown, found = True, {seed}
        while grown:
            grown = False
            for label in sorted(free - found):
                if _beside(spans[label], [spans[m] for m in found], reach):
                    found.add(label)
                    grown = True
        free -= found
        if masses[list(found)].sum() > masses[list(line)].sum():
            line = found
    marks = {label: tuple(int(v) for v in spans[label]) for label in line}
    return labels, marks, spans  # type: ignore[return-value]


def _unruled(inked: np.ndarray) -> np.ndarray:
    """The ink without the page's ruling: the rows and the columns inked from one edge of the
    map to the other, across ACROSS of it (lined or squared paper, a notebook's margin, a
    form's lines, even where they cross each other or a digit), but where a stroke crosses
    them (`_without`)."""
    rows, columns = inked[:, 0] & inked[:, -1], inked[0] & inked[-1]  # (few ever are)
    if rows.any():
        rows &= inked.mean(axis=1) >= ACROSS
    if columns.any():
        columns &= inked.mean(axis=0) >= ACROSS
    inked = _without(inked, rows, columns)
    for _ in range(ASLANT_PASSES):  # ruling a little aslant: a photo of a page
        before = int(np.count_nonzero(inked))
        if inked[:, 0].any() and inked[:, -1].any():
            inked = _unruled_aslant(inked)
        if inked[0].any() and inked[-1].any():
            inked = _unruled_aslant(inked.T).T
        if np.count_nonzero(inked) == before:
            break
    return inked


def _unruled_aslant(inked: np.ndarray) -> np.ndarray:
    """The ink without the lines that run from its left edge to its right edge at a slope of
    up to TILT (a page photographed a little turned), inked across ACROSS of the width, but
    where a stroke crosses them. Each slope a pixel's drift over the width apart is tried on
    PROBES columns spread over the width (which a line crosses too): the map sheared by it
    (each column moved up by its drift) has the lines as rows. The slope with the most such
    rows is taken out where its rows are ruled across the whole width (`_unruled` tries again
    for lines whose slope lies between two tried: ASLANT_PASSES)."""
    height, width = inked.shape
    probes = np.linspace(0, width - 1, PROBES).round().astype(np.intp)
    probe_rows, probe_index = np.nonzero(inked[:, probes])
    steps = np.arange(1, int(np.tan(np.radians(TILT)) * width) + 1)
    if not len(steps):  # too narrow to drift a pixel
        return inked
    slopes = np.stack([steps, -steps], axis=1).ravel() / width  # 1, -1, 2, ... px over the width
    # every slope at once: each probe pixel's sheared row, counted in a table of (slope, row)
    drifts = np.round(probes[None, :] * slopes[:, None]).astype(np.intp)  # (slopes, probes)
    shift = np.maximum(drifts.max(axis=1), 0)  # drift.max() over the whole width: its ends'
    keys = probe_rows[None, :] - drifts[:, probe_index] + shift[:, None]
    sheared_rows = height + int(np.abs(drifts).max()) + 1
    flat = keys + sheared_rows * np.arange(len(slopes))[:, None]
    table = (len(slopes), sheared_rows)
    counts = np.bincount(flat.ravel(), minlength=table[0] * table[1]).reshape(table)
    ends = np.zeros((2, table[0] * table[1]), dtype=bool)
    ends[0, flat[:, probe_index == 0].ravel()] = True
    ends[1, flat[:, probe_index == PROBES - 1].ravel()] = True
    edge_to_edge = (ends[0] & ends[1]).reshape(table)
    found = np.count_nonzero(edge_to_edge & (counts >= ACROSS * PROBES), axis=1)
    if not found.any():
        return inked
    best = float(slopes[int(np.argmax(found))])  # the first of the most, as tried in turn
    drift = np.round(np.arange(width) * best).astype(np.intp)
    span = int(drift.max() - drift.min())
    rows, columns = np.nonzero(inked)
    keys = rows - drift[columns] + drift.max()
    ruled = np.bincount(keys, minlength=height + span) >= ACROSS * width
    ends = np.zeros_like(ruled)
    ends[np.intersect1d(keys[columns == 0], keys[columns == width - 1])] = True
    ruled &= ends
    ruled[:-1] |= ruled[1:]  # and the rows either side: a line aslant, anti-aliased, strays
    ruled[1:] |= ruled[:-1].copy()  # into them as it runs between two sheared rows
    sheared = np.zeros((height + span, width), dtype=bool)
    sheared[keys, columns] = True
    kept = _without(sheared, ruled, np.zeros(width, dtype=bool))
    unruled = np.zeros_like(inked)
    unruled[rows, columns] = kept[keys, columns]
    return unruled


def _without(inked: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The ink without the rows and the columns given, but where a stroke crosses them: a
    pixel of a band of rows stays where there is ink right above and below the band (of a
    band of columns: right and left of it). Rows first, so that where two lines cross, the
    crossing goes with the second."""
    for axis, ruled in ((0, rows), (1, columns)):
        if not ruled.any():
            continue
        lines = inked if axis == 0 else inked.T  # a view: the rows, then the columns
        kept = lines.copy()
        for start, stop in _bands(ruled):
            above = lines[start - 1] if start > 0 else np.zeros(lines.shape[1], dtype=bool)
            below = lines[stop] if stop < len(lines) else np.zeros(lines.shape[1], dtype=bool)
            kept[start:stop] &= above & below
        inked = kept if axis == 0 else kept.T
    return inked


def _bands(ruled: np.ndarray) -> list[tuple[int, int]]:
    """The runs of consecutive True in a 1-d mask, as (start, stop)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ruled.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _box_lines(mark: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A box's lines, if a mark (in its own box) is one: two columns or more inked down
    BOX_ACROSS of it, the outermost two at least BOX_NARROWEST of its height apart, spanning
    half its width or more, each band of them thin (at most BOX_LINE of the width they span:
    lines, not a digit's strokes), and between them, rows so inked across within OUTLINE of
    its top and of its bottom (a form's field, or a row of them, with the digits that touch
    them and may overhang their sides; an empty field), its inside mostly paper (at most
    BOX_INSIDE inked). Its lines are those rows, its sides, and the columns between at most
    PARTITION times as thick as its sides (the partitions of a row of fields, two sides side
    by side; a 1 drawn from its field's top to its bottom is thicker). None for a mark
    without four straight sides (a digit) or a filled box."""
    height, width = mark.shape
    sides = _bands(mark.mean(axis=0) >= BOX_ACROSS)
    if min(height, width) < 8 or len(sides) < 2:
        return None
    (left, inner_left), (inner_right, right) = sides[0], sides[-1]
    if inner_right - inner_left < BOX_NARROWEST * height or right - left < width / 2:
        return None  # two strokes close together (a stem a grid's line cuts), not a box
    thickest = max(inner_left - left, right - inner_right)
    if thickest > BOX_LINE * (right - left):
        return None  # sides as thick as a digit's strokes: a digit (a small boxy 8)
    rows = mark[:, left:right].mean(axis=1) >= BOX_ACROSS
    near = max(2, round(OUTLINE * height))
    rows[near:-near] = False
    if not (rows[:near].any() and rows[-near:].any()):
        return None
    bands = _bands(rows)
    inner_top, inner_bottom = bands[0][1], bands[-1][0]
    if mark[inner_top:inner_bottom, inner_left:inner_right].mean() > BOX_INSIDE:
        return None  # a filled box: a badge, a blot
    columns = np.zeros(width, dtype=bool)
    for start, stop in sides:
        columns[start:stop] = stop - start <= PARTITION * thickest
    columns[left:inner_left] = columns[inner_right:right] = True
    return rows, columns


def _ruling(labels: np.ndarray, spans: np.ndarray, heavy: np.ndarray) -> np.ndarray:
    """Which heavy marks are ruling: straight lines (their ink's spread across them at most
    STRAIGHT of their spread along) that run out of the image on two sides (a notebook's
    margin, a form's lines, stripes). A digit lies inside the image; a 1 cropped so tight that
    it reaches two edges is kept when it is the only such mark and nothing else is upright
    (`_line`)."""
    height, width = labels.shape
    edges = (
        (spans[:, 0] == 0).astype(int)
        + (spans[:, 1] == height)
        + (spans[:, 2] == 0)
        + (spans[:, 3] == width)
    )
    ruling = np.zeros(len(spans), dtype=bool)
    for label in np.flatnonzero(heavy & (edges >= 2)).tolist():
        top, bottom, left, right = spans[label]
        rows, cols = np.nonzero(labels[top:bottom, left:right] == label)
        if rows.size < 3:
            continue
        spread = np.linalg.eigvalsh(np.cov(np.stack([rows, cols]).astype(np.float64)))
        ruling[label] = spread[0] <= STRAIGHT**2 * spread[1]
    return ruling


def _frames(
    labels: np.ndarray, spans: np.ndarray, heavy: np.ndarray, marks: np.ndarray
) -> np.ndarray:
    """Which of the marks are frames: boxes drawn around digits (a form's fields, a box the
    writer drew), told by a heavy mark inside the outline. No digit holds another in a loop."""
    frames = np.zeros(len(spans), dtype=bool)
    others = np.flatnonzero(heavy)
    for label in np.flatnonzero(marks).tolist():
        top, bottom, left, right = spans[label]
        inside = others[
            (spans[others, 0] > top)
            & (spans[others, 1] < bottom)
            & (spans[others, 2] > left)
            & (spans[others, 3] < right)
        ]
        if inside.size:
            box = labels[top:bottom, left:right]
            enclosed = ndimage.binary_fill_holes(box == label)
            frames[label] = bool(np.isin(box[enclosed], inside).any())
    return frames


def _boxes(
    labels: np.ndarray, spans: np.ndarray, marks: np.ndarray
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The marks that are boxes, each with its lines (`_box_lines`). Only a mark with a column
    inked down BOX_ACROSS of it within OUTLINE of its left side is looked at whole (a box's
    left side, which a digit touching it may overhang by no more)."""
    boxes = {}
    for label in np.flatnonzero(marks).tolist():
        top, bottom, left, right = spans[label]
        side = labels[top:bottom, left : left + max(2, round(OUTLINE * (right - left)))]
        if np.count_nonzero(side == label, axis=0).max() < BOX_ACROSS * (bottom - top):
            continue
        lines = _box_lines(labels[top:bottom, left:right] == label)
        if lines is not None:
            boxes[label] = lines
    return boxes


def _boxes_erased(
    ink: np.ndarray,
    labels: np.ndarray,
    spans: np.ndarray,
    boxes: dict[int, tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """The ink without the boxes' lines, but where a stroke crosses them (`_without`)."""
    ink = ink.copy()
    for label, (rows, columns) in boxes.items():
        top, bottom, left, right = spans[label]
        box = labels[top:bottom, left:right] == label
        ink[top:bottom, left:right][box & ~_without(box, rows, columns)] = 0.0
    return ink


def _dots(
    ink: np.ndarray, labels: np.ndarray, spans: np.ndarray, marks: np.ndarray, masses: np.ndarray
) -> np.ndarray:
    """Which of the marks are dots: no stroke narrower than the mark, its strokes (over half
    ink) holding a disc DOT of its longer side across (a dot, a round blob; a digit's strokes,
    even a marker's where they cross, are far narrower than it). Only marks that fill at least
    DOT_FILL of their box (a disc fills 0.79, a digit rarely half) have the disc measured."""
    dots = np.zeros(len(marks), dtype=bool)
    extents = spans[marks]
    filled = masses[marks] >= DOT_FILL * (extents[:, 1] - extents[:, 0]) * (
        extents[:, 3] - extents[:, 2]
    )
    for k in np.flatnonzero(filled).tolist():
        label = int(marks[k])
        top, bottom, left, right = spans[label]
        longer = max(bottom - top, right - left)
        strokes = (labels[top:bottom, left:right] == label) & (ink[top:bottom, left:right] > 0.5)
        # the widest disc: twice the largest distance to paper (beyond the box is paper)
        across = 2.0 * float(ndimage.distance_transform_edt(np.pad(strokes, 1)).max())
        dots[k] = across >= DOT * longer
    return dots


def _points(
    ink: np.ndarray, labels: np.ndarray, marks: dict[int, Span], boxes: np.ndarray
) -> tuple[list[Span], dict[int, Span]]:
    """The points written between the line's digits (a decimal point, the dots of a date), and
    the line's marks without them. A point is a round mark (POINT_ROUND), no smaller than the
    digits' pen and much smaller than they are, that stands on their baseline in the paper
    between two of them, alone there: light enough to be a speck, it is looked for among all
    the marks, not only the line's, and one heavy enough to be on the line would otherwise be
    read as a piece of the digit beside it. Two marks in one gap are no point (a colon, a
    smudge), nor is a mark that shares a column with another of the line's."""
    if len(marks) < 2:
        return [], marks
    ids = np.array(list(marks))
    spans = np.array(list(marks.values()))
    digit = spans[:, 1] - spans[:, 0] >= PIECE_HEIGHT * np.median(spans[:, 1] - spans[:, 0])
    # a digit's top and bottom: of all the line's marks in its columns (its pieces, if parted)
    shared = (spans[:, None, 2] < spans[None, :, 3]) & (spans[:, None, 3] > spans[None, :, 2])
    tops = np.where(shared, spans[None, :, 0], ink.shape[0]).min(axis=1)
    bottoms = np.where(shared, spans[None, :, 1], 0).max(axis=1)
    heights = bottoms - tops
    boxes = boxes[1:]  # (by label - 1: the marks')
    is_digit = np.zeros(len(boxes) + 1, dtype=bool)  # by label: a digit of the line
    is_digit[ids[digit]] = True
    longer = np.maximum(boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2])
    # each mark's nearest digits of the line to its left and to its right, if any
    lefts, rights = np.where(digit, spans[:, 2], np.iinfo(np.intp).max), spans[:, 3]
    left_of = digit & (rights <= boxes[:, 2:3])  # (marks, line's marks)
    right_of = lefts >= boxes[:, 3:4]
    one = np.argmax(np.where(left_of, rights, -1), axis=1)
    two = np.argmin(np.where(right_of, lefts, np.iinfo(np.intp).max), axis=1)
    height = (heights[one] + heights[two]) / 2
    base = (bottoms[one] + bottoms[two]) / 2
    middle = (boxes[:, 0] + boxes[:, 1]) / 2
    between = ~is_digit[1:] & left_of.any(axis=1) & right_of.any(axis=1)
    between &= longer <= POINT_LARGEST * height  # small marks between two digits
    low = (middle >= base - POINT_ABOVE * height) & (middle <= base + POINT_BELOW * height)
    if not (between & low).any():
        return [], marks
    pen = preprocessing.stroke_width(is_digit[labels] & (ink > 0.5))
    between &= longer >= POINT_SMALLEST * pen  # (not the paper's grain)
    found: dict[tuple[int, int], list[int]] = {}  # a gap (its two digits) -> what is in it
    for k in np.flatnonzero(between).tolist():
        found.setdefault((int(one[k]), int(two[k])), []).append(k + 1)
    points = []
    for (first, second), inside in found.items():
        # alone in the gap and low in it: a piece of a digit of the line between the two
        # digits is no point, nor is a mark in a digit's columns (a piece of it)
        label = inside[0]
        if not low[label - 1]:
            continue
        top, bottom, left, right = (int(v) for v in boxes[label - 1])
        pieces = (spans[:, 2] < max(spans[second, 2], right)) & (
            spans[:, 3] > min(spans[first, 3], left)
        )
        if len(inside) > 1 or any(int(i) != label for i in ids[pieces]):
            continue
        where = np.s_[top:bottom, left:right]
        mark = (labels[where] == label) & (ink[where] > 0.5)
        # the widest disc its strokes hold: twice the largest distance to paper (a pixel more
        # for the grid: a dot 4 px across holds a disc of 2 or 3)
        across = 2.0 * float(ndimage.distance_transform_edt(np.pad(mark, 1)).max())
        if mark.any() and across + 1 >= POINT_ROUND * longer[label - 1]:
            points.append((label, (top, bottom, left, right)))
    taken = {label for label, _ in points}
    kept = {label: span for label, span in marks.items() if label not in taken}
    return sorted((span for _, span in points), key=lambda span: span[2]), kept


def _dashes(marks: dict[int, Span]) -> tuple[list[Span], dict[int, Span]]:
    """The dashes written between the line's digits (a date, a phone number, a range), and the
    line's marks without them. A dash is a flat mark (DASH_FLAT), lower than a digit's piece
    and of a dash's length for the digits beside it, its middle at their mid-height, alone in
    the paper between two of them: a mark that shares a column with another of the line's is
    a piece of that one (the bar of a 5 lifted off it, the cross of a 7), and one on the
    baseline is no dash (an underscore). Left on the line, a dash was read as a digit of its
    own (a 1, a 7) or as a piece of the digit beside it."""
    if len(marks) < 3:
        return [], marks
    ids = list(marks)
    spans = np.array(list(marks.values()))
    heights, widths = spans[:, 1] - spans[:, 0], spans[:, 3] - spans[:, 2]
    digit = heights >= PIECE_HEIGHT * np.median(heights)
    dashes = []
    for k in np.flatnonzero(~digit & (widths >= DASH_FLAT * heights)).tolist():
        top, bottom, left, right = (int(v) for v in spans[k])
        # its ends may reach under a neighbour's edge (a thick pen's, a 7's bar) by DASH_UNDER
        inner = (left + DASH_UNDER * widths[k], right - DASH_UNDER * widths[k])
        before = np.flatnonzero(digit & (spans[:, 3] <= inner[0]))
        after = np.flatnonzero(digit & (spans[:, 2] >= inner[1]))
        if not (len(before) and len(after)):
            continue
        one = before[np.argmax(spans[before, 3])]  # the nearest digit on each side
        two = after[np.argmin(spans[after, 2])]
        # alone in the gap: no other mark of the line in the paper between the two digits
        gap = (spans[:, 2] < spans[two, 2]) & (spans[:, 3] > spans[one, 3])
        if np.count_nonzero(gap) > 1:
            continue
        # of a dash's length, and at mid-height of each of the two
        neighbours = spans[[one, two]]
        height = float(np.mean(neighbours[:, 1] - neighbours[:, 0]))
        middle = (top + bottom) / 2
        reach = DASH_MIDDLE * (neighbours[:, 1] - neighbours[:, 0])
        if DASH_SHORTEST * height <= right - left <= DASH_LONGEST * height and np.all(
            (neighbours[:, 0] + reach <= middle) & (middle <= neighbours[:, 1] - reach)
        ):
            dashes.append((ids[k], (top, bottom, left, right)))
    taken = {label for label, _ in dashes}
    kept = {label: span for label, span in marks.items() if label not in taken}
    return sorted((span for _, span in dashes), key=lambda span: span[2]), kept


def written(digits: list[int], points: list[tuple[int, Box]], dashes: list[tuple[int, Box]]) -> str:
    """A number as text: its digits, a "." for each point and a "-" for each dash, after as
    many digits as each follows."""
    text = [str(digit) for digit in digits]
    marks = sorted([(after, ".") for after, _ in points] + [(after, "-") for after, _ in dashes])
    for after, sign in reversed(marks):
        text.insert(after, sign)
    return "".join(text)


def _with_separators(reading: Reading, line: Line) -> Reading:
    """A reading with the line's points and dashes placed among its digits, at most one
    between two digits (the line's two were in gaps of their own, but a digit between them
    may not have been read): the point first."""
    taken: set[int] = set()
    points = _placed(reading, line, line.points, taken)
    dashes = _placed(reading, line, line.dashes, taken)
    if not (points or dashes):
        return reading
    return Reading(reading.digits, reading.probabilities, reading.boxes, points, dashes)


def _placed(
    reading: Reading, line: Line, spans: list[Span], taken: set[int]
) -> list[tuple[int, Box]]:
    """Marks between digits (points, dashes) placed among the digits read: each after the
    digits left of its middle, where no other mark is yet (`taken`, which it joins). One before
    the first digit or after the last is left out (no decimal point, no dash between two
    digits), as is one inside a digit read (two pieces read as one)."""
    placed = []
    starts = [box.x for box in reading.boxes]
    for top, bottom, left, right in spans:
        box = line.frame.box(top, bottom, left, right)
        middle = box.x + box.width / 2
        before = sum(1 for start in starts if start < middle)
        inside = any(b.x < middle < b.x + b.width for b in reading.boxes)
        if 0 < before < len(reading.boxes) and not inside and before not in taken:
            taken.add(before)
            placed.append((before, box))
    return placed


def _beside(mark: np.ndarray, line: list[np.ndarray], height: int) -> bool:
    """Whether a mark lies beside the line: within LINE_GAP digit heights of its horizontally
    nearest mark, its middle within LINE_DRIFT of a digit height of that mark's span (a
    line's baseline may drift; a piece of a digit may lie above or below another piece), or
    right above or below a mark of the line as a piece of the same digit (`_stacked`)."""
    gaps = [max(0, mark[2] - other[3], other[2] - mark[3]) for other in line]
    nearest = line[int(np.argmin(gaps))]
    middle = (mark[0] + mark[1]) / 2
    if (
        min(gaps) <= LINE_GAP * height
        and nearest[0] - LINE_DRIFT * height <= middle <= nearest[1] + LINE_DRIFT * height
    ):
        return True
    return any(
        _stacked(mark, other, height) for other, gap in zip(line, gaps, strict=True) if gap == 0
    )


def _stacked(mark: np.ndarray, other: np.ndarray, height: int) -> bool:
    """Whether two marks, one above the other (no paper between their columns: `_beside` asks
    only of those), are pieces of one digit: at most PIECE_GAP of a digit's height of paper
    between them, together less than STACK heights tall. A digit parted across (a pen that
    skipped, a stroke lifted) leaves a lower piece whose middle may lie farther below the upper
    one than a line drifts; and when every digit is in pieces, no mark is as tall as a digit,
    which `height` then is not either. The second limit keeps a line written close under the
    number out of it."""
    paper = max(mark[0] - other[1], other[0] - mark[1])
    together = max(mark[1], other[1]) - min(mark[0], other[0])
    return paper <= PIECE_GAP * height and together < STACK * height


def _extent(spans: list[Span]) -> Span:
    return (
        min(s[0] for s in spans),
        max(s[1] for s in spans),
        min(s[2] for s in spans),
        max(s[3] for s in spans),
    )


@dataclass
class _Group:
    """The marks of one digit (or of touching digits), and their box."""

    labels: list[int]
    span: Span
    close: bool = False  # two groups that came close: as likely two digits as one


def _groups(marks: dict[int, Span]) -> list[_Group]:
    """The line's marks gathered into digits, left to right: marks that overlap by OVERLAP of
    the narrower one's width are pieces of one."""
    groups = [_Group([label], span) for label, span in sorted(marks.items(), key=lambda m: m[1][2])]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups) - 1):
            one, two = groups[i].span, groups[i + 1].span
            overlap = min(one[3], two[3]) - max(one[2], two[2])
            narrower = min(one[3] - one[2], two[3] - two[2])
            if overlap >= OVERLAP * narrower:
                groups[i] = _Group(groups[i].labels + groups[i + 1].labels, _extent([one, two]))
                del groups[i + 1]
                merged = True
                break
    return _close_joined(_pieces_joined(groups))


def _close_joined(groups: list[_Group]) -> list[_Group]:
    """Neighbours with less than CLOSE (of a digit's height) of paper between them are read
    together, as touching digits are: they may be two digits written close, or one a pen
    broke in two (the split of the whole decides, at the gap when there are two)."""
    if len(groups) < 2:
        return groups
    line = float(np.median([group.span[1] - group.span[0] for group in groups]))
    joined = [groups[0]]
    for group in groups[1:]:
        if _gap(joined[-1].span, group.span) < CLOSE * line:
            last = joined[-1]
            joined[-1] = _Group(last.labels + group.labels, _extent([last.span, group.span]), True)
        else:
            joined.append(group)
    return joined


def _pieces_joined(groups: list[_Group]) -> list[_Group]:
    """Groups much lower than the line's digits are pieces: each joins the group beside it
    when it comes within PIECE_GAP of it (a bar that slid off its 5), else it is dropped (a
    dash, a dot)."""
    heights = [group.span[1] - group.span[0] for group in groups]
    line = float(np.median(heights))
    while True:
        low = [i for i, h in enumerate(heights) if h < PIECE_HEIGHT * line]
        if not low or len(groups) == 1:
            return groups
        i = low[0]
        piece = groups.pop(i)
        heights.pop(i)
        gaps = [_gap(piece.span, group.span) for group in groups]
        nearest = int(np.argmin(gaps))
        if gaps[nearest] <= PIECE_GAP * line:
            host = groups[nearest]
            groups[nearest] = _Group(host.labels + piece.labels, _extent([host.span, piece.span]))
            heights[nearest] = groups[nearest].span[1] - groups[nearest].span[0]


def _gap(one: Span, two: Span) -> int:
    """Paper between two boxes, horizontally."""
    return max(0, one[2] - two[3], two[2] - one[3])


@dataclass(frozen=True)
class _Part:
    """A part of a group that was framed and classified."""

    digit: np.ndarray  # (28, 28), as framed
    probabilities: np.ndarray  # (10,)
    wholeness: float | None  # the probability that it is one whole digit, if known
    span: Span  # the box of its ink, in the ink map's pixels

    def score(self, line: float, least_whole: float = 1e-12) -> float:
        """Its log confidence, plus the log likelihood of its shape and of being one whole
        digit (at least `least_whole`): at most 0."""
        digit = int(self.probabilities.argmax())
        score = float(np.log(max(self.probabilities[digit], 1e-12))) + _shape(
            self.span, digit, line
        )
        if self.wholeness is not None:
            score += float(np.log(max(self.wholeness, least_whole)))
        return score


Parts = dict[tuple[int, int], _Part]  # (start, stop) cut of a group -> the part between


def _classify(
    ink: np.ndarray,
    labels: np.ndarray,
    groups: list[_Group],
    classify: Classifier,
    frame: _Frame,
    max_digits: int,
) -> Reading:
    """Read each group as the best path of its parts. Every group that can be one digit is
    framed and classified whole first, all at once. A whole reading scoring above 0 is final:
    every part scores at most 0, so no run of two or more can beat it. The other groups are
    then tried as their parts between the cuts their width allows (`_parts`), framed as the
    search needs them (`_Search`), the groups' together."""
    line = float(np.median([group.span[1] - group.span[0] for group in groups]))
    inks = _group_inks(ink, labels, groups)
    tried: list[Parts] = [{} for _ in groups]
    # wider than one digit can be, for its height or the line's (a flat 0 is written low)
    wide = [values.shape[1] > WIDEST * max(values.shape[0], line) for values in inks]
    wholes = [(i, (0, values.shape[1]), values) for i, values in enumerate(inks) if not wide[i]]
    _frame_parts(wholes, groups, tried, classify)
    bonus = [0.0 if group.close else WHOLE for group in groups]
    searches = []
    for i, (values, parts) in enumerate(zip(inks, tried, strict=True)):
        cut = (0, values.shape[1])
        if cut not in parts or _scored(parts[cut], cut, cut[1], bonus[i], line) <= 0:
            searches.append(_Search(i, values, parts, bonus[i], line, wide[i]))
    # until every search has found its best reading among the parts it framed
    while batch := [part for search in searches for part in search.wanted()]:
        _frame_parts(batch, groups, tried, classify)
    # a group no run of framed parts crosses is read as its largest part, of all of them
    _frame_parts([part for search in searches for part in search.rest()], groups, tried, classify)
    readings = [
        _best_path(values.shape[1], parts, prior, line, too_wide)
        for values, parts, prior, too_wide in zip(inks, tried, bonus, wide, strict=True)
    ]
    readings = _pieces_apart(ink, labels, groups, readings, classify, line)
    chosen = [part for _, parts in readings for part in parts]
    if not chosen:
        raise NoDigitFound(NO_DIGIT)
    if len(chosen) > max_digits:
        raise TooManyDigits(_too_many(max_digits))
    return Reading(
        digits=np.stack([part.digit for part in chosen]),
        probabilities=np.stack([part.probabilities for part in chosen]),
        boxes=[frame.box(*part.span) for part in chosen],
    )


def _pieces_apart(
    ink: np.ndarray,
    labels: np.ndarray,
    groups: list[_Group],
    readings: list[tuple[float, list[_Part]]],
    classify: Classifier,
    line: float,
) -> list[tuple[float, list[_Part]]]:
    """The groups' readings (score, parts), with neighbours that are one digit in two pieces
    side by side read as one: a 0 or a 4 a pen skipped across from top to bottom. Both pieces
    are about as tall as the digit, so `_pieces_joined` leaves them apart, and there may be
    more paper between them than CLOSE. Neighbours are tried when each was read as one digit,
    less than PIECES_APART of a digit's height apart, together no wider than PIECES_WIDTH times
    their height. Their union, framed and classified, is read instead when it is read whole
    with certainty (a score above 0 with the WHOLE prior, as a group that is not split) and
    scores more than the two readings together (each with its own prior): digits written
    close, each read surely, keep their two priors against the union's one, and a digit the
    `whole` head doubts (a thin 1) is not taken into a doubtful union with its neighbour."""
    pairs = []
    for i, (one, two) in enumerate(itertools.pairwise(groups)):
        span = _extent([one.span, two.span])
        if (
            len(readings[i][1]) == len(readings[i + 1][1]) == 1
            and not (one.close or two.close)
            and _gap(one.span, two.span) < PIECES_APART * line
            and span[3] - span[2] <= PIECES_WIDTH * max(span[1] - span[0], line)
        ):
            pairs.append((i, _Group(one.labels + two.labels, span)))
    if not pairs:
        return readings
    unions = [group for _, group in pairs]
    tried: list[Parts] = [{} for _ in pairs]
    inks = _group_inks(ink, labels, unions)
    wholes = [(k, (0, values.shape[1]), values) for k, values in enumerate(inks)]
    _frame_parts(wholes, unions, tried, classify)
    together = {}  # the first of two neighbours -> their union read whole, when sure of it
    for (i, _), values, parts in zip(pairs, inks, tried, strict=True):
        cut = (0, values.shape[1])
        if (whole := parts.get(cut)) is not None:
            score = _scored(whole, cut, cut[1], WHOLE, line)
            if score > 0:
                together[i] = (score, [whole])
    # the likeliest reading of the first k groups, each alone or two together: a piece
    # between two neighbours goes with the one it reads best with
    best: list[tuple[float, list[tuple[float, list[_Part]]]]] = [(0.0, [])]
    for k, reading in enumerate(readings, start=1):
        choices = [(best[k - 1][0] + reading[0], [*best[k - 1][1], reading])]
        if k - 2 in together:
            union = together[k - 2]
            choices.append((best[k - 2][0] + union[0], [*best[k - 2][1], union]))
        best.append(max(choices, key=lambda choice: choice[0]))
    return best[-1][1]


class _Search:
    """Which parts of a group to frame, so that its best path (`_best_path`) is found without
    framing them all: the parts starting at a column are framed only once the column is
    reached, by the parts framed so far, with a better score than the best reading across
    the group found yet. Every part scores at most 0, so a path through a column reached no
    better cannot beat that reading. Columns are taken best reached first (Dijkstra's order),
    COLUMNS_AT_ONCE a round; once none is left to take, the group's best path is among the
    parts framed. Four touching digits frame about half of their parts, eight about three
    quarters."""

    def __init__(
        self, group: int, values: np.ndarray, tried: Parts, whole: float, line: float, wide: bool
    ):
        self.width, self.tried, self.whole, self.line = values.shape[1], tried, whole, line
        self.wide = wide
        self.pending: dict[int, list[tuple[int, tuple[int, int], np.ndarray]]] = {}
        for cut, part in _parts(values):
            self.pending.setdefault(cut[0], []).append((group, cut, part))
        self.scores: dict[tuple[int, int], float] = {}

    def _reached(self) -> dict[int, float]:
        """The best score with which the framed parts reach each column from the left edge."""
        for cut, part in self.tried.items():
            if cut not in self.scores:
                self.scores[cut] = _scored(part, cut, self.width, self.whole, self.line, self.wide)
        return {column: total for column, (total, _) in _runs(self.scores).items()}

    def wanted(self) -> list[tuple[int, tuple[int, int], np.ndarray]]:
        """The parts to frame next (none: the best path is among those framed)."""
        best = self._reached()
        across = best.get(self.width, -np.inf)
        columns = sorted(
            (column for column in self.pending if best.get(column, -np.inf) > across),
            key=lambda column: -best[column],
        )[:COLUMNS_AT_ONCE]
        return [part for column in columns for part in self.pending.pop(column)]

    def rest(self) -> list[tuple[int, tuple[int, int], np.ndarray]]:
        """The parts not framed, if no run of framed parts crosses the group (else none)."""
        if self.width in self._reached():
            return []
        rest = [part for parts in self.pending.values() for part in parts]
        self.pending.clear()
        return rest


def _group_inks(ink: np.ndarray, labels: np.ndarray, groups: list[_Group]) -> list[np.ndarray]:
    """The ink of each group's box: its marks, and the specks in it (frame_digit keeps those on
    the digit), not the marks of other groups reaching into it."""
    speck = np.ones(int(labels.max()) + 1, dtype=bool)  # by label: a mark of no group
    speck[0] = False  # (the paper)
    for group in groups:
        speck[group.labels] = False
    inks = []
    for group in groups:
        top, bottom, left, right = group.span
        keep = speck.copy()
        keep[group.labels] = True
        kept = keep[labels[top:bottom, left:right]]
        inks.append(np.where(kept, ink[top:bottom, left:right], 0.0).astype(np.float32))
    return inks


def _parts(values: np.ndarray) -> list[tuple[tuple[int, int], np.ndarray]]:
    """The parts of a group's ink between the cuts its width allows (`_cuts`), each cut
    running down its path (`_cut_paths`), with PAST of ink beyond: ((start, stop), the part's
    ink in the group's box)."""
    cuts = _cuts(values)
    edges = sorted({edge for cut in cuts for edge in cut} - {0, values.shape[1]})
    paths = dict(zip(edges, _cut_paths(values, edges), strict=True))
    columns = np.arange(values.shape[1])
    past = round(PAST * values.shape[0])
    parts = []
    for start, stop in cuts:
        inside = np.ones(values.shape, dtype=bool)
        if start in paths:
            inside &= columns >= paths[start][:, None] - past
        if stop in paths:
            inside &= columns < paths[stop][:, None] + past
        parts.append(((start, stop), np.where(inside, values, 0.0).astype(np.float32)))
    return parts


def frame_part(values: np.ndarray) -> np.ndarray:
    """A part of a group (its ink in the group's box) framed as a digit is, with paper around
    it as around a digit in its own image (bench/cuts.py frames parts as the search does).
    NoDigitFound when it is no digit-like ink."""
    return preprocessing.frame_digit(values, pad=values.shape[0] // 2)


def _frame_parts(
    parts: list[tuple[int, tuple[int, int], np.ndarray]],
    groups: list[_Group],
    tried: list[Parts],
    classify: Classifier,
) -> None:
    """Frame the parts (group, cut, ink in the group's box), classify them all at once, and
    add each to its group's tried parts. A part that is no digit-like ink is left out."""
    framed, kept = [], []
    for group, cut, values in parts:
        try:
            framed.append(frame_part(values))
        except NoDigitFound:
            continue
        kept.append((group, cut, values))
    if not framed:
        return
    probabilities, wholeness = classify(np.stack(framed))
    for row, (group, cut, values) in enumerate(kept):
        top, _, left, _ = groups[group].span
        tried[group][cut] = _Part(
            framed[row],
            probabilities[row],
            None if wholeness is None else float(wholeness[row]),
            _span(values, top, left),
        )


def _cut_paths(values: np.ndarray, columns: list[int]) -> np.ndarray:
    """Where each cut runs, row by row: from the top of the group to its bottom, the path that
    crosses the least ink, moving at most a pixel sideways a row and at most REACH of the
    height from its column (each step sideways, and each pixel away, costs a little, so a
    cut through paper stays straight). Touching digits whose boxes overlap are parted around
    each other's strokes, where a straight cut would slice the one into the other. Returns
    (len(columns), height): each row's first column right of the cut."""
    height, width = values.shape
    if not columns:
        return np.zeros((0, height), dtype=np.intp)
    reach = max(1, round(REACH * height))
    offsets = np.arange(-reach, reach + 1)
    candidates = np.clip(np.asarray(columns)[:, None] + offsets, 0, width - 1)  # (cuts, 2r+1)
    straying = STRAY * np.abs(offsets).astype(np.float32)
    total = values[0, candidates] + straying
    came_from = np.zeros((height, *candidates.shape), dtype=np.intp)
    blocked = np.full((len(columns), 1), np.inf, dtype=np.float32)
    for row in range(1, height):
        options = np.stack(
            [
                np.concatenate([blocked, total[:, :-1]], axis=1) + BEND,  # from the left
                total,
                np.concatenate([total[:, 1:], blocked], axis=1) + BEND,  # from the right
            ]
        )
        choice = options.argmin(axis=0)
        came_from[row] = choice - 1
        total = np.take_along_axis(options, choice[None], axis=0)[0]
        total += values[row, candidates] + straying
    paths = np.empty((len(columns), height), dtype=np.intp)
    cut = np.arange(len(columns))
    position = total.argmin(axis=1)
    for row in range(height - 1, -1, -1):
        paths[:, row] = candidates[cut, position]
        position += came_from[row, cut, position]
    return paths


def _best_path(
    width: int, parts: Parts, whole: float, line: float, wide: bool = False
) -> tuple[float, list[_Part]]:
    """The parts a group is read as, and their score: the run of parts from its left edge to
    its right whose digits are likeliest together (the sum of their scores, `_Part.score`),
    the whole group `whole` more likely beforehand. The classifier alone cannot tell:
    fragments of one digit look like digits too, and two touching digits like one."""
    if not parts:
        return 0.0, []
    scores = {cut: _scored(part, cut, width, whole, line, wide) for cut, part in parts.items()}
    runs = _runs(scores)
    if width in runs:
        total, cuts = runs[width]
        return total, [parts[cut] for cut in cuts]
    # no path across: its largest part (the leftmost of the largest)
    largest = max(parts, key=lambda cut: (cut[1] - cut[0], -cut[0]))
    return scores[largest], [parts[largest]]


def _scored(
    part: _Part, cut: tuple[int, int], width: int, whole: float, line: float, wide: bool = False
) -> float:
    """A part's score in a group `width` wide, the whole group `whole` more likely and doubted
    by the `whole` head down to WHOLE_FLOOR only; in a `wide` group (too wide for one digit),
    a part read as a 1 doubted down to ONE_FLOOR only."""
    if cut == (0, width):
        return part.score(line, WHOLE_FLOOR) + whole
    if wide and int(part.probabilities.argmax()) == 1:
        return part.score(line, ONE_FLOOR)
    return part.score(line)


def _runs(scores: dict[tuple[int, int], float]) -> dict[int, tuple[float, list[tuple[int, int]]]]:
    """For each column the parts (cuts, with their scores) reach from the left edge, the best
    total score of a run of them there and that run: dynamic programming over the cuts."""
    best: dict[int, tuple[float, list[tuple[int, int]]]] = {0: (0.0, [])}
    for start, stop in sorted(scores, key=lambda cut: (cut[1], cut[0])):
        if start in best:
            total = best[start][0] + scores[start, stop]
            if stop not in best or total > best[stop][0]:
                best[stop] = (total, [*best[start][1], (start, stop)])
    return best


def _shape(span: Span, digit: int, line: float) -> float:
    """How likely a digit's width for its height is among MNIST's digits of its class, and its
    height for the line's: the logs of normal densities of the log aspect (ASPECTS), 0 at the
    class's median, and of the log height below SHORT of the line's (SHORT_SPREAD), 0 above.
    A 1 may be as thin as the pen that drew it."""
    top, bottom, left, right = span
    median, spread = ASPECTS[digit]
    height = max(bottom - top, line)  # a digit lower than its neighbours is written smaller
    z = np.log((right - left) / height / median) / max(spread, MIN_SPREAD)
    if digit == 1:
        z = max(z, 0.0)
    low = min(0.0, float(np.log((bottom - top) / (SHORT * line)))) / SHORT_SPREAD
    return float(-0.5 * (z * z + low * low))


def _span(values: np.ndarray, top: int, left: int) -> Span:
    """The box of a part's ink, in the ink map's pixels."""
    rows = np.flatnonzero(values.any(axis=1))
    cols = np.flatnonzero(values.any(axis=0))
    first, last = int(cols[0]), int(cols[-1])
    return top + int(rows[0]), top + int(rows[-1]) + 1, left + first, left + last + 1


def _cuts(values: np.ndarray) -> list[tuple[int, int]]:
    """The parts (start, stop cut columns) a group may be read as besides its whole, when it is
    wide enough to be touching digits: every part between two of its cut columns (the columns
    of least ink: the paper or thin crossing between digits) that is as wide as a digit may
    be."""
    height, width = values.shape
    aspect = width / height
    if aspect <= SPLIT_FROM:
        return []
    profile = ndimage.uniform_filter1d(values.sum(axis=0), size=3, mode="constant")
    inner = np.arange(1, width - 1)
    minima = inner[(profile[1:-1] <= profile[:-2]) & (profile[1:-1] <= profile[2:])]
    minima = minima[(minima >= THINNEST * height) & (minima <= width - THINNEST * height)]
    # the lowest few, one per run of equal columns (a gap of paper gives one cut, its middle)
    likely = max(2, round(aspect / DIGIT_ASPECT))
    cuts: list[int] = []
    for column in minima[np.argsort(profile[minima], kind="stable")]:
        if all(abs(column - other) > THINNEST * height / 2 for other in cuts):
            cuts.append(int(column))
        if len(cuts) >= min(CUTS_PER_DIGIT * likely, MAX_CUTS):
            break
    margin = round(THINNEST * height)  # and every GRID-th of its height between them
    grid = range(margin, width - margin, max(2, height // GRID, width // MAX_CUTS))
    edges = sorted({0, *cuts, *grid, width})
    return [
        (a, b)
        for i, a in enumerate(edges)
        for b in edges[i + 1 :]
        if (a, b) != (0, width) and THINNEST * height <= b - a <= WIDEST * height
    ]


# --- what "one whole digit" looks like, for the model to learn (model.train) -------------------


def training_pieces(images: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """28x28 digits framed as `_classify` frames the parts it tries (gaps left open), each
    labelled 1 when it is one whole digit and 0 when not: for every MNIST digit of `images`, the
    digit itself; a fragment of it (its columns left or right of a cut at 30-70% of its width,
    unless that is narrower than any part tried: a fragment of a 1 is still a 1); it run
    into another digit (their boxes overlapping by 1-4 px), framed as one; it with a slice of
    that neighbour (a cut 20-45% into it); and one of the two cut where they meet, slivers of
    the other included, which is whole: what the right cut of touching digits gives. Fragments
    of one digit and two touching digits look like digits to the classifier; told apart, they
    let a split be chosen right."""
    framed: list[np.ndarray] = []
    whole: list[int] = []

    def add(ink: np.ndarray, label: int) -> None:
        # framed as they were cut, gaps narrower than the pen left open: a head taught on
        # bridged pieces read numbers worse (bench/numbers.py: 16 of 37 rows 1.7-8.3 points
        # lower, 1 higher; touching digits the most, and numbers in pieces no better)
        try:
            framed.append(preprocessing.frame_digit(ink.astype(np.float32) / 255, False, 14))
        except NoDigitFound:
            return
        whole.append(label)

    for index, digit in enumerate(images):
        one = _inked_columns(digit)
        two = _inked_columns(images[rng.integers(len(images))])
        kind = index % 5
        if kind == 0:
            add(one, 1)
        elif kind == 1:
            cut = max(1, round(one.shape[1] * rng.uniform(0.3, 0.7)))
            fragment = one[:, :cut] if rng.random() < 0.5 else one[:, cut:]
            rows = np.flatnonzero(fragment.any(axis=1))
            # a part this narrow is never tried (_cuts): cut from a 1, it is still a 1
            if len(rows) and fragment.shape[1] >= THINNEST * (rows[-1] - rows[0] + 1):
                add(fragment, 0)
        else:
            # a 1 may be 1 px wide, on either side
            overlap = min(int(rng.integers(1, 5)), one.shape[1], two.shape[1])
            pair = np.zeros((28, one.shape[1] + two.shape[1] - overlap), dtype=np.uint8)
            pair[:, : one.shape[1]] = one
            right = pair[:, one.shape[1] - overlap :]
            np.maximum(right, two, out=right)
            if kind == 2:
                add(pair, 0)
            elif kind == 3:
                cut = one.shape[1] - overlap + round(two.shape[1] * rng.uniform(0.2, 0.45))
                add(pair[:, :cut], 0)
            else:  # cut where the two meet: a whole digit, slivers of its neighbour and all
                cut = one.shape[1] - int(rng.integers(0, overlap + 1))
                add(pair[:, :cut] if rng.random() < 0.5 else pair[:, cut:], 1)
    return np.stack(framed), np.array(whole)


OWN_INK = 0.8  # a part learnt as a digit with slivers holds this much of the digit's ink...
SLIVERS = 0.85  # ...and the digit at least this much of the part's (the rest its neighbours')


def touching_parts(
    images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Digits with slivers of a touching neighbour, cut and framed as the search cuts and frames
    them, with their labels, as the pipeline's inputs ((n, 784) float32 in 0..1): of `count`
    runs of 2 or 3 MNIST digits of `images` written over each other a little (`_run_together`),
    the parts the search tries (`candidates`) that hold one digit (OWN_INK of its ink, and it
    SLIVERS of theirs) and some ink of another; at most two of each digit. Strokes that cross
    share ink no cut gives to both sides, and PAST gives each part some of its neighbour's: a
    classifier taught only whole digits reads those slivers as strokes (a 0 with a piece of
    the 1 beside it as a 6)."""
    framed: list[np.ndarray] = []
    read: list[int] = []
    for _ in range(count):
        chosen = rng.choice(len(images), int(rng.integers(2, 4)), replace=False)
        layers = _run_together(images[chosen], rng)
        totals = layers.sum(axis=(1, 2))
        try:
            groups = candidates(line_of((layers.max(axis=0) / 255).astype(np.float32), 20))
        except (NoDigitFound, TooManyDigits):
            continue
        for (top, bottom, left, right), parts in groups:
            box = layers[:, top:bottom, left:right]
            held: dict[int, list[np.ndarray]] = {}
            for _, values in parts:
                whose = owner(values, box, OWN_INK, SLIVERS, totals)
                inside = (box * (values > 0)).sum(axis=(1, 2))
                if whose is not None and inside[whose] < 0.995 * inside.sum():  # slivers in it
                    held.setdefault(whose, []).append(values)
            for whose, options in held.items():
                for pick in rng.permutation(len(options))[:2]:
                    try:
                        framed.append(frame_part(options[pick]))
                    except NoDigitFound:
                        continue
                    read.append(int(labels[chosen[whose]]))
    return np.stack(framed).reshape(len(framed), -1), np.array(read, dtype=labels.dtype)


def owner(
    part: np.ndarray,
    layers: np.ndarray,
    own: float,
    share: float,
    totals: np.ndarray | None = None,
) -> int | None:
    """The digit a part (its ink in a group's box) holds, if it holds one, from the digits' own
    ink in that box (`layers`, one digit a layer): the digit it holds the largest share of,
    when that is at least `own` of the digit's ink (`totals`, each digit's; by default its ink
    in the box) and at least `share` of the part's."""
    inside = (layers * (part > 0)).sum(axis=(1, 2))
    totals = layers.sum(axis=(1, 2)) if totals is None else totals
    whose = int(np.argmax(np.where(totals > 0, inside / np.maximum(totals, 1e-9), 0)))
    if inside[whose] >= own * totals[whose] and inside[whose] >= share * inside.sum():
        return whose
    return None


def _run_together(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MNIST digits (uint8) written left to right, each a pixel or two higher or lower than the
    one before and its ink's box over that one's by 1 px to a third of the narrower's width:
    each digit on a layer of its own, (len(digits), height, width) float64."""
    inks = [_inked_columns(digit) for digit in digits]
    side, margin = digits.shape[1], 4
    width = sum(ink.shape[1] for ink in inks) + 2 * margin
    layers = np.zeros((len(inks), side + 2 * margin, width))
    left, top, right = margin, margin, margin
    for index, ink in enumerate(inks):
        if index:
            narrower = min(ink.shape[1], inks[index - 1].shape[1])
            left = right - int(rng.integers(1, max(2, narrower // 3 + 1)))
            top = int(np.clip(top + rng.integers(-2, 3), 0, 2 * margin))
        layers[index, top : top + side, left : left + ink.shape[1]] = ink
        right = left + ink.shape[1]
    return layers[:, :, : right + margin]


def _inked_columns(digit: np.ndarray) -> np.ndarray:
    """A digit's image from its first inked column to its last."""
    columns = np.flatnonzero(digit.any(axis=0))
    return digit[:, columns[0] : columns[-1] + 1]
