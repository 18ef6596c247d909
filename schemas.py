"""Request and response bodies, as they appear in the OpenAPI schema at /docs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
