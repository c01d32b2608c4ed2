"""Process helpers: spawn detached children, identify them safely, end exactly them.

A process is identified by ``(pid, start_time)`` where ``start_time`` is field 22 of
``/proc/<pid>/stat`` (clock ticks since boot), so a recycled pid is never mistaken for ours.
Zombies count as dead: when ``devstack up`` exits, its children are re-parented to pid 1, which
in a container may never reap them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("devstack")

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcRef:
    """A process we started: its pid plus its kernel start time (guards against pid reuse)."""

    pid: int
    start_time: int | None

    def alive(self) -> bool:
        return is_alive(self.pid, self.start_time)

    @classmethod
    def of(cls, pid: int) -> ProcRef:
        return cls(pid, proc_start_time(pid))


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the ``(comm)`` field; index 0 is field 3 (state)."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def proc_start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def proc_state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def is_alive(pid: int, start_time: int | None = None) -> bool:
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time


def _all_stats() -> list[tuple[int, int, int]]:
    """(pid, ppid, pgrp) for every live process."""
    out: list[tuple[int, int, int]] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] in ("Z", "X"):
            continue
        out.append((int(entry.name), int(fields[1]), int(fields[2])))
    return out


def descendants(pid: int) -> list[ProcRef]:
    """Live descendants of ``pid`` plus members of its process group (postgres children call
    setsid(), so the group alone does not cover them)."""
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for p, ppid, _ in stats:
        children.setdefault(ppid, []).append(p)
    found: set[int] = {p for p, _, pgrp in stats if pgrp == pid and p != pid}
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return [ref for ref in (ProcRef.of(p) for p in sorted(found)) if ref.start_time is not None]


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (detached from our terminal and process group),
    stdout+stderr appended to ``log_path``, optionally as the unprivileged ``user``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    uid = gid = None
    extra_groups: list[int] | None = None
    if user is not None:
        pw = pwd.getpwnam(user)
        uid, gid, extra_groups = pw.pw_uid, pw.pw_gid, []
    with log_path.open("ab") as out:
        out.write(f"\n=== devstack: starting {' '.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
            user=uid,
            group=gid,
            extra_groups=extra_groups,
        )


def _wait_gone(ref: ProcRef, popen: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=0.05)
        if not ref.alive():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _signal(ref: ProcRef, sig: signal.Signals) -> None:
    if ref.alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(ref.pid, sig)


def terminate(
    ref: ProcRef,
    *,
    sig: signal.Signals = signal.SIGTERM,
    grace: float = 30.0,
    popen: subprocess.Popen[bytes] | None = None,
    kill_log_level: int = logging.WARNING,
) -> bool:
    """End ``ref`` and everything it spawned: ``sig`` to the leader, wait up to ``grace``
    seconds, then SIGKILL the leader, its process group and its descendants.

    Returns True when it ended gracefully, False when SIGKILL was needed.
    """
    if not ref.alive():
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=0.5)
        return True
    family = descendants(ref.pid)
    _signal(ref, sig)
    graceful = _wait_gone(ref, popen, grace)
    if not graceful:
        log.log(kill_log_level, "pid %d still up %.0fs after %s; SIGKILL", ref.pid, grace, sig.name)
        family = list({*family, *descendants(ref.pid)})
        _signal(ref, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(ref.pid, signal.SIGKILL)
        _wait_gone(ref, popen, 10.0)
    # Children normally exit with their leader (postgres backends watch the postmaster);
    # give them a moment, then kill whatever is left of the family.
    deadline = time.monotonic() + (2.0 if graceful else 1.0)
    while any(child.alive() for child in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in family:
        if child.alive():
            log.warning("killing leftover child pid %d of %d", child.pid, ref.pid)
            _signal(child, signal.SIGKILL)
    return graceful


def kill_family(ref: ProcRef, popen: subprocess.Popen[bytes] | None = None) -> None:
    """SIGKILL ``ref``, its process group and every descendant at once (a crash: nothing gets
    to clean up), and wait until they are gone."""
    family = descendants(ref.pid) if ref.alive() else []
    _signal(ref, signal.SIGKILL)
    if ref.alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(ref.pid, signal.SIGKILL)
    for child in family:
        _signal(child, signal.SIGKILL)
    _wait_gone(ref, popen, 10.0)
    deadline = time.monotonic() + 5.0
    while any(child.alive() for child in family) and time.monotonic() < deadline:
        time.sleep(0.02)


def tail(path: Path, lines: int = 40) -> str:
    """Last ``lines`` lines of a log file ('' when missing)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
