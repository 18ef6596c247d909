"""The /api/ endpoints: accounts, tokens, predictions kept in a user's history.

The contract of the service this one replaces (a Django REST Framework API) is kept, so its
clients work unchanged: `Authorization: Token <key>`, trailing slashes, `count`/`next`/
`previous`/`results` pages. A user only ever sees their own records: another user's record
answers 404, exactly as a missing one does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Path, Query, Request, Response, UploadFile

import accounts
import db
import schemas
from accounts import CallerDep, presented_token
from errors import ServiceError
from predictor import Predictor, Result
from routes import ERRORS, NOT_EMPTY, Include, json_response, processed, read_upload

router = APIRouter(prefix="/api", tags=["accounts and history"])

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.Error, "description": "Missing, invalid or expired token"},
}
JSON_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.Error, "description": "The body cannot be parsed (not UTF-8 JSON)"},
    413: {"model": schemas.Error, "description": "The body is over 64 kB"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.Error, "description": "No such prediction in your history"},
}
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Every integer a client sends is bounded, so the database never sees one it cannot hold:
# ids as PostgreSQL's integer, offsets (page numbers times sizes included) likewise.
MAX_ID = 2**31 - 1
MAX_OFFSET = 2**31 - 1
MAX_PAGE = MAX_OFFSET // MAX_PAGE_SIZE + 1

PredictionId = Annotated[int, Path(ge=1, le=MAX_ID, description="The prediction's id.")]


class NotFound(ServiceError):
    status_code = 404


MISSING = "No such prediction in your history."  # also for another user's: never "forbidden"


def _engine(request: Request) -> Any:
    return request.app.state.engine


@router.post(
    "/register/",
    status_code=201,
    response_model=schemas.Registered,
    responses={
        409: {"model": schemas.Error, "description": "Username taken"},
        **JSON_BODY_ERRORS,
    },
)
def register(body: schemas.UserCreate, request: Request) -> schemas.Registered:
    """Create an account and get a login token."""
    engine, settings = _engine(request), request.app.state.settings
    user = accounts.register(
        engine, username=body.username, email=body.email, password=body.password
    )
    token = accounts.issue_token(engine, settings, user["id"])
    return schemas.Registered(token=token, user_id=user["id"], username=user["username"])


@router.post(
    "/login/",
    response_model=schemas.LoggedIn,
    responses={
        400: {"model": schemas.Error, "description": "Wrong username or password"},
        429: {"model": schemas.Error, "description": "Too many failed logins; see Retry-After"},
        **JSON_BODY_ERRORS,
    },
)
def login(body: schemas.LoginRequest, request: Request) -> schemas.LoggedIn:
    """Exchange a username and password for a new login token."""
    engine, settings = _engine(request), request.app.state.settings
    user = accounts.log_in(engine, settings, username=body.username, password=body.password)
    token = accounts.issue_token(engine, settings, user["id"])
    return schemas.LoggedIn(
        token=token, user_id=user["id"], username=user["username"], email=user["email"]
    )


@router.post("/logout/", status_code=204, responses=AUTH_ERRORS)
def logout(caller: CallerDep, request: Request) -> Response:
    """Revoke the token this request was made with."""
    db.delete_token(_engine(request), token_hash=caller.token_hash)
    return Response(status_code=204)


@router.get("/profile/", response_model=schemas.Profile, responses=AUTH_ERRORS)
def profile(caller: CallerDep, request: Request) -> schemas.Profile:
    """Who the token belongs to."""
    engine = _engine(request)
    user = db.get_user(engine, user_id=caller.user_id)
    if user is None:  # the account went away while the token was in flight
        raise accounts.Unauthorized("Invalid or expired token.")
    count = db.count_predictions(engine, user_id=caller.user_id)
    return schemas.Profile(
        user_id=user["id"],
        username=user["username"],
        email=user["email"],
        date_joined=user["created_at"],
        predictions=count,
    )


IMAGE_PATH = "/history/{prediction_id}/image/"


def _image_urls(request: Request) -> str:
    """The image URL of every prediction, to format with its id. (Starlette's url_for walks
    all routes, about 0.1 ms a call: too slow for each item of a page.)"""
    return str(request.base_url).rstrip("/") + router.prefix + IMAGE_PATH


def _item(record: dict[str, Any], image_urls: str) -> schemas.HistoryItem:
    return schemas.HistoryItem(
        id=record["id"],
        kind=record["kind"],
        result=record["result"],
        number=record["number"],
        confidence=record["confidence"],
        probabilities=record["probabilities"],
        digits=record["digits"],
        model_version=record["model_version"],
        created_at=record["created_at"],
        image=image_urls.format(prediction_id=record["id"]),
    )


# OpenAPI links: what a client (and schemathesis's stateful tests) can do with a new record
KEPT_LINKS = {
    name: {"operationId": operation, "parameters": {"prediction_id": "$response.body#/id"}}
    for name, operation in [
        ("GetPrediction", "history_item"),
        ("GetPredictionImage", "history_image"),
        ("DeletePrediction", "delete_history_item"),
    ]
}


@router.post(
    "/predict/",
    status_code=201,
    response_model=schemas.HistoryItem,
    responses={**ERRORS, **AUTH_ERRORS, 201: {"description": "Kept", "links": KEPT_LINKS}},
    openapi_extra={"security": [{"Token": []}]},
)
async def predict(
    request: Request,
    image: Annotated[
        UploadFile, File(description="An image of one digit.", json_schema_extra=NOT_EMPTY)
    ],
    include: Include = None,
) -> Response:
    """Recognise a digit and keep the prediction, with the upload, in your history."""
    # read here, not injected, and answered as built: see routes.predict_mnist
    predictor: Predictor = request.app.state.predictor
    token = presented_token(request, required=True)
    assert token is not None
    data = await read_upload(image, predictor.settings.max_upload_bytes)
    result, record = await predictor.keep(token, data)
    item = _item(record, _image_urls(request))
    if include == "processed":
        assert isinstance(result, Result)
        item.processed = await processed(result)
    return json_response(item, status_code=201)


@router.get(
    "/history/",
    response_model=schemas.HistoryPage,
    responses=AUTH_ERRORS,
)
def history_page(
    caller: CallerDep,
    request: Request,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    page: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> schemas.HistoryPage:
    """Your predictions, newest first: `limit`/`offset`, or `page` (and `page_size`)."""
    if page is not None:
        size, start = page_size, min((page - 1) * page_size, MAX_OFFSET)
    else:
        size, start = limit or DEFAULT_PAGE_SIZE, offset
    total, records = db.list_predictions(
        _engine(request), user_id=caller.user_id, limit=size, offset=start
    )

    image_urls = _image_urls(request)

    def link(at: int) -> str:
        if page is not None:
            return str(request.url.include_query_params(page=at // size + 1, page_size=size))
        return str(request.url.include_query_params(limit=size, offset=at))

    return schemas.HistoryPage(
        count=total,
        next=link(start + size) if start + size < total else None,
        previous=link(max(0, start - size)) if start > 0 else None,
        results=[_item(record, image_urls) for record in records],
    )


@router.get(
    "/history/{prediction_id}/",
    operation_id="history_item",
    response_model=schemas.HistoryItem,
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def history_item(
    prediction_id: PredictionId, caller: CallerDep, request: Request
) -> schemas.HistoryItem:
    """One of your predictions."""
    record = db.get_prediction(
        _engine(request), user_id=caller.user_id, prediction_id=prediction_id
    )
    if record is None:
        raise NotFound(MISSING)
    return _item(record, _image_urls(request))


@router.get(
    IMAGE_PATH,
    name="history_image",
    operation_id="history_image",
    response_class=Response,
    responses={
        200: {"content": {"image/*": {}}, "description": "The uploaded image"},
        **AUTH_ERRORS,
        **NOT_FOUND,
    },
)
def history_image(prediction_id: PredictionId, caller: CallerDep, request: Request) -> Response:
    """The image you uploaded for one of your predictions."""
    found = db.get_prediction_image(
        _engine(request), user_id=caller.user_id, prediction_id=prediction_id
    )
    if found is None:
        raise NotFound(MISSING)
    data, image_type = found
    # served as the type its bytes decoded as; never sniffed into something else by a browser
    return Response(data, media_type=image_type, headers={"X-Content-Type-Options": "nosniff"})


@router.delete(
    "/history/{prediction_id}/",
    operation_id="delete_history_item",
    status_code=204,
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def delete_history_item(
    prediction_id: PredictionId, caller: CallerDep, request: Request
) -> Response:
    """Delete one of your predictions and its image."""
    if not db.delete_prediction(
        _engine(request), user_id=caller.user_id, prediction_id=prediction_id
    ):
        raise NotFound(MISSING)
    return Response(status_code=204)
