"""A worker's own small HTTP endpoint: liveness of its supervised components, and its metrics.

A worker has no web framework; orchestrators still need to know whether it is alive, and
Prometheus needs the relay's and consumers' metrics. `serve_health` answers, on its own port:

    GET /healthz   200 unless a component has kept crashing for longer than `down_after` seconds
                   (503); a JSON body with each component's state
    GET /metrics   the process's Prometheus metrics (eventkit's relay, consumer, store metrics)

anything else 404. It reads one request line per connection and closes it (HTTP/1.0 style).

Progress: a component's loop calls `beat()` on every turn (a poll that returned, a batch
applied, a sweep done). Once a component has beaten, the supervisor (`eventkit.worker`) treats
`stall_after` seconds without a beat as a crash: it cancels the component and restarts it, so a
consumer stuck on a call that never returns is restarted like one that raised, and one that
keeps stalling makes /healthz answer 503 like one that keeps crashing.

Sleeping is not stalling: a component that waits between turns does so through `pause(stop,
seconds)` (or declares the wait with `resting(seconds)`), which tells the supervisor that it is
idle until then. The stall clock runs from the later of its last beat and the end of its declared
rest, so liveness never depends on how long a component sleeps (a sweep every 300 s under a
300 s stall limit is fine), while a component that hangs after waking is still caught.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


@dataclass
class ComponentState:
    """What the supervisor last saw of one component.

    `down_since` is the first crash of the current streak: a component that crashes again right
    after each restart stays down; one that has run for `down_after` since its last start is up.
    """

    running: bool = False
    restarts: int = 0
    started_at: float | None = None
    down_since: float | None = None
    last_error: str | None = None
    beats: int = 0  # progress reports since the process started (0: never reports progress)
    last_progress: float | None = None  # the last beat, or the last start
    resting_until: float | None = None  # the end of the rest it last declared (pause)

    def is_down(self, now: float, down_after: float) -> bool:
        if self.down_since is None:
            return False
        settled = (
            self.running and self.started_at is not None and now - self.started_at > down_after
        )
        return not settled and now - self.down_since > down_after


@dataclass
class WorkerHealth:
    """The supervised components' states; the supervisor writes, the endpoint reads."""

    down_after: float = 60.0
    stall_after: float | None = None  # None: progress is not watched
    components: dict[str, ComponentState] = field(default_factory=dict)

    def started(self, name: str) -> None:
        """A component (re)started."""
        state = self.components.setdefault(name, ComponentState())
        state.running, state.started_at = True, time.monotonic()
        state.last_progress, state.resting_until = state.started_at, None

    def beat(self, name: str) -> None:
        """A component made progress."""
        state = self.components.setdefault(name, ComponentState())
        state.beats += 1
        state.last_progress = time.monotonic()

    def rest(self, name: str, seconds: float) -> None:
        """A component is idle, by its own choice, for the next `seconds` (it sleeps)."""
        state = self.components.setdefault(name, ComponentState())
        state.resting_until = time.monotonic() + max(seconds, 0.0)

    def _expected_progress_since(self, state: ComponentState) -> float:
        assert state.last_progress is not None
        if state.resting_until is None:
            return state.last_progress
        return max(state.last_progress, state.resting_until)

    def stalled_for(self, name: str, now: float | None = None) -> float | None:
        """Seconds without progress, when a running component that reports progress has gone
        longer than `stall_after` without it; else None. A declared rest (`pause`) does not
        count: the clock runs from its last beat or the end of its rest, whichever is later."""
        state = self.components.get(name)
        if self.stall_after is None or state is None or not state.running or not state.beats:
            return None
        now = time.monotonic() if now is None else now
        since = self._expected_progress_since(state)
        assert state.last_progress is not None
        return now - state.last_progress if now - since > self.stall_after else None

    def crashed(self, name: str, error: BaseException) -> None:
        """A component raised; it waits to be restarted."""
        now = time.monotonic()
        state = self.components.setdefault(name, ComponentState())
        ran_long = state.started_at is not None and now - state.started_at > self.down_after
        if state.down_since is None or ran_long:
            state.down_since = now  # a new streak of crashes
        state.running = False
        state.restarts += 1
        state.last_error = f"{type(error).__name__}: {error}"[:300]

    def healthy(self, now: float | None = None) -> bool:
        """No component down (crashing) for longer than `down_after`."""
        now = time.monotonic() if now is None else now
        return not any(s.is_down(now, self.down_after) for s in self.components.values())

    def report(self) -> dict[str, object]:
        """The JSON body of /healthz."""
        now = time.monotonic()
        return {
            "status": "ok" if self.healthy(now) else "down",
            "components": {
                name: {
                    "running": s.running,
                    "down": s.is_down(now, self.down_after),
                    "restarts": s.restarts,
                    "last_error": s.last_error,
                    "seconds_since_progress": (
                        round(now - s.last_progress, 1)
                        if s.beats and s.last_progress is not None
                        else None
                    ),
                    "resting": s.resting_until is not None and s.resting_until > now,
                }
                for name, s in sorted(self.components.items())
            },
        }


@dataclass(frozen=True, slots=True)
class _Reporter:
    beat: Callable[[], None]
    rest: Callable[[float], None]


_PROGRESS: ContextVar[_Reporter | None] = ContextVar("eventkit_progress", default=None)


def beat() -> None:
    """The calling component made progress (its loop turned). Outside a supervised component,
    e.g. in tests or in a rebuild run by ops, this does nothing."""
    report = _PROGRESS.get()
    if report is not None:
        report.beat()


def resting(seconds: float) -> None:
    """The calling component is about to sleep for up to `seconds` on purpose: the supervisor
    does not count that time as a stall. Outside a supervised component this does nothing."""
    report = _PROGRESS.get()
    if report is not None:
        report.rest(seconds)


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds` between turns, as a declared rest; True when `stop` was set.

    Every supervised component that waits between turns waits through this, so the supervisor
    never mistakes its sleep for a stall, however long the sleep and however short the limit."""
    resting(seconds)
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    finally:
        beat()  # awake again: the stall clock starts over from here
    return True


@contextlib.contextmanager
def reporting_progress(health: WorkerHealth, name: str) -> Iterator[None]:
    """Within this block (and the tasks it starts), `beat()` and `resting()` report to `health`
    as `name`."""
    reporter = _Reporter(
        beat=lambda: health.beat(name), rest=lambda seconds: health.rest(name, seconds)
    )
    token = _PROGRESS.set(reporter)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def serve_health(health: WorkerHealth, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve /healthz and /metrics until `stop` is set."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            parts = line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 and parts[0] == "GET" else ""
            if path == "/healthz":
                ok = health.healthy()
                body = json.dumps(health.report(), ensure_ascii=False).encode()
                reply = _response("200 OK" if ok else "503 Service Unavailable",
                                  "application/json", body)  # fmt: skip
            elif path == "/metrics":
                reply = _response("200 OK", CONTENT_TYPE_LATEST, generate_latest())
            else:
                reply = _response("404 Not Found", "text/plain", b"not found\n")
            writer.write(reply)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(answer, host, port)
    async with server:
        await stop.wait()
