"""Keeping predictions, with their uploads, in a user's history."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine

import db
from predictor import Predictor, Result


def keep(engine: Engine, user_id: int, data: bytes, result: Result) -> dict[str, Any]:
    """Store a prediction and the upload it was made from."""
    return db.add_prediction(
        engine,
        user_id=user_id,
        result=result.digit,
        confidence=result.confidence,
        probabilities=result.probabilities,
        model_version=result.model_version,
        image=data,
        image_type=result.image_type,
        image_sha256=hashlib.sha256(data).hexdigest(),
    )


async def predict_and_keep(
    predictor: Predictor, engine: Engine, user_id: int, data: bytes
) -> tuple[Result, dict[str, Any]]:
    """Predict (on the prediction thread), then keep the prediction (in the thread pool): neither
    on the event loop."""
    result = await predictor.read(data)
    return result, await run_in_threadpool(keep, engine, user_id, data, result)
