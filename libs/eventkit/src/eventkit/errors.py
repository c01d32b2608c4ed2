"""Errors the event platform raises; each names what the caller can do about it."""

from __future__ import annotations


class EventkitError(Exception):
    """Base of eventkit's errors."""


class ConcurrencyError(EventkitError):
    """The stream moved since the caller loaded it: reload, re-decide, append again."""

    def __init__(self, stream_type: str, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_type}/{stream_id} is not at version {expected_version}")
        self.stream_type = stream_type
        self.stream_id = stream_id
        self.expected_version = expected_version


class DuplicateEventError(EventkitError):
    """An event with this event_id is already stored: the command was already carried out."""


class DomainError(Exception):
    """Base of every service's domain errors: a stable `code`, a Chinese `message` for the UI,
    an English `detail_en` for logs, and the HTTP `status` an entrypoint answers with.

    It lives here, framework-free, so domain layers can subclass it and one HTTP handler per
    service can map all of them.
    """

    code: str = "domain.error"
    status: int = 422  # input that breaks a rule
    field: str | None = None  # the request field at fault, when it is one (a form marks it)
    retry_after: int | None = None  # seconds, for errors worth retrying (a 503, a lockout)

    def __init__(self, message: str, detail_en: str = "", *, code: str | None = None) -> None:
        super().__init__(detail_en or message)
        if code is not None:
            self.code = code
        self.message = message
        self.detail_en = detail_en or message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail_en={self.detail_en!r})"
