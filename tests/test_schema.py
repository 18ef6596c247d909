"""The API against its own OpenAPI schema, driven by schemathesis: generated requests (valid
and not) through the real app, a real SQLite file and a real model, anonymous and with a
token. No request may get a server error, and every response must match its schema."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from schemathesis.python import asgi

import model
from conftest import make_settings
from main import create_app

EXAMPLES = 50  # per operation, each way


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, model_file: Path) -> Iterator[object]:
    folder = tmp_path_factory.mktemp("schema")
    served = make_settings(folder)
    served.model_path.parent.mkdir(parents=True)
    shutil.copy(model_file, served.model_path)
    shutil.copy(model.run_note_path(model_file), model.run_note_path(served.model_path))
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(served))


@pytest.fixture(scope="module")
def token(api: schemathesis.BaseSchema) -> str:
    with asgi.get_client(api.app) as client:
        answer = client.post(
            "http://testserver/api/register/",
            json={"username": "fuzz", "email": "fuzz@example.com", "password": "long enough"},
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests every run: a failure here is reproducible
    database=None,
)


def fuzz(api: schemathesis.BaseSchema, headers: dict[str, str]) -> dict[str, str]:
    """Every operation of the schema, EXAMPLES generated requests each (valid ones, and ones
    that break the schema): what failed, by operation. (schemathesis's own pytest plugin does
    not run on this pytest.)"""
    failures = {}
    for found in api.get_all_operations():
        operation = found.ok()  # type: ignore[union-attr]
        # A schema cannot say "a decodable image of a digit": schema-valid uploads (any bytes)
        # are rightly refused with a 400. And a batch answers 200 with an error per bad file
        # (a file that is "true" or "{}" is as bad as any other), by design.
        excluded = [checks.positive_data_acceptance]
        if operation.path == "/predict/mnist/batch":
            excluded.append(checks.negative_data_rejection)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                checker(operation, mode, headers, excluded)()
            except Unsatisfiable:  # nothing to get wrong: an operation without parameters
                assert mode is GenerationMode.NEGATIVE
            except Exception as failure:
                failures[f"{operation.label} ({mode.value})"] = str(failure)[:3000]
    return failures


def checker(
    operation: Any, mode: GenerationMode, headers: dict[str, str], excluded: list[Any]
) -> Callable[[], None]:
    @given(case=operation.as_strategy(generation_mode=mode))
    @FAST
    def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    return check


def test_anonymous_requests_are_answered_as_documented(api: schemathesis.BaseSchema) -> None:
    failures = fuzz(api, {})
    assert not failures, "\n\n".join(f"{where}: {what}" for where, what in failures.items())


def test_requests_with_a_token_are_answered_as_documented(
    api: schemathesis.BaseSchema, token: str
) -> None:
    failures = fuzz(api, {"Authorization": f"Token {token}"})
    assert not failures, "\n\n".join(f"{where}: {what}" for where, what in failures.items())
