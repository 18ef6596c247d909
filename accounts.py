"""Accounts: password hashing, login tokens, the login throttle, and who is asking.

Passwords are hashed with Argon2id (argon2-cffi) using OWASP's recommended parameters
(19 MiB, 2 passes, 1 lane), cheap enough that 40 concurrent registrations stay within memory.
Tokens are 256 random bits; only their SHA-256 is stored. A failed login looks the same, in
message and in time, whether the username exists or not.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader
from sqlalchemy.engine import Engine

import db
from config import Settings
from errors import ServiceError

hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the username is unknown, so that takes as long as a wrong password.
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))

LOGIN_FAILED = "Unable to log in with provided credentials."
INVALID_TOKEN = "Invalid or expired token."  # noqa: S105 -- a message, not a secret


class Unauthorized(ServiceError):
    status_code = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": "Token"}


class LoginFailed(ServiceError):
    status_code = 400


class TooManyAttempts(ServiceError):
    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}

    def __reduce__(self) -> tuple[type, tuple[str, int]]:
        return TooManyAttempts, (self.detail, self.retry_after)


class UsernameTaken(ServiceError):
    status_code = 409


@dataclass(frozen=True)
class Caller:
    """An authenticated request: who, and the hash of the token they used."""

    user_id: int
    token_hash: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(engine: Engine, settings: Settings, user_id: int) -> str:
    token = secrets.token_urlsafe(32)  # 256 bits
    db.add_token(
        engine,
        user_id=user_id,
        token_hash=hash_token(token),
        lifetime=timedelta(days=settings.token_lifetime_days),
    )
    return token


def register(engine: Engine, *, username: str, email: str, password: str) -> dict[str, Any]:
    try:
        return db.create_user(
            engine, username=username, email=email, password_hash=hasher.hash(password)
        )
    except db.Conflict as exc:
        raise UsernameTaken(f"The username {username!r} is taken.") from exc


def log_in(engine: Engine, settings: Settings, *, username: str, password: str) -> dict[str, Any]:
    """The user, when the password is right and the username is not throttled."""
    window = timedelta(minutes=settings.login_failure_window_minutes)
    failures = db.recent_login_failures(engine, username=username, window=window)
    if len(failures) >= settings.login_max_failures:
        unblocked = failures[-settings.login_max_failures] + window
        wait = max(1, math.ceil((unblocked - db.now()).total_seconds()))
        raise TooManyAttempts(
            f"Too many failed logins for this username; try again in {wait} seconds.", wait
        )
    user = db.find_user(engine, username=username)
    try:
        hasher.verify(user["password_hash"] if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        db.record_login_failure(engine, username=username)
        raise LoginFailed(LOGIN_FAILED)
    db.clear_login_failures(engine, username=username)
    return user


def presented_token(request: Request, required: bool) -> str | None:
    """The hash of the token the request carries (not yet checked against the database)."""
    header = request.headers.get("authorization")
    if not header:
        if required:
            raise Unauthorized("Authentication credentials were not provided.")
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not token.strip():
        raise Unauthorized("Use the header 'Authorization: Token <key>'.")
    return hash_token(token.strip())


async def _caller(request: Request, required: bool) -> Caller | None:
    presented = presented_token(request, required)
    if presented is None:  # answered here: no trip to the thread pool for anonymous requests
        return None
    row = await run_in_threadpool(db.token_owner, request.app.state.engine, token_hash=presented)
    if row is None or not hmac.compare_digest(row["token_hash"], presented):
        raise Unauthorized(INVALID_TOKEN)
    return Caller(user_id=row["user_id"], token_hash=presented)


# Declared so that /docs offers an "Authorize" button; the header is parsed in _caller.
token_header = APIKeyHeader(
    name="Authorization",
    scheme_name="Token",
    description="`Token <key>`, with the key from /api/register/ or /api/login/.",
    auto_error=False,
)
TokenHeader = Annotated[str | None, Security(token_header)]


async def require_caller(request: Request, _header: TokenHeader) -> Caller:
    caller = await _caller(request, required=True)
    assert caller is not None
    return caller


CallerDep = Annotated[Caller, Depends(require_caller)]
