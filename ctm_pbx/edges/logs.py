"""Structured log lines (logfmt): ``time=… level=… logger=… msg="…"``, then the
record's ``fields`` (``log.info("…", extra={"fields": {...}})``) as ``key=value``."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        msg = record.getMessage().replace('"', "'")
        line = f'time={ts} level={record.levelname} logger={record.name} msg="{msg}"'
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += "".join(f" {key}={_value(value)}" for key, value in fields.items())
        if record.exc_info:
            exc = self.formatException(record.exc_info).replace("\n", "\\n").replace('"', "'")
            line += f' exc="{exc}"'
        return line


def _value(value: object) -> str:
    """A logfmt value: bare when it can be, else quoted ("" for None)."""
    if value is None:
        return ""
    text = str(value)
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
