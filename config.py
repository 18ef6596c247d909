"""Service settings: one typed object, read from environment variables once at start-up."""

from __future__ import annotations

import contextlib
import math
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Where the standard MNIST files are published. Each is tried in turn; every file is checked
# against its known checksum, so a mirror serving anything else is skipped.
DEFAULT_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


class Settings(BaseSettings):
    """Every knob of the service. Each field is the upper-case environment variable of its name."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    mnist_data_dir: Path | None = Field(
        default=None,
        description="Folder holding the MNIST IDX files (gzip or raw). Unset: download them.",
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="Folder for downloaded MNIST files and other service data.",
    )
    model_path: Path = Field(
        default=Path("models/mnist-sgd.joblib"),
        description="The trained model cache. Trained at first boot when missing or unusable.",
    )
    max_upload_bytes: int = Field(
        default=5_000_000, gt=0, description="Largest accepted image upload, in bytes."
    )
    max_batch_files: int = Field(
        default=256, gt=0, description="Most images in one POST /predict/mnist/batch."
    )
    max_batch_bytes: int = Field(
        default=50_000_000, gt=0, description="Largest accepted batch upload, in bytes (all files)."
    )
    max_image_pixels: int = Field(
        default=50_000_000,
        gt=0,
        description="Largest accepted image, in pixels (width x height); guards against "
        "decompression bombs.",
    )
    max_number_digits: int = Field(
        default=20, gt=0, le=1000, description="Most digits /predict/number reads in one image."
    )
    prediction_process: bool = Field(
        default=True,
        description="Classify in a prediction process beside the server (see inference.py); "
        "false: in the server's thread pool, with no bound on an upload's memory or time.",
    )
    prediction_processes: int | None = Field(
        default=None,
        gt=0,
        le=256,
        description="Prediction processes per server process. Unset: the CPU cores the process "
        "may use (its CPU affinity, and its cgroup's CPU quota in a container).",
    )
    prediction_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds the prediction process may work without a sign of life before it "
        "is killed and replaced (its requests get 503).",
    )
    max_upload_seconds: float = Field(
        default=1.5,
        gt=0,
        description="Seconds one upload may take to decode and prepare (413 when over).",
    )
    max_upload_memory: int = Field(
        default=1_000_000_000,
        gt=0,
        description="Bytes of memory one upload may take to decode and prepare (413 when over).",
    )
    mnist_mirrors: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_MNIST_MIRRORS,
        description="Comma-separated base URLs to download MNIST from, tried in order.",
    )
    download_timeout: float = Field(
        default=30.0, gt=0, description="Seconds before a stalled MNIST download gives up."
    )
    train_limit: int | None = Field(
        default=None,
        gt=0,
        description="Train on at most this many digits (for quick experiments and tests).",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="'json': one JSON object per log line, access log included (for shippers).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the users and history database. Unset: the SQLite file "
        "digits.db in DATA_DIR.",
    )
    database_pool_size: int = Field(
        default=5,
        gt=0,
        description="Connections each server process keeps open to a database server "
        "(PostgreSQL; SQLite needs none). See the README on sizing against max_connections.",
    )
    database_max_overflow: int = Field(
        default=5,
        ge=0,
        description="Extra connections a server process may open at peaks, closed when idle.",
    )
    database_pool_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a request waits for a free database connection before its 503.",
    )
    database_connect_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds to reach the database server before giving up (503).",
    )
    token_lifetime_days: float = Field(
        default=30, gt=0, description="Days a login token stays valid."
    )
    login_max_failures: int = Field(
        default=5, gt=0, description="Failed logins for one username before it is throttled..."
    )
    login_failure_window_minutes: float = Field(
        default=15, gt=0, description="...within this many minutes."
    )

    @field_validator("mnist_data_dir", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("mnist_mirrors", mode="before")
    @classmethod
    def _split_mirrors(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("mnist_mirrors")
    @classmethod
    def _mirrors_end_with_slash(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(url if url.endswith("/") else url + "/" for url in value)

    @cached_property
    def pool_size(self) -> int:
        """The prediction processes each server process runs."""
        return self.prediction_processes or usable_cores()

    @cached_property
    def download_dir(self) -> Path:
        """Where downloaded MNIST files are cached."""
        return self.data_dir / "mnist"

    @cached_property
    def database(self) -> str:
        """The database URL in force: DATABASE_URL, else a SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{self.data_dir / 'digits.db'}"


CPU_QUOTA = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cores(cpu_quota: Path = CPU_QUOTA) -> int:
    """The CPU cores this process may use: those it may run on, fewer when its cgroup's CPU
    quota (a container's --cpus, a Kubernetes CPU limit) allows less, rounded up."""
    cores = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError):
        quota, period = cpu_quota.read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    return cores
