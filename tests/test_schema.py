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

import dataset
import model
from bench.postgres import Cluster
from conftest import make_settings, png
from main import create_app

EXAMPLES = 50  # per operation, each way


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model_file: Path
) -> Iterator[object]:
    """The app, on a SQLite file or a database of the session's PostgreSQL server."""
    folder = tmp_path_factory.mktemp("schema")
    database = {}
    if request.param == "postgresql":
        cluster: Cluster = request.getfixturevalue("postgres")
        database["database_url"] = cluster.create_database(folder.name.lower())
    served = make_settings(folder, **database)
    served.model_path.parent.mkdir(parents=True)
    shutil.copy(model_file, served.model_path)
    shutil.copy(model.run_note_path(model_file), model.run_note_path(served.model_path))
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(served))


def register(api: schemathesis.BaseSchema, name: str) -> str:
    with asgi.get_client(api.app) as client:
        answer = client.post(
            "http://testserver/api/register/",
            json={"username": name, "email": f"{name}@example.com", "password": "long enough"},
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


@pytest.fixture(scope="module")
def token(api: schemathesis.BaseSchema) -> str:
    """A token for the fuzzing runs (which may well log it out: POST /api/logout/ is fuzzed)."""
    return register(api, "fuzz")


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


def test_stateful_sequences_follow_the_links_and_stay_consistent(
    api: schemathesis.BaseSchema, holdout: dataset.Digits
) -> None:
    """Sequences of calls along the schema's links (keep a prediction, then read, fetch the
    image of, delete, read again...) with a token: no server error, every response as
    documented, and schemathesis's stateful checks (a deleted record stays gone, ...)."""
    base = api.as_state_machine()
    token = register(api, "sequences")
    digit = png(holdout.images[1])
    kept: list[int] = []

    class Sequences(base):  # type: ignore[valid-type,misc]
        def before_call(self, case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            # generated bytes are never an image: keep a real digit, so the links are followed
            if case.operation.path == "/api/predict/":
                case.body = {"image": digit}  # type: ignore[dict-item]

        def after_call(self, response: Any, case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            if case.operation.path == "/api/predict/" and response.status_code == 201:
                kept.append(response.json()["id"])

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:  # type: ignore[type-arg]
            return {"headers": {"Authorization": f"Token {token}"}}

        def validate_response(
            self,
            response: Any,
            case: schemathesis.Case,  # type: ignore[type-arg]
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                excluded_checks=[checks.positive_data_acceptance, checks.negative_data_rejection],
                headers=self.get_call_kwargs(case)["headers"],
            )

    Sequences.run(
        settings=settings(
            max_examples=25,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
    )
    assert len(kept) >= 10  # the sequences did start from kept predictions
