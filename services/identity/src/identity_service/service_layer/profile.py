"""个人中心: the candidate's profile, the contact details they may change, the quick entries."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Literal

import asyncpg

from contracts.base import mask_mobile
from contracts.identity import CandidateProfileField, CandidateProfileUpdated
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.errors import ConcurrencyError
from eventkit.store import EventStore
from identity_service.adapters.pii import PiiCipher
from identity_service.domain.contact import check_mobile
from identity_service.domain.errors import DomainError
from identity_service.service_layer.accounts import CANDIDATE_STREAM

_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}$")


class InvalidEmail(DomainError):
    """Not an e-mail address."""

    code = "identity.email_invalid"
    field = "email"


class AccountNotFound(DomainError):
    """The token names an account that does not exist (any more)."""

    code = "identity.account_not_found"
    status = 404


class ProfileConflict(DomainError):
    """Two changes of the same profile raced; the later one should be repeated."""

    code = "identity.profile_conflict"
    status = 409


@dataclass(frozen=True)
class QuickEntry:
    """A quick entry of the personal centre and whether its window is open."""

    key: str
    title: str
    state: Literal["open", "closed"]
    message: str


# Only the exemption application is in scope; its own windows are checked by the application
# service when the candidate starts an application.
QUICK_ENTRIES = (
    QuickEntry("theory_registration", "理论课报考", "closed", "未开放"),
    QuickEntry("transfer", "转考", "closed", "未开放"),
    QuickEntry("exemption", "免考申请", "open", "可申请"),
    QuickEntry("practical_registration", "实践课报考", "closed", "未开放"),
    QuickEntry("graduation", "毕业申请", "closed", "未开放"),
)


@dataclass(frozen=True)
class Profile:
    """What the personal centre shows; personal numbers only masked."""

    candidate_id: uuid.UUID
    name: str
    gender: str
    id_number_masked: str
    admission_ticket_number: str
    exam_district: str
    registration_district: str
    major_code: str
    passed_courses: tuple[str, ...]
    mobile_masked: str
    email: str | None


_PROFILE = """
SELECT a.candidate_id, r.name, r.gender, r.id_number_masked, r.ticket_number, r.exam_district,
       r.registration_district, r.major_code, r.passed_courses, a.mobile_masked, a.email
FROM identity.candidate_accounts a JOIN identity.roster r USING (ticket_number)
WHERE a.candidate_id = $1
"""


class CandidateProfiles:
    """Reads the personal centre and records changes of mobile number and e-mail."""

    def __init__(self, pool: asyncpg.Pool, cipher: PiiCipher, store: EventStore) -> None:
        self._pool = pool
        self._cipher = cipher
        self._store = store

    async def get(self, candidate_id: uuid.UUID) -> Profile:
        """The candidate's profile."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_PROFILE, candidate_id)
        if row is None:
            raise AccountNotFound("账号不存在，请重新登录", "no such candidate account")
        return Profile(
            candidate_id=row["candidate_id"],
            name=row["name"],
            gender=row["gender"],
            id_number_masked=row["id_number_masked"],
            admission_ticket_number=row["ticket_number"],
            exam_district=row["exam_district"],
            registration_district=row["registration_district"],
            major_code=row["major_code"],
            passed_courses=tuple(row["passed_courses"]),
            mobile_masked=row["mobile_masked"],
            email=row["email"],
        )

    async def change_contact(
        self,
        candidate_id: uuid.UUID,
        *,
        mobile: str | None = None,
        email: str | None = None,
        clear_email: bool = False,
    ) -> Profile:
        """Change the mobile number and/or e-mail; records CandidateProfileUpdated."""
        changed: list[CandidateProfileField] = []
        values: dict[str, object] = {}
        mobile_masked = None
        if mobile is not None:
            mobile = check_mobile(mobile)
            mobile_masked = mask_mobile(mobile)
            values["mobile_encrypted"] = self._cipher.encrypt(mobile, "mobile")
            values["mobile_masked"] = mobile_masked
            changed.append(CandidateProfileField.MOBILE)
        if email is not None or clear_email:
            cleaned = None if clear_email or not email else email.strip()
            if cleaned is not None and (len(cleaned) > 254 or not _EMAIL.match(cleaned)):
                raise InvalidEmail("请输入有效的电子邮箱地址", "not an e-mail address")
            values["email"] = cleaned
            changed.append(CandidateProfileField.EMAIL)
        if not changed:
            return await self.get(candidate_id)
        event = CandidateProfileUpdated(
            candidate_id=candidate_id, changed_fields=changed, mobile_masked=mobile_masked
        )
        stream_id = str(candidate_id)
        async with self._pool.acquire() as conn, conn.transaction():
            exists = await conn.fetchval(
                "SELECT true FROM identity.candidate_accounts WHERE candidate_id = $1 FOR UPDATE",
                candidate_id,
            )
            if not exists:
                raise AccountNotFound("账号不存在，请重新登录", "no such candidate account")
            assignments = ", ".join(f"{column} = ${i + 2}" for i, column in enumerate(values))
            await conn.execute(
                f"UPDATE identity.candidate_accounts SET {assignments} WHERE candidate_id = $1",
                candidate_id,
                *values.values(),
            )
            version = len(await self._store.load(CANDIDATE_STREAM, stream_id, conn=conn))
            try:
                await self._store.append(
                    CANDIDATE_STREAM,
                    stream_id,
                    version,
                    [NewEvent.of(event)],
                    Metadata(actor=Actor(kind="candidate", id=stream_id)),
                    conn=conn,
                )
            except ConcurrencyError as exc:
                raise ProfileConflict("信息已被修改，请刷新后重试", "concurrent change") from exc
        return await self.get(candidate_id)
