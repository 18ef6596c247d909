"""LOG_FORMAT=json: one JSON object per line, uvicorn's access log fields as keys."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What uvicorn's access logger writes; every formatter put back afterwards."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("uvicorn.access")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in ("", *logs.UVICORN)]
    formatters = [(h, h.formatter) for each in loggers for h in each.handlers]
    yield stream
    for each_handler, formatter in formatters:
        each_handler.setFormatter(formatter)
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_json_lines_carry_the_access_log_fields(captured: io.StringIO) -> None:
    logs.configure("INFO", "json")
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/predict/mnist", "1.1", 200)
    entry = json.loads(captured.getvalue())
    assert entry.pop("time").endswith("+00:00")
    assert entry == {
        "level": "INFO",
        "logger": "uvicorn.access",
        "client": "127.0.0.1:5000",
        "method": "POST",
        "path": "/predict/mnist",
        "http_version": "1.1",
        "status": 200,
        "message": '127.0.0.1:5000 - "POST /predict/mnist HTTP/1.1" 200',
    }


def test_other_messages_and_exceptions_are_json_too() -> None:
    formatter = logs.JsonFormatter()
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.getLogger("inference").makeRecord(
            "inference", logging.ERROR, __file__, 1, "process %d stopped", (42,), sys.exc_info()
        )
    entry = json.loads(formatter.format(record))
    assert entry["message"] == "process 42 stopped"
    assert entry["level"] == "ERROR"
    assert entry["exception"].endswith("ValueError: broken")


def test_text_format_leaves_handlers_alone(captured: io.StringIO) -> None:
    handler = logging.getLogger("uvicorn.access").handlers[-1]
    before = handler.formatter
    logs.configure("INFO", "text")
    assert handler.formatter is before
