"""Exceptions raised by devstack."""

from __future__ import annotations

from pathlib import Path


class DevstackError(RuntimeError):
    """Base class of devstack errors."""


class InstallError(DevstackError):
    """A prerequisite (binary, JDK, Kafka jars) is missing or unusable."""


class StackAlreadyRunning(DevstackError):
    """The run dir already has live processes recorded in its stack.json."""


class PartError(DevstackError):
    """One part failed to start, crashed, or did not become healthy in time.

    ``log_tail`` holds the last lines of ``<run_dir>/logs/<part>.log``.
    """

    def __init__(self, part: str, reason: str, log_path: Path | None, log_tail: str = "") -> None:
        self.part = part
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail
        msg = f"{part}: {reason}"
        if log_path is not None:
            msg += f"\n--- last lines of {log_path} ---\n{log_tail or '(empty)'}"
        super().__init__(msg)
