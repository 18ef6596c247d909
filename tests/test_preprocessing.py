"""Preprocessing: any upload becomes the 28x28 digit MNIST's normalisation would have produced."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from scipy import ndimage

import dataset
import model
import preprocessing
import styles
from conftest import png
from errors import EmptyUpload, InvalidImage, NoDigitFound, PayloadTooLarge, ServiceError
from nondigits import NON_DIGITS

LIMIT = 50_000_000


def run(data: bytes) -> np.ndarray:
    return preprocessing.preprocess(data, LIMIT)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_mnist_format_passes_through_unchanged(holdout: dataset.Digits) -> None:
    """An MNIST digit uploaded as a PNG comes out as itself: MNIST's normalisation is a fixed
    point. Digits in its exact normal form pass through bit for bit; the few that miss it
    (a faint digit) are redrawn with MNIST's pen like any other upload and framed as MNIST
    frames (the model reads all 2,000 held-out digits redrawn exactly as well as as they are:
    BENCHMARKS.md, "Real uploads")."""
    out = [run(png(digit)) for digit in holdout.images]
    exact = [np.array_equal(o * 255, digit) for o, digit in zip(out, holdout.images, strict=True)]
    assert len(exact) == 198
    assert sum(exact) == 195
    for redrawn in [o for o, same in zip(out, exact, strict=True) if not same]:
        rows, cols = np.flatnonzero(redrawn.any(axis=1)), np.flatnonzero(redrawn.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == preprocessing.BOX
        centre = [np.average(np.arange(28), weights=redrawn.sum(axis=a)) for a in (1, 0)]
        assert np.abs(np.array(centre) - preprocessing.CENTRE).max() <= 0.5


def test_marks_are_counted_per_image_in_a_batch() -> None:
    """One labelling counts the strong marks of every image of a batch (8-connected, never
    across images), blank images among them included."""
    masks = np.zeros((5, 28, 28), dtype=bool)
    masks[1, 2:5, 2:5] = masks[1, 10, 10] = masks[1, 11, 11] = True  # 2: diagonal joins
    masks[1, 20:22, 0:28] = True  # 3
    masks[3, 27, 27] = True  # 1, at the corner next to image 4's first pixel
    masks[4, 0, 0] = masks[4, 5, 5] = True  # 2
    assert preprocessing._pieces(masks).tolist() == [0, 3, 0, 1, 2]
    assert [preprocessing._pieces(mask[None])[0] for mask in masks] == [0, 3, 0, 1, 2]


def test_many_uploads_at_once_match_one_by_one(holdout: dataset.Digits) -> None:
    rng = np.random.default_rng(2)
    uploads = [png(d) for d in holdout.images[:40]] + [styles.paper_photo(holdout.images[0], rng)]
    uploads += [
        b"",
        b"not an image",
        NON_DIGITS["a solid square"],
        png(np.pad(np.full((20, 20), 255, np.uint8), 4)),
    ]
    together = preprocessing.preprocess_many(uploads, LIMIT)
    assert len(together) == len(uploads)
    for data, result in zip(uploads, together, strict=True):
        try:
            alone: np.ndarray | ServiceError = run(data)
        except ServiceError as error:
            alone = error
        if isinstance(alone, ServiceError):
            assert isinstance(result, type(alone)) and result.detail == alone.detail
        else:
            assert isinstance(result, np.ndarray) and np.array_equal(result, alone)
    assert [type(r).__name__ for r in together[-4:]] == [
        "EmptyUpload",
        "InvalidImage",
        "NoDigitFound",
        "NoDigitFound",
    ]


@pytest.fixture(scope="module")
def digit(holdout: dataset.Digits) -> np.ndarray:
    return holdout.images[3]  # a 3


@pytest.fixture(scope="module")
def reference(digit: np.ndarray) -> np.ndarray:
    return run(png(digit))


def as_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), "RGB")


def large_dark_on_light(digit: np.ndarray) -> np.ndarray:
    """The digit drawn at 10x, black on white, as a scan or a drawing would be."""
    return (255 - styles._pen(digit, 10) * 255).astype(np.uint8)


FORMATS = {
    # name: how to make the upload from a 28x28 MNIST digit
    "grey PNG": lambda d: png(d),
    "RGB PNG": lambda d: encode(as_rgb(d), "PNG"),
    "BMP": lambda d: encode(Image.fromarray(d), "BMP"),
    "GIF": lambda d: encode(Image.fromarray(d), "GIF"),
    "TIFF": lambda d: encode(Image.fromarray(d), "TIFF"),
    "WebP lossless": lambda d: encode(as_rgb(d), "WEBP", lossless=True),
    "HEIC": lambda d: encode(as_rgb(d), "HEIF", quality=90),
    "AVIF": lambda d: encode(as_rgb(d), "AVIF", quality=90),
    "JPEG with a gain map (MPO)": lambda d: encode(
        as_rgb(d), "MPO", quality=95, save_all=True, append_images=[Image.fromarray(d[::2, ::2])]
    ),
    "16-bit PNG": lambda d: encode(Image.fromarray(d.astype(np.uint16) * 257), "PNG"),
    "palette PNG": lambda d: encode(Image.fromarray(d).convert("P"), "PNG"),
    "grey+alpha PNG": lambda d: encode(
        Image.fromarray(np.stack([d, np.full_like(d, 255)], -1), "LA"), "PNG"
    ),
    "JPEG": lambda d: encode(Image.fromarray(d), "JPEG", quality=95),
    "CMYK JPEG": lambda d: encode(as_rgb(d).convert("CMYK"), "JPEG", quality=95),
    "black on white": lambda d: png(255 - d),
}


@pytest.fixture(scope="module")
def redrawn(digit: np.ndarray) -> np.ndarray:
    """The digit as every upload not already in MNIST's normal form comes out: redrawn."""
    return preprocessing.frame_digit(preprocessing.ink_map(Image.fromarray(digit)))


def test_a_redrawn_digit_is_close_to_the_original(
    redrawn: np.ndarray, reference: np.ndarray
) -> None:
    assert np.corrcoef(redrawn.ravel(), reference.ravel())[0, 1] > 0.95


@pytest.mark.parametrize("make", FORMATS.values(), ids=FORMATS.keys())
def test_every_format_and_mode_gives_the_same_digit(
    make: styles.Style, digit: np.ndarray, reference: np.ndarray, redrawn: np.ndarray
) -> None:
    out = run(make(digit))  # type: ignore[call-arg]
    assert out.shape == (28, 28)
    assert out.dtype == np.float32
    best = max(np.corrcoef(out.ravel(), same.ravel())[0, 1] for same in (reference, redrawn))
    assert best > 0.97


LARGE_FORMATS = {
    "transparent canvas, dark strokes": lambda d: encode(
        Image.fromarray(np.stack([np.zeros_like(d), 255 - d], -1), "LA"), "PNG"
    ),
    "palette PNG with a transparent index": lambda d: encode(
        Image.fromarray(d).convert("P"), "PNG", transparency=255
    ),
    "1-bit": lambda d: encode(Image.fromarray(d).convert("1"), "PNG"),
    "uneven light": lambda d: encode(
        Image.fromarray((d * np.linspace(0.55, 1.0, d.shape[1])[None, :]).astype(np.uint8)), "PNG"
    ),
}


@pytest.mark.parametrize("make", LARGE_FORMATS.values(), ids=LARGE_FORMATS.keys())
def test_large_drawings_in_any_mode_give_the_same_digit(
    make: styles.Style, digit: np.ndarray
) -> None:
    drawing = large_dark_on_light(digit)  # 280x280, black on white
    expected = run(encode(Image.fromarray(drawing), "PNG"))
    out = run(make(drawing))  # type: ignore[call-arg]
    assert np.corrcoef(out.ravel(), expected.ravel())[0, 1] > 0.95


@pytest.mark.parametrize(
    ("mode", "stored"), [("RGBA", "RGBA"), ("LA", "LA"), ("RGBA", "RGBa"), ("LA", "La")]
)
def test_transparent_images_are_reduced_as_pillow_reduces_grey_and_alpha(
    mode: str, stored: str
) -> None:
    """Images with straight alpha are reduced on two one-byte images (the luminance over
    black, the opacity), not Pillow's four-byte LA pixels: the same opacity and the same
    premultiplied luminance to the bit, the luminance itself unrounded. Colours and opacities
    of every level, transparent, partly and fully opaque regions, reduced 1.8x (and not
    reduced: the luminance and opacity as Pillow's LA gives them). An image
    `stored` premultiplied (a TIFF's associated alpha) is read as the same image with
    straight alpha: its colours were rounded twice more (within 2/255 premultiplied)."""
    rng = np.random.default_rng(5)
    shape = (500, 700)
    colours = ndimage.zoom(rng.integers(0, 256, (10, 14, 3)).astype(float), (50, 50, 1), order=1)
    opacity = np.clip(ndimage.zoom(rng.uniform(-1, 2, (10, 14)), 50, order=1), 0, 1)
    pixels = np.dstack([colours, opacity[..., None] * 255]).round().astype(np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    assert pixels[..., 3].min() == 0 and pixels[..., 3].max() == 255 and pixels.shape[:2] == shape

    gray, alpha, _ = preprocessing._gray_and_alpha(image.convert(stored), 384)
    assert alpha is not None

    reference = np.asarray(preprocessing._shrink(image.convert("LA").convert("La"), 384))
    assert gray.shape == alpha.shape == reference.shape[:2] == (274, 384)
    assert np.array_equal(alpha, reference[..., 1] / np.float32(255))
    exact = 1e-6 if stored == mode else 2 / 255
    assert np.allclose(gray * alpha, reference[..., 0] / np.float32(255), rtol=0, atol=exact)
    assert gray.min() >= 0 and gray.max() <= 1

    small = image.crop((0, 0, 384, 300))  # not reduced: luminance and opacity as they are
    gray, alpha, _ = preprocessing._gray_and_alpha(small.convert(stored), 384)
    as_la = np.asarray(small.convert("LA")) / np.float32(255)
    assert alpha is not None and np.array_equal(alpha, as_la[..., 1])
    if stored == mode:
        assert np.array_equal(gray, as_la[..., 0])

    opaque = Image.fromarray(pixels[..., :3]).convert(mode[:-1])
    opaque.putalpha(255)  # an alpha channel with nothing transparent: read as without one
    assert preprocessing._gray_and_alpha(opaque, 384)[1] is None

    # black strokes on clear paper, as a canvas exports them: only the opacity is averaged
    black = np.zeros_like(pixels)
    black[..., 3] = pixels[..., 3]
    gray, alpha, _ = preprocessing._gray_and_alpha(
        Image.fromarray(black, "RGBA").convert(mode), 384
    )
    assert alpha is not None and np.array_equal(alpha, reference[..., 1] / np.float32(255))
    assert gray.shape == alpha.shape and not gray.any()


def test_exif_orientation_is_applied(digit: np.ndarray) -> None:
    drawing = Image.fromarray(large_dark_on_light(digit))
    upright = run(encode(drawing, "JPEG", quality=95))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored = drawing.rotate(90, expand=True)  # what a camera held sideways stores
    turned = run(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert np.corrcoef(turned.ravel(), upright.ravel())[0, 1] > 0.97
    assert np.corrcoef(run(encode(stored, "JPEG", quality=95)).ravel(), upright.ravel())[0, 1] < 0.5


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_a_phone_s_heic_or_avif_is_turned_by_its_rotation_box(fmt: str, digit: np.ndarray) -> None:
    """A phone stores its photo as the sensor saw it and an 'irot' box that turns it upright
    (pillow-heif and Pillow write the EXIF orientation they are given as one): libheif turns a
    HEIC as it decodes it, Pillow an AVIF by the orientation it reads from the box; either
    way the upload is read upright, once, and is lossy."""
    photo = Image.new("RGB", (360, 280), "white")  # the digit drawn large on a wider page
    photo.paste(Image.fromarray(large_dark_on_light(digit)), (40, 0))
    upright = run(encode(photo, "PNG"))
    stored = photo.rotate(90, expand=True)  # 280x360, on its side
    data = encode(stored, fmt, quality=90, exif=_exif_turning().tobytes())
    assert b"irot" in data
    image = preprocessing.decode(data, LIMIT)
    assert (image.format, image.size, image.info["full_size"]) == (fmt, (360, 280), (360, 280))
    assert image.info["lossy"]
    assert np.corrcoef(run(data).ravel(), upright.ravel())[0, 1] > 0.97
    unturned = run(encode(stored, fmt, quality=90))
    assert np.corrcoef(unturned.ravel(), upright.ravel())[0, 1] < 0.5


def test_a_jpeg_with_a_gain_map_is_read_as_the_jpeg_it_is(digit: np.ndarray) -> None:
    """An Ultra HDR photo (recent Android phones) is a JPEG with its gain map behind it, found
    through an MPF segment, which Pillow opens as an MPO file. It is read as its JPEG is: the
    same pixels, decoded reduced to the working size, lossy, and said to be a JPEG (it was
    decoded whole, as a lossless picture: 7x the time of its JPEG for a 12 MP photo)."""
    photo = Image.new("RGB", (1600, 1200), "white")  # the digit, 800 px high, on a page
    photo.paste(Image.fromarray(large_dark_on_light(digit)).resize((800, 800)), (400, 200))
    gain = photo.convert("L").resize((400, 300))
    ultra_hdr = encode(photo, "MPO", quality=90, save_all=True, append_images=[gain])
    assert Image.open(io.BytesIO(ultra_hdr)).format == "MPO"
    image = preprocessing.decode(ultra_hdr, LIMIT)
    plain = preprocessing.decode(encode(photo, "JPEG", quality=90), LIMIT)
    assert (image.format, image.size, image.info["lossy"]) == ("JPEG", (800, 600), True)
    assert image.info["full_size"] == (1600, 1200)
    assert image.tobytes() == plain.tobytes()


def _drawn_in(mode: str, digit: np.ndarray) -> Image.Image:
    """The digit drawn large in a mode, every channel and the alpha carrying some of it."""
    drawing = large_dark_on_light(digit)
    colour = np.stack([drawing, drawing // 2, 255 - drawing, drawing], -1)  # R, G, B, A
    return Image.fromarray(colour, "RGBA").convert(mode)


PNG_KINDS: dict[str, tuple[Callable[[np.ndarray], bytes], bool]] = {
    # name: (the PNG file, whether libspng decodes it: 8 bits a sample, no palette, ...)
    "grey": (lambda d: encode(_drawn_in("L", d), "PNG"), True),
    "grey, alpha": (lambda d: encode(_drawn_in("LA", d), "PNG"), False),
    "RGB": (lambda d: encode(_drawn_in("RGB", d), "PNG"), True),
    "RGBA": (lambda d: encode(_drawn_in("RGBA", d), "PNG"), True),
    "RGBA, compressed hard": (lambda d: encode(_drawn_in("RGBA", d), "PNG", optimize=True), True),
    "16-bit grey": (lambda d: encode(_drawn_in("L", d).convert("I;16"), "PNG"), False),
    "palette": (lambda d: encode(_drawn_in("RGB", d).convert("P"), "PNG"), False),
    "grey, a transparent level": (
        lambda d: encode(_drawn_in("L", d), "PNG", transparency=255),
        False,
    ),
    "1-bit": (lambda d: encode(_drawn_in("L", d).convert("1"), "PNG"), False),
}


@pytest.mark.parametrize("kind", PNG_KINDS)
def test_pngs_decode_to_pillow_s_own_pixels(kind: str, digit: np.ndarray) -> None:
    """Plain PNGs are decoded by libspng, the others by Pillow; all to the pixels Pillow
    itself decodes, in its mode."""
    make, by_libspng = PNG_KINDS[kind]
    data = make(digit)
    theirs = Image.open(io.BytesIO(data))
    theirs.load()
    ours = preprocessing.decode(data, LIMIT)
    assert (ours.mode, ours.size, ours.format) == (theirs.mode, theirs.size, "PNG")
    assert ours.tobytes() == theirs.tobytes()
    assert isinstance(ours, PngImagePlugin.PngImageFile) is not by_libspng


WEBP_KINDS: dict[str, tuple[dict[str, Any], bool]] = {
    # name: (how it is saved, whether its pixels carry a lossy codec's ringing)
    "lossy": ({"quality": 50}, True),
    "lossless": ({"lossless": True}, False),
    "lossy, with alpha": ({"quality": 50, "mode": "RGBA"}, True),
    "lossless, with alpha": ({"lossless": True, "mode": "RGBA"}, False),
    "lossy, animated": ({"quality": 50, "frames": 2}, True),
    "lossless, animated": ({"lossless": True, "frames": 2}, False),
}


@pytest.mark.parametrize("kind", WEBP_KINDS)
def test_a_webp_is_lossy_when_its_picture_is(kind: str, digit: np.ndarray) -> None:
    """A WebP's picture is a "VP8 " chunk when lossy, "VP8L" when not, also behind the
    extended header of one with alpha and inside an animation's frames."""
    options, lossy = WEBP_KINDS[kind]
    options = dict(options)
    image = _drawn_in(str(options.pop("mode", "RGB")), digit)
    frames = int(options.pop("frames", 1))
    more = [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)] * (frames - 1)
    data = encode(image, "WEBP", save_all=frames > 1, append_images=more, **options)
    assert preprocessing.decode(data, LIMIT).info["lossy"] is lossy


def test_a_lossy_webp_s_ringing_is_no_ink(digit: np.ndarray) -> None:
    """A drawing saved as a lossy WebP (quality 50, as a browser's canvas may export it): its
    blocks ring around the strokes as a JPEG's do, specks a grey level or two off the page,
    which on a flawless page would be ink. The ink map holds the strokes alone, one mark."""
    drawing = large_dark_on_light(digit)
    strokes = ndimage.binary_dilation(drawing < 250, iterations=3)
    data = encode(Image.fromarray(drawing).convert("RGB"), "WEBP", quality=50)
    ink = preprocessing.ink_map(preprocessing.decode(data, LIMIT), max(drawing.shape)) > 0
    assert ink.any() and not ink[~strokes].any()
    assert ndimage.label(ink, np.ones((3, 3)))[1] == 1


def _exif_turning() -> Image.Exif:
    exif = Image.Exif()
    exif[preprocessing.EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    return exif


def _text(key: str, value: str) -> PngImagePlugin.PngInfo:
    chunks = PngImagePlugin.PngInfo()
    chunks.add_itxt(key, value)
    return chunks


TURNED_PNGS: dict[str, Callable[[], dict[str, Any]]] = {
    # where a PNG keeps its orientation: name -> save options
    "eXIf chunk": lambda: {"exif": _exif_turning()},
    "EXIF as text (ImageMagick)": lambda: {
        "pnginfo": _text(
            "Raw profile type exif",
            "\nexif\n" + f"{len(raw := _exif_turning().tobytes()):8d}\n" + raw.hex() + "\n",
        )
    },
    "XMP": lambda: {
        "pnginfo": _text(
            "XML:com.adobe.xmp",
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
            '02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"'
            ' tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>',
        )
    },
}


@pytest.mark.parametrize("where", TURNED_PNGS)
def test_a_png_s_orientation_is_applied_wherever_it_keeps_it(where: str, digit: np.ndarray) -> None:
    """A plain PNG that says it is to be turned is turned, as Pillow reads the orientation."""
    stored = _drawn_in("RGBA", digit).rotate(90, expand=True)
    width, height = stored.size
    turned = preprocessing.decode(encode(stored, "PNG", **TURNED_PNGS[where]()), LIMIT)
    assert turned.size == (height, width)
    assert turned.tobytes() == stored.transpose(Image.Transpose.ROTATE_270).tobytes()


def test_a_picture_is_found_in_its_frame_where_a_stroke_runs_into_its_edge() -> None:
    """A white picture in a black frame, a stroke running into its lower edge along most of
    it: the band below is frame all the same, being of the level that meets the picture along
    a straight line above and at the sides. The picture's outermost pixels are left out (they
    may mix the two)."""
    gray = np.zeros((100, 120), np.float32)
    gray[20:80, 20:100] = 1.0
    gray[60:80, 30:80] = 0.0
    assert preprocessing._picture_in_frame(gray) == (slice(21, 79), slice(21, 99))


def test_paper_around_a_digit_or_a_box_drawn_on_it_is_no_frame() -> None:
    """The paper's margin meets a digit in a few strokes; a box drawn on the paper meets it
    along straight lines, but holds the same paper."""
    page = np.ones((100, 120), np.float32)
    page[30:70, 50:58] = 0.0  # a 1
    page[30:34, 44:58] = 0.0  # its flag
    assert preprocessing._picture_in_frame(page) is None
    page = np.ones((100, 120), np.float32)
    page[20:80, 20:100] = 0.0
    page[23:77, 23:97] = 1.0  # a box around a digit
    page[35:65, 55:60] = 0.0
    assert preprocessing._picture_in_frame(page) is None


def test_a_shadow_across_the_page_is_no_frame() -> None:
    """A page lit from one side darkens across: its columns are even, each a little darker
    than the one before, but no step parts a frame from a picture."""
    page = np.tile(np.linspace(1.0, 0.45, 120, dtype=np.float32), (100, 1))
    page[30:70, 50:58] = 0.0  # a 1
    assert preprocessing._picture_in_frame(page) is None


def test_a_picture_in_a_frame_saved_as_a_jpeg_is_found_past_its_ringing(
    digit: np.ndarray,
) -> None:
    """A JPEG's blocks ring where a white frame meets a grey photo: the frame's even lines
    end a few pixels short of the picture, which is found all the same, to a pixel."""
    photo = np.full((200, 160), 150, np.uint8)
    photo[30:170, 10:150] -= (styles._pen(digit, 5) * 120).astype(np.uint8)
    page = np.full((300, 240), 255, np.uint8)
    page[53:253, 37:197] = photo
    data = encode(Image.fromarray(page), "JPEG", quality=75)
    gray, _, _ = preprocessing._gray_and_alpha(preprocessing.decode(data, 50_000_000), 384)
    picture = preprocessing._picture_in_frame(gray)
    assert picture is not None
    rows, columns = picture
    assert abs(rows.start - 54) <= 1 and abs(rows.stop - 252) <= 1
    assert abs(columns.start - 38) <= 1 and abs(columns.stop - 196) <= 1


def test_a_bold_digit_filling_its_box_is_no_picture() -> None:
    """A bold 0 drawn square, light on dark (as MNIST draws): its box's sides are mostly ink,
    and so is most of the box, but its top begins with a shorter stroke, at the frame's level
    at its ends: no picture, however far a JPEG's ringing is looked past."""
    gray = np.zeros((28, 28), np.float32)
    gray[4:24, 6:22] = 1.0
    gray[9:19, 11:17] = 0.0  # its hole
    gray[3, 8:20] = 1.0  # the top of its round
    assert preprocessing._picture_in_frame(gray) is None


def test_digit_is_centred_by_mass_in_a_20px_box(digit: np.ndarray) -> None:
    frame = np.full((300, 500), 255, np.uint8)
    frame[200:280, 380:460] = 255 - styles._pen(digit, 3)[2:82, 2:82] * 255
    out = run(png(frame))
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == 20
    mass = out.sum()
    centre = (np.arange(28) @ out.sum(axis=1) / mass, np.arange(28) @ out.sum(axis=0) / mass)
    assert abs(centre[0] - 14) <= 0.5
    assert abs(centre[1] - 14) <= 0.5


def bomb() -> bytes:
    """A 1-bit PNG whose header claims 20000x20000 pixels: small on disk, 400 MP decoded."""
    header = struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0)
    chunks = [(b"IHDR", header), (b"IDAT", zlib.compress(b"\x00" * 2501 * 64)), (b"IEND", b"")]
    body = b"".join(
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        for kind, data in chunks
    )
    return b"\x89PNG\r\n\x1a\n" + body


GOOD_PNG = png(np.pad(np.full((10, 4), 255, np.uint8), 9))
BAD_INPUTS = [
    # (upload bytes, error class, exact message or its start)
    (b"", EmptyUpload, "The uploaded file is empty."),
    (b"just some text, not an image", InvalidImage, "File provided is not an image."),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, InvalidImage, "File provided is not an image."),
    (GOOD_PNG[: len(GOOD_PNG) // 2], InvalidImage, "The image is truncated or corrupt"),
    (
        bomb(),
        PayloadTooLarge,
        "Image is 20000x20000 pixels (400.0 megapixels); the limit is 50 megapixels.",
    ),
    (png(np.full((64, 64), 255, np.uint8)), NoDigitFound, "No digit found in the image."),
    (png(np.zeros((28, 28), np.uint8)), NoDigitFound, "No digit found in the image."),
    (png(np.full((40, 40), 128, np.uint8)), NoDigitFound, "No digit found in the image."),
    (encode(Image.new("RGBA", (50, 50)), "PNG"), NoDigitFound, "No digit found in the image."),
]


@pytest.mark.parametrize("data", NON_DIGITS.values(), ids=NON_DIGITS.keys())
def test_images_without_a_digit_get_no_guess(data: bytes) -> None:
    with pytest.raises(NoDigitFound) as raised:
        run(data)
    assert raised.value.detail == "No digit found in the image."


@pytest.mark.parametrize(("data", "error", "message"), BAD_INPUTS)
def test_bad_uploads_raise_clear_errors(
    data: bytes, error: type[ServiceError], message: str
) -> None:
    with pytest.raises(error) as raised:
        run(data)
    assert raised.value.detail.startswith(message)


def test_confident_digits_read_the_same_in_every_upload_style(
    trained: model.DigitModel, holdout: dataset.Digits
) -> None:
    """Digits the model reads right, with confidence >= 0.5, in MNIST format are read the same
    when photographed, drawn on a canvas, written small in a corner, with a thick marker,
    turned or blurred. (Accuracy per style on 1,000 digits: the benchmark bench/styles.py.)"""
    sample = holdout.images[:30]
    base = trained.probabilities(np.stack([run(png(d)) for d in sample]))
    confident = (base.max(axis=1) >= 0.5) & (base.argmax(axis=1) == holdout.labels[:30])
    assert confident.sum() == 29
    for name, style in styles.STYLES.items():
        rng = np.random.default_rng(1)
        uploads = np.stack([run(style(d, rng)) for d in sample])
        predicted = trained.probabilities(uploads).argmax(axis=1)
        assert predicted[confident].tolist() == base.argmax(axis=1)[confident].tolist(), name


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.7, 2.8, 4.2, 6.5])
def test_a_pen_grows_exactly_as_the_distance_transform_says(radius: float) -> None:
    """The row-by-row dilation restroke uses is the Euclidean distance transform's, bit for
    bit, at the edges too (nothing beyond the map counts as ink), small radius or large, on
    maps as thin as a pixel. Nothing grows from nothing: a stroke that fills its whole box is
    thinned by no paper (the distance transform of an empty mask measures from a corner
    outside the map, and once bit that corner off a solid bar)."""
    assert not preprocessing._grown(np.zeros((20, 30), dtype=bool), radius).any()
    rng = np.random.default_rng(int(radius * 10))
    for _ in range(40):
        mask = rng.random((int(rng.integers(1, 90)), int(rng.integers(1, 90)))) > 0.97
        mask.flat[rng.integers(mask.size)] = True
        expected = ndimage.distance_transform_edt(~mask) <= radius
        assert np.array_equal(preprocessing._grown(mask, radius), expected)


def test_the_closing_of_pieces_is_scipys_bit_for_bit() -> None:
    """`closed`, which joins pieces a line a pixel wide cut apart, is ndimage.binary_closing
    exactly: on maps from 1 px to working size, sparse to nearly full, at the edges too."""
    rng = np.random.default_rng(11)
    for density in (0.02, 0.2, 0.5, 0.8, 0.98):
        for _ in range(30):
            shape = (int(rng.integers(1, 60)), int(rng.integers(1, 60)))
            mask = rng.random(shape) < density
            assert np.array_equal(preprocessing.closed(mask), ndimage.binary_closing(mask))
    strokes = rng.random((354, 384)) < 0.1
    assert np.array_equal(preprocessing.closed(strokes), ndimage.binary_closing(strokes))


def test_a_gap_narrower_than_the_pen_is_drawn_across() -> None:
    """A stroke cut by a line (a pen that skipped) is joined again where the gap is narrower
    than the pen; a wider gap, a corner and a small loop of one stroke are left as they are."""
    stroke = np.zeros((60, 40), dtype=bool)
    stroke[5:55, 15:25] = True  # a stroke 10 px wide...
    cut = stroke.copy()
    cut[28:32] = False  # ...with a gap of 4 px
    bridged = preprocessing._bridged(cut, 5.0)
    assert ndimage.label(bridged, structure=np.ones((3, 3)))[1] == 1
    assert np.array_equal(bridged[:28] | bridged[32:], cut[:28] | cut[32:])  # only the gap
    assert bridged[28:32, 16:24].all()
    assert not (bridged[28:32, :15].any() or bridged[28:32, 25:].any())
    wide = stroke.copy()
    wide[24:36] = False  # a gap of 12 px: wider than the pen
    assert np.array_equal(preprocessing._bridged(wide, 5.0), wide)
    corner = np.zeros((60, 60), dtype=bool)
    corner[5:15, 5:55] = corner[5:55, 5:15] = True  # an L: its inner corner is not filled
    corner[40:44, 40:44] = True  # beside a dot too far away to join
    ring = np.zeros((40, 40), dtype=bool)
    ring[5:35, 5:35] = True
    ring[17:23, 17:23] = False  # a loop smaller than the pen is still a loop
    for shape in (corner, ring):
        assert np.array_equal(preprocessing._bridged(shape, 5.0), shape)


def test_a_long_stroke_parted_from_a_small_loop_stays_with_it() -> None:
    """A 6 whose long upper stroke a skipping pen parted from its loop: the loop is the heavier
    mark, the stroke 1.7 times as long as it and 4 px above it. The stroke is kept with the
    loop (BROKEN_EXTENT: it was dropped as clutter at 1.5); a line three times as long at the
    same place is a ruled line and is dropped."""
    rows, cols = np.mgrid[0:120, 0:200]
    ring = np.hypot(rows - 95, cols - 40)
    loop = (ring >= 12) & (ring < 20)  # 40 px across, rows 75-115
    stroke = np.zeros_like(loop)
    stroke[3:71, 50:56] = True  # 68 px long, ending 4 px above the loop
    ruled = np.zeros_like(loop)
    ruled[67:71, 30:150] = True  # 120 px long, as far above it
    six = (loop | stroke).astype(np.float32)
    digit, _ = preprocessing._digit_only(six)
    assert np.array_equal(digit, six)
    lined = (loop | ruled).astype(np.float32)
    digit, _ = preprocessing._digit_only(lined)
    assert np.array_equal(digit, loop.astype(np.float32))


def test_a_digit_cut_by_a_line_is_framed_in_one_stroke_again(holdout: dataset.Digits) -> None:
    """Held-out digits written in one stroke, each cut through by a 1 px line (a pen that
    skipped: styles' pieces) and scanned at 4x: framed, nearly all are one stroke again, as
    the classifier knows digits (193 of 195; 133 before gaps narrower than the pen were drawn
    across)."""
    one_stroke = cut_ones = 0
    for index, digit in enumerate(holdout.images):
        if ndimage.label(digit > 100, structure=np.ones((3, 3)))[1] != 1:
            continue
        cut = styles._cut(digit, np.random.default_rng(index))
        scan = Image.fromarray(255 - cut).resize((112, 112), Image.Resampling.BICUBIC)
        framed = run(png(np.asarray(scan)))
        cut_ones += 1
        one_stroke += ndimage.label(framed > 0.3, structure=np.ones((3, 3)))[1] == 1
    assert cut_ones == 195 and one_stroke >= 185, one_stroke


def test_the_holes_of_all_marks_counted_at_once_are_those_of_each_mark(
    holdout: dataset.Digits,
) -> None:
    """`_hole_counts` (Euler numbers from 2x2 windows) gives each mark the holes that
    labelling the paper of its box finds, however small: on held-out digits' marks in every
    upload style, a badge with lettering's counters, and random masks, rings of them too (loops
    inside loops, marks inside another's holes)."""

    def holes(mark: np.ndarray) -> int:
        paper, count = ndimage.label(~mark)
        outside = np.concatenate([paper[0], paper[-1], paper[:, 0], paper[:, -1]])
        return count - len(set(outside.tolist()) - {0})

    rng = np.random.default_rng(7)
    masks = [ink > 0 for ink in _inks(holdout)]
    for index in range(300):
        mask = rng.random(tuple(rng.integers(3, 60, 2))) < rng.uniform(0.2, 0.8)
        masks.append(mask ^ ndimage.binary_erosion(mask) if index % 2 else mask)
    counted = many = 0
    for mask in masks:
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        found = preprocessing._hole_counts(labels, count)
        for i, box in enumerate(ndimage.find_objects(labels)):
            expected = holes(labels[box] == i + 1)
            assert found[i] == expected
            counted += 1
            many += expected > preprocessing.MAX_HOLES
    assert counted > 5000 and many > 50, (counted, many)


def test_a_quantile_is_the_lower_order_statistic_however_many_values_are_equal() -> None:
    """`_quantile` sets the values equal to the lowest aside (np.partition is slow on them) and
    still answers np.quantile's lower quantile, exactly: on paper all at one level with some
    ink, two levels, 8-bit noise, a single value, at the median and the ends."""
    rng = np.random.default_rng(3)
    size = 2000
    arrays = [
        np.where(rng.random(size) < share, rng.random(size), 0.0).astype(np.float32)
        for share in (0.0, 0.02, 0.4, 0.6, 1.0)
    ]
    arrays += [
        np.where(rng.random(size) < 0.3, 1.0, 0.5).astype(np.float32),
        (rng.integers(180, 200, size) / 255).astype(np.float32),
        np.array([0.25], dtype=np.float32),
        rng.random((40, 50)).astype(np.float32),
    ]
    for values in arrays:
        for q in (0.0, 0.005, 0.5, 0.9, 0.995, 1.0):
            expected = float(np.quantile(values, q, method="lower"))
            assert preprocessing._quantile(values, q) == expected, (q, values.size)


def _inks(holdout: dataset.Digits) -> list[np.ndarray]:
    """Ink maps of held-out digits in every upload style; each also cut to its ink's box (the
    ink touching every edge); digits cut into pieces by a grid (the closing that joins them);
    a badge with lettering's holes beside a digit (erased as lettering)."""
    inks = []
    for name, style in styles.STYLES.items():
        rng = np.random.default_rng(len(name))
        for digit in holdout.images[:6]:
            ink = preprocessing.ink_map(preprocessing.decode(style(digit, rng), LIMIT))
            inks += [ink, preprocessing._crop(ink)]
    for digit in holdout.images[6:12]:
        grid = digit.astype(np.float32) / 255
        grid[::6] = grid[:, ::7] = 0.0
        badge = np.zeros((28, 60), dtype=np.float32)
        badge[4:24, 34:58] = 1.0
        badge[8:12, 37:41] = badge[8:12, 45:49] = badge[16:20, 37:41] = badge[16:20, 50:54] = 0
        badge[:, :28] = digit.astype(np.float32) / 255
        inks += [grid, badge]
    return inks


def test_the_digit_is_found_in_its_ink_box_as_in_the_whole_frame(holdout: dataset.Digits) -> None:
    """`_digit_only` on the ink's box (`_ink_box`) erases exactly what it erases in the whole
    frame, and `frame_digit` of ink standing in `pad` px of paper is that of the padded map,
    bit for bit (or both refuse)."""
    compared = refused = 0
    for ink in _inks(holdout):
        box, (top, left) = preprocessing._ink_box(ink)
        found = preprocessing._digit_only(box, (top, left))[0]
        whole = preprocessing._digit_only(ink)[0]
        inside = np.zeros(whole.shape, dtype=bool)
        inside[top : top + box.shape[0], left : left + box.shape[1]] = True
        assert np.array_equal(whole[inside].reshape(box.shape), found)
        assert not whole[~inside].any()
        for pad in (0, 1, 3, 14):
            try:
                expected = preprocessing.frame_digit(np.pad(ink, pad))
            except NoDigitFound:
                with pytest.raises(NoDigitFound):
                    preprocessing.frame_digit(ink, pad=pad)
                refused += 1
                continue
            assert np.array_equal(preprocessing.frame_digit(ink, pad=pad), expected)
            compared += 1
    assert compared > 300 and refused > 0, (compared, refused)
