"""Registering, logging in and out, tokens and the login throttle, through real requests."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient

import db
from config import Settings
from conftest import make_settings
from main import create_app


def register(client: TestClient, username: str = "ada", password: str = "correct horse") -> Any:
    return client.post(
        "/api/register/",
        json={"username": username, "email": f"{username}@example.com", "password": password},
    )


def rows(settings: Settings, table: sa.Table) -> list[dict[str, Any]]:
    engine = db.connect(settings.database)
    with engine.connect() as connection:
        found = [dict(row._mapping) for row in connection.execute(sa.select(table))]
    engine.dispose()
    return found


def test_register(client: TestClient, settings: Settings) -> None:
    answer = register(client)
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {"token", "user_id", "username"}
    assert (body["user_id"], body["username"]) == (1, "ada")
    assert len(body["token"]) == 43  # 256 random bits, URL-safe base64

    [user] = rows(settings, db.users)
    assert (user["username"], user["username_key"], user["email"]) == (
        "ada",
        "ada",
        "ada@example.com",
    )
    assert user["password_hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "correct horse" not in user["password_hash"]
    [token] = rows(settings, db.tokens)
    assert token["token_hash"] == hashlib.sha256(body["token"].encode()).hexdigest()
    assert body["token"] not in str(token)
    lifetime = token["expires_at"] - token["created_at"]
    assert lifetime == timedelta(days=30)


INVALID = [
    # (changes to a valid registration, expected message)
    ({"username": "ad"}, "Username must be 3 to 150 characters long."),
    ({"username": "a" * 151}, "Username must be 3 to 150 characters long."),
    ({"username": "ada lovelace"}, "Username may contain only letters, digits and @ . + - _"),
    ({"username": "ada/../x"}, "Username may contain only letters, digits and @ . + - _"),
    ({"email": "not-an-email"}, "value is not a valid email address"),
    ({"password": "short12"}, "Password must be at least 8 characters long."),
    ({"password": "x" * 1025}, "Password must be at most 1,024 characters long."),
    ({"username": "lovelace", "password": "LoveLace"}, "Password must not be the username."),
    ({"password": None}, "Input should be a valid string"),
]


@pytest.mark.parametrize(("changes", "message"), INVALID)
def test_registration_rules(
    client: TestClient, settings: Settings, changes: dict[str, Any], message: str
) -> None:
    body = {"username": "ada", "email": "ada@example.com", "password": "correct horse", **changes}
    answer = client.post("/api/register/", json=body)
    assert answer.status_code == 422
    assert message in answer.json()["detail"][0]["msg"]
    assert rows(settings, db.users) == []


def test_usernames_are_unique_ignoring_case(client: TestClient, settings: Settings) -> None:
    assert register(client, "Ada").status_code == 201
    answer = register(client, "ADA")
    assert (answer.status_code, answer.json()) == (409, {"detail": "The username 'ADA' is taken."})
    assert [user["username"] for user in rows(settings, db.users)] == ["Ada"]


def test_login_and_profile(client: TestClient) -> None:
    registered = register(client).json()
    answer = client.post(
        "/api/login/", json={"username": "ADA", "password": "correct horse", "email": "x"}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"token", "user_id", "username", "email"}
    assert (body["user_id"], body["username"], body["email"]) == (1, "ada", "ada@example.com")
    assert body["token"] != registered["token"]
    for token in (body["token"], registered["token"]):  # both stay valid
        profile = client.get("/api/profile/", headers={"Authorization": f"Token {token}"})
        assert profile.status_code == 200
        assert {k: v for k, v in profile.json().items() if k != "date_joined"} == {
            "user_id": 1, "username": "ada", "email": "ada@example.com", "predictions": 0,
        }  # fmt: skip


def test_failed_logins_look_the_same(client: TestClient) -> None:
    register(client)
    wrong_password = client.post("/api/login/", json={"username": "ada", "password": "wrong horse"})
    unknown_user = client.post(
        "/api/login/", json={"username": "nobody", "password": "wrong horse"}
    )
    expected = {"detail": "Unable to log in with provided credentials."}
    assert (wrong_password.status_code, wrong_password.json()) == (400, expected)
    assert (unknown_user.status_code, unknown_user.json()) == (400, expected)
    assert wrong_password.headers.keys() == unknown_user.headers.keys()


def test_login_throttle(client: TestClient, settings: Settings) -> None:
    register(client)
    for _ in range(5):
        assert (
            client.post(
                "/api/login/", json={"username": "ada", "password": "nope nope"}
            ).status_code
            == 400
        )
    answer = client.post("/api/login/", json={"username": "Ada", "password": "correct horse"})
    assert answer.status_code == 429
    assert 895 <= int(answer.headers["Retry-After"]) <= 900
    assert answer.json()["detail"].startswith(
        "Too many failed logins for this username; try again in "
    )
    assert len(rows(settings, db.login_failures)) == 5

    # fifteen minutes later the failures no longer count, and a success clears them
    engine = db.connect(settings.database)
    with engine.begin() as connection:
        connection.execute(
            db.login_failures.update().values(failed_at=db.now() - timedelta(minutes=16))
        )
    engine.dispose()
    assert (
        client.post(
            "/api/login/", json={"username": "ada", "password": "correct horse"}
        ).status_code
        == 200
    )
    assert rows(settings, db.login_failures) == []


def test_throttle_holds_across_processes(settings: Settings) -> None:
    """Two app instances on one database (as two workers are): failures in one count in both."""
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        register(first)
        for _ in range(5):
            first.post("/api/login/", json={"username": "ada", "password": "nope nope"})
        answer = second.post("/api/login/", json={"username": "ada", "password": "correct horse"})
        assert answer.status_code == 429


def test_unknown_usernames_are_throttled_too(client: TestClient) -> None:
    for _ in range(5):
        client.post("/api/login/", json={"username": "ghost", "password": "nope nope"})
    assert (
        client.post("/api/login/", json={"username": "ghost", "password": "x"}).status_code == 429
    )


AUTH_HEADERS = [
    # (Authorization header, expected detail)
    (None, "Authentication credentials were not provided."),
    ("Token ", "Use the header 'Authorization: Token <key>'."),
    ("Basic YWRhOmNvcnJlY3QgaG9yc2U=", "Use the header 'Authorization: Token <key>'."),
    ("Token not-a-real-token", "Invalid or expired token."),
]


@pytest.mark.parametrize(("header", "detail"), AUTH_HEADERS)
def test_bad_credentials(client: TestClient, header: str | None, detail: str) -> None:
    register(client)
    answer = client.get("/api/profile/", headers={"Authorization": header} if header else {})
    assert (answer.status_code, answer.json()) == (401, {"detail": detail})
    assert answer.headers["WWW-Authenticate"] == "Token"


def test_bearer_is_accepted_too(client: TestClient) -> None:
    token = register(client).json()["token"]
    assert (
        client.get("/api/profile/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )


def test_expired_tokens_are_refused(client: TestClient, settings: Settings) -> None:
    token = register(client).json()["token"]
    engine = db.connect(settings.database)
    with engine.begin() as connection:
        connection.execute(db.tokens.update().values(expires_at=db.now() - timedelta(seconds=1)))
    engine.dispose()
    answer = client.get("/api/profile/", headers={"Authorization": f"Token {token}"})
    assert (answer.status_code, answer.json()) == (401, {"detail": "Invalid or expired token."})


def test_logout_revokes_only_the_token_used(client: TestClient, settings: Settings) -> None:
    first = register(client).json()["token"]
    second = client.post(
        "/api/login/", json={"username": "ada", "password": "correct horse"}
    ).json()["token"]
    answer = client.post("/api/logout/", headers={"Authorization": f"Token {first}"})
    assert (answer.status_code, answer.content) == (204, b"")
    assert (
        client.get("/api/profile/", headers={"Authorization": f"Token {first}"}).status_code == 401
    )
    assert (
        client.get("/api/profile/", headers={"Authorization": f"Token {second}"}).status_code == 200
    )
    assert len(rows(settings, db.tokens)) == 1


def test_simultaneous_registrations_of_one_name(
    tmp_path: Path, model_file: Path, database_url: str
) -> None:
    """50 clients register the same username at once over real HTTP: exactly one succeeds."""
    settings = make_settings(tmp_path, model_path=model_file, database_url=database_url)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    body = {"username": "race", "email": "race@example.com", "password": "correct horse"}
    try:
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http,
            ThreadPoolExecutor(50) as pool,
        ):
            statuses = list(
                pool.map(lambda _: http.post("/api/register/", json=body).status_code, range(50))
            )
    finally:
        server.should_exit = True
        thread.join(10)
    assert sorted(statuses) == [201] + [409] * 49
    assert len(rows(settings, db.users)) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # SQLite's own file lock
def test_a_locked_database_is_a_503_not_a_500(client: TestClient, settings: Settings) -> None:
    """Another process holds the write lock past the 5 s busy timeout: retry later."""
    token = register(client).json()["token"]
    blocker = sqlite3.connect(settings.database.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        answer = client.post("/api/logout/", headers={"Authorization": f"Token {token}"})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert answer.status_code == 503
    assert answer.json() == {
        "detail": "The database is busy or unavailable; try again in a moment."
    }
    assert answer.headers["Retry-After"] == "1"
    # the lock released, the same request goes through
    assert (
        client.post("/api/logout/", headers={"Authorization": f"Token {token}"}).status_code == 204
    )
