"""在籍考生名册导入: read a roster file (UTF-8 or GB18030), parse it, import the rows."""

from __future__ import annotations

import codecs
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg

from identity_service.adapters.pii import PiiCipher
from identity_service.adapters.roster_import import CHUNK_ROWS, ImportReport, RosterImporter
from identity_service.domain.errors import DomainError
from identity_service.domain.roster import RejectedRow, RosterRow, parse_roster

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
"""The identity service's plain-SQL migrations (namespace "identity")."""

_READ_BYTES = 1 << 20
# Tried in order: UTF-8 (a BOM is dropped), then GB18030, which Excel on Chinese Windows writes.
_ENCODINGS = (("utf-8-sig", "UTF-8"), ("gb18030", "GB18030"))


class RosterFileError(DomainError):
    """名册文件无法读取: missing, unreadable, or in neither UTF-8 nor GB18030."""

    code = "identity.roster_file"


@dataclass(frozen=True)
class RosterFile:
    """A roster file checked end to end: its text encoding and sha256."""

    path: Path
    encoding: str
    label: str
    sha256: str
    has_bom: bool

    def lines(self) -> Iterator[str]:
        """The file's lines, decoded, one at a time (newlines kept for the CSV reader)."""
        with self.path.open(encoding=self.encoding, newline="") as handle:
            yield from handle


def inspect_roster_file(path: Path) -> RosterFile:
    """Find the file's encoding and sha256 in streaming passes; RosterFileError if unusable."""
    for encoding, label in _ENCODINGS:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        digest = hashlib.sha256()
        first = b""
        try:
            with path.open("rb") as handle:
                while block := handle.read(_READ_BYTES):
                    first = first or block[:3]
                    digest.update(block)
                    if "\x00" in decoder.decode(block):
                        raise RosterFileError(
                            "名册文件含有空字符，不是文本文件（请另存为CSV，UTF-8编码）",
                            f"{path.name} contains NUL characters: not a text file",
                        )
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        except OSError as exc:
            raise RosterFileError(
                "无法读取名册文件", f"cannot read {path.name}: {exc.strerror or exc}"
            ) from exc
        has_bom = first.startswith(codecs.BOM_UTF8)
        return RosterFile(path, encoding, label, digest.hexdigest(), has_bom)
    raise RosterFileError(
        "名册文件编码无法识别，请另存为UTF-8或GB18030编码的CSV",
        f"{path.name} is neither UTF-8 nor GB18030",
    )


@dataclass(frozen=True)
class OpenedRoster:
    """A roster file whose encoding and header have been checked, its rows not yet read."""

    file: RosterFile
    rows: Iterator[RosterRow | RejectedRow]


def open_roster(path: Path, *, today: date) -> OpenedRoster:
    """Check the file's encoding and header; RosterFileError or RosterHeaderError if unusable."""
    roster_file = inspect_roster_file(path)
    parsed = parse_roster(roster_file.lines(), today=today)
    # Pull the first row now, so a missing header fails before any database work.
    head = list(itertools.islice(parsed, 1))
    return OpenedRoster(roster_file, itertools.chain(head, parsed))


async def import_roster(
    roster: OpenedRoster,
    *,
    pool: asyncpg.Pool,
    cipher: PiiCipher,
    actor: str,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import an opened roster: bad rows are reported by line number and the rest load."""
    label = roster.file.label + (" (BOM)" if roster.file.has_bom else "")
    return await RosterImporter(pool, cipher, chunk_rows=chunk_rows).run(
        roster.rows,
        file_name=roster.file.path.name,
        file_sha256=roster.file.sha256,
        actor=actor,
        encoding=label,
    )


async def import_roster_file(
    path: Path,
    *,
    pool: asyncpg.Pool,
    cipher: PiiCipher,
    actor: str,
    today: date,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Open and import one roster CSV (see `open_roster` for what makes a file unusable)."""
    roster = open_roster(path, today=today)
    return await import_roster(roster, pool=pool, cipher=cipher, actor=actor, chunk_rows=chunk_rows)
