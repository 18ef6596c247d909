"""The served model: obtained at start-up (from the cache, or trained in the background) and
asked for predictions. Requests that arrive before it is ready get 503, not a wait."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from fastapi.concurrency import run_in_threadpool
from PIL import Image

import dataset
import inference
import metrics
import model
import preprocessing
import segmentation
from config import Settings
from errors import ModelNotReady, ServiceError
from inference import Limits, PredictionPool

log = logging.getLogger(__name__)

STARTING = "The prediction process is starting; try again in a moment."
MIN_SHARE = 32  # uploads of a batch below which it is not shared out between processes


@dataclass(frozen=True)
class Result:
    digit: int
    confidence: float
    probabilities: list[float]
    model_version: str
    image_type: str  # the MIME type of the upload, from decoding it (not from the client)
    pixels: np.ndarray  # (28, 28) uint8, white on black: the digit the model classified

    @classmethod
    def many(
        cls, probabilities: np.ndarray, version: str, pixels: np.ndarray, image_types: list[str]
    ) -> list[Result]:
        """The answers for a batch: (n, 10) probabilities, (n, 28, 28) pixels in 0..1."""
        best = probabilities.argmax(axis=1)
        # the digits as the PNG will hold them: a quarter of the bytes on the way back from the
        # prediction process
        as_bytes = np.round(pixels * 255).astype(np.uint8)
        return [
            cls(
                digit=digit,
                confidence=row[digit],
                probabilities=row,
                model_version=version,
                image_type=image_type,
                pixels=image,
            )
            for digit, row, image, image_type in zip(
                best.tolist(), probabilities.tolist(), as_bytes, image_types, strict=True
            )
        ]

    def processed_png(self) -> str:
        """The digit the model classified, as a base64 28x28 greyscale PNG (white on black)."""
        return _png(self.pixels)


def _sign_details(signs: list[tuple[int, segmentation.Box]]) -> list[dict[str, Any]]:
    """Points or dashes between digits as the API shows them: after how many digits, where."""
    return [{"after": after, "box": asdict(box)} for after, box in signs]


def _png(pixels: np.ndarray) -> str:
    """A 28x28 uint8 digit as a base64 greyscale PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@dataclass(frozen=True)
class NumberResult:
    """The digits of a number, left to right."""

    probabilities: list[list[float]]  # per digit, of 0-9
    boxes: list[segmentation.Box]  # per digit, in the upload's pixels
    model_version: str
    image_type: str
    pixels: np.ndarray  # (n, 28, 28) uint8: the digits the model classified
    # the points (a decimal point) and the dashes written between digits: after how many
    # digits, and where
    points: list[tuple[int, segmentation.Box]] = field(default_factory=list)
    dashes: list[tuple[int, segmentation.Box]] = field(default_factory=list)

    @property
    def digits(self) -> list[int]:
        return [max(range(10), key=row.__getitem__) for row in self.probabilities]

    @property
    def number(self) -> str:
        """The digits, left to right, with a "." for each point and a "-" for each dash between
        them."""
        return segmentation.written(self.digits, self.points, self.dashes)

    @property
    def confidences(self) -> list[float]:
        return [row[digit] for row, digit in zip(self.probabilities, self.digits, strict=True)]

    @property
    def confidence(self) -> float:
        """The probability that every digit is right (each is calibrated; taken as independent)."""
        return float(np.prod(self.confidences))

    def details(self) -> list[dict[str, Any]]:
        """Each digit as the API and the history show it."""
        return [
            {
                "digit": str(digit),
                "confidence": confidence,
                "probabilities": probabilities,
                "box": asdict(box),
            }
            for digit, confidence, probabilities, box in zip(
                self.digits, self.confidences, self.probabilities, self.boxes, strict=True
            )
        ]

    def point_details(self) -> list[dict[str, Any]]:
        """Each point as the API shows it."""
        return _sign_details(self.points)

    def dash_details(self) -> list[dict[str, Any]]:
        """Each dash as the API shows it."""
        return _sign_details(self.dashes)

    def processed_pngs(self) -> list[str]:
        return [_png(pixels) for pixels in self.pixels]


@dataclass(frozen=True)
class ReadNumber:
    """A job: read the number in `upload`."""

    upload: bytes


@dataclass(frozen=True)
class Keep:
    """A job: classify `upload` (as a digit, or as a number) and keep it in the history of the
    user `token_hash` belongs to."""

    token_hash: str
    upload: bytes
    number: bool = False


Kept = tuple[Result | NumberResult, dict[str, Any]]  # the result and the stored record


class Keeper(Protocol):
    """Checks tokens and stores predictions (history.py); the Predictor needs no database."""

    def __call__(
        self, jobs: list[Keep], results: list[Result | NumberResult | ServiceError]
    ) -> list[Kept | ServiceError]: ...


@dataclass(frozen=True)
class Reader:
    """Reads uploads: decode, preprocess, classify, and keep them in a history. This is what
    the prediction process runs: it is pickled over to it, the model with it."""

    model: model.DigitModel
    max_image_pixels: int
    keeper: Keeper | None = None
    max_number_digits: int = 20

    def __call__(self, jobs: list[list[bytes] | Keep | ReadNumber]) -> list[Any]:
        """Many jobs in one pass: uploads to classify (a list of Results and errors each),
        numbers to read (a NumberResult or the error each), and uploads to classify or read
        and keep (a Kept, or the error, each)."""
        uploads = [
            upload
            for job in jobs
            if not _is_number(job)
            for upload in (job if isinstance(job, list) else [job.upload])
        ]
        results = iter(self.predict(uploads))
        outcomes: list[Any] = [
            self.read_number(job.upload)  # type: ignore[union-attr]
            if _is_number(job)
            else [next(results) for _ in job]
            if isinstance(job, list)
            else next(results)
            for job in jobs
        ]
        keeps = [i for i, job in enumerate(jobs) if isinstance(job, Keep)]
        if keeps:
            if self.keeper is None:
                raise RuntimeError("this Predictor keeps no history")
            kept = self.keeper([jobs[i] for i in keeps], [outcomes[i] for i in keeps])  # type: ignore[misc]
            for i, outcome in zip(keeps, kept, strict=True):
                outcomes[i] = outcome
        return outcomes

    def read_number(self, upload: bytes) -> NumberResult | ServiceError:
        """The number in an upload, or the error it gets."""
        image = preprocessing.guarded(
            inference.upload_guard, preprocessing.decode, upload, self.max_image_pixels,
            segmentation.SIDE,
        )  # fmt: skip
        if isinstance(image, ServiceError):
            return image
        reading = preprocessing.guarded(
            inference.upload_guard,
            segmentation.read,
            image,
            self.model.read_pieces,
            self.max_number_digits,
        )
        if isinstance(reading, ServiceError):
            return reading
        return NumberResult(
            probabilities=reading.probabilities.tolist(),
            boxes=reading.boxes,
            model_version=self.model.info.version,
            image_type=Image.MIME.get(image.format or "", "application/octet-stream"),
            pixels=np.round(reading.digits * 255).astype(np.uint8),
            points=reading.points,
            dashes=reading.dashes,
        )

    def predict(self, uploads: list[bytes]) -> list[Result | ServiceError]:
        """Each upload's Result, or the error that upload alone gets."""
        prepared = preprocessing.prepare_many(
            uploads, self.max_image_pixels, guard=inference.upload_guard
        )
        good = [item for item in prepared if not isinstance(item, ServiceError)]
        answers: Iterator[Result] = iter([])
        if good:
            digits = np.stack([digit for digit, _ in good])
            types = [Image.MIME.get(kind, "application/octet-stream") for _, kind in good]
            probabilities = self.model.probabilities(digits)
            answers = iter(Result.many(probabilities, self.model.info.version, digits, types))
        return [item if isinstance(item, ServiceError) else next(answers) for item in prepared]


def _is_number(job: list[bytes] | Keep | ReadNumber) -> bool:
    return isinstance(job, ReadNumber) or (isinstance(job, Keep) and job.number)


def _is_batch(job: list[bytes] | Keep | ReadNumber) -> bool:
    return isinstance(job, list) and len(job) >= MIN_SHARE


def _size(job: list[bytes] | Keep | ReadNumber) -> int:
    return sum(len(upload) for upload in job) if isinstance(job, list) else len(job.upload)


class Predictor:
    def __init__(self, settings: Settings, keeper: Keeper | None = None) -> None:
        self.settings = settings
        self.keeper = keeper
        self._reader: Reader | None = None  # the served model, with how uploads are read
        self._thread: threading.Thread | None = None
        self.failure: str | None = None
        self._pool: PredictionPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._large = 0  # large uploads in the prediction processes' hands

    def start(self) -> None:
        """Serve the cached model if it is usable; else get MNIST now and train in the background.

        Obtaining the data is done here, before the service answers anything, so a machine with
        neither a cached model nor data fails at once with a message naming MNIST_DATA_DIR.
        """
        started = time.perf_counter()
        try:
            self._use(model.load(self.settings.model_path))
            log.info("serving cached model %s", self.model.info.version)
            metrics.model_loaded(self.model.info.version, time.perf_counter() - started)
            return
        except model.UnusableCache as exc:
            log.info("no usable cached model (%s): training one", exc)
        mnist = model.load_mnist(self.settings)
        self._thread = threading.Thread(
            target=self._train, args=(mnist,), name="train", daemon=True
        )
        self._thread.start()

    def _use(self, served: model.DigitModel) -> None:
        self._reader = Reader(
            served, self.settings.max_image_pixels, self.keeper, self.settings.max_number_digits
        )

    def _train(self, mnist: dataset.Mnist) -> None:
        started = time.perf_counter()
        try:
            trained, _ = model.load_or_train(self.settings, mnist_loader=lambda: mnist)
            self._use(trained)
            metrics.model_loaded(trained.info.version, time.perf_counter() - started)
            if self._loop is not None:  # serving already: the prediction pool can start now
                asyncio.run_coroutine_threadsafe(self._start_pool(), self._loop)
        except Exception as exc:  # reported by /ready; the process keeps answering /health
            log.exception("training failed")
            self.failure = f"{type(exc).__name__}: {exc}"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the model is loaded and, with prediction processes, one of them serves,
        or until training failed (tests use it). True when ready."""
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        if self._thread is not None:
            self._thread.join(timeout)
        while self.unavailable() is not None and self.failure is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return self._reader is not None

    @property
    def model(self) -> model.DigitModel:
        if self._reader is None:
            if self.failure:
                raise ModelNotReady(f"The model could not be trained: {self.failure}")
            raise ModelNotReady("The model is still training; try again in a minute.")
        return self._reader.model

    def unavailable(self) -> str | None:
        """Why predictions cannot be served right now (for /ready), or None when they can."""
        try:
            self.model  # noqa: B018
        except ModelNotReady as exc:
            return exc.detail
        if self.settings.prediction_process and not (self._pool and self._pool.running):
            return STARTING
        return None

    @property
    def pool(self) -> PredictionPool | None:
        """The prediction processes, once started."""
        return self._pool

    async def serve(self) -> None:
        """Start the prediction processes once the model is loaded: now, or when training ends."""
        if not self.settings.prediction_process:
            return
        self._loop = asyncio.get_running_loop()
        if self._reader is not None:
            await self._start_pool()

    async def _start_pool(self) -> None:
        if self._loop is None:  # stopped meanwhile
            return
        assert self._reader is not None
        settings = self.settings
        self._pool = PredictionPool(
            self._reader,
            Limits(seconds=settings.max_upload_seconds, memory=settings.max_upload_memory),
            timeout=settings.prediction_timeout,
            size=settings.pool_size,
        )
        await self._pool.start()

    async def stop(self) -> None:
        pool, self._pool, self._loop = self._pool, None, None
        if pool is not None:
            await pool.stop()

    async def read(self, data: bytes) -> Result:
        """Classify one upload, off the event loop: in the prediction process, together with
        whatever other requests are waiting (see inference.py)."""
        (outcome,) = await self._run([data])
        if isinstance(outcome, ServiceError):
            raise outcome
        metrics.count_predictions([outcome.digit])
        return outcome

    async def read_many(self, uploads: list[bytes]) -> tuple[list[Result | ServiceError], str]:
        """Classify many uploads in one pass, off the event loop: per upload a Result or its
        error, and the version of the model that answered."""
        version = self.model.info.version
        # a large batch is shared out, one part to each prediction process, done side by side
        parts = self._pool.size if self._pool is not None else 1
        size = max(MIN_SHARE, -(-len(uploads) // parts))
        shares = [uploads[start : start + size] for start in range(0, len(uploads), size)]
        done = await asyncio.gather(*(self._run(share) for share in shares))
        outcomes: list[Result | ServiceError] = [outcome for share in done for outcome in share]
        metrics.count_predictions(o.digit for o in outcomes if isinstance(o, Result))
        return outcomes, version

    async def read_number(self, data: bytes) -> NumberResult:
        """Read the number in one upload, off the event loop (as `read`)."""
        outcome = await self._run(ReadNumber(data))
        if isinstance(outcome, ServiceError):
            raise outcome
        metrics.count_predictions(outcome.digits)
        return outcome

    async def keep(self, token_hash: str, data: bytes, number: bool = False) -> Kept:
        """Classify an upload (or read the number in it) and keep it in the token owner's
        history, off the event loop. Unauthorized when the token is unknown or expired."""
        outcome: Kept = await self._run(Keep(token_hash, data, number))
        result = outcome[0]
        metrics.count_predictions(
            result.digits if isinstance(result, NumberResult) else [result.digit]
        )
        return outcome

    async def _run(self, job: Any) -> Any:
        self.model  # noqa: B018 -- while training: 503 at once
        assert self._reader is not None
        if self.settings.prediction_process:
            # Never done anywhere else when the process is away: an upload that killed it
            # would kill the server next.
            if self._pool is None:
                raise inference.ProcessStopped(STARTING)
            size = _size(job)
            large = size > inference.TRIM_AFTER
            self._large += int(large)
            try:
                # A number costs tens of milliseconds whatever its bytes, and each share of a
                # batch is meant for a process of its own: both go to an idle process.
                cost = inference.COSTLY if _is_number(job) or _is_batch(job) else size
                return await self._pool.run(job, cost)
            finally:
                self._large -= int(large)
                # The server held large uploads too: once the last of them is done, hand the
                # freed memory back (a trim after each one cost a photo 11 ms of the loop's
                # time, half of all it spent on it).
                if large and not self._large:
                    await run_in_threadpool(inference.trim)
        (outcome,) = await run_in_threadpool(self._reader, [job])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
