"""Turn any uploaded image into the 28x28 digit MNIST's own normalisation would have produced.

MNIST's digits were cropped to their ink, scaled (keeping their aspect ratio) so that the longer
side is 20 pixels, and placed in a 28x28 frame so that their centre of mass lands at the centre.
Measured on the data: the longer side of the ink box is 20 px for 99.97% of digits and the
centre of mass sits at (14.0, 14.0) +- 0.3 px. Real uploads differ in every other way: colour,
transparency, polarity, lighting, size and position. The steps below undo those differences:

1. `decode`: bytes to a Pillow image, refusing non-images, damaged files and decompression bombs.
2. `ink_map`: one float channel where ink is 1 and background 0: alpha composited, polarity
   taken from the border, uneven lighting divided out, noise floor and contrast normalised.
   A digit that came out small in a large frame is zoomed into at full resolution.
3. `frame_digit`: refuse ink that is no digit (a speck, a blob, a texture), crop to the digit,
   redraw it with MNIST's pen at MNIST's stroke width, scale to 20 px, centre by mass in 28x28.

An image already in MNIST's normal form passes through untouched (`_in_normal_form`), so a
digit from the data set comes back bit for bit; `preprocess_many` recognises such images in a
whole batch at once.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import numpy as np
import pillow_heif
import pyspng
from PIL import AvifImagePlugin, Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from errors import (
    EmptyUpload,
    InvalidImage,
    NoDigitFound,
    PayloadTooLarge,
    ServiceError,
    TooCostly,
)

SIDE = 28  # MNIST frame
BOX = 20  # longer side of the digit inside the frame
CENTRE = 14.0  # where MNIST puts the centre of mass (row and column, 0-based pixel centres)
WORK_SIDE = 384  # larger images are reduced to this before the pixel work; plenty for 20 px
ZOOM_MARGIN = 0.25  # context kept around a small digit when zooming in on it

# telling ink from paper
FLAT = 0.02  # border strips this close in level mean an evenly lit background
LOSSY_FLOOR = 0.1  # in JPEGs, ink fainter than 10% of a stroke is ringing around the strokes
MIN_CONTRAST = 0.08  # ink must stand this far (0..1) above the paper's noise to count...
NOISE_MARGIN = 8  # ...or, on a cleaner background, 8 times the background's noise...
FAINTEST = 0.02  # ...but never less than this: a stroke 5 grey levels from a flat background
MIN_INK_FRACTION = 0.0001  # ...and cover at least this share of the image (0.01%)
MID_GREY = 0.15  # a border this close to mid-grey does not tell the ink's polarity by itself...
POLARITY_SAMPLE = 256  # ...the image's extremes do, in a sample this many px along its longer side
POLARITY_TAIL = 0.0002  # ...its darkest and lightest 0.02%
DIM_PAPER = 2.0  # on a dark border, ink darker than it must reach twice as far as the lighter
# A picture set in a frame (`_picture_in_frame`): the frame's bands are lines of pixels all
# within FRAME_EVEN of one level, halfway across still within FRAME_DRIFT of it (not a slope:
# a shadow across a page), which meet the picture along a line at least FRAME_MET of which
# stands off that level; the picture's paper at least FRAME_CONTRAST from it, and the picture
# at least FRAME_SMALLEST px a side.
FRAME_EVEN = 0.04
FRAME_DRIFT = 0.006
FRAME_MET = 0.9
FRAME_CONTRAST = 0.15
FRAME_SMALLEST = 8
FRAME_INSET = 1  # px of the picture next to its frame left out (they may mix the two)
FRAME_RINGING = 8  # px past a band's even lines a JPEG's ringing may reach (a block)

# what counts as a digit
SPECK_FRACTION = 0.05  # ink blobs lighter than 5% of the largest blob are dirt, not digit...
SPECK_MARGIN = 0.15  # ...unless they lie within 15% (of its size) of the digit's box
JOIN_MARGIN = 0.5  # heavier marks are part of the digit within 50% of its size; beyond, clutter
BROKEN_EXTENT = 2.0  # ...and so are marks that come that near, if at most 2x its length
MAX_HOLES = 2  # a digit encloses at most two holes (an 8); a mark with more is lettering...
MIN_HOLE_PIXELS = 4  # ...counting holes of at least 4 px...
MIN_HOLE_FRACTION = 0.002  # ...and 0.2% of the mark's box (a dry pen's specks of paper are not)
MIN_DIGIT_PIXELS = 4  # a digit spans at least 4 px...
MIN_DIGIT_FRACTION = 0.03  # ...and 3% of the frame's longer side
MAX_SOLIDITY = 0.85  # share of a digit's box its strokes may fill...
MAX_BLOB_ASPECT = 2.5  # ...unless the box is this much taller than wide (a "1")
MAX_COVERAGE = 0.6  # ink over more of the frame than this is no digit
MAX_PIECES = 8  # nor are more separate marks than this (crumbs of dithering aside)

# redrawing digits
RESTROKE = 4  # digits are redrawn at 4x the final 20 px...
FAINT_STROKE = 0.2  # fainter parts of a stroke down to this level continue it (hysteresis)
STROKE_RANGE = (2.4, 3.0)  # ...with strokes this wide (px at 20 px); MNIST's median is 2.69

NOT_AN_IMAGE = "File provided is not an image."
# The formats served (Pillow's names), recognised by content. README lists the same. AVIF is
# tried before HEIF: a file of the generic brand "mif1" may be either, and libavif refuses a
# HEVC picture at once, where libheif (built without an AV1 decoder) would fail only on its pixels.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "AVIF", "HEIF")
FORMAT_NAMES = "PNG, JPEG, GIF, BMP, WebP, TIFF, AVIF or HEIC"
# the formats whose pictures are always compressed lossily (a WebP is told by its chunks); a
# lossless AVIF or HEIC exists but is rare, and its faintest greys taken for no ink cost little
_LOSSY_FORMATS = {"JPEG", "AVIF", "HEIF"}
# the brands an ISO media file names itself by when it holds an AVIF or a HEIF picture
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
NO_DIGIT = "No digit found in the image."

# decode() checks every image's pixel count against the configured limit before a single pixel
# is decompressed, so Pillow's own (fixed, 179-megapixel) bomb check is not needed on top.
Image.MAX_IMAGE_PIXELS = None
# Every format plugin now, not at the first upload: the prediction processes' fork server
# imports this module, so each of them starts with the plugins (and their libraries) loaded.
Image.init()
# HEIC, what iPhones photograph in (and many Android phones can), read by libheif through
# pillow-heif: the primary picture only, none of the thumbnails, depth maps or other auxiliary
# pictures a phone stores beside it. Both it and AVIF (Pillow's own libavif) decode on one
# thread, as BLAS runs in the prediction processes: there is a process for every core already.
pillow_heif.register_heif_opener(
    thumbnails=False, depth_images=False, aux_images=False, decode_threads=1
)
AvifImagePlugin.DEFAULT_MAX_THREADS = 1

EXIF_ORIENTATION = 0x0112
TURNING = {5, 6, 7, 8}  # the orientations that swap width and height
_HIGH_BIT_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
# PNG kinds libspng decodes straight to Pillow's own pixels: 8 bits a sample (the byte after
# IHDR's width and height), grey, colour or colour with alpha (it gives grey with alpha as
# colour only)
_SPNG_MODES = {"L", "RGB", "RGBA"}
_PNG_BIT_DEPTH = 24
# where a PNG may carry an orientation to apply, as Pillow reads it: the eXIf chunk, EXIF in a
# text chunk (ImageMagick's), XMP's tiff:Orientation
_PNG_ORIENTATION = (b"eXIf", b"Raw profile type exif", b"XML:com.adobe.xmp")
# the modes with an alpha channel, each with the mode of straight alpha it is read in
Region = tuple[slice, slice]  # rows and columns of an image
_ALPHA_MODES = {"RGBA": "RGBA", "LA": "LA", "PA": "RGBA", "RGBa": "RGBA", "La": "LA"}


def decode(data: bytes, max_pixels: int, side: int = WORK_SIDE) -> Image.Image:
    """Decode an upload, checking its format and pixel count before any pixel is decompressed.

    Only the formats in FORMATS are decoded, told by their content, not their name: Pillow
    reads dozens more, some of which trust sizes their headers claim (an ICNS file of 241 kB
    once asked for 16 GB). `info["lossy"]` tells whether the pixels carry compression
    artefacts (JPEG, lossy WebP, AVIF, HEIC); `info["full_size"]` is the upload's size in its
    own pixels, upright (a JPEG may be decoded smaller: at least `side` on its longer side).
    """
    if not data:
        raise EmptyUpload("The uploaded file is empty.")
    try:
        # reads the header only
        image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (MemoryError, ServiceError):  # over the upload's budget (see prepare_many)
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImage(_not_supported(data)) from exc
    except Exception as exc:  # a decoder knew the format, and refused this variant of it
        raise InvalidImage(f"The image cannot be read ({_said(exc)}).") from exc
    if image.format == "MPO":
        # a JPEG with more pictures behind its own, found through an MPF segment: an Ultra HDR
        # photo's gain map (Android phones), a camera's preview or a stereo pair. Pillow names
        # the file for them; what is read is its first picture, a JPEG like any other.
        image.format = "JPEG"
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"Image is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels); "
            f"the limit is {max_pixels / 1e6:g} megapixels."
        )
    if width == 0 or height == 0:
        raise InvalidImage("The image has no pixels.")
    lossy = image.format in _LOSSY_FORMATS or (image.format == "WEBP" and _lossy_webp(data))
    if image.format == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when that still covers the working
        # size: a 12-megapixel photo then costs a fraction of a full decode.
        image.draft(None, (side, side))
    try:
        image = _loaded(image, data)
        turned = image.getexif().get(EXIF_ORIENTATION, 1) in TURNING  # a quarter turn
        ImageOps.exif_transpose(image, in_place=True)
    except (MemoryError, ServiceError):  # over the upload's budget (see prepare_many)
        raise
    except Exception as exc:  # each decoder fails in its own way (OSError, ValueError,
        # NotImplementedError for variants it does not know, ...): all mean the same to a user
        raise InvalidImage(f"The image is truncated or corrupt ({_said(exc)}).") from exc
    image.info["lossy"] = lossy
    image.info["full_size"] = (height, width) if turned else (width, height)
    return image


def _said(error: Exception) -> str:
    """What a decoder's error says, on one line (libheif ends its messages with a newline)."""
    return " ".join(str(error).split())


def _lossy_webp(data: bytes) -> bool:
    """Whether a WebP file's picture is compressed lossily: a "VP8 " chunk (lossless is
    "VP8L"), at the top level or in an animation's first frame (RIFF chunks: a FourCC, a
    little-endian size, the data padded to an even length; a frame's own chunks follow 16
    bytes of its header)."""
    at, end = 12, len(data)  # after "RIFF", the file's size and "WEBP"
    while at + 8 <= end:
        kind, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if kind in (b"VP8 ", b"VP8L"):
            return kind == b"VP8 "
        if kind == b"ANMF":
            at, end = at + 8 + 16, min(end, at + 8 + size)  # into the first frame
            continue
        at += 8 + size + (size & 1)
    return False


def _loaded(image: Image.Image, data: bytes) -> Image.Image:
    """The opened image with its pixels decoded: a plain PNG by libspng, else by Pillow.

    A canvas export (810x420 RGBA) took Pillow 4.1 ms to decode and libspng 2.4, the same
    pixels bit for bit (bench/decode.py). Only the PNGs both read alike go to libspng: grey,
    colour or colour with alpha at 8 bits a sample, with no transparency chunk, animation or
    orientation (EXIF or XMP). A file libspng refuses is decoded by Pillow,
    which either reads it after all or says what is wrong with it, as for any other upload.
    (libspng reads a file whose pixels are all there and whose last chunk is cut short;
    Pillow refuses it.)
    """
    if (
        image.format == "PNG"
        and image.mode in _SPNG_MODES
        and data[_PNG_BIT_DEPTH] == 8
        and "transparency" not in image.info
        and not getattr(image, "is_animated", False)
        and not any(marker in data for marker in _PNG_ORIENTATION)
    ):
        try:
            pixels = pyspng.load(data)
        except RuntimeError:
            pass
        else:
            if pixels.shape[:2] == image.size[::-1]:
                plain = Image.frombuffer(image.mode, image.size, pixels, "raw", image.mode, 0, 1)
                plain.format = image.format
                return plain
    image.load()
    return image


def _not_supported(data: bytes) -> str:
    """Why an upload is refused: not an image at all, an image of a format not served, or a
    HEIC or AVIF whose container cannot be read (their decoders read it whole to open it, so a
    file cut short is not known for one of them by its first bytes, as other formats are)."""
    if brand := _heif_brand(data):
        return f"The image is truncated or corrupt (its {brand} container cannot be read)."
    try:
        with Image.open(io.BytesIO(data)) as other:  # header only, never decoded
            kind = other.format
    except Exception:
        return NOT_AN_IMAGE
    return f"{kind} images are not supported; send {FORMAT_NAMES}."


def _heif_brand(data: bytes) -> str | None:
    """'AVIF' or 'HEIC' where the file opens as an ISO media file (a "ftyp" box first) that
    names one of their brands (its major brand, then the compatible ones, 4 bytes each after
    the minor version), else None."""
    if data[4:8] != b"ftyp":
        return None
    end = min(int.from_bytes(data[:4], "big"), len(data), 64)
    brands = {data[8:12]} | {data[at : at + 4] for at in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if brands & _HEIF_BRANDS:
        return "HEIC"
    return None


def prepare_many(
    uploads: list[bytes],
    max_pixels: int,
    guard: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> list[tuple[np.ndarray, str] | ServiceError]:
    """Each upload as a 28x28 digit with the format it decoded as, or the error that upload
    alone gets. The work on each upload runs inside `guard()`, which may bound its cost; any
    failure, foreseen or not, fails its own upload and no other."""
    images = [guarded(guard, decode, data, max_pixels) for data in uploads]
    digits = normalise_many(images, guard)
    prepared: list[tuple[np.ndarray, str] | ServiceError] = []
    for image, digit in zip(images, digits, strict=True):
        if isinstance(digit, ServiceError):  # the image's own error passes through as it
            prepared.append(digit)
        else:
            assert isinstance(image, Image.Image)
            prepared.append((digit, image.format or ""))
    return prepared


T = TypeVar("T")


def guarded(
    guard: Callable[[], AbstractContextManager[None]], work: Callable[..., T], *args: Any
) -> T | ServiceError:
    try:
        with guard():
            return work(*args)
    except ServiceError as error:
        return _detached(error)
    except MemoryError:  # over the prediction process's cap on address space
        return TooCostly(
            "The image needs more memory to decode than one upload may use; send a smaller image."
        )
    except Exception as error:
        return InvalidImage(f"The image could not be read ({type(error).__name__}: {error}).")


def _detached(error: ServiceError) -> ServiceError:
    """The error without its traceback and causes: they hold the frames it passed through,
    and with them the decoded image, in a reference cycle (through this function's frame)
    that only the cyclic garbage collector would free, late. A prediction process grew by
    ~50 MB per pass through Pillow's corpus of broken images."""
    error.__traceback__ = error.__cause__ = error.__context__ = None
    return error


def _shrink(image: Image.Image, side: int) -> Image.Image:
    """Reduce an image so its longer side is at most `side` (area averaging; Pillow
    premultiplies alpha while it resizes, so transparent pixels' colours do not bleed in)."""
    if max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.BOX)
    return image


def _gray_and_alpha(
    image: Image.Image, side: int
) -> tuple[np.ndarray, np.ndarray | None, Image.Image | None]:
    """Luminance in 0..1 and, for images with transparency, opacity in 0..1, at working size;
    and, for an opaque colour image, the image in RGB(A) (whose colours may tell ink from
    paper better than their brightness: `_colour_contrast`)."""
    if image.mode in _HIGH_BIT_MODES:
        values = np.asarray(image, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        gray = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return np.asarray(_shrink(Image.fromarray(gray, "F"), side)), None, None
    if image.mode == "P" or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode not in _ALPHA_MODES.keys() | {"L", "RGB"}:
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, 1-bit
    if image.mode in _ALPHA_MODES:
        if image.mode != _ALPHA_MODES[image.mode]:  # premultiplied, or a palette's
            image = image.convert(_ALPHA_MODES[image.mode])
        alpha = image.getchannel("A")
        if alpha.getextrema() != (255, 255):
            return *_luminance_and_alpha(image, alpha, side), None
    # no transparency: an opaque RGBA is read as its RGB (the same luminance), made RGB only
    # if its colours are looked at
    gray = np.asarray(_shrink(image.convert("L"), side), dtype=np.float32) / 255.0
    return gray, None, image if image.mode in ("RGB", "RGBA") else None


def _luminance_and_alpha(
    image: Image.Image, alpha: Image.Image, side: int
) -> tuple[np.ndarray, np.ndarray]:
    """`_gray_and_alpha` of an image with straight (not premultiplied) alpha, reduced as
    Pillow reduces LA: the luminance premultiplied by the opacity (rounded as Pillow rounds it)
    is averaged, then divided by the averaged opacity, so transparent pixels' colours do not
    bleed in. But on two one-byte images: Pillow's LA pixels are four bytes, premultiplied at
    full size, which cost a canvas export 1.5x as much. An image no larger than `side` is not
    reduced: its luminance and opacity as they are."""
    luminance = image.convert("L")
    if max(image.size) <= side:  # nothing to average: as they are
        return np.asarray(luminance, np.float32) / 255.0, np.asarray(alpha, np.float32) / 255.0
    opacity = np.asarray(_shrink(alpha, side), dtype=np.float32)
    if luminance.getbbox() is None:  # black on clear, as a canvas exports black strokes
        return np.zeros_like(opacity), opacity / 255.0  # (what averaging zeros gives)
    # luminance x opacity / 255, over black
    covered = Image.composite(luminance, Image.new("L", image.size), alpha)
    gray = np.asarray(_shrink(covered, side), dtype=np.float32)
    np.divide(gray, opacity, out=gray, where=opacity > 0)  # (premultiplied: 0 where clear)
    return gray, opacity / 255.0


def _colour_contrast(
    gray: np.ndarray, image: Image.Image | None, side: int, region: Region = (slice(None),) * 2
) -> np.ndarray:
    """Where ink differs from the paper by its colour more than by its brightness (yellow on
    light blue, red on green), a grey image that shows that difference: 1 on the paper's
    colour, darker with distance from it. Otherwise the luminance, as it is. `gray` is the
    luminance of `region` of the image (shrunk to `side`); no image: no colours to look at."""
    if image is None:
        return gray
    step = max(1, max(gray.shape) // 96)  # decided on a sample: most images keep luminance
    by_brightness = _quantile(np.abs(gray[::step, ::step] - _median(_border(gray))), 0.99)
    if by_brightness >= MIN_CONTRAST * 2:
        return gray  # the colours are only looked at when brightness tells too little
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    colour = np.asarray(_shrink(rgb, side), dtype=np.float32)[region] / 255.0
    paper = np.median(_border(colour), axis=0)
    by_colour = _quantile(_distance(colour[::step, ::step], paper), 0.99)
    if by_colour <= 2 * by_brightness:
        return gray
    return (1.0 - _distance(colour, paper)).astype(np.float32)


def _distance(colour: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Each pixel's distance in RGB from the paper's colour, 0..1."""
    return np.sqrt(((colour - paper) ** 2).sum(axis=2) / 3.0)


def ink_map(image: Image.Image, side: int = WORK_SIDE) -> np.ndarray:
    """A float map of the image where ink is 1 and background 0, whatever the original looked
    like, its longer side at most `side` px.

    Raises NoDigitFound when nothing stands out from the background.
    """
    gray, alpha, colours = _gray_and_alpha(image, side)
    if alpha is not None and alpha.min() < 1.0:
        # Transparent pixels are background. Composite onto the colour that contrasts with the
        # visible strokes: dark strokes (a canvas drawing) go onto white, light onto black.
        opaque = alpha > 0.5
        if not opaque.any():
            raise NoDigitFound(NO_DIGIT)
        backdrop = 1.0 if float(np.mean(gray[opaque])) < 0.5 else 0.0
        gray = alpha * gray + (1.0 - alpha) * backdrop

    lossy = bool(image.info.get("lossy"))
    picture = _picture_in_frame(gray, lossy)
    if picture is not None:
        try:
            ink = np.zeros(gray.shape, dtype=np.float32)
            ink[picture] = _ink(_colour_contrast(gray[picture], colours, side, picture), lossy)
            return ink
        except NoDigitFound:
            pass  # nothing in it stands out: read the image whole, as it is
    return _ink(_colour_contrast(gray, colours, side), lossy)


def _ink(gray: np.ndarray, lossy: bool) -> np.ndarray:
    """`ink_map` of an opaque grey image: ink 1, paper 0 (NoDigitFound if nothing stands out)."""
    # Polarity: the border is background. Light border, dark ink: invert.
    if _dark_ink(gray):
        # Dark ink on light paper. Light multiplies reflectance, so ink darkness is measured
        # relative to the paper's local brightness: 1 - observed / paper. Under a dim corner
        # of the sheet the same ink then counts as fully dark as under the lamp.
        darkness = 1.0 - gray
        paper_darkness = _background(darkness)
        ink = (darkness - paper_darkness) / np.maximum(1.0 - paper_darkness, 0.05)
    else:  # light strokes on a dark ground (MNIST's own look): the glow adds
        ink = gray - _background(gray)

    # Contrast: the noise floor (robust statistics of the border, which is background) goes
    # to 0, a stroke core (90th percentile of stroke pixels) to 1. Otsu's threshold tells
    # strokes from background.
    border = _border(ink)
    floor_ = _median(border)
    spread = 1.4826 * _median(np.abs(border - floor_))
    low = floor_ + 3.0 * spread
    strokes = ink[ink > max(_otsu(ink), low)]
    if strokes.size < max(4, MIN_INK_FRACTION * ink.size):
        raise NoDigitFound(NO_DIGIT)
    high = _quantile(strokes, 0.9)
    # On a noiseless background (a drawing program's, a canvas's) the faintest grey stroke is
    # as certain as a black one; on paper, ink must stand well above the paper's grain.
    if high - low < float(np.clip(NOISE_MARGIN * spread, FAINTEST, MIN_CONTRAST)):
        raise NoDigitFound(NO_DIGIT)
    if lossy:
        low = max(low, LOSSY_FLOOR * high)
    return np.clip((ink - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _picture_in_frame(gray: np.ndarray, lossy: bool = False) -> Region | None:
    """Where the picture is, when the upload is a picture set in a frame (a page around a
    drawing, black bars around a photo in a screenshot, a scanner's dark edge): bands of one
    even level along its sides, the picture's own paper of another level. The frame is told by
    the straight line along which at least one band meets the picture, the picture's corners
    not of the frame's level; a band of the same level on another side is frame too, where a
    digit runs into the picture's edge. None when there is no such frame: a margin of the
    paper the digit is written on meets the digit in a few strokes, and a box drawn on the
    paper holds that same paper.

    Left in, a frame takes the part of the paper (the border decides the ink's polarity and
    the paper's level), and the picture's whole paper is read as ink."""
    height, width = gray.shape
    if min(height, width) < 3 * FRAME_SMALLEST:
        return None
    step = max(1, max(height, width) // 128)  # bands are looked for on a sample of each line
    rows, columns = gray[:, ::step], gray[::step, :]
    edges = {"top": rows[0], "bottom": rows[-1], "left": columns[:, 0], "right": columns[:, -1]}
    even_edges = [side for side, line in edges.items() if np.ptp(line) <= 2 * FRAME_EVEN]
    if not even_edges:  # (a photo: no side is one even line to begin with)
        return None
    ranges = {}  # each side's lines' lowest and highest levels, from the edge inwards
    if {"top", "bottom"} & set(even_edges):
        lowest, highest = rows.min(axis=1), rows.max(axis=1)
        ranges["top"], ranges["bottom"] = (lowest, highest), (lowest[::-1], highest[::-1])
    if {"left", "right"} & set(even_edges):
        lowest, highest = columns.min(axis=0), columns.max(axis=0)
        ranges["left"], ranges["right"] = (lowest, highest), (lowest[::-1], highest[::-1])
    depths, levels = {}, {}
    for side in even_edges:
        lowest, highest = ranges[side]
        level = (float(lowest[0]) + float(highest[0])) / 2
        even = (highest - level <= FRAME_EVEN) & (level - lowest <= FRAME_EVEN)
        depth = int(np.argmin(even)) if not even.all() else len(even)
        # a slope drifts halfway across its band already (a JPEG's blocks ring over a narrow
        # band, and its flat ones need not be even to a grey level: not asked of them)
        drift = 0.0 if lossy else abs((lowest[depth // 2] + highest[depth // 2]) / 2 - level)
        if depth and len(even) - depth >= FRAME_SMALLEST and drift <= FRAME_DRIFT:
            depths[side], levels[side] = depth, level
    if not depths:
        return None
    top, bottom = depths.get("top", 0), height - depths.get("bottom", 0)
    left, right = depths.get("left", 0), width - depths.get("right", 0)
    if bottom - top < FRAME_SMALLEST or right - left < FRAME_SMALLEST:
        return None
    # no band anywhere near another level than the paper inside (a canvas, a page: bands of
    # their own paper), then no frame, whatever the look past a JPEG's ringing below finds
    inside = _median(gray[top:bottom:step, left:right:step])
    if all(abs(inside - level) < FRAME_CONTRAST / 2 for level in levels.values()):
        return None

    def off(side: str, depth: int, by: float) -> float:
        """The share of the line `depth` in from the side (between the other sides' bands)
        that stands more than `by` off its band's level."""
        if side in ("top", "bottom"):
            line = gray[depth if side == "top" else height - 1 - depth, left:right]
        else:
            line = gray[top:bottom, depth if side == "left" else width - 1 - depth]
        return float(np.mean(np.abs(line - levels[side]) > by))

    def met(side: str, depth: int) -> bool:
        return off(side, depth, FRAME_EVEN) >= FRAME_MET

    # A JPEG's blocks ring where the frame meets the picture: the band's even lines may end a
    # few short of the picture, which then starts at the first line that stands off the band's
    # level along all of it, past lines that stay near that level (ringing, not ink).
    ringing = dict(depths)
    for side, depth in depths.items():
        across = height if side in ("top", "bottom") else width
        for line in range(depth, min(depth + FRAME_RINGING, across // 2)):
            if met(side, line):
                ringing[side] = line
                break
            if off(side, line, FRAME_CONTRAST) > 1 - FRAME_MET:
                break  # more than ringing: the picture, or a digit on the frame's own paper
    paper = inside
    if ringing != depths:  # the picture starts further in: its paper, again
        depths = ringing
        top, bottom = depths.get("top", 0), height - depths.get("bottom", 0)
        left, right = depths.get("left", 0), width - depths.get("right", 0)
        paper = _median(gray[top:bottom:step, left:right:step])
    corners = gray[[top, top, bottom - 1, bottom - 1], [left, right - 1, left, right - 1]]
    apart = {side: level for side, level in levels.items() if abs(paper - level) >= FRAME_CONTRAST}
    straight = [
        level
        for side, level in apart.items()
        if met(side, depths[side]) and np.all(np.abs(corners - level) > FRAME_EVEN)
    ]
    framed = {
        side
        for side, level in apart.items()
        if any(abs(level - other) <= FRAME_EVEN for other in straight)
    }
    if not framed:
        return None
    # where the picture meets its frame, a line of pixels may mix the two (resampling, a
    # JPEG's ringing): the picture starts past it
    top = top + FRAME_INSET if "top" in framed else 0
    bottom = bottom - FRAME_INSET if "bottom" in framed else height
    left = left + FRAME_INSET if "left" in framed else 0
    right = right - FRAME_INSET if "right" in framed else width
    return slice(top, bottom), slice(left, right)


def stroke_core(ink: np.ndarray) -> float:
    """The level of the strokes' cores in an ink map: the 90th percentile of the pixels that
    Otsu's threshold tells from the paper (`ink_map` scales it to 1). 0 with no ink."""
    strokes = ink[ink > _otsu(ink)]
    return _quantile(strokes, 0.9) if strokes.size else 0.0


def _dark_ink(gray: np.ndarray) -> bool:
    """Whether the ink is darker than the paper. A clearly light border is paper under dark
    ink (a photo's glare is no ink). Otherwise the ink is the extreme of the image that lies
    farther from the border's level: on a mid-grey page (brown card, a photo in dim light)
    either; on a dark border the darker only where it reaches DIM_PAPER times as far, and
    FAINTEST at least (white paper photographed in a dim room, where a chalkboard's or a dark
    canvas's light strokes stand far above their ground, and a black picture's noise is no
    ink). The extremes are the darkest and lightest POLARITY_TAIL of a sample: a small
    digit on a photo covers a fraction of a percent."""
    paper = _median(_border(gray))
    if paper >= 0.5 + MID_GREY:
        return True
    step = max(1, max(gray.shape) // POLARITY_SAMPLE)
    sample = gray[::step, ::step]
    darker = paper - _quantile(sample, POLARITY_TAIL)
    lighter = _quantile(sample, 1.0 - POLARITY_TAIL) - paper
    if paper > 0.5 - MID_GREY:
        return darker > lighter
    return darker > max(DIM_PAPER * lighter, FAINTEST)


def _background(ink: np.ndarray) -> np.ndarray:
    """The background's level under the ink (a map where ink is the brighter minority): a
    quadratic surface fitted to the background pixels.

    Uneven lighting (a lamp to one side, vignetting) varies slowly across a sheet, so a smooth
    surface describes it. The fit is robust: ink stands above the surface, so pixels far above
    it are dropped and the surface refitted. An evenly lit background is a constant.
    """
    height, width = ink.shape
    ring = max(1, min(height, width) // 8)
    sides = [ink[:ring], ink[-ring:], ink[:, :ring], ink[:, -ring:]]
    levels = [_median(side) for side in sides]
    if max(levels) - min(levels) < FLAT:  # evenly lit: the median border level will do
        return np.full(ink.shape, _median(levels), dtype=np.float32)
    step = max(1, max(height, width) // 64)  # a 64x64 sample is plenty for six coefficients
    sample = ink[::step, ::step].ravel()
    design = _quadratic_terms(height, width, step).reshape(-1, 6)
    background = sample <= _median(sample)  # ink is the brighter minority: start below it
    for _ in range(4):
        coefficients = np.linalg.lstsq(design[background], sample[background], rcond=None)[0]
        residual = sample - design @ coefficients
        spread = 1.4826 * _median(np.abs(residual[background]))
        background = residual < max(3.0 * spread, 0.02)
    return (_quadratic_terms(height, width, 1) @ coefficients).astype(np.float32)


def _quadratic_terms(height: int, width: int, step: int) -> np.ndarray:
    """(rows, cols, 6): 1, x, y, x², xy, y² at every `step`-th pixel, coordinates in -0.5..0.5."""
    y, x = np.meshgrid(
        np.arange(0, height, step) / height - 0.5,
        np.arange(0, width, step) / width - 0.5,
        indexing="ij",
    )
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)


def _border(values: np.ndarray) -> np.ndarray:
    """The pixels of a ring around the image, 3% of its shorter side wide (at least 1 px);
    for a colour image, (n, 3) of them."""
    ring = max(1, round(min(values.shape[:2]) * 0.03))
    pixel = values.shape[2:]
    return np.concatenate(
        [
            values[:ring].reshape(-1, *pixel),
            values[-ring:].reshape(-1, *pixel),
            values[:, :ring].reshape(-1, *pixel),
            values[:, -ring:].reshape(-1, *pixel),
        ]
    )


def _quantile(values: np.ndarray | list[float], q: float) -> float:
    """A (lower) quantile: np.quantile's checks cost more than the work on small arrays.

    np.partition slows down tenfold when many values equal the lowest (a canvas's or a drawing
    program's paper, all at one level: 0.7 ms for 9,000 values), so those are counted and set
    aside first; the quantile is the same value."""
    flat = np.ravel(values)
    index = int((len(flat) - 1) * q)
    lowest = flat.min()
    at_lowest = flat == lowest
    below = int(np.count_nonzero(at_lowest))
    if index < below:
        return float(lowest)
    rest = flat[~at_lowest]
    return float(np.partition(rest, index - below)[index - below])


def _median(values: np.ndarray | list[float]) -> float:
    return _quantile(values, 0.5)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in 0..1 (64 bins): the split that best separates two classes."""
    bins = np.minimum((np.clip(values, 0.0, 1.0) * 64).astype(np.intp), 63)
    weights = np.bincount(bins.ravel(), minlength=64).astype(np.float64)
    edges = np.linspace(0.0, 1.0, 65)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(weights)
    w1 = w0[-1] - w0
    m0 = np.cumsum(weights * centres)
    mean0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mean1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def _digit_only(ink: np.ndarray, offset: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, int]:
    """The ink map with what is not the digit erased, and how many heavy blobs of ink (not
    specks) the image holds (`offset`: where the map lies in the frame it was cut from).

    Lettering is no digit: a heavy mark enclosing more holes than a digit has (a badge with an
    app's name knocked out of it, a stamp) is erased when another heavy mark remains. When
    there are several heavy marks, marks a line of a pixel or two apart are taken as one (a
    grid drawn over a digit cuts its strokes into pieces). The digit is the heaviest mark and
    the heavy marks near it: grown from the heaviest, a heavy mark joins when it lies within
    JOIN_MARGIN (of its size) of the digit's box (the detached bar of a 5, the second stroke
    of a 4). Light marks join when they lie within SPECK_MARGIN of the digit's box (MNIST
    digits have such dots). Marks farther away are clutter (a badge in a corner, axis labels,
    dirt).
    """
    mask = ink > 0
    labels, count, masses, heavy = _marks(ink, mask)
    if count == 1:  # one mark: it is the digit
        return np.where(mask, ink, 0.0).astype(np.float32), 1
    if heavy.sum() > 1:
        holed, badges = _lettering(labels, heavy)
        # a badge is never a digit; a mark of many holes may be one (an 8 with a third loop)
        lettering = badges & (heavy & ~badges).any()
        lettering |= holed & (heavy & ~holed & ~badges).any()
        if lettering.any():
            mask &= ~np.concatenate([[False], lettering])[labels]
            ink = np.where(mask, ink, 0.0).astype(np.float32)
            labels, count, masses, heavy = _marks(ink, mask)
    if heavy.sum() > 1:  # several pieces: lines a pixel wide may have cut one stroke apart
        labels, count, masses, heavy = _marks(ink, closed(mask) | mask)
    # in the frame's coordinates, so that the margins below round as they would there
    top, left = offset
    spans = np.array(
        [(rows.start + top, rows.stop + top, cols.start + left, cols.stop + left)
         for rows, cols in ndimage.find_objects(labels)]
    )  # fmt: skip
    keep = np.zeros(count, dtype=bool)
    keep[int(masses.argmax())] = True
    while True:  # grow the digit from its heaviest mark, by the heavy marks near it
        near = (_near(spans, spans[keep], JOIN_MARGIN) | _beside(spans, spans[keep])) & heavy
        if not (near & ~keep).any():
            break
        keep |= near
    keep |= _near(spans, spans[keep], SPECK_MARGIN)  # and the specks on it (they never grow it)
    keep_labels = np.concatenate([[False], keep])  # label 0 is the background
    return np.where(keep_labels[labels], ink, 0.0).astype(np.float32), int(heavy.sum())


def lettering_marks(labels: np.ndarray, heavy: np.ndarray) -> np.ndarray:
    """Which marks are heavy and lettering (`_lettering`): pierced by holes or badges."""
    holed, badges = _lettering(labels, heavy)
    return holed | badges


def _lettering(labels: np.ndarray, heavy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which marks are heavy and enclose more holes than a digit has, and which of those are
    solid besides: a badge with an app's name knocked out of it, though it be shrunk until its
    letters' counters are a pixel or two (a digit's strokes never fill their box so:
    `_require_digit_like`). Only a mark with more holes of any size (`_hole_counts`, all marks
    at once) has its holes measured (`_holes`)."""
    holed = np.zeros(len(heavy), dtype=bool)
    badges = np.zeros(len(heavy), dtype=bool)
    suspects = np.flatnonzero(heavy & (_hole_counts(labels, len(heavy)) > MAX_HOLES))
    if suspects.size:
        boxes = ndimage.find_objects(labels)
        for i in suspects:
            mark = labels[boxes[i]] == i + 1
            badges[i] = _badge(mark)
            holed[i] = not badges[i] and _holes(mark) > MAX_HOLES
    return holed, badges


def _badge(mark: np.ndarray) -> bool:
    """Whether a mark fills its box as no digit's strokes do (MAX_SOLIDITY), and is not a
    "1" painted as a bar (MAX_BLOB_ASPECT times taller than wide)."""
    height, width = mark.shape
    return bool(mark.mean() > MAX_SOLIDITY) and height < MAX_BLOB_ASPECT * width


def _hole_counts(labels: np.ndarray, count: int) -> np.ndarray:
    """How many holes each of the marks 1..count encloses, however small: 1 minus its Euler
    number, which Gray's bit quads count in one pass over the 2x2 windows of the labels
    (for 8-connected marks in 4-connected paper: E = (Q1 - Q3 - 2 QD) / 4, Q1 and Q3 the windows
    holding 1 and 3 of its pixels, QD 2 diagonal ones). A window's pixels all belong to one
    mark, since marks are 8-connected."""
    padded = np.zeros((labels.shape[0] + 2, labels.shape[1] + 2), dtype=labels.dtype)
    padded[1:-1, 1:-1] = labels
    ink = padded > 0
    a, b, c, d = ink[:-1, :-1], ink[:-1, 1:], ink[1:, :-1], ink[1:, 1:]
    inked = a.astype(np.int8) + b + c + d
    diagonal = (a == d) & (b == c) & (a != b)
    weight = (inked == 1).astype(np.int8) - (inked == 3) - 2 * diagonal.astype(np.int8)
    counted = weight != 0
    corners = padded[:-1, :-1], padded[:-1, 1:], padded[1:, :-1], padded[1:, 1:]
    owner = np.maximum(np.maximum(corners[0], corners[1]), np.maximum(corners[2], corners[3]))
    euler = np.bincount(owner[counted], weights=weight[counted], minlength=count + 1)[1:] / 4
    return np.rint(1 - euler).astype(np.intp)


def _holes(mark: np.ndarray) -> int:
    """How many holes a mark encloses, counting those of at least 0.2% of its box (and 4 px):
    a digit's loops are large for its size, the counters of lettering small and many."""
    # The holes are the pieces of paper that do not reach the box's edge (4-connected, as
    # binary_fill_holes floods): one labelling instead of a fill and a labelling of the holes.
    paper, count = ndimage.label(~mark)
    sizes = np.bincount(paper.ravel(), minlength=count + 1)
    sizes[0] = 0  # the mark itself
    sizes[np.concatenate([paper[0], paper[-1], paper[:, 0], paper[:, -1]])] = 0  # outside it
    return int((sizes >= max(MIN_HOLE_PIXELS, MIN_HOLE_FRACTION * mark.size)).sum())


def _near(spans: np.ndarray, digit: np.ndarray, margin: float) -> np.ndarray:
    """Which marks (their spans: top, bottom, left, right) lie within the box of the digit's
    marks grown by `margin` times its size."""
    top, bottom, left, right, size = _extent(digit)
    grow = margin * size
    return (
        (spans[:, 0] >= top - grow)
        & (spans[:, 1] <= bottom + grow)
        & (spans[:, 2] >= left - grow)
        & (spans[:, 3] <= right + grow)
    )


def _extent(digit: np.ndarray) -> tuple[int, int, int, int, int]:
    """The box of the digit's marks (their spans): top, bottom, left, right, longer side."""
    top, left = digit[:, [0, 2]].min(axis=0)
    bottom, right = digit[:, [1, 3]].max(axis=0)
    return top, bottom, left, right, max(bottom - top, right - left)


def _beside(spans: np.ndarray, digit: np.ndarray) -> np.ndarray:
    """Which marks come within JOIN_MARGIN (of the digit's size) of the digit's box and are no
    more than BROKEN_EXTENT times as long as it: the other half of a stroke broken in two (a
    pen that skipped, a line too thin for the scan), which may be the longer half (a 6's
    stroke parted from its loop, the loop being the heavier). A ruled line or a page edge is
    longer still."""
    top, bottom, left, right, size = _extent(digit)
    gap = JOIN_MARGIN * size
    extent = np.maximum(spans[:, 1] - spans[:, 0], spans[:, 3] - spans[:, 2])
    return (
        (spans[:, 0] <= bottom + gap)
        & (spans[:, 1] >= top - gap)
        & (spans[:, 2] <= right + gap)
        & (spans[:, 3] >= left - gap)
        & (extent <= BROKEN_EXTENT * size)
    )


def _marks(ink: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """The separate marks of a mask: labels, how many, each one's mass of ink, which are heavy
    (not specks)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        raise NoDigitFound(NO_DIGIT)
    # each mark's ink: np.bincount does what ndimage.sum_labels does at a fraction of its cost
    # (over the marks' pixels only: the same sums, in the same order)
    masses = np.bincount(labels[mask], weights=ink[mask], minlength=count + 1)[1:]
    return labels, count, masses, masses >= SPECK_FRACTION * masses.max()


def _box(values: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), end-exclusive, of the non-zero pixels."""
    rows = np.flatnonzero(values.any(axis=1))
    cols = np.flatnonzero(values.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _crop(values: np.ndarray) -> np.ndarray:
    top, bottom, left, right = _box(values)
    return values[top:bottom, left:right]


def _resize(values: np.ndarray, longer_side: int) -> np.ndarray:
    """Scale a float map so its longer side is `longer_side`, keeping the aspect ratio.

    Area averaging when shrinking is how MNIST's grey levels arose (anti-aliasing); growing a
    small digit wants a smooth interpolation instead.
    """
    height, width = values.shape
    scale = longer_side / max(height, width)
    if scale == 1:
        return values
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.clip(np.asarray(Image.fromarray(values, "F").resize(size, resample)), 0.0, 1.0)


def closed(mask: np.ndarray) -> np.ndarray:
    """The closing of a mask by a cross, exactly ndimage.binary_closing's: the erosion of its
    dilation (a pen of radius 1 is the cross). scipy's general erosion took 1-6 ms for a
    working-size map; this takes 0.16 ms for a 384x199 one."""
    grown = mask.copy()  # the dilation by the cross: each pixel and its four neighbours
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return _eroded(grown)


def _eroded(mask: np.ndarray) -> np.ndarray:
    """The erosion of a mask by a cross, exactly ndimage.binary_erosion's, at a tenth of its
    cost or less: the pixels set whose four neighbours are set (none on the mask's edge, beyond
    which is paper)."""
    eroded = np.zeros_like(mask)
    eroded[1:-1, 1:-1] = (
        mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    )
    return eroded


def stroke_width(mask: np.ndarray) -> float:
    """Mean width of the strokes in a binary mask: a stroke of width w and length L has area wL
    and about 2L boundary pixels."""
    area = int(np.count_nonzero(mask))
    return 2.0 * float(area) / max(area - int(np.count_nonzero(_eroded(mask))), 1)


def _strokes(ink: np.ndarray) -> tuple[np.ndarray, int]:
    """The strokes of an ink map, cut at half the stroke level (the edge of a blurred stroke),
    together with the fainter parts that continue them (hysteresis, as Canny's edges): a pen
    that skips or a pencil pressed lightly leaves a stroke whose middle is faint (the bar of
    a 4), which a single cut would break in two. Faint marks touching no strong stroke stay out.
    Also how many separate pieces they are.
    """
    labels, count = ndimage.label(ink > FAINT_STROKE, structure=np.ones((3, 3)))
    touching = np.zeros(count + 1, dtype=bool)  # the faint marks that hold a strong stroke
    touching[labels[ink > 0.5]] = True
    touching[0] = False
    return touching[labels], int(touching.sum())


def _grown(mask: np.ndarray, radius: float) -> np.ndarray:
    """Every pixel within `radius` px of a set pixel of the mask (dy² + dx² ≤ radius², none
    beyond its edge). The disc is taken row by row: the mask spread sideways by the row's
    half-width (a running maximum along the rows, once for each width) and shifted up or down
    by its offset. A fraction of what the distance transform, or a copy for every pixel of the
    disc, costs."""
    reach, height = int(radius), mask.shape[0]
    limit = radius * radius
    spread = {0: mask}
    grown = np.zeros_like(mask)
    for dy in range(max(-reach, 1 - height), min(reach, height - 1) + 1):
        half = int(np.sqrt(max(limit - dy * dy, 0.0)))  # the widest dx in the disc, exactly:
        while half > 0 and half * half + dy * dy > limit:
            half -= 1
        while (half + 1) * (half + 1) + dy * dy <= limit:
            half += 1
        if half not in spread:
            spread[half] = ndimage.maximum_filter1d(mask, 2 * half + 1, axis=1, mode="constant")
        if dy >= 0:
            grown[: height - dy] |= spread[half][dy:]
        else:
            grown[-dy:] |= spread[half][: height + dy]
    return grown


def restroke(digit: np.ndarray, bridge: bool = True) -> np.ndarray:
    """Redraw a digit with MNIST's pen: crisp strokes of MNIST's width for its size.

    Photos, scans and drawings come with any pen, blur and contrast; MNIST's strokes are about
    2.7 px wide in the 20 px box. The digit is drawn at 4x the final scale, its strokes cut at
    half their level (the edge of a blurred stroke, with the faint parts that continue them),
    thickened or thinned to the target width, gaps narrower than that pen between its pieces
    drawn across (`_bridged`, unless not `bridge`), and returned as a crisp 0/1 map for area
    averaging to anti-alias as MNIST did. A small digit drawn with a thin or a grey pen (a
    32 px scan) comes out as MNIST's pen would have drawn it, too.
    """
    large = _resize(digit, RESTROKE * BOX)
    mask, pieces = _strokes(large)
    if not pieces:
        raise NoDigitFound(NO_DIGIT)
    width = stroke_width(mask)
    target = float(np.clip(width / RESTROKE, *STROKE_RANGE)) * RESTROKE
    if width < target:
        mask = _grown(mask, (target - width) / 2)
    elif width > target:
        thinned = ~_grown(~mask, (width - target) / 2)  # no paper within that reach
        if thinned.any():
            mask = thinned
    if bridge and (pieces > 1 or width > target):  # (thinning may part a stroke at a neck)
        mask = _bridged(mask, target / 2)
    return _crop(mask.astype(np.float32))


def _bridged(mask: np.ndarray, radius: float) -> np.ndarray:
    """The strokes with the gaps between their pieces that are narrower than the pen drawn in
    (a pen that skipped, a line drawn through the digit). What a closing by the pen's disc
    adds is kept where it joins two pieces; where it only fills in one (a corner, a small
    loop), it is not."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count < 2:
        return mask
    reach = int(np.ceil(radius))
    padded = np.pad(mask, reach)  # so the closing is not cut off at the box's edge
    closed = ~_grown(~_grown(padded, radius), radius)[reach:-reach, reach:-reach]
    added, pieces = ndimage.label(closed & ~mask, structure=np.ones((3, 3)))
    if pieces == 0:
        return mask
    # which pieces of the strokes each added region touches: it is kept if two or more (a
    # stroke pixel beside two added regions is credited to the higher-numbered one only)
    touching = ndimage.grey_dilation(added, size=(3, 3))[mask]
    pairs = np.unique(touching * (count + 1) + labels[mask])
    joins = np.bincount(pairs // (count + 1), minlength=pieces + 1) >= 2
    joins[0] = False  # stroke pixels next to no added region
    return mask | joins[added]


def _ink_box(ink: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The ink map cut to its ink's box, and where that lies in the map (top, left).
    `_digit_only` finds in it exactly what it finds in the whole map (the closing it may do
    adds nothing outside the ink's box), at a cost that grows with the box, not the map.

    Raises NoDigitFound when there is no ink."""
    if not ink.any():
        raise NoDigitFound(NO_DIGIT)
    top, bottom, left, right = _box(ink)
    return ink[top:bottom, left:right], (top, left)


def _require_digit_like(
    frame: tuple[int, int], strong: int, digit: np.ndarray, pieces: int
) -> None:
    """Refuse ink that is there but is no digit: a speck, a solid blob, scattered texture
    (`frame`: the shape of the image the ink stands in; `strong`: how many of its pixels are
    over half ink).

    Each rule rejects none of the 10,000 MNIST digits on hand, in any upload style
    (bench/no_digit.py measures this).
    """
    top, bottom, left, right = _box(digit)
    height, width = bottom - top, right - left
    if max(height, width) < max(MIN_DIGIT_PIXELS, MIN_DIGIT_FRACTION * max(frame)):
        raise NoDigitFound(NO_DIGIT)  # a speck of dirt, not a digit
    solid = float((digit[top:bottom, left:right] > 0.5).mean())
    if solid > MAX_SOLIDITY and max(height, width) < MAX_BLOB_ASPECT * min(height, width):
        raise NoDigitFound(NO_DIGIT)  # a filled blob: no strokes (a "1" is filled but thin)
    if strong / (frame[0] * frame[1]) > MAX_COVERAGE:
        raise NoDigitFound(NO_DIGIT)  # ink over most of the frame: a texture or a photo
    if pieces > MAX_PIECES:
        raise NoDigitFound(NO_DIGIT)  # many separate marks: text, noise or a pattern


def frame_digit(ink: np.ndarray, bridge: bool = True, pad: int = 0) -> np.ndarray:
    """Crop to the digit's ink, scale its longer side to 20 px, centre its mass in 28x28
    (`bridge`: as `restroke`). `pad`: the ink stands in that many px of paper on each side,
    as if it were `np.pad(ink, pad)` (the padded map is not built)."""
    box, (top, left) = _ink_box(ink)
    digit, pieces = _digit_only(box, (top + pad, left + pad))
    frame = (ink.shape[0] + 2 * pad, ink.shape[1] + 2 * pad)
    _require_digit_like(frame, int(np.count_nonzero(box > 0.5)), digit, pieces)
    digit = _crop(digit)
    digit = restroke(digit, bridge)
    digit = _resize(digit, BOX)
    height, width = digit.shape
    mass = float(digit.sum())
    if mass <= 0:
        raise NoDigitFound(NO_DIGIT)
    row_centre = float(np.arange(height) @ digit.sum(axis=1)) / mass
    col_centre = float(np.arange(width) @ digit.sum(axis=0)) / mass
    top = min(max(round(CENTRE - row_centre), 0), SIDE - height)
    left = min(max(round(CENTRE - col_centre), 0), SIDE - width)
    framed = np.zeros((SIDE, SIDE), dtype=np.float32)
    framed[top : top + height, left : left + width] = digit
    return framed


def _zoom(image: Image.Image, ink: np.ndarray) -> Image.Image | None:
    """The part of `image` around a digit that came out small in the reduced ink map.

    Large frames are reduced to WORK_SIDE for speed; a digit filling a small part of such a
    frame (a photo of a sheet, a small drawing in a corner) then has too few pixels to redraw.
    Cropping the original around it and starting again recovers the lost resolution.
    """
    scale = max(image.size) / max(ink.shape)
    if scale <= 1.01:
        return None
    marks, (row, col) = _ink_box(ink)
    top, bottom, left, right = _box(_digit_only(marks, (row, col))[0])
    top, bottom, left, right = top + row, bottom + row, left + col, right + col
    if max(bottom - top, right - left) >= RESTROKE * BOX:
        return None
    margin = ZOOM_MARGIN * max(bottom - top, right - left)
    box = (
        max(0, int((left - margin) * scale)),
        max(0, int((top - margin) * scale)),
        min(image.width, int((right + margin) * scale) + 1),
        min(image.height, int((bottom + margin) * scale) + 1),
    )
    return image.crop(box)


def preprocess(data: bytes, max_pixels: int) -> np.ndarray:
    """An uploaded file's bytes to a 28x28 float32 digit in 0..1, white ink on black, as MNIST."""
    return normalise(decode(data, max_pixels))


def preprocess_many(uploads: list[bytes], max_pixels: int) -> list[np.ndarray | ServiceError]:
    """`preprocess` for many uploads at once: each item a digit, or the error for that upload."""
    return [
        item if isinstance(item, ServiceError) else item[0]
        for item in prepare_many(uploads, max_pixels)
    ]


def normalise_many(
    images: list[Image.Image | ServiceError],
    guard: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> list[np.ndarray | ServiceError]:
    """`normalise` for many decoded images at once; errors in the list pass through.

    Images already in MNIST's normal form are recognised together, with whole-batch array
    operations, and pass through as they are; the others take the full path one by one.
    """
    results: list[np.ndarray | ServiceError | None] = [
        image if isinstance(image, ServiceError) else None for image in images
    ]
    decoded = [(i, image) for i, image in enumerate(images) if isinstance(image, Image.Image)]
    candidates = [(index, image) for index, image in decoded if _maybe_normal(image)]
    if candidates:
        stack = np.stack([np.asarray(image) for _, image in candidates])
        for (index, _), normal, pixels in zip(
            candidates, _in_normal_form(stack), stack, strict=True
        ):
            if normal:
                results[index] = pixels.astype(np.float32) / 255
    for index, image in decoded:
        if results[index] is None:  # the normal-form check above already failed for these
            results[index] = guarded(guard, _normalise_fully, image)
    return [result for result in results if result is not None]


def _maybe_normal(image: Image.Image) -> bool:
    return image.size == (SIDE, SIDE) and image.mode == "L" and not image.info.get("lossy")


def _in_normal_form(stack: np.ndarray) -> np.ndarray:
    """Which of these (n, 28, 28) uint8 images already are what MNIST's normalisation makes:
    light ink on a black ground that touches no edge, strong strokes, an ink box 20 px on its
    longer side, the centre of mass within half a pixel of the centre, and digit-like ink
    (the rules of _require_digit_like that can be read without labelling blobs).

    Each rule is one operation on the whole batch: this runs on every MNIST-format upload, and
    for one image numpy's cost per call is most of its cost."""
    row_mass = stack.sum(axis=2, dtype=np.float64)  # (n, 28)
    col_mass = stack.sum(axis=1, dtype=np.float64)
    rows, cols = row_mass > 0, col_mass > 0
    height, width = _lengths(rows), _lengths(cols)
    longer = np.maximum(height, width)
    mass = np.maximum(row_mass.sum(axis=1), 1)
    off_centre = np.maximum(
        np.abs(row_mass @ _PIXEL_CENTRES / mass - CENTRE),
        np.abs(col_mass @ _PIXEL_CENTRES / mass - CENTRE),
    )
    edges = rows[:, 0] | rows[:, -1] | cols[:, 0] | cols[:, -1]
    strong: np.ndarray = stack > 127
    strong_pixels = strong.sum(axis=(1, 2))
    blob = (strong_pixels > MAX_SOLIDITY * height * width) & (
        longer < MAX_BLOB_ASPECT * np.minimum(height, width)
    )
    return (
        ~edges
        & ~blob
        & (longer == BOX)
        & (off_centre <= 0.5)
        & (stack.max(axis=(1, 2)) >= 230)
        & (strong_pixels <= MAX_COVERAGE * SIDE * SIDE)
        & (_pieces(strong) <= MAX_PIECES)
    )


_PIXEL_CENTRES = np.arange(SIDE, dtype=np.float64)
_EIGHT_WITHIN_AN_IMAGE = np.zeros((3, 3, 3), dtype=bool)
_EIGHT_WITHIN_AN_IMAGE[1] = True  # 8-connected within an image, never across images


def _lengths(present: np.ndarray) -> np.ndarray:
    """For (n, 28) booleans, how far it is from each row's first True past its last (0: none)."""
    first = present.argmax(axis=1)
    past_last = SIDE - present[:, ::-1].argmax(axis=1)
    return np.where(present[:, 0] | (first > 0), past_last - first, 0)


def _pieces(strong: np.ndarray) -> np.ndarray:
    """How many separate strong marks each (n, 28, 28) mask holds: one labelling for all.

    Labels are numbered in scan order and no mark spans two images, so an image's marks are
    the numbers after the highest of the images before it."""
    labels, _ = ndimage.label(strong, structure=_EIGHT_WITHIN_AN_IMAGE)
    highest = np.maximum.accumulate(labels.reshape(len(strong), -1).max(axis=1))
    pieces = highest.copy()
    pieces[1:] -= highest[:-1]
    return pieces


def normalise(image: Image.Image) -> np.ndarray:
    """A decoded image to a 28x28 float32 digit in 0..1, white ink on black, as MNIST."""
    if _maybe_normal(image):
        pixels = np.asarray(image)
        if _in_normal_form(pixels[np.newaxis])[0]:
            return pixels.astype(np.float32) / 255
    return _normalise_fully(image)


def digit_ink(image: Image.Image) -> np.ndarray:
    """The digit's own ink in a decoded upload, cropped to it (1 ink, 0 paper), clutter
    erased: what `frame_digit` starts from. (bench/numbers.py builds numbers of real digits
    from it.)"""
    ink = ink_map(image)
    zoomed = _zoom(image, ink)
    if zoomed is not None:
        ink = ink_map(zoomed)
    return _crop(_digit_only(*_ink_box(ink))[0])


def _normalise_fully(image: Image.Image) -> np.ndarray:
    """Ink from paper, zoom if the digit is small in a large frame, then frame the digit."""
    ink = ink_map(image)
    zoomed = _zoom(image, ink)
    if zoomed is not None:
        ink = ink_map(zoomed)
    return frame_digit(ink)
