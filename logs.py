"""Log output: readable lines, or one JSON object per line for log shippers (LOG_FORMAT=json).

The JSON form covers the service's own messages and uvicorn's, its access log included, whose
fields (client, method, path, status) become keys of their own.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# the loggers uvicorn writes to; it gives them handlers of their own before the app is imported
UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        if (
            record.name == "uvicorn.access"
            and isinstance(record.args, tuple)
            and len(record.args) == 5
        ):
            client, method, path, version, status = record.args
            entry.update(
                client=client, method=method, path=path, http_version=version, status=status
            )
        entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, form: str) -> None:
    """Set the level, and the format of every handler that writes the service's logs."""
    logging.basicConfig(level=level, format=TEXT_FORMAT)
    if form != "json":
        return
    formatter = JsonFormatter()
    for name in ("", *UVICORN):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
