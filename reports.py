"""How good is a model: accuracy, per-digit precision and recall, calibration, and pictures.

`evaluate` scores probabilities against true labels; `confusion_png` and `mistakes_png` draw
what a person wants to look at: which digits are taken for which, and the worst mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

DIGITS = list(range(10))
CALIBRATION_BINS = 15


@dataclass(frozen=True)
class Evaluation:
    digits: int
    accuracy: float
    precision: list[float]  # per digit 0-9
    recall: list[float]
    calibration_error: float  # expected calibration error, 15 equal-width bins
    mean_confidence: float
    confusion: np.ndarray  # (10, 10): rows true digit, columns predicted

    def summary(self) -> str:
        lines = [
            f"{self.digits:,} held-out digits: accuracy {self.accuracy:.4f}, "
            f"expected calibration error {self.calibration_error:.4f} "
            f"(mean confidence {self.mean_confidence:.4f})",
            "digit  precision  recall",
        ]
        lines += [f"{d:>5}  {self.precision[d]:9.4f}  {self.recall[d]:6.4f}" for d in DIGITS]
        return "\n".join(lines)


def calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """Expected calibration error: how far confidence is from accuracy, averaged over
    equal-width confidence bins and weighted by how many predictions fall in each."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum(
        (confidence * bins).astype(int), bins - 1
    )  # bin k holds [k/bins, (k+1)/bins)
    error = 0.0
    for k in range(bins):
        members = which == k
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(error)


def evaluate(probabilities: np.ndarray, labels: np.ndarray) -> Evaluation:
    predicted = probabilities.argmax(axis=1)
    precision, recall, _, _ = precision_recall_fscore_support(
        labels, predicted, labels=DIGITS, zero_division=0
    )
    return Evaluation(
        digits=len(labels),
        accuracy=float(np.mean(predicted == labels)),
        precision=[float(p) for p in precision],
        recall=[float(r) for r in recall],
        calibration_error=calibration_error(probabilities, labels),
        mean_confidence=float(probabilities.max(axis=1).mean()),
        confusion=confusion_matrix(labels, predicted, labels=DIGITS),
    )


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def confusion_png(evaluation: Evaluation, path: Path) -> None:
    """The confusion matrix as a picture: counts in cells, shaded by share of the true digit."""
    cell, margin = 52, 70
    side = margin + 10 * cell + 10
    image = Image.new("RGB", (side, side + 30), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(16), _font(13)
    totals = evaluation.confusion.sum(axis=1, keepdims=True).clip(min=1)
    share = evaluation.confusion / totals
    for true in DIGITS:
        for predicted in DIGITS:
            count = int(evaluation.confusion[true, predicted])
            x, y = margin + predicted * cell, margin + true * cell
            if true == predicted:
                shade = (int(255 - 120 * share[true, predicted]),) * 2 + (255,)  # blue diagonal
            else:
                strength = min(1.0, share[true, predicted] * 20)  # 5% of a digit is full red
                shade = (255, int(255 - 200 * strength), int(255 - 200 * strength))
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=shade, outline=(220, 220, 220))
            if count:
                draw.text(
                    (x + cell / 2, y + cell / 2), str(count), fill="black", font=small, anchor="mm"
                )
    for d in DIGITS:
        draw.text(
            (margin + d * cell + cell / 2, margin - 12),
            str(d),
            fill="black",
            font=font,
            anchor="mm",
        )
        draw.text(
            (margin - 14, margin + d * cell + cell / 2),
            str(d),
            fill="black",
            font=font,
            anchor="mm",
        )
    draw.text((margin + 5 * cell, 18), "predicted digit", fill="black", font=font, anchor="mm")
    draw.text((8, margin - 40), "true", fill="black", font=font)
    draw.text(
        (margin, side + 8),
        f"{evaluation.digits:,} digits, accuracy {evaluation.accuracy:.2%}",
        fill="black",
        font=small,
    )
    image.save(path)


def mistakes_png(
    images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, path: Path, count: int = 24
) -> int:
    """The most confident mistakes as a grid of digits captioned true -> predicted (confidence).

    Returns how many were drawn (fewer when there are fewer mistakes).
    """
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    columns, scale, caption = 6, 4, 22
    tile = 28 * scale
    rows = max(1, -(-len(worst) // columns))
    image = Image.new(
        "RGB", (columns * (tile + 10) + 10, rows * (tile + caption + 10) + 10), "white"
    )
    draw = ImageDraw.Draw(image)
    font = _font(14)
    for slot, index in enumerate(worst):
        x = 10 + (slot % columns) * (tile + 10)
        y = 10 + (slot // columns) * (tile + caption + 10)
        pixels = np.asarray(images[index], dtype=np.float32).reshape(28, 28)
        scale_to_byte = 1.0 if pixels.max() > 1 else 255.0  # uint8 digits or 0..1 floats
        digit = Image.fromarray((255 - pixels * scale_to_byte).astype(np.uint8)).resize(
            (tile, tile), Image.Resampling.NEAREST
        )
        image.paste(digit, (x, y))
        text = f"{labels[index]} -> {predicted[index]} ({confidence[index]:.2f})"
        draw.text((x + tile / 2, y + tile + 4), text, fill="black", font=font, anchor="mt")
    image.save(path)
    return len(worst)
