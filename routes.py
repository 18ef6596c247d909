"""HTTP endpoints for predictions, health and model information."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette import formparsers

import db
import schemas
from accounts import presented_token
from errors import PayloadTooLarge, ServiceError, StorageFull, human_size
from predictor import NumberResult, Predictor, Result
from preprocessing import FORMAT_NAMES

router = APIRouter()


def _decode_part_header(src: bytes | bytearray, codec: str) -> str:
    """A multipart header value (a file name) in its charset, bytes that do not decode shown as
    U+FFFD. Starlette re-reads such values as Latin-1, so a file name in another encoding came
    back as mojibake; it keeps the raw bytes nowhere else, hence this replacement of its one
    decoding function (tested: tests/test_hardening.py)."""
    try:
        return src.decode(codec, "replace")
    except LookupError:  # a charset nobody knows
        return src.decode("utf-8", "replace")


formparsers._user_safe_decode = _decode_part_header


def hold_uploads_in_memory(limit: int) -> None:
    """Keep each uploaded file in memory up to `limit` bytes (the upload limit), rather than in
    a temporary file past Starlette's 1 MB. Past 1 MB every chunk of the body took a trip to
    the thread pool to be written, and the whole file another to be read back: 5-6 ms of the
    event loop's time for a 3.7 MB phone photo, 40% of all it spent on it (bench/load.py).
    What a slow upload holds meanwhile is bounded by the upload limit either way."""
    formparsers.MultiPartParser.spool_max_size = limit


JSON = "application/json"

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": schemas.Error,
        "description": "Not an image, damaged, empty, of a format not served, no digit in it, "
        "or a multipart body that cannot be parsed",
    },
    401: {"model": schemas.Error, "description": "A token was sent, but it is invalid or expired"},
    413: {
        "model": schemas.Error,
        "description": "Upload or image dimensions over the limit, or the image would take "
        "more memory or time to decode than one upload may",
    },
    503: {
        "model": schemas.Error,
        "description": "The model is still training, or the prediction process is restarting "
        "(see Retry-After)",
    },
}


async def get_predictor(request: Request) -> Predictor:
    # async: a plain function dependency would cost every request a trip to the thread pool
    predictor: Predictor = request.app.state.predictor
    return predictor


PredictorDep = Annotated[Predictor, Depends(get_predictor)]


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes, refusing files over `limit` (the body limit also counts headers)."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"Upload is over {human_size(limit)}, the limit. Send a smaller image."
        )
    return data


NOT_EMPTY = {"minLength": 1}  # a rule the API enforces on an upload, stated in the schema too

Include = Annotated[
    Literal["processed"] | None,
    Query(description="'processed': also return the 28x28 image the model classified."),
]


@router.post(
    "/predict/mnist",
    response_model=schemas.Prediction,
    responses=ERRORS,
    tags=["predictions"],
    openapi_extra={"security": [{}, {"Token": []}]},  # a token is optional here
)
async def predict_mnist(
    request: Request,
    file: Annotated[
        UploadFile,
        File(
            description=f"An image of one digit: {FORMAT_NAMES}.",
            json_schema_extra=NOT_EMPTY,
        ),
    ],
    include: Include = None,
) -> Response:
    """Recognise the handwritten digit in an uploaded image."""
    # The predictor and the token are read here rather than injected: on this hot path each
    # FastAPI dependency cost about 10 us a request, a sixth of the framework's own work.
    predictor: Predictor = request.app.state.predictor
    token = presented_token(request, required=False)
    data = await read_upload(file, predictor.settings.max_upload_bytes)
    if token is None:
        result = await predictor.read(data)
    else:  # a logged-in caller keeps the prediction in their history too
        kept, _ = await predictor.keep(token, data)
        assert isinstance(kept, Result)
        result = kept
    answer = schemas.Prediction(
        prediction=str(result.digit),
        confidence=result.confidence,
        probabilities=result.probabilities,
        model_version=result.model_version,
        processed=await processed(result) if include == "processed" else None,
    )
    return json_response(answer)


@router.post(
    "/predict/number",
    response_model=schemas.NumberPrediction,
    responses={
        **ERRORS,
        400: {
            "model": schemas.Error,
            "description": ERRORS[400]["description"] + ", or more digits than one number may have",
        },
    },
    tags=["predictions"],
    openapi_extra={"security": [{}, {"Token": []}]},  # a token is optional here
)
async def predict_number(
    request: Request,
    file: Annotated[
        UploadFile,
        File(
            description=f"An image of one line of handwritten digits (a number): {FORMAT_NAMES}.",
            json_schema_extra=NOT_EMPTY,
        ),
    ],
    include: Include = None,
) -> Response:
    """Read a handwritten number: its digits, left to right, each with its box in the upload.
    With a token, the number is kept in your history too."""
    predictor: Predictor = request.app.state.predictor
    token = presented_token(request, required=False)
    data = await read_upload(file, predictor.settings.max_upload_bytes)
    if token is None:
        result = await predictor.read_number(data)
    else:
        kept, _ = await predictor.keep(token, data, number=True)
        assert isinstance(kept, NumberResult)
        result = kept
    return json_response(await number_answer(result, include == "processed"))


async def number_answer(result: NumberResult, with_processed: bool) -> schemas.NumberPrediction:
    """The answer for a number read; with each digit's 28x28 when asked for."""
    pngs = await run_in_threadpool(result.processed_pngs) if with_processed else None
    digits = [
        schemas.NumberDigit(**detail, processed=pngs[i] if pngs else None)
        for i, detail in enumerate(result.details())
    ]
    return schemas.NumberPrediction(
        number=result.number,
        confidence=result.confidence,
        digits=digits,
        points=[schemas.NumberPoint(**point) for point in result.point_details()],
        dashes=[schemas.NumberPoint(**dash) for dash in result.dash_details()],
        model_version=result.model_version,
    )


def json_response(answer: BaseModel, status_code: int = 200) -> Response:
    """An answer already built from its schema, as JSON. (Returned as a model, FastAPI would
    validate it once more before serialising it: about 20 us a request on the hot paths.)"""
    return Response(answer.model_dump_json(), status_code=status_code, media_type=JSON)


async def processed(result: Result) -> str:
    """The classified digit as a base64 PNG, encoded off the event loop."""
    return await run_in_threadpool(result.processed_png)


@router.post(
    "/predict/mnist/batch",
    response_model=schemas.BatchPrediction,
    responses={
        400: {"model": schemas.Error, "description": "The multipart body cannot be parsed"},
        413: {"model": schemas.Error, "description": "Too many files, or too many bytes in all"},
        422: {"description": "No files sent"},
        503: ERRORS[503],
    },
    tags=["predictions"],
)
async def predict_mnist_batch(
    predictor: PredictorDep,
    files: Annotated[
        list[UploadFile],
        File(
            description="Up to 256 images, each in its own 'files' part. An empty or bad file "
            "gets an error of its own in the results.",
            json_schema_extra={"minItems": 1},
        ),
    ],
) -> schemas.BatchPrediction:
    """Recognise the digits in many images at once: one result per file, in order."""
    settings = predictor.settings
    if len(files) > settings.max_batch_files:
        raise PayloadTooLarge(
            f"{len(files)} files sent; a batch holds at most {settings.max_batch_files}."
        )
    uploads: list[bytes | ServiceError] = []
    for upload in files:
        try:
            uploads.append(await read_upload(upload, settings.max_upload_bytes))
        except ServiceError as error:
            uploads.append(error)
    readable = [data for data in uploads if isinstance(data, bytes)]
    answers, version = await predictor.read_many(readable)
    outcomes = iter(answers)
    items = []
    for index, (upload, data) in enumerate(zip(files, uploads, strict=True)):
        outcome = data if isinstance(data, ServiceError) else next(outcomes)
        item = schemas.BatchItem(index=index, filename=upload.filename)
        if isinstance(outcome, ServiceError):
            item.error = schemas.BatchError(status=outcome.status_code, detail=outcome.detail)
        else:
            item.prediction = str(outcome.digit)
            item.confidence = outcome.confidence
            item.probabilities = outcome.probabilities
        items.append(item)
    return schemas.BatchPrediction(model_version=version, results=items)


@router.get("/health", response_model=schemas.Health, tags=["operations"])
async def health() -> schemas.Health:
    """Liveness: the process answers. Needs no model."""
    return schemas.Health(status="ok")


@router.get(
    "/ready",
    response_model=schemas.Ready,
    responses={
        503: {
            "model": schemas.Error,
            "description": "Training, the prediction process (re)starting, or storage full",
        }
    },
    tags=["operations"],
)
async def ready(request: Request, predictor: PredictorDep) -> schemas.Ready | JSONResponse:
    """Readiness: 200 while predictions can be served; 503 while the model trains or the
    prediction process (re)starts, or while the storage is full."""
    why = predictor.unavailable()
    if why is None and await run_in_threadpool(db.storage_full, request.app.state.engine):
        why = StorageFull().detail
    if why is not None:
        return JSONResponse({"detail": why}, status_code=503)
    return schemas.Ready(status="ready", model_version=predictor.model.info.version)


@router.get(
    "/model",
    response_model=schemas.ModelInfo,
    responses={503: {"model": schemas.Error, "description": "Still training"}},
    tags=["operations"],
)
async def model_info(predictor: PredictorDep) -> schemas.ModelInfo:
    """Metadata of the served model: version, training data, held-out accuracy."""
    return schemas.ModelInfo.model_validate(predictor.model.info, from_attributes=True)
