"""Real uploads after the trip they take: the 628 uploads of ../shared/realdigits-dev, each as it
is and as it reaches a service after what commonly happens to an image on the way, read by the
service's own code (POST /predict/mnist's and POST /predict/number's, as bench/realworld.py).

What happens on the way, each applied to every upload (flattened onto white first, where it is
transparent):

- re-saved as a JPEG at quality 40 (a messaging app), or with sensor noise and at quality 75;
- halved in size (a thumbnail), turned 8 degrees (a crooked photo, the corners the paper's
  colour), stored turned a quarter with an EXIF tag that turns it back (a phone);
- inverted (a dark theme), darkened across by a shadow, its contrast cut to a third;
- set off-centre on a page of its own paper three times its size;
- set in a frame of another colour, as a screenshot shows it: a white page, a black border, a
  mid-grey window (each 15% of the width at the sides, 20% of the height above and below),
  black bars above and below it (a phone's gallery), white bars beside it; the first two
  also saved as JPEGs (quality 75), whose blocks ring where the frame meets the picture;
- shrunk to a third (Lanczos, whose ringing leaves a faint halo around strokes), blurred out
  of focus, saved as WebP at quality 50, cropped close to the ink;
- written in blue on a yellow note;
- photographed in less light: white paper at 60%, 45% and 30% of white, with the sensor's
  noise, as JPEGs at quality 85;
- stored as a phone stores a photo, HEIC (quality 50) on its side with the box that turns it
  back; saved as AVIF (quality 50); as a JPEG with a gain map behind it (Ultra HDR, which
  Pillow opens as an MPO file).

The uploads are a yardstick only: never trained on, no rule tuned to one of them. The
transformations are fixed (seeded), so two runs on two versions of the code compare image for
image.

    python -m bench.roundtrip --model PATH [--data DIR] [--only NAME ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

import model
import predictor
from bench.common import ROOT, table
from errors import ServiceError

Change = Callable[[Image.Image, np.random.Generator], Image.Image | bytes]


def flattened(data: bytes) -> Image.Image:
    """The upload as its owner sees it: turned by its EXIF tag, on white where transparent."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


def encoded(image: Image.Image, kind: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def paper_colour(image: Image.Image) -> tuple[int, ...]:
    """The median colour of the image: its paper."""
    return tuple(int(v) for v in np.median(np.asarray(image).reshape(-1, 3), axis=0))


def framed(colour: tuple[int, int, int], sides: bool, ends: bool) -> Change:
    """The picture in a frame of `colour`: 15% of its width at each side, 20% of its height
    above and below (only at the `sides`, only at the `ends`)."""

    def change(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        dx = round(0.15 * image.width) if sides else 0
        dy = round(0.2 * image.height) if ends else 0
        page = Image.new("RGB", (image.width + 2 * dx, image.height + 2 * dy), colour)
        page.paste(image, (dx, dy))
        return page

    return change


def jpeg(image: Image.Image, rng: np.random.Generator) -> bytes:
    return encoded(image, "JPEG", quality=40)


def halved(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    scale = max(0.5, 28 / min(image.size))  # no smaller than MNIST's 28 px
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def turned(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = float(rng.choice([-8.0, 8.0]))
    return image.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=paper_colour(image))


def stored_turned(image: Image.Image, kind: str, **options: object) -> bytes:
    """As a phone held upright stores a photo: on its side, with the orientation that turns it
    upright (an EXIF tag in a JPEG; pillow-heif and Pillow write it into a HEIC or an AVIF as an
    'irot' box)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view"
    turned = image.transpose(Image.Transpose.ROTATE_90)
    return encoded(turned, kind, exif=exif.tobytes(), **options)


def exif_turned(image: Image.Image, rng: np.random.Generator) -> bytes:
    return stored_turned(image, "JPEG", quality=92)


def inverted(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.invert(image)


def shadowed(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    light = np.linspace(1.0, 0.45, image.width)[None, :, None]
    return Image.fromarray(np.clip(pixels * light, 0, 255).astype(np.uint8))


def faded(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image.convert("L"), dtype=np.float32)
    return Image.fromarray((128 + (pixels - 128) * 0.35).astype(np.uint8))


def noisy(image: Image.Image, rng: np.random.Generator) -> bytes:
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 12, (image.height, image.width, 3))
    return encoded(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), "JPEG", quality=75)


def off_centre(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    page = Image.new("RGB", (image.width * 3, image.height * 2), paper_colour(image))
    page.paste(image, (round(image.width * 0.3), round(image.height * 0.7)))
    return page


def lit(brightness: float) -> Change:
    """Photographed in less light: every level scaled by `brightness` (white paper comes out
    grey), with the sensor's noise, saved as a JPEG at quality 85."""

    def change(image: Image.Image, rng: np.random.Generator) -> bytes:
        pixels = np.asarray(image, dtype=np.float32) * brightness
        pixels += rng.normal(0, 4, pixels.shape)
        return encoded(
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), "JPEG", quality=85
        )

    return change


def third(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    scale = max(1 / 3, 28 / min(image.size))  # no smaller than MNIST's 28 px
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def blurred(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(max(1.0, max(image.size) / 150)))


def webp(image: Image.Image, rng: np.random.Generator) -> bytes:
    return encoded(image, "WEBP", quality=50)


def heic(image: Image.Image, rng: np.random.Generator) -> bytes:
    """As a phone stores a photo: HEIC, on its side with an 'irot' box turning it back."""
    return stored_turned(image, "HEIF", quality=50)


def avif(image: Image.Image, rng: np.random.Generator) -> bytes:
    return encoded(image, "AVIF", quality=50)


def ultra_hdr(image: Image.Image, rng: np.random.Generator) -> bytes:
    """As a recent Android phone stores a photo (Ultra HDR): a JPEG (quality 85) with a second
    picture behind it, its gain map at a quarter of the size, found through an MPF segment."""
    gain = image.convert("L").resize((max(1, image.width // 4), max(1, image.height // 4)))
    return encoded(image, "MPO", quality=85, save_all=True, append_images=[gain])


def cropped_close(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Cut to the ink (what stands 40 levels from the median) and a margin of 3% of the
    image, at least 2 px."""
    gray = np.asarray(image.convert("L"), dtype=np.int16)
    paper = int(np.median(gray))
    ink = np.abs(gray - paper) > 40
    if not ink.any():
        return image
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    margin = max(2, round(0.03 * max(image.size)))
    return image.crop(
        (
            max(0, cols[0] - margin),
            max(0, rows[0] - margin),
            min(image.width, cols[-1] + 1 + margin),
            min(image.height, rows[-1] + 1 + margin),
        )
    )


def tinted(paper: tuple[int, int, int], pen: tuple[int, int, int]) -> Change:
    """The page in the colour `paper`, the ink (its darkness) in the colour `pen`."""

    def change(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        gray = np.asarray(image.convert("L"), dtype=np.float32)[..., None] / 255
        if np.median(gray) < 0.5:  # light ink on a dark ground: its ink is the light
            gray = 1 - gray
        pixels = np.array(paper) * gray + np.array(pen) * (1 - gray)
        return Image.fromarray(pixels.astype(np.uint8))

    return change


CHANGES: dict[str, Change | None] = {
    "as uploaded": None,
    "JPEG, quality 40": jpeg,
    "half the size": halved,
    "turned 8 degrees": turned,
    "turned by its EXIF tag": exif_turned,
    "inverted": inverted,
    "a shadow across": shadowed,
    "a third of the contrast": faded,
    "sensor noise, JPEG 75": noisy,
    "off-centre on a larger page": off_centre,
    "in a white page": framed((255, 255, 255), True, True),
    "in a black border": framed((0, 0, 0), True, True),
    "in a mid-grey window": framed((128, 128, 128), True, True),
    "black bars above and below": framed((0, 0, 0), False, True),
    "white bars beside": framed((255, 255, 255), True, False),
    "black bars above and below, JPEG 75": lambda image, rng: encoded(
        framed((0, 0, 0), False, True)(image, rng), "JPEG", quality=75
    ),
    "in a white page, JPEG 75": lambda image, rng: encoded(
        framed((255, 255, 255), True, True)(image, rng), "JPEG", quality=75
    ),
    "a third the size": third,
    "blurred": blurred,
    "WebP, quality 50": webp,
    "cropped close": cropped_close,
    "blue pen on a yellow note": tinted((250, 235, 140), (30, 50, 170)),
    "in dim light (white at 60%)": lit(0.6),
    "in a dim room (white at 45%)": lit(0.45),
    "in a dark room (white at 30%)": lit(0.3),
    "a phone's HEIC, turned by its 'irot'": heic,
    "AVIF, quality 50": avif,
    "a JPEG with a gain map (Ultra HDR)": ultra_hdr,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "realdigits-dev")
    parser.add_argument("--only", action="append", help="a change to run (repeat for more)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    served = model.load(args.model)
    reader = predictor.Reader(served, 50_000_000)
    with (args.data / "labels.csv").open() as labels:
        entries = list(csv.DictReader(labels))
    kinds = sorted({entry["kind"] for entry in entries})
    names = args.only or list(CHANGES)
    rows, figures = [], {}
    for name in names:
        rng = np.random.default_rng(list(CHANGES).index(name))
        right: dict[str, list[bool]] = {kind: [] for kind in kinds}
        numbers = 0
        misread = []
        for entry in entries:
            data = (args.data / entry["file"]).read_bytes()
            change = CHANGES[name]
            if change is not None:
                changed = change(flattened(data), rng)
                data = changed if isinstance(changed, bytes) else encoded(changed)
            (outcome,) = reader.predict([data])
            digit_right = not isinstance(outcome, ServiceError) and outcome.digit == int(
                entry["label"]
            )
            right[entry["kind"]].append(digit_right)
            number = reader.read_number(data)
            numbers += not isinstance(number, ServiceError) and number.number == entry["label"]
            if not digit_right:
                misread.append(entry["file"])
        total = sum(sum(of) for of in right.values())
        rows.append(
            [name, f"{total} ({total / len(entries):.1%})", numbers]
            + [f"{np.mean(right[kind]):.1%}" for kind in kinds]
        )
        figures[name] = {"digit": total, "number": numbers, "misread": misread}
        print(rows[-1], flush=True)
    print(f"\nmodel {served.info.version}, {len(entries)} real uploads\n")
    header = ["on the way", "/predict/mnist right", "/predict/number right"]
    print(table(header + [f"{kind} (/predict/mnist)" for kind in kinds], rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": served.info.version, **figures}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
