"""The served model: obtained at start-up (from the cache, or trained in the background) and
asked for predictions. Requests that arrive before it is ready get 503, not a wait."""

from __future__ import annotations

import base64
import io
import logging
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

import dataset
import model
import preprocessing
from config import Settings
from errors import ModelNotReady, ServiceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    digit: int
    confidence: float
    probabilities: list[float]
    model_version: str
    image_type: str  # the MIME type of the upload, from decoding it (not from the client)
    pixels: np.ndarray  # (28, 28) in 0..1: the digit the model classified

    @classmethod
    def of(
        cls, probabilities: np.ndarray, version: str, pixels: np.ndarray, image_type: str
    ) -> Result:
        """The answer for one digit, from its row of class probabilities."""
        best = int(np.argmax(probabilities))
        return cls(
            digit=best,
            confidence=float(probabilities[best]),
            probabilities=[float(p) for p in probabilities],
            model_version=version,
            image_type=image_type,
            pixels=pixels,
        )

    def processed_png(self) -> str:
        """The digit the model classified, as a base64 28x28 greyscale PNG (white on black)."""
        buffer = io.BytesIO()
        Image.fromarray(np.round(self.pixels * 255).astype(np.uint8)).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()


class Predictor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._model: model.DigitModel | None = None
        self._thread: threading.Thread | None = None
        self.failure: str | None = None

    def start(self) -> None:
        """Serve the cached model if it is usable; else get MNIST now and train in the background.

        Obtaining the data is done here, before the service answers anything, so a machine with
        neither a cached model nor data fails at once with a message naming MNIST_DATA_DIR.
        """
        try:
            self._model = model.load(self.settings.model_path)
            log.info("serving cached model %s", self._model.info.version)
            return
        except model.UnusableCache as exc:
            log.info("no usable cached model (%s): training one", exc)
        mnist = model.load_mnist(self.settings)
        self._thread = threading.Thread(
            target=self._train, args=(mnist,), name="train", daemon=True
        )
        self._thread.start()

    def _train(self, mnist: dataset.Mnist) -> None:
        try:
            self._model, _ = model.load_or_train(self.settings, mnist_loader=lambda: mnist)
        except Exception as exc:  # reported by /ready; the process keeps answering /health
            log.exception("training failed")
            self.failure = f"{type(exc).__name__}: {exc}"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the model is loaded or training failed (tests use it). True when ready."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._model is not None

    @property
    def model(self) -> model.DigitModel:
        if self._model is None:
            if self.failure:
                raise ModelNotReady(f"The model could not be trained: {self.failure}")
            raise ModelNotReady("The model is still training; try again in a minute.")
        return self._model

    def predict(self, data: bytes) -> Result:
        """Preprocess one uploaded file and classify it. CPU-bound: call it off the event loop."""
        served = self.model
        image = preprocessing.decode(data, self.settings.max_image_pixels)
        image_type = Image.MIME.get(image.format or "", "application/octet-stream")
        digit = preprocessing.normalise(image)
        probabilities = served.probabilities(digit[np.newaxis])[0]
        return Result.of(probabilities, served.info.version, digit, image_type)

    def predict_many(self, uploads: list[bytes]) -> tuple[list[Result | ServiceError], str]:
        """Preprocess and classify many uploads in one pass: per upload a Result or its error.
        Returns them with the version of the model that answered."""
        served = self.model
        prepared = preprocessing.preprocess_many(uploads, self.settings.max_image_pixels)
        digits = [item for item in prepared if isinstance(item, np.ndarray)]
        probabilities = iter(served.probabilities(np.stack(digits)) if digits else [])
        results: list[Result | ServiceError] = []
        for item in prepared:
            if isinstance(item, ServiceError):
                results.append(item)
                continue
            # batches keep no uploads, so their type is not needed
            results.append(Result.of(next(probabilities), served.info.version, item, ""))
        return results, served.info.version
