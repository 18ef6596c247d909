"""Request and response bodies, as they appear in the OpenAPI schema at /docs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError


def _absent(value: object) -> bool:
    return value is None


PROCESSED = (
    "With ?include=processed: the 28x28 image the model classified, white on black, as a "
    "base64 PNG. Shows what the preprocessing made of the upload."
)


class Prediction(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prediction": "7",
                    "confidence": 0.987,
                    "probabilities": [
                        0.0004,
                        0.0011,
                        0.0042,
                        0.0021,
                        0.0003,
                        0.0006,
                        0.0001,
                        0.987,
                        0.0009,
                        0.0033,
                    ],
                    "model_version": "sgd-3f9c2a7b41d0",
                }
            ]
        }
    )

    prediction: str = Field(pattern=r"^[0-9]$", description="The recognised digit, as a string.")
    confidence: float = Field(ge=0, le=1, description="Probability of `prediction`.")
    probabilities: list[float] = Field(
        min_length=10, max_length=10, description="Probability of each digit 0-9; they sum to 1."
    )
    model_version: str = Field(description="Version of the model that answered.")
    processed: str | None = Field(default=None, description=PROCESSED, exclude_if=_absent)


class Box(BaseModel):
    """Where a digit is in the upload, in its own pixels (after EXIF orientation)."""

    x: int = Field(ge=0, description="Left edge, from the upload's left.")
    y: int = Field(ge=0, description="Top edge, from the upload's top.")
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class NumberDigit(BaseModel):
    digit: str = Field(pattern=r"^[0-9]$", description="The recognised digit.")
    confidence: float = Field(ge=0, le=1, description="Probability of `digit`.")
    probabilities: list[float] = Field(
        min_length=10, max_length=10, description="Probability of each digit 0-9."
    )
    box: Box
    processed: str | None = Field(default=None, description=PROCESSED, exclude_if=_absent)


class NumberPoint(BaseModel):
    """A point or a dash between two digits."""

    after: int = Field(ge=1, description="How many digits come before it.")
    box: Box


NUMBER_PATTERN = r"^[0-9]+([.-][0-9]+)*$"


class NumberPrediction(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "number": "42",
                    "confidence": 0.97,
                    "digits": [
                        {
                            "digit": "4",
                            "confidence": 0.99,
                            "probabilities": [0, 0, 0, 0, 0.99, 0, 0, 0, 0, 0.01],
                            "box": {"x": 12, "y": 30, "width": 40, "height": 61},
                        },
                        {
                            "digit": "2",
                            "confidence": 0.98,
                            "probabilities": [0, 0, 0.98, 0.01, 0, 0, 0, 0.01, 0, 0],
                            "box": {"x": 60, "y": 28, "width": 44, "height": 63},
                        },
                    ],
                    "model_version": "sgd-3f9c2a7b41d0",
                }
            ]
        }
    )

    number: str = Field(
        pattern=NUMBER_PATTERN,
        description='The digits read, left to right, with a "." for each point and a "-" for '
        "each dash between two of them (a decimal point: `points`; a date, a phone number: "
        "`dashes`).",
    )
    confidence: float = Field(
        ge=0, le=1, description="Probability that the whole number is right: its digits' product."
    )
    digits: list[NumberDigit] = Field(min_length=1)
    points: list[NumberPoint] = Field(
        default_factory=list,
        description="Points written between two digits on their baseline (a decimal point, the "
        "dots of a date), left to right; none in a number without.",
    )
    dashes: list[NumberPoint] = Field(
        default_factory=list,
        description="Dashes written between two digits at their mid-height (a date, a phone "
        "number, a range), left to right; none in a number without.",
    )
    model_version: str = Field(description="Version of the model that answered.")


class Error(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "File provided is not an image."}]}
    )

    detail: str = Field(description="What was wrong, and how to fix it.")


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    status: str = Field(examples=["ready"])
    model_version: str = Field(examples=["sgd-3f9c2a7b41d0"])


class ModelInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": "sgd-3f9c2a7b41d0",
                    "trained_at": "2026-11-24T09:30:00+00:00",
                    "training_digits": 8000,
                    "holdout_digits": 2000,
                    "holdout_accuracy": 0.9645,
                    "sklearn_version": "1.9.1",
                    "data_source": "/mnist-data",
                    "training_seconds": 4.2,
                }
            ]
        }
    )

    version: str
    trained_at: str | None = Field(description="When it was trained (UTC, ISO 8601).")
    training_digits: int
    holdout_digits: int
    holdout_accuracy: float = Field(description="Share of held-out digits classified right.")
    sklearn_version: str
    data_source: str = Field(description="Folder the MNIST files were read from.")
    training_seconds: float | None


# --- accounts and history (/api/) ---------------------------------------------------------

USERNAME_CHARACTERS = re.compile(r"[A-Za-z0-9@.+_-]+")  # the whole name: always fullmatch
USERNAME_PATTERN = r"^[A-Za-z0-9@.+_-]{3,150}$"  # the same rule, for the schema (JSON Schema
# patterns have no fullmatch; its "$" is the end of the text, as ECMAScript reads it)
PASSWORD_LENGTH = (8, 1024)


def _unicode(value: str) -> str:
    """Refuse text that cannot be stored or hashed: JSON allows lone surrogates ("\\ud800"),
    UTF-8 does not."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "unicode", "Text must be valid Unicode (it holds a lone surrogate)."
        ) from None
    return value


def _unicode_if_text(value: object) -> object:
    return _unicode(value) if isinstance(value, str) else value


Text = Annotated[str, AfterValidator(_unicode)]


class UserCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"username": "ada", "email": "ada@example.com", "password": "correct horse"}
            ]
        }
    )

    username: Text = Field(
        description="3-150 letters, digits and @ . + - _",
        json_schema_extra={"minLength": 3, "maxLength": 150, "pattern": USERNAME_PATTERN},
    )
    email: Annotated[EmailStr, BeforeValidator(_unicode_if_text)]
    password: Text = Field(
        description="8 to 1,024 characters, not the username.",
        json_schema_extra={"minLength": PASSWORD_LENGTH[0], "maxLength": PASSWORD_LENGTH[1]},
    )

    @field_validator("username")
    @classmethod
    def _username_rules(cls, value: str) -> str:
        if not 3 <= len(value) <= 150:
            raise PydanticCustomError(
                "username_length", "Username must be 3 to 150 characters long."
            )
        if not USERNAME_CHARACTERS.fullmatch(value):
            raise PydanticCustomError(
                "username_characters", "Username may contain only letters, digits and @ . + - _"
            )
        return value

    @model_validator(mode="after")
    def _password_rules(self) -> UserCreate:
        if len(self.password) < PASSWORD_LENGTH[0]:
            raise PydanticCustomError(
                "password_length", "Password must be at least 8 characters long."
            )
        if len(self.password) > PASSWORD_LENGTH[1]:
            raise PydanticCustomError(
                "password_length", "Password must be at most 1,024 characters long."
            )
        if self.password.casefold() == self.username.casefold():
            raise PydanticCustomError("password_is_username", "Password must not be the username.")
        return self


class LoginRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "ada", "password": "correct horse"}]}
    )

    username: Text = Field(max_length=150)
    password: Text = Field(max_length=PASSWORD_LENGTH[1])
    email: str | None = Field(default=None, description="Accepted and ignored, as before.")


class Registered(BaseModel):
    token: str = Field(description="Send it as 'Authorization: Token <token>'.")
    user_id: int
    username: str


class LoggedIn(Registered):
    email: str


class Profile(BaseModel):
    user_id: int
    username: str
    email: str
    date_joined: datetime = Field(description="When the account was made (UTC).")
    predictions: int = Field(description="How many predictions the user has kept.")


class HistoryItem(BaseModel):
    id: int
    kind: Literal["digit", "number"] = Field(
        default="digit", description="A digit (POST /api/predict/) or a number (/predict/number)."
    )
    result: int | None = Field(ge=0, le=9, description="The recognised digit; null for a number.")
    number: str | None = Field(
        default=None,
        pattern=NUMBER_PATTERN,
        description="A number's digits (and points and dashes).",
        exclude_if=_absent,
    )
    confidence: float = Field(description="Of the digit; of a number, that all its digits are.")
    probabilities: list[float] = Field(
        max_length=10, description="Of each digit 0-9; empty for a number (see `digits`)."
    )
    digits: list[NumberDigit] | None = Field(
        default=None, description="A number's digits, left to right.", exclude_if=_absent
    )
    model_version: str
    created_at: datetime
    image: str = Field(description="URL of the uploaded image (the owner's token required).")
    processed: str | None = Field(default=None, description=PROCESSED, exclude_if=_absent)


class HistoryPage(BaseModel):
    count: int = Field(description="How many predictions the user has in all.")
    next: str | None = Field(description="URL of the next page, if any.")
    previous: str | None = Field(description="URL of the previous page, if any.")
    results: list[HistoryItem]


class BatchError(BaseModel):
    status: int = Field(description="The HTTP status this file alone would have had.")
    detail: str


class BatchItem(BaseModel):
    index: int = Field(description="Position of the file in the request, from 0.")
    filename: str | None
    prediction: str | None = Field(default=None, pattern=r"^[0-9]$")
    confidence: float | None = None
    probabilities: list[float] | None = None
    error: BatchError | None = Field(default=None, description="Why this file got no prediction.")


class BatchPrediction(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "sgd-3f9c2a7b41d0",
                    "results": [
                        {
                            "index": 0,
                            "filename": "seven.png",
                            "prediction": "7",
                            "confidence": 0.99,
                            "probabilities": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.99, 0.0, 0.01],
                            "error": None,
                        },
                        {
                            "index": 1,
                            "filename": "notes.txt",
                            "prediction": None,
                            "confidence": None,
                            "probabilities": None,
                            "error": {"status": 400, "detail": "File provided is not an image."},
                        },
                    ],
                }
            ]
        }
    )

    model_version: str
    results: list[BatchItem] = Field(description="One per file, in the order sent.")
