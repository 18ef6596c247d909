"""A throwaway PostgreSQL server for the tests and benchmarks: `initdb` in a temporary folder,
run as an unprivileged user (root's own processes are refused by PostgreSQL), listening on
127.0.0.1 only, password authentication (SCRAM) for every connection.

    with Cluster.start() as cluster:
        url = cluster.create_database("test_1")

`python -m bench.postgres` starts one and prints its URL until interrupted.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.boot import free_port

SUPERUSER = "digits"
# where Debian puts the server programs; PATH first (other systems, a newer major version)
DEBIAN_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class Unavailable(RuntimeError):
    """No PostgreSQL server programs on this machine."""


def binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(folder / name) for folder in DEBIAN_BINARIES if (folder / name).exists()), None
    )
    if found is None:
        raise Unavailable(
            f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql)"
        )
    return found


def _unprivileged() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when this process is root: Debian's `postgres` user,
    else `nobody`. None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise Unavailable("running as root and no unprivileged user to run PostgreSQL as")


class Cluster:
    """One running server. `stop()` and `start_again()` take it away and bring it back (same
    data, same port), as a database restart does."""

    def __init__(self, folder: Path, port: int, password: str, owner: tuple[int, int] | None):
        self.folder = folder
        self.port = port
        self.password = password
        self.owner = owner
        self.data = folder / "data"

    @classmethod
    @contextlib.contextmanager
    def start(cls, *, max_connections: int = 200) -> Iterator[Cluster]:
        owner = _unprivileged()
        folder = Path(tempfile.mkdtemp(prefix="digits-postgres-"))
        try:
            if owner:
                os.chown(folder, *owner)
            cluster = cls(folder, free_port(), secrets.token_urlsafe(16), owner)
            cluster._initdb(max_connections)
            cluster.start_again()
            try:
                yield cluster
            finally:
                cluster.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _run(self, *command: str, **options: object) -> subprocess.CompletedProcess[str]:
        user, group = self.owner or (None, None)
        return subprocess.run(  # type: ignore[call-overload]
            command, check=True, capture_output=True, text=True, user=user, group=group,
            cwd=self.folder, env={**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}, **options,
        )  # fmt: skip

    def _initdb(self, max_connections: int) -> None:
        password_file = self.folder / "password"
        password_file.write_text(self.password + "\n")
        if self.owner:
            os.chown(password_file, *self.owner)
        self._run(
            binary("initdb"), "--pgdata", str(self.data), "--username", SUPERUSER,
            "--pwfile", str(password_file), "--auth", "scram-sha-256", "--encoding", "UTF8",
            "--no-instructions",
        )  # fmt: skip
        password_file.unlink()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.folder}'",
            "max_connections": str(max_connections),
            # a throwaway server: durability traded for speed, as the tests need no crash safety
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start_again(self) -> None:
        self._run(
            binary("pg_ctl"), "--pgdata", str(self.data), "--log", str(self.folder / "log"),
            "--wait", "--timeout", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; 'fast' ends every connection at once, as a restart does."""
        if (self.data / "postmaster.pid").exists():
            self._run(binary("pg_ctl"), "--pgdata", str(self.data), "--mode", mode, "stop")

    def kill(self) -> None:
        """kill -9 the server (a crash): the next start recovers from its log."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg  # the tests' and benchmarks' dependency, not the service's import

        with psycopg.connect(self.url(database).replace("+psycopg", ""), autocommit=True) as c:
            c.execute(statement.encode())

    def create_database(self, name: str) -> str:
        """A new empty database; its SQLAlchemy URL."""
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    # a plain `kill` stops the server too (the context manager's clean-up runs)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Cluster.start() as cluster:
        print(cluster.create_database("digits"), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
