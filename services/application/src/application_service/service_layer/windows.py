"""Application windows (申请时段): opened and closed by ops, read by every command.

A window is an event stream of its own (ApplicationWindowOpened, ApplicationWindowClosed,
published so review can show deadlines) and a row in `application.windows`, written in the same
transaction.

A row the domain cannot read back (a deadline stored as `-infinity` before dates were held to
servicekit's sane range) is an unreadable window: lists and the current window skip it with a
warning in the log, so one bad row never takes down the windows list or a candidate's page;
asked for by id it answers `application.window_unreadable`, and nothing is written to it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from application_service.domain.errors import ApplicationError
from application_service.domain.windows import ApplicationWindow
from contracts.application import WINDOW_STREAM, ApplicationWindowClosed, ApplicationWindowOpened
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.errors import DomainError
from eventkit.store import EventStore

log = logging.getLogger(__name__)


class WindowNotFound(ApplicationError):
    """No such application window."""

    code = "application.window_not_found"
    status = 404
    default_message = "申请时段不存在"


class WindowAlreadyClosed(ApplicationError):
    """The window is closed already."""

    code = "application.window_already_closed"
    status = 409
    default_message = "该申请时段已关闭"


class WindowUnreadable(WindowNotFound):
    """The window's stored row is not a valid window (e.g. a deadline stored as -infinity).

    A WindowNotFound, so that pages showing a window treat it as absent; by id it answers 409.
    """

    code = "application.window_unreadable"
    status = 409
    default_message = "该申请时段的数据有误，暂时无法使用，请联系管理员处理"


def window_of(row: asyncpg.Record) -> ApplicationWindow:
    """The domain window of a `application.windows` row (WindowUnreadable if it is not one)."""
    try:
        return ApplicationWindow(
            window_id=row["window_id"],
            name=row["name"],
            opens_at=row["opens_at"],
            applications_close_at=row["applications_close_at"],
            point_review_close_at=row["point_review_close_at"],
            province_review_close_at=row["province_review_close_at"],
            results_published_at=row["results_published_at"],
            closed_by_ops=row["closed_by_ops"],
        )
    except (DomainError, TypeError, ValueError) as exc:
        raise WindowUnreadable(f"window {row['window_id']} unreadable: {exc}") from exc


def readable_windows(rows: list[asyncpg.Record]) -> list[ApplicationWindow]:
    """The windows of `rows`, skipping (and logging) any row that is not a valid window."""
    windows: list[ApplicationWindow] = []
    for row in rows:
        try:
            windows.append(window_of(row))
        except WindowUnreadable as exc:
            log.warning(
                "skipping an unreadable application window",
                extra={"window_id": str(row["window_id"]), "detail_en": exc.detail_en},
            )
    return windows


class Windows:
    """Open, close, find and list windows."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._store = store
        self._now = clock

    async def open(self, window: ApplicationWindow, actor: Actor) -> ApplicationWindow:
        """Record a new window (its deadlines were validated by the domain)."""
        event = ApplicationWindowOpened(
            window_id=window.window_id,
            name=window.name,
            opens_at=window.opens_at,
            applications_close_at=window.applications_close_at,
            point_review_close_at=window.point_review_close_at,
            province_review_close_at=window.province_review_close_at,
            results_published_at=window.results_published_at,
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await self._store.append(
                WINDOW_STREAM.stream_type,
                str(window.window_id),
                0,
                [NewEvent.of(event)],
                Metadata(actor=actor),
                conn=conn,
            )
            await conn.execute(
                """
                INSERT INTO application.windows (window_id, name, opens_at,
                    applications_close_at, point_review_close_at, province_review_close_at,
                    results_published_at, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """,
                window.window_id,
                window.name,
                window.opens_at,
                window.applications_close_at,
                window.point_review_close_at,
                window.province_review_close_at,
                window.results_published_at,
                f"{actor.kind}:{actor.id}",
            )
        return window

    async def close(self, window_id: uuid.UUID, reason: str, actor: Actor) -> None:
        """Close a window early: no more applications or resubmissions."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM application.windows WHERE window_id = $1 FOR UPDATE", window_id
            )
            if row is None:
                raise WindowNotFound("no such application window")
            window_of(row)  # an unreadable window is refused before anything is written
            if row["closed_by_ops"]:
                raise WindowAlreadyClosed("the window was closed already")
            version = await self._store.version(
                WINDOW_STREAM.stream_type, str(window_id), conn=conn
            )
            await self._store.append(
                WINDOW_STREAM.stream_type,
                str(window_id),
                version,
                [NewEvent.of(ApplicationWindowClosed(window_id=window_id, reason=reason))],
                Metadata(actor=actor),
                conn=conn,
            )
            await conn.execute(
                "UPDATE application.windows SET closed_by_ops = true, updated_by = $2,"
                " updated_at = now() WHERE window_id = $1",
                window_id,
                f"{actor.kind}:{actor.id}",
            )

    async def get(self, window_id: uuid.UUID) -> ApplicationWindow:
        """One window, or WindowNotFound."""
        row = await self._pool.fetchrow(
            "SELECT * FROM application.windows WHERE window_id = $1", window_id
        )
        if row is None:
            raise WindowNotFound("no such application window")
        return window_of(row)

    async def all(self) -> list[ApplicationWindow]:
        """Every window, newest first."""
        rows = await self._pool.fetch(
            "SELECT * FROM application.windows ORDER BY opens_at DESC, window_id"
        )
        return readable_windows(rows)

    async def current(self) -> ApplicationWindow | None:
        """The window candidates may apply in now (the latest opened, if several)."""
        now = self._now()
        for window in await self.all():
            if window.accepting_applications(now):
                return window
        return None
