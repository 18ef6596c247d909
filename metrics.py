"""Prometheus metrics at GET /metrics: requests and latency per route and status, predictions
per digit, the served model's version and load time, the database connection pool.

With several worker processes each one counts its own requests; set PROMETHEUS_MULTIPROC_DIR to
an empty directory shared by them and /metrics adds all workers up (prometheus-client's
multiprocess mode).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy.pool import Pool, QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by route and status.",
    ["method", "route", "status"],
)  # fmt: skip
LATENCY = Histogram(
    "http_request_duration_seconds", "Time from request to the end of the answer, by route.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
PREDICTIONS = Counter("digit_predictions_total", "Digits recognised, by digit.", ["digit"])
MODEL = Gauge(
    "digit_model_info", "The served model: 1 for its version.", ["version"],
    multiprocess_mode="max",
)  # fmt: skip
MODEL_LOAD = Gauge(
    "digit_model_load_seconds", "Seconds the served model took to load (or train and save).",
    multiprocess_mode="max",
)  # fmt: skip

DB_CONNECTIONS = Gauge(
    "digit_db_connections", "The server's pooled database connections, by state (in_use, idle).",
    ["state"], multiprocess_mode="livesum",
)  # fmt: skip
DB_CHECKOUT = Histogram(
    "digit_db_checkout_seconds",
    "Time to get a database connection from the pool: waiting for a free one, or opening one.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5, 5, 10),
)
DB_WAITS = Counter(
    "digit_db_pool_waits_total",
    "Checkouts that found every connection the pool may open in use, and waited for one.",
)

router = APIRouter()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
    tags=["operations"],
)
def metrics(request: Request) -> Response:
    """Metrics in Prometheus' text format."""
    _count_connections(request.app.state.engine.pool)
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def count_predictions(digits: Iterable[int]) -> None:
    for digit in digits:
        PREDICTIONS.labels(digit=str(digit)).inc()


def model_loaded(version: str, seconds: float) -> None:
    MODEL.clear()
    MODEL.labels(version=version).set(1)
    MODEL_LOAD.set(seconds)


def _count_connections(pool: Pool) -> None:
    if isinstance(pool, QueuePool):
        DB_CONNECTIONS.labels(state="in_use").set(pool.checkedout())
        DB_CONNECTIONS.labels(state="idle").set(pool.checkedin())


def connection_checked_out(pool: Pool, seconds: float, waited: bool) -> None:
    """Called by the storage layer after each checkout (db.watch)."""
    DB_CHECKOUT.observe(seconds)
    if waited:
        DB_WAITS.inc()
    _count_connections(pool)


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request under its route's path template
    (/api/history/{prediction_id}/, not each id), so the number of series stays bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            REQUESTS.labels(method=method, route=template, status=str(status)).inc()
            LATENCY.labels(method=method, route=template).observe(time.perf_counter() - start)
