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
