"""Keeping predictions, with their uploads, in a user's history."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

import db
from accounts import INVALID_TOKEN, Unauthorized
from errors import ServiceError, database_error
from predictor import Keep, Kept, NumberResult, Result

log = logging.getLogger(__name__)


def _row(data: bytes, result: Result | NumberResult) -> dict[str, Any]:
    """The prediction's row, without its owner."""
    row = {
        "confidence": result.confidence,
        "model_version": result.model_version,
        "image": data,
        "image_type": result.image_type,
        "image_sha256": hashlib.sha256(data).hexdigest(),
    }
    if isinstance(result, NumberResult):
        return {**row, "kind": "number", "number": result.number, "probabilities": [],
                "digits": result.details()}  # fmt: skip
    return {**row, "kind": "digit", "result": result.digit, "probabilities": result.probabilities}


class Keeper:
    """Checks the tokens of `Keep` jobs and stores their predictions: all of one pass of the
    prediction process in one query and one transaction. Runs in the prediction process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(
        self, jobs: list[Keep], results: list[Result | NumberResult | ServiceError]
    ) -> list[Kept | ServiceError]:
        rows = [
            (job.token_hash, None if isinstance(result, ServiceError) else _row(job.upload, result))
            for job, result in zip(jobs, results, strict=True)
        ]
        try:
            records = db.add_predictions_for_tokens(self.engine, rows)
        except OperationalError as exc:  # locked past the busy timeout, or unreachable
            log.error("could not keep %d predictions: %s", len(rows), exc)
            return [database_error(str(exc)) for _ in jobs]
        outcomes: list[Kept | ServiceError] = []
        for result, record in zip(results, records, strict=True):
            if record is None:  # a bad token is refused before anything else, as by the API
                outcomes.append(Unauthorized(INVALID_TOKEN))
            elif isinstance(result, ServiceError):
                outcomes.append(result)
            else:
                outcomes.append((result, record))
        return outcomes

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to the prediction process as its database URL: it opens connections of its own.
        return (_keeper_for, (self.engine.url.render_as_string(hide_password=False),))


def _keeper_for(url: str) -> Keeper:
    return Keeper(db.connect(url, db.ONE_CONNECTION))  # the prediction process has one thread
