"""Structured JSON logs with correlation ids; personal data masked before it is written."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

# The shapes of personal numbers, and only those: an 18-character resident ID (GB 11643: area,
# a birth date of 19xx or 20xx, sequence, check character) and a mainland mobile number (with or
# without +86), each standing alone. A digit run inside a UUID, a hash or another token (letters
# or digits on either side) is not one, so correlation ids and digests stay intact.
_ALONE_BEFORE = r"(?<![0-9A-Za-z])"
_ALONE_AFTER = r"(?![0-9A-Za-z])"
_ID_CARD = re.compile(
    _ALONE_BEFORE
    + r"(\d{4})\d{2}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(\d{3}[\dXx])"
    + _ALONE_AFTER
)
_MOBILE = re.compile(_ALONE_BEFORE + r"((?:\+?86[- ]?)?1[3-9]\d)\d{4}(\d{4})" + _ALONE_AFTER)

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


def mask_personal_data(text: str) -> str:
    """Mask ID-card numbers (1401**********123X) and mobile numbers (138****5678) in text."""
    text = _ID_CARD.sub(lambda m: f"{m.group(1)}{'*' * 10}{m.group(2)}", text)
    return _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation id, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as masked JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return mask_personal_data(json.dumps(entry, ensure_ascii=False, default=str))


class MaskingFormatter(logging.Formatter):
    """Plain-text formatter for terminals that still masks personal data."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as masked text."""
        return mask_personal_data(super().format(record))


def configure_logging(service: str, level: str = "INFO", *, json_lines: bool = True) -> None:
    """Route the root logger to stderr as JSON lines (or masked text) for `service`."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    kafka = logging.getLogger("aiokafka")
    kafka.setLevel(max(root.level, logging.WARNING))
    handler.addFilter(ClientChatter())


class ClientChatter(logging.Filter):
    """The Kafka client's own complaints while a broker is away, kept to one line per message
    per `window` seconds (with how many were folded into it) and logged as warnings.

    aiokafka logs every failed reconnect and fetch at ERROR, thousands of lines per broker
    outage (the fault lane counted 13,977 in the first ten minutes of a full run); what an
    outage costs the system shows in its lag and in the components' own logs, which this
    filter leaves alone."""

    def __init__(self, window: float = 30.0, prefix: str = "aiokafka") -> None:
        super().__init__()
        self.window = window
        self.prefix = prefix
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to write the record (the first of its kind in the window)."""
        if not (record.name == self.prefix or record.name.startswith(self.prefix + ".")):
            return True
        if record.levelno > logging.WARNING and record.levelno < logging.CRITICAL:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        key = (record.name, str(record.msg)[:60])
        seen = self._last.get(key)
        if seen is not None and record.created - seen[0] < self.window:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            record.folded = seen[1]  # like messages not written since the last one
        self._last[key] = (record.created, 0)
        if len(self._last) > 1000:  # messages with ids in their text: forget the oldest
            for old in sorted(self._last, key=lambda k: self._last[k][0])[:500]:
                del self._last[old]
        return True
