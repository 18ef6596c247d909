"""The digit model: its pipeline, training, the joblib cache, and a command line.

The cache file is written atomically (temporary file, then `os.replace`) and holds the fitted
pipeline with its metadata. A file that is truncated, corrupt, of another format or written by
another scikit-learn version is never served: it is logged and the model retrained. When several
worker processes boot together, a file lock lets exactly one of them train while the others
wait, then load what it saved.

    python -m model train [--limit N]     train now and write the cache (progress on stderr)
    python -m model evaluate [--report-dir reports]
                                          held-out accuracy, per-digit precision and recall,
                                          calibration error; confusion.png and mistakes.png
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import joblib
import numpy as np
import sklearn
from filelock import FileLock
from scipy import ndimage
from scipy.special import expit
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import Pipeline

import dataset
import handwriting
import reports
import segmentation
from config import Settings
from errors import DatasetError
from features import Deskew, GradientHistograms, Loops, RBFKernel, SideBySide

log = logging.getLogger(__name__)

FORMAT = 4  # bump when the cache layout or what it holds changes; older files are retrained
# (3: the whole-digit head learnt where touching digits meet, and the version covers it; 4: the
# classifier learnt digits with slivers of a touching neighbour, which the number reader's parts
# now hold)
SEED = 0
CHUNK = 4096  # digits per chunk when computing training features
DIGITS = np.arange(10)
DRAWN_SHARE = 0.375  # template drawings per training digit (3,000 beside 8,000)
TOUCHING = 0.3  # runs of touching digits cut for their slivers, per training digit

Progress = Callable[[str], None]


class UnusableCache(Exception):
    """The cached model file cannot be served (missing, damaged, or from another version)."""


@dataclass(frozen=True)
class ModelInfo:
    version: str  # content hash of the fitted model: the same data gives the same version
    training_digits: int
    holdout_digits: int
    holdout_accuracy: float
    sklearn_version: str
    data_source: str
    # Facts about the training run, not the model: kept beside the model file, not in it,
    # so that the same data gives a byte-identical model file. None when that note is lost.
    trained_at: str | None = None
    training_seconds: float | None = None


RUN_FIELDS = ("trained_at", "training_seconds")


@dataclass(frozen=True)
class DigitModel:
    pipeline: Pipeline
    info: ModelInfo
    # a second head on the same features: is this one whole digit (not a fragment of one,
    # not two run together)? What /predict/number's segmentation chooses its cuts by.
    whole: SGDClassifier | None = None
    _weights: np.ndarray = field(init=False, repr=False, compare=False)
    _bias: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The classifier's weights as float32, ready for one product per request.
        classifier = self.pipeline[-1]
        object.__setattr__(
            self, "_weights", np.ascontiguousarray(classifier.coef_.T, dtype=np.float32)
        )
        object.__setattr__(self, "_bias", classifier.intercept_.astype(np.float32))

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, 10), for digits shaped (n, 28, 28) in 0..1.

        Exactly SGDClassifier.predict_proba for a log-loss model (a sigmoid per class,
        normalised to sum to 1), computed without scikit-learn's per-call input validation,
        which would cost more than the arithmetic for one image.
        """
        return self._probabilities(self._features(digits))

    def _features(self, digits: np.ndarray) -> np.ndarray:
        features = np.asarray(digits, dtype=np.float32).reshape(len(digits), -1)
        for _, step in self.pipeline.steps[:-1]:
            features = step.transform(features)
        return features

    def _probabilities(self, features: np.ndarray) -> np.ndarray:
        scores = features @ self._weights + self._bias
        probabilities = expit(scores)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities

    def read_pieces(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities (n, 10) and, with a `whole` head, the probability (n,) that each
        is one whole digit; the features computed once for both."""
        features = self._features(digits)
        if self.whole is None:
            return self._probabilities(features), None
        scores = features @ self.whole.coef_[0].astype(np.float32) + self.whole.intercept_[0]
        return self._probabilities(features), expit(scores)


def build_pipeline() -> Pipeline:
    """Deskew; gradient histograms beside the digit's loops; an RBF kernel map (Nystroem); a
    log-loss SGDClassifier, its weights averaged over the last epochs.

    The kernel map and the classifier's settings were chosen by 5-fold cross-validation on the
    training part of the data (BENCHMARKS.md, "Choosing the model"); the held-out part was never
    looked at for it. Averaging steadies SGD: trained in another order, the plain classifier's
    answers on real uploads moved by a point and a half, the averaged one's by a fraction.
    """
    return Pipeline(
        [
            ("deskew", Deskew()),
            (
                "shape",
                SideBySide(
                    [
                        ("gradients", GradientHistograms(bins=9, cell=7, stride=3)),
                        ("loops", Loops(cell=7, level=0.3, weight=8.0)),
                    ]
                ),
            ),
            ("rbf", Nystroem(kernel="rbf", gamma=0.004, n_components=3000, random_state=SEED)),
            (
                "classifier",
                SGDClassifier(
                    loss="log_loss", alpha=1e-6, average=True, random_state=SEED, n_jobs=-1
                ),
            ),
        ]
    )


def fit_in_chunks(
    pipeline: Pipeline, inputs: np.ndarray, labels: np.ndarray, centres: int | None = None
) -> Pipeline:
    """Fit the pipeline as Pipeline.fit would, in bounded memory, the kernel map's centres drawn
    from the first `centres` inputs only (all: None).

    Pipeline.fit materialises every step's output for all digits at once (60,000 digits:
    6.4 GB at peak). Here the features are computed a chunk at a time, straight into one
    float64 matrix, the dtype SGDClassifier trains on, so it makes no copy of its own.
    """
    *transforms, (_, rbf), (_, classifier) = pipeline.steps
    centres = len(inputs) if centres is None else centres
    # a kernel map cannot have more centres than there are digits to fit (small samples)
    rbf.set_params(n_components=min(rbf.n_components, centres))

    def features(chunk: np.ndarray) -> np.ndarray:
        for _, step in transforms:
            chunk = step.transform(chunk)
        return chunk

    shaped = np.concatenate([features(inputs[i : i + CHUNK]) for i in range(0, len(inputs), CHUNK)])
    rbf.fit(shaped[:centres])
    mapped = np.empty((len(inputs), rbf.n_components), dtype=np.float64)
    for i in range(0, len(inputs), CHUNK):
        mapped[i : i + CHUNK] = rbf.transform(shaped[i : i + CHUNK])
    classifier.fit(mapped, labels)
    return pipeline


def fold_kernel_map(pipeline: Pipeline) -> Pipeline:
    """The same model, cheaper to run: Nystroem's n x n normalisation folded into the classifier.

    Nystroem maps x to K(x, centres) @ N.T and the classifier scores that with coef @ z + b,
    so the scores are K(x, centres) @ (coef @ N).T + b: one matrix product less per request.
    """
    nystroem: Nystroem = pipeline.named_steps["rbf"]
    classifier: SGDClassifier = pipeline.named_steps["classifier"]
    classifier.coef_ = classifier.coef_ @ nystroem.normalization_
    classifier.n_features_in_ = nystroem.components_.shape[0]
    kernel = RBFKernel(centres=nystroem.components_.astype(np.float32), gamma=nystroem.gamma)
    return Pipeline([*pipeline.steps[:-2], ("rbf", kernel), ("classifier", classifier)])


def as_inputs(digits: dataset.Digits) -> np.ndarray:
    """MNIST uint8 images to the pipeline's input: float32 (n, 784) in 0..1."""
    return _inputs(digits.images)


def _inputs(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / np.float32(255)


def training_inputs(digits: dataset.Digits) -> tuple[np.ndarray, np.ndarray, int]:
    """The pipeline's inputs for training, their labels, and how many of them come first that
    are digits as written: the MNIST digits with strokes of three widths and drawings of the
    styles MNIST lacks (`handwriting`), 3 for every 8 training digits; then digits with slivers
    of a touching neighbour as the number reader cuts them (`segmentation.touching_parts`),
    from runs of 2-3 digits, 3 for every 10 training digits.

    The kernel map's centres are drawn from the digits as written only: a digit cut from two
    runs is often twice nearly the same part, and two centres that close make its normalisation
    blow up (weights of 10^6 after folding, where float32 sums of other orders part by 0.05)."""
    inputs, labels = with_stroke_widths(digits)
    drawn, drawn_labels = handwriting.drawings(round(DRAWN_SHARE * len(digits)), SEED)
    touching, touching_labels = segmentation.touching_parts(
        digits.images, digits.labels, np.random.default_rng(SEED), round(TOUCHING * len(digits))
    )
    return (
        np.concatenate([inputs, drawn, touching]),
        np.concatenate([labels, drawn_labels, touching_labels]),
        len(inputs) + len(drawn),
    )


def with_stroke_widths(digits: dataset.Digits) -> tuple[np.ndarray, np.ndarray]:
    """The pipeline's inputs for training: each digit as it is, and again with thinner and
    with thicker strokes (grey erosion and dilation by 2x2 pixels), with their labels.

    MNIST's pens are alike; people's are not (a 1-px line on a canvas, a marker), and the
    round 6s and thin 9s of real uploads were misread for it (BENCHMARKS.md, "Real uploads").
    """
    images = digits.images
    thinner = ndimage.grey_erosion(images, size=(1, 2, 2))
    thicker = ndimage.grey_dilation(images, size=(1, 2, 2))
    return _inputs(np.concatenate([images, thinner, thicker])), np.tile(digits.labels, 3)


def _version(pipeline: Pipeline, whole: SGDClassifier | None) -> str:
    """The content hash of what the model answers with: the digit pipeline and the head."""
    return "sgd-" + hashlib.sha256(pickle.dumps((pipeline, whole), protocol=5)).hexdigest()[:12]


def train(
    mnist: dataset.Mnist, limit: int | None = None, progress: Progress = log.info
) -> DigitModel:
    """Fit a fresh pipeline on the training part of `mnist` and score it on the held-out part."""
    start = time.perf_counter()
    training, holdout = dataset.split(mnist)
    if limit is not None:
        training = training.take(slice(0, limit))
    progress(f"training on {len(training):,} digits from {mnist.source} ...")
    inputs, labels, written = training_inputs(training)
    pipeline = fold_kernel_map(fit_in_chunks(build_pipeline(), inputs, labels, written))
    whole = train_whole(pipeline, training)
    progress(
        f"fitted in {time.perf_counter() - start:.1f} s; scoring {len(holdout):,} held-out digits"
    )
    accuracy = float(np.mean(pipeline.predict(as_inputs(holdout)) == holdout.labels))
    elapsed = time.perf_counter() - start
    info = ModelInfo(
        version=_version(pipeline, whole),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training_digits=len(training),
        holdout_digits=len(holdout),
        holdout_accuracy=round(accuracy, 4),
        sklearn_version=sklearn.__version__,
        data_source=mnist.source,
        training_seconds=round(elapsed, 2),
    )
    progress(f"held-out accuracy {accuracy:.2%}; model {info.version} ({elapsed:.1f} s)")
    return DigitModel(pipeline, info, whole)


def train_whole(pipeline: Pipeline, training: dataset.Digits) -> SGDClassifier:
    """The `whole` head: on the fitted pipeline's features, one whole digit or not, learnt from
    the training digits framed whole, as fragments and run together (segmentation)."""
    pieces, whole = segmentation.training_pieces(training.images, np.random.default_rng(SEED))
    features = pieces.reshape(len(pieces), -1)
    for _, step in pipeline.steps[:-1]:
        features = step.transform(features)
    head = SGDClassifier(loss="log_loss", alpha=1e-5, average=True, random_state=SEED)
    return head.fit(features, whole)


def run_note_path(path: Path) -> Path:
    return path.with_name(path.name + ".run.json")


def _write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Readers see the old file or the new one, never a partial one."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def save(model: DigitModel, path: Path) -> None:
    """Write the model file (only what the data determines) and, beside it, the run note."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = asdict(model.info)
    run = {"version": model.info.version, **{name: info.pop(name) for name in RUN_FIELDS}}
    payload = {"format": FORMAT, "info": info, "pipeline": model.pipeline, "whole": model.whole}
    _write_atomically(path, lambda stream: joblib.dump(payload, stream))
    note = json.dumps(run, indent=1).encode()

    def write_note(stream: IO[bytes]) -> None:
        stream.write(note)

    _write_atomically(run_note_path(path), write_note)


def _run_facts(path: Path, version: str) -> dict[str, Any]:
    """The run note of this very model, or nothing (missing, unreadable or another model's)."""
    try:
        note = json.loads(run_note_path(path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(note, dict) or note.get("version") != version:
        return {}
    return {name: note.get(name) for name in RUN_FIELDS}


def load(path: Path) -> DigitModel:
    """Load and check the cache. Raises UnusableCache, saying why, for anything not servable."""
    if not path.is_file():
        raise UnusableCache(f"no model file at {path}")
    try:
        payload = joblib.load(path)  # our own cache file, never an upload
    except Exception as exc:  # a damaged pickle can raise almost anything
        raise UnusableCache(f"{path} cannot be read: {type(exc).__name__}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UnusableCache(f"{path} is not a model cache of format {FORMAT}")
    try:
        info = ModelInfo(**payload["info"])
    except (KeyError, TypeError) as exc:
        raise UnusableCache(f"{path} has malformed metadata: {exc}") from exc
    info = replace(info, **_run_facts(path, info.version))
    if info.sklearn_version != sklearn.__version__:
        raise UnusableCache(
            f"{path} was written by scikit-learn {info.sklearn_version}; "
            f"this is {sklearn.__version__}"
        )
    pipeline = payload.get("pipeline")
    if not isinstance(pipeline, Pipeline) or not np.array_equal(
        getattr(pipeline, "classes_", []), DIGITS
    ):
        raise UnusableCache(f"{path} does not hold a fitted digit classifier")
    whole = payload.get("whole")
    if not isinstance(whole, SGDClassifier):
        raise UnusableCache(f"{path} does not hold the whole-digit head")
    return DigitModel(pipeline, info, whole)


def load_or_train(
    settings: Settings,
    mnist_loader: Callable[[], dataset.Mnist] | None = None,
    progress: Progress = log.info,
) -> tuple[DigitModel, bool]:
    """The cached model, or a freshly trained and cached one. Returns (model, trained_here).

    Safe to call from several processes at once: one trains under the file lock, the others
    wait for it and then load its file.
    """
    path = settings.model_path

    def trained() -> DigitModel:
        mnist = mnist_loader() if mnist_loader else load_mnist(settings)
        return train(mnist, settings.train_limit, progress)

    try:
        return load(path), False
    except UnusableCache as exc:
        log.info("model cache not usable: %s", exc)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock")
        lock.acquire()
    except OSError as exc:
        log.error(
            "the model cannot be cached: %s is not writable (%s). Training one in memory now, "
            "and at every start; make MODEL_PATH's folder writable, or build the image with "
            "the model in it.",
            path.parent,
            exc.strerror or exc,
        )
        return trained(), True
    try:
        try:  # another process may have trained while this one waited for the lock
            return load(path), False
        except UnusableCache as exc:
            if path.exists():
                log.warning("retraining: %s", exc)
        model = trained()
        save(model, path)
        progress(f"saved {path}")
        return model, True
    finally:
        lock.release()


def load_mnist(settings: Settings) -> dataset.Mnist:
    return dataset.load(
        settings.mnist_data_dir,
        settings.download_dir,
        settings.mnist_mirrors,
        settings.download_timeout,
    )


def holdout_probabilities(
    served: DigitModel, mnist: dataset.Mnist
) -> tuple[dataset.Digits, np.ndarray]:
    """The held-out digits of `mnist` and the model's probabilities for them."""
    _, holdout = dataset.split(mnist)
    return holdout, served.probabilities(holdout.images / np.float32(255))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train_cmd = commands.add_parser("train", help="train now and write the model cache")
    train_cmd.add_argument("--limit", type=int, help="train on at most this many digits")
    evaluate_cmd = commands.add_parser(
        "evaluate", help="score the cached model on the held-out digits and draw reports"
    )
    evaluate_cmd.add_argument(
        "--report-dir", type=Path, default=Path("reports"), help="where the PNG reports go"
    )
    args = parser.parse_args(argv)

    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(message)s", stream=sys.stderr)
    progress: Progress = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        mnist = load_mnist(settings)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "train":
        model = train(mnist, args.limit or settings.train_limit, progress)
        save(model, settings.model_path)
        print(f"saved {settings.model_path}", file=sys.stderr)
        print(f"held-out accuracy: {model.info.holdout_accuracy:.4f}")
        return 0
    try:
        served = load(settings.model_path)
    except UnusableCache as exc:
        print(f"error: {exc}; run `python -m model train` first", file=sys.stderr)
        return 2
    holdout, probabilities = holdout_probabilities(served, mnist)
    evaluation = reports.evaluate(probabilities, holdout.labels)
    print(f"model {served.info.version}")
    print(evaluation.summary())
    args.report_dir.mkdir(parents=True, exist_ok=True)
    reports.confusion_png(evaluation, args.report_dir / "confusion.png")
    drawn = reports.mistakes_png(
        holdout.images, holdout.labels, probabilities, args.report_dir / "mistakes.png"
    )
    print(
        f"wrote {args.report_dir / 'confusion.png'} and {args.report_dir / 'mistakes.png'} "
        f"({drawn} most confident mistakes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
