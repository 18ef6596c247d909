"""The application: settings in, a wired FastAPI app out. `uvicorn main:app` serves it."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

import api
import db
import errors
import history
import logs
import metrics
import pages
import routes
from config import Settings
from errors import ServiceError, database_error
from limits import BodySizeLimit
from predictor import Predictor

log = logging.getLogger(__name__)

DESCRIPTION = """
Recognises the handwritten digit (0-9) in an uploaded image: photos of paper, scans, browser
canvas drawings, or MNIST-format images. Upload with `POST /predict/mnist` (multipart field
`file`). Registered users (`/api/register/`, `/api/login/`) send `Authorization: Token <key>`
and keep their predictions, with the uploads, in a history of their own (`/api/history/`).
"""


METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
UNPARSABLE_BODY = (
    "The request body cannot be parsed: send JSON in UTF-8, or a multipart/form-data upload."
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    logs.configure(settings.log_level, settings.log_format)
    engine = db.connect(
        settings.database,
        db.Pool(
            size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            timeout=settings.database_pool_timeout,
            connect_timeout=settings.database_connect_timeout,
        ),
    )
    db.watch(engine, metrics.connection_checked_out)
    predictor = Predictor(settings, keeper=history.Keeper(engine))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgraded = _upgrade(engine)  # replicas booting together wait here for one another
        predictor.start()
        # Everything made so far (modules, the model, the app) lives as long as the process:
        # take it out of the garbage collector's full scans, which otherwise stall the event
        # loop for tens of milliseconds now and then under load (and, before the fork of the
        # prediction process, would touch and so copy every shared page).
        gc.freeze()
        await predictor.serve()
        # a database that was unreachable at start-up is upgraded as soon as it is back
        retrying = None if upgraded else asyncio.create_task(_upgrade_when_back(engine))
        yield
        if retrying:
            retrying.cancel()
        await predictor.stop()
        engine.dispose()

    # Swagger UI and ReDoc served from the package's own copies, not a CDN: /docs must work
    # on hosts without internet access.
    app = FastAPIOffline(
        title="Handwritten digit recognition",
        description=DESCRIPTION,
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.predictor = predictor
    app.state.engine = engine
    app.include_router(routes.router)
    routes.hold_uploads_in_memory(settings.max_upload_bytes)
    app.include_router(api.router)
    app.include_router(metrics.router)
    pages.mount(app)
    one_image = (settings.max_upload_bytes, "Send a smaller image.")
    app.add_middleware(
        BodySizeLimit,
        uploads={
            "/predict/mnist": one_image,
            "/predict/number": one_image,
            "/api/predict/": one_image,
            "/predict/mnist/batch": (settings.max_batch_bytes, "Send fewer or smaller images."),
        },
    )
    app.add_middleware(metrics.RequestMetrics)  # outermost: it sees every answer, 413s too

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each input back, and fails (a 500) on inputs JSON
        # cannot carry: NaN, lone surrogates
        return JSONResponse({"detail": errors.encodable(jsonable_encoder(exc.errors()))}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route matching the path only
            # (GET of a history item, not its DELETE): name those of every route
            allowed = [
                method
                for method in METHODS
                if any(
                    route.matches({**request.scope, "method": method})[0] == Match.FULL
                    for route in app.router.routes
                )
            ]
            headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
            return JSONResponse({"detail": exc.detail}, 405, headers=headers)
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            exc = StarletteHTTPException(400, UNPARSABLE_BODY)
        return await http_exception_handler(request, exc)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)  # every pooled connection busy for DATABASE_POOL_TIMEOUT
    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable for %s %s: %s", request.method, request.url.path, exc)
        return await service_error(request, database_error(str(exc)))

    return app


UPGRADE_RETRY_SECONDS = (1, 2, 5, 10, 30)


def _upgrade(engine: Engine, quiet: bool = False) -> bool:
    """Upgrade the schema; False (and one log line that says what, where and how to fix it)
    when the database cannot be reached or written. Predictions without a token go on."""
    try:
        db.upgrade(engine)
    except (OperationalError, OSError) as exc:
        if not quiet:
            log.error(
                "accounts and history are unavailable: the database %s cannot be reached or "
                "written (%s). Give the service a writable DATA_DIR (a volume at /app/data in "
                "the image) or a reachable DATABASE_URL; it upgrades the schema as soon as it "
                "can. Predictions without a token still work.",
                engine.url.render_as_string(hide_password=True),
                str(getattr(exc, "orig", exc)).strip(),
            )
        return False
    return True


async def _upgrade_when_back(engine: Engine) -> None:
    for attempt in itertools.count():
        await asyncio.sleep(UPGRADE_RETRY_SECONDS[min(attempt, len(UPGRADE_RETRY_SECONDS) - 1)])
        if await asyncio.to_thread(_upgrade, engine, True):
            log.info("the database is back: schema at %s", db.head())
            return


def __getattr__(name: str) -> FastAPI:
    # `uvicorn main:app` builds the app on first access, so importing this module (tests,
    # tools) reads no settings and starts nothing.
    if name == "app":
        return create_app()
    raise AttributeError(name)
