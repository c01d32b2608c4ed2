"""Stores imported catalogue versions in PostgreSQL (schema `application`, 0001_catalogue.sql).

Every version is immutable once imported (the tables refuse UPDATE and DELETE); the active
version is the latest activation. `load` reads a version with one query per table and keeps it
in an in-process cache keyed by pool and version: a version never changes, so the cache never
goes stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from application_service.domain.catalogue import (
    Assessment,
    Catalogue,
    ConfirmationPoint,
    Course,
    CourseKind,
    DegreeRules,
    Level,
    Major,
    Plan,
    Route,
    RouteCourse,
    build_catalogue,
)

__all__ = [
    "MIGRATIONS",
    "NAMESPACE",
    "CatalogueStoreError",
    "CatalogueVersionExists",
    "CatalogueVersionInfo",
    "CatalogueVersionUnknown",
    "activate",
    "active_version",
    "clear_cache",
    "import_catalogue",
    "list_versions",
    "load",
    "version_info",
]

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
NAMESPACE = "application"
_IMPORT_LOCK = 0x61707063  # "appc": one catalogue import or activation at a time


class CatalogueStoreError(Exception):
    """A refused catalogue operation, with a Chinese message for ops."""

    code = "catalogue.store_error"

    def __init__(self, message_zh: str, detail_en: str) -> None:
        super().__init__(detail_en)
        self.message_zh = message_zh
        self.detail_en = detail_en


class CatalogueVersionExists(CatalogueStoreError):
    """The version id is taken: versions are immutable, import under a new id."""

    code = "catalogue.version_exists"


class CatalogueVersionUnknown(CatalogueStoreError):
    """No such version was imported."""

    code = "catalogue.version_unknown"


@dataclass(frozen=True, slots=True)
class CatalogueVersionInfo:
    """One imported version: who imported it and when, its file checksums, its size."""

    version: str
    imported_by: str
    imported_at: datetime
    checksums: Mapping[str, str]
    majors: int
    courses: int
    points: int
    routes: int
    active: bool


# Cache: id(pool) -> (pool, {version: Catalogue}); the pool is kept to detect id reuse.
_CACHE: dict[int, tuple[asyncpg.Pool, dict[str, Catalogue]]] = {}


def _cache_of(pool: asyncpg.Pool) -> dict[str, Catalogue]:
    entry = _CACHE.get(id(pool))
    if entry is None or entry[0] is not pool:
        entry = (pool, {})
        _CACHE[id(pool)] = entry
    return entry[1]


def clear_cache(pool: asyncpg.Pool | None = None) -> None:
    """Forget cached catalogues (of one pool, or all); e.g. when a pool is closed."""
    if pool is None:
        _CACHE.clear()
    else:
        _CACHE.pop(id(pool), None)


async def import_catalogue(
    pool: asyncpg.Pool,
    catalogue: Catalogue,
    actor: str,
    checksums: Mapping[str, str],
    *,
    activate: bool = False,
) -> str:
    """Store `catalogue` as a new immutable version (and activate it, if asked); returns its id.

    Raises CatalogueVersionExists if the version id was imported before.
    """
    version = catalogue.version
    majors = list(catalogue.majors.values())
    courses = [
        (
            version,
            m.code,
            m.plan.value,
            i,
            c.code,
            c.name,
            c.credits,
            c.kind.value,
            c.assessment.value,
            c.practical,
            c.thesis,
        )
        for m in majors
        for i, c in enumerate(m.courses)
    ]
    routes = list(catalogue.routes.values())
    rules = catalogue.degree_rules
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _IMPORT_LOCK)
        inserted = await conn.fetchval(
            """
            INSERT INTO application.catalogue_versions (version, imported_by, checksums,
                degree_min_score, degree_max_share, degree_hours_per_credit,
                major_count, course_count, point_count, route_count)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (version) DO NOTHING
            RETURNING version
            """,
            version,
            actor,
            dict(checksums),
            rules.min_score,
            rules.max_share_for_non_zikao,
            rules.hours_per_credit,
            len(majors),
            len(courses),
            len(catalogue.points),
            len(routes),
        )
        if inserted is None:
            raise CatalogueVersionExists(
                f"目录版本{version}已存在，版本不可修改，请使用新的版本号",
                f"catalogue version {version} exists; versions are immutable",
            )
        await conn.copy_records_to_table(
            "catalogue_majors",
            schema_name="application",
            columns=("version", "code", "plan", "position", "name", "level", "suspended", "family"),
            records=[
                (version, m.code, m.plan.value, i, m.name, m.level.value, m.suspended, m.family)
                for i, m in enumerate(majors)
            ],
        )
        await conn.copy_records_to_table(
            "catalogue_courses",
            schema_name="application",
            columns=(
                "version",
                "major_code",
                "plan",
                "position",
                "course_code",
                "name",
                "credits",
                "kind",
                "assessment",
                "practical",
                "thesis",
            ),
            records=courses,
        )
        await conn.copy_records_to_table(
            "catalogue_points",
            schema_name="application",
            columns=("version", "point_id", "name"),
            records=[(version, p.point_id, p.name) for p in catalogue.points.values()],
        )
        await conn.copy_records_to_table(
            "catalogue_routes",
            schema_name="application",
            columns=(
                "version",
                "route_id",
                "kind",
                "name",
                "exam",
                "min_level",
                "min_score",
                "subject",
                "excluded_families",
                "note",
            ),
            records=[
                (
                    version,
                    r.route_id,
                    r.kind,
                    r.name,
                    r.exam,
                    r.min_level,
                    r.min_score,
                    r.subject,
                    sorted(r.excluded_families),
                    r.note,
                )
                for r in routes
            ],
        )
        await conn.copy_records_to_table(
            "catalogue_route_courses",
            schema_name="application",
            columns=("version", "route_id", "position", "course_code", "levels"),
            records=[
                (version, r.route_id, i, rc.course_code, sorted(level.value for level in rc.levels))
                for r in routes
                for i, rc in enumerate(r.courses)
            ],
        )
        if activate:
            await conn.execute(
                "INSERT INTO application.catalogue_activations (version, activated_by)"
                " VALUES ($1, $2)",
                version,
                actor,
            )
    return version


async def activate(pool: asyncpg.Pool, version: str, actor: str) -> bool:
    """Make `version` the active one; False if it already was. Raises CatalogueVersionUnknown."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _IMPORT_LOCK)
        exists = await conn.fetchval(
            "SELECT true FROM application.catalogue_versions WHERE version = $1", version
        )
        if not exists:
            raise CatalogueVersionUnknown(
                f"目录版本{version}不存在", f"no catalogue version {version}"
            )
        if await _active(conn) == version:
            return False
        await conn.execute(
            "INSERT INTO application.catalogue_activations (version, activated_by) VALUES ($1, $2)",
            version,
            actor,
        )
    return True


async def _active(conn: Any) -> str | None:
    value = await conn.fetchval(
        "SELECT version FROM application.catalogue_activations ORDER BY activation_id DESC LIMIT 1"
    )
    return None if value is None else str(value)


async def active_version(pool: asyncpg.Pool) -> str | None:
    """The active version, or None before the first activation."""
    async with pool.acquire() as conn:
        return await _active(conn)


async def list_versions(pool: asyncpg.Pool) -> list[CatalogueVersionInfo]:
    """Every imported version, oldest first."""
    async with pool.acquire() as conn:
        active = await _active(conn)
        rows = await conn.fetch(
            "SELECT * FROM application.catalogue_versions ORDER BY imported_at, version"
        )
    return [_info(row, active) for row in rows]


async def version_info(pool: asyncpg.Pool, version: str) -> CatalogueVersionInfo | None:
    """One imported version's record, or None."""
    async with pool.acquire() as conn:
        active = await _active(conn)
        row = await conn.fetchrow(
            "SELECT * FROM application.catalogue_versions WHERE version = $1", version
        )
    return None if row is None else _info(row, active)


def _info(row: asyncpg.Record, active: str | None) -> CatalogueVersionInfo:
    return CatalogueVersionInfo(
        version=row["version"],
        imported_by=row["imported_by"],
        imported_at=row["imported_at"],
        checksums=dict(row["checksums"]),
        majors=row["major_count"],
        courses=row["course_count"],
        points=row["point_count"],
        routes=row["route_count"],
        active=row["version"] == active,
    )


async def load(pool: asyncpg.Pool, version: str) -> Catalogue:
    """A stored version (cached after the first load). Raises CatalogueVersionUnknown."""
    cache = _cache_of(pool)
    cached = cache.get(version)
    if cached is not None:
        return cached
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        head = await conn.fetchrow(
            "SELECT * FROM application.catalogue_versions WHERE version = $1", version
        )
        if head is None:
            raise CatalogueVersionUnknown(
                f"目录版本{version}不存在", f"no catalogue version {version}"
            )
        major_rows = await conn.fetch(
            "SELECT code, plan, name, level, suspended, family FROM application.catalogue_majors"
            " WHERE version = $1 ORDER BY position",
            version,
        )
        course_rows = await conn.fetch(
            "SELECT major_code, plan, course_code, name, credits, kind, assessment, practical,"
            " thesis FROM application.catalogue_courses WHERE version = $1"
            " ORDER BY major_code, plan, position",
            version,
        )
        point_rows = await conn.fetch(
            "SELECT point_id, name FROM application.catalogue_points WHERE version = $1"
            " ORDER BY point_id",
            version,
        )
        route_rows = await conn.fetch(
            "SELECT * FROM application.catalogue_routes WHERE version = $1 ORDER BY route_id",
            version,
        )
        route_course_rows = await conn.fetch(
            "SELECT route_id, course_code, levels FROM application.catalogue_route_courses"
            " WHERE version = $1 ORDER BY route_id, position",
            version,
        )
    courses: dict[tuple[str, str], list[Course]] = {}
    for row in course_rows:
        courses.setdefault((row["major_code"], row["plan"]), []).append(
            Course(
                code=row["course_code"],
                name=row["name"],
                credits=row["credits"],
                kind=CourseKind(row["kind"]),
                assessment=Assessment(row["assessment"]),
                practical=row["practical"],
                thesis=row["thesis"],
            )
        )
    majors = [
        Major(
            code=row["code"],
            name=row["name"],
            level=Level(row["level"]),
            plan=Plan(row["plan"]),
            suspended=row["suspended"],
            family=row["family"],
            courses=tuple(courses.get((row["code"], row["plan"]), ())),
        )
        for row in major_rows
    ]
    route_courses: dict[str, list[RouteCourse]] = {}
    for row in route_course_rows:
        route_courses.setdefault(row["route_id"], []).append(
            RouteCourse(row["course_code"], frozenset(Level(v) for v in row["levels"]))
        )
    routes = [
        Route(
            route_id=row["route_id"],
            kind=row["kind"],
            name=row["name"],
            courses=tuple(route_courses.get(row["route_id"], ())),
            exam=row["exam"],
            min_level=row["min_level"],
            min_score=row["min_score"],
            subject=row["subject"],
            excluded_families=frozenset(row["excluded_families"]),
            note=row["note"],
        )
        for row in route_rows
    ]
    catalogue = build_catalogue(
        version,
        majors,
        [ConfirmationPoint(row["point_id"], row["name"]) for row in point_rows],
        routes,
        DegreeRules(
            min_score=head["degree_min_score"],
            max_share_for_non_zikao=head["degree_max_share"],
            hours_per_credit=head["degree_hours_per_credit"],
        ),
    )
    cache[version] = catalogue
    return catalogue
