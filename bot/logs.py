"""One log line per event, with structured fields; ``--log-format json`` for machines.

Call sites name the event and pass fields: ``log_event(log, "inbound.recorded", channel=...)``.
Message bodies and secrets never go into fields at INFO. Errors about a recipient (a provider
refusing an address) are logged through ``without_contacts`` / ``error_fields``: logs outlive the
erasure of a contact, so they carry no e-mail address or phone number at any level.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_FIELDS = "omnirouter_fields"
_EMAIL = re.compile(r"[^\s<>\"'(),;:\[\]]+@[^\s<>\"'(),;:\[\]]+")
_PHONE = re.compile(r"\+?\(?\d(?:[\s().-]{0,2}\d){6,}")  # seven digits or more: "+371 2000 0417", "(415) 555-0123"


def without_contacts(text: str) -> str:
    """``text`` with e-mail addresses and phone numbers (runs of seven digits or more) replaced by
    ``[address]`` and ``[number]``; status codes such as SMTP's ``550 5.1.1`` stay."""
    return _PHONE.sub("[number]", _EMAIL.sub("[address]", text))


def error_fields(exc: BaseException, limit: int = 200) -> dict[str, str]:
    """An exception as log fields that name no person: its class, its text through
    ``without_contacts``, and where it was raised (the last frames, file and line: no values)."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    return {
        "error_class": type(exc).__name__,
        "error": without_contacts(str(exc))[:limit],
        "where": " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames)),
    }


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS: fields})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = getattr(record, _FIELDS, {})
    return fields


class TextFormatter(logging.Formatter):
    """``2026-11-25T14:00:00.123Z INFO omnirouter.router.inbound inbound.recorded channel=webchat``"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        parts = [f"{stamp}Z", record.levelname, record.name, record.getMessage()]
        parts += [f"{key}={_text(value)}" for key, value in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text


def configure_logging(log_format: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("omnirouter").setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
