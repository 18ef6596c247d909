"""Domain errors. Each carries the HTTP status it maps to; one handler renders them all."""

from __future__ import annotations

import math
from typing import Any


class ServiceError(Exception):
    """An error a client can act on: `detail` says what was wrong and how to fix it."""

    status_code = 400
    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidImage(ServiceError):
    """The upload is not an image we can decode (or it is damaged)."""

    status_code = 400


class EmptyUpload(ServiceError):
    status_code = 400


class NoDigitFound(ServiceError):
    """The image decoded fine, but holds nothing that looks like ink."""

    status_code = 400


class PayloadTooLarge(ServiceError):
    """The upload's bytes, or the decoded image's pixel count, exceed a configured limit."""

    status_code = 413


class TooCostly(PayloadTooLarge):
    """The upload would take more memory or time to decode and prepare than one may."""


class ModelNotReady(ServiceError):
    status_code = 503


class PredictionUnavailable(ServiceError):
    """The prediction process is restarting, or stopped with this request in it."""

    status_code = 503
    headers = {"Retry-After": "1"}  # noqa: RUF012 -- never mutated


class DatabaseUnavailable(ServiceError):
    """Locked past the busy timeout, or unreachable: the client did nothing wrong and can retry."""

    status_code = 503
    headers = {"Retry-After": "1"}  # noqa: RUF012 -- never mutated

    def __init__(
        self, detail: str = "The database is busy or unavailable; try again in a moment."
    ) -> None:
        super().__init__(detail)


class StorageFull(ServiceError):
    """The disk under the database is full: nothing can be stored until space is freed."""

    status_code = 507

    def __init__(
        self,
        detail: str = "The server's storage is full: accounts and history cannot be written "
        "until its operator frees space. Predictions without a token still work.",
    ) -> None:
        super().__init__(detail)


class StorageReadOnly(ServiceError):
    status_code = 503

    def __init__(
        self,
        detail: str = "Accounts and history are unavailable: the server's storage is read-only. "
        "Predictions without a token still work.",
    ) -> None:
        super().__init__(detail)


def database_error(message: str) -> ServiceError:
    """What a database error means to a client: storage full, read-only, or busy."""
    lowered = message.lower()
    if "full" in lowered or "no space" in lowered:
        return StorageFull()
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return StorageReadOnly()
    return DatabaseUnavailable()


class DatasetError(RuntimeError):
    """MNIST could not be read or obtained. Raised at training time, never to a client."""


def encodable(value: Any) -> Any:
    """`value` (JSON-like) with what JSON cannot carry made printable: NaN and infinities as
    strings, lone surrogates as backslash escapes."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list | tuple):
        return [encodable(item) for item in value]
    if isinstance(value, dict):
        return {encodable(key): encodable(item) for key, item in value.items()}
    return value


def human_size(n_bytes: int) -> str:
    """Sizes for messages: 5000000 -> '5 MB', 9123456 -> '9.1 MB', 1500 -> '1.5 kB'."""
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n_bytes} bytes"
