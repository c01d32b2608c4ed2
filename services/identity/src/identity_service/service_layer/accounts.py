"""Candidate registration (注册) and login (登录): the use cases behind the identity API."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass

import asyncpg

from contracts.base import mask_mobile
from contracts.identity import CandidateRegistered, Gender
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.store import EventStore
from identity_service.adapters.captcha import CaptchaProblem, CaptchaStore
from identity_service.adapters.passwords import Passwords
from identity_service.adapters.pii import PiiCipher
from identity_service.adapters.throttle import LoginThrottle
from identity_service.domain.contact import check_mobile
from identity_service.domain.errors import DomainError
from identity_service.domain.id_card import IdCardNumber, normalise_id_text
from identity_service.domain.password import check_password
from identity_service.domain.throttle import REGISTRATION_POLICY, minutes_left
from identity_service.service_layer.sms_codes import Purpose, SmsCodes

CANDIDATE_STREAM = "identity.candidate"
_TICKET = re.compile(r"^\d{10,15}$")


class RosterMismatch(DomainError):
    """The ticket number, ID number and name do not match one roster entry (which is not said)."""

    code = "identity.roster_mismatch"
    status = 422


class AlreadyRegistered(DomainError):
    """This roster entry already has an account."""

    code = "identity.already_registered"
    status = 409


class RegistrationLocked(DomainError):
    """Too many registrations refused for this roster entry or address; ends by itself."""

    code = "identity.registration_locked"
    status = 429

    def __init__(self, seconds_left: float) -> None:
        minutes = minutes_left(seconds_left)
        super().__init__(
            f"注册尝试次数过多，请{minutes}分钟后再试", f"locked for {seconds_left:.0f}s"
        )
        self.retry_after = int(seconds_left) + 1


class CaptchaRefused(DomainError):
    """The captcha answer was wrong, or the captcha expired, was used or never existed."""

    status = 400
    field = "captcha_answer"


class LoginFailed(DomainError):
    """Wrong identifier or password; never says which."""

    code = "identity.login_failed"
    status = 401


class LoginLocked(DomainError):
    """Too many failed logins for this account or address; the lock ends by itself."""

    code = "identity.login_locked"
    status = 429

    def __init__(self, seconds_left: float) -> None:
        minutes = minutes_left(seconds_left)
        super().__init__(
            f"登录失败次数过多，请{minutes}分钟后再试", f"locked for {seconds_left:.0f}s"
        )
        self.retry_after = int(seconds_left) + 1


_CAPTCHA_MESSAGES = {
    CaptchaProblem.WRONG: ("identity.captcha_wrong", "验证码错误，请重新输入"),
    CaptchaProblem.EXPIRED: ("identity.captcha_expired", "验证码已过期，请点击图片刷新"),
    CaptchaProblem.USED: ("identity.captcha_used", "验证码已使用，请点击图片刷新"),
    CaptchaProblem.UNKNOWN: ("identity.captcha_unknown", "验证码无效，请点击图片刷新"),
}


def _entry_key(ticket: str) -> str:
    """The registration throttle's key of a typed ticket number (other text kept hashed)."""
    text = normalise_id_text(ticket)
    if _TICKET.match(text):
        return f"ticket:{text}"
    return f"other:{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def _already_registered() -> AlreadyRegistered:
    return AlreadyRegistered("该考生已注册，请直接登录", "an account exists for this roster entry")


@dataclass(frozen=True)
class RegisterCandidate:
    """考生注册: roster data to match, the new account's password and mobile number, the
    captcha, and the client's address."""

    ticket_number: str
    id_number: str
    name: str
    password: str
    mobile: str
    sms_code: str
    captcha_id: uuid.UUID
    captcha_answer: str
    client: str


@dataclass(frozen=True)
class LoginCandidate:
    """考生登录: ID number or ticket number, password, captcha, and the client's address."""

    identifier: str
    password: str
    captcha_id: uuid.UUID
    captcha_answer: str
    client: str


def normalise_name(name: str) -> str:
    """Names compare after NFKC, without surrounding blanks, with a uniform middle dot."""
    return unicodedata.normalize("NFKC", name).strip().replace("•", "·").replace(".", "·")


async def check_captcha(captchas: CaptchaStore, captcha_id: uuid.UUID, answer: str) -> None:
    """Raise CaptchaRefused unless the answer is right (the captcha is spent either way)."""
    problem = await captchas.check(captcha_id, answer)
    if problem is not None:
        code, message = _CAPTCHA_MESSAGES[problem]
        raise CaptchaRefused(message, f"captcha {problem.value}", code=code)


class CandidateAccounts:
    """Registers candidates against the roster and checks their logins."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cipher: PiiCipher,
        store: EventStore,
        captchas: CaptchaStore,
        throttle: LoginThrottle,
        passwords: Passwords,
        registration_throttle: LoginThrottle | None = None,
        *,
        sms_codes: SmsCodes,
    ) -> None:
        self._pool = pool
        self._cipher = cipher
        self._store = store
        self._captchas = captchas
        self._throttle = throttle
        self._passwords = passwords
        self._sms_codes = sms_codes
        self._registrations = registration_throttle or LoginThrottle(
            pool, REGISTRATION_POLICY, namespace="reg:"
        )

    async def register(self, command: RegisterCandidate) -> uuid.UUID:
        """Create the account of a rostered candidate; returns the new candidate id.

        Throttled per roster entry (the ticket number typed) and per client address, behind a
        captcha and an SMS code sent to the mobile number, so that nobody can walk the roster to
        learn who is on it."""
        ticket = command.ticket_number.strip()
        entry_key = _entry_key(ticket)
        lock = await self._registrations.lock_in_force(entry_key, command.client)
        if lock is not None:
            raise RegistrationLocked(lock.seconds_left)
        await check_captcha(self._captchas, command.captcha_id, command.captcha_answer)
        id_number = IdCardNumber.parse(command.id_number)
        mobile = check_mobile(command.mobile)
        personal = [id_number.value, ticket, id_number.birth_date.strftime("%Y%m%d"), mobile]
        password = check_password(command.password, personal)
        # The mobile number is proven before the roster is read: probing the roster needs a
        # code sent to a phone one holds (throttled per number and address), and a typo in the
        # roster data does not spend the code.
        sms_code = await self._sms_codes.check(mobile, Purpose.REGISTER, command.sms_code)
        lookup = self._cipher.lookup_hash(id_number.value)
        # Every cheap check comes before the argon2id hash (64 MiB, tens of milliseconds): a
        # replay of a registered or unknown triple must cost a couple of index lookups only.
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT r.name, r.gender, r.registration_district, r.major_code,"
                " r.id_number_masked, r.passed_courses,"
                " EXISTS (SELECT 1 FROM identity.candidate_accounts a"
                "  WHERE a.ticket_number = r.ticket_number OR a.id_lookup_hash = $1) AS taken"
                " FROM identity.roster r WHERE r.id_lookup_hash = $1 AND r.ticket_number = $2",
                lookup,
                ticket,
            )
        if row is None or normalise_name(row["name"]) != normalise_name(command.name):
            await self._count_refusal(entry_key, command.client)
            raise RosterMismatch(
                "准考证号、身份证号或姓名与在籍考生信息不符，请核对后再试",
                "no roster entry with this ticket, ID number and name",
            )
        if row["taken"]:
            await self._count_refusal(entry_key, command.client)
            raise _already_registered()
        password_hash = await self._passwords.hash(password)
        candidate_id = uuid.uuid4()
        event = CandidateRegistered(
            candidate_id=candidate_id,
            admission_ticket_number=ticket,
            name=row["name"],
            gender=Gender(row["gender"]),
            id_number_masked=row["id_number_masked"],
            id_number_fingerprint=lookup,
            enrolled_major_code=row["major_code"],
            registration_district=row["registration_district"],
            passed_course_codes=list(row["passed_courses"]),
        )
        actor = Actor(kind="candidate", id=str(candidate_id))
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO identity.candidate_accounts (candidate_id, ticket_number,"
                    " id_lookup_hash, password_hash, mobile_encrypted, mobile_masked)"
                    " VALUES ($1, $2, $3, $4, $5, $6)",
                    candidate_id,
                    ticket,
                    lookup,
                    password_hash,
                    self._cipher.encrypt(mobile, "mobile"),
                    mask_mobile(mobile),
                )
                await self._sms_codes.spend(sms_code, conn)
                await self._store.append(
                    CANDIDATE_STREAM,
                    str(candidate_id),
                    0,
                    [NewEvent.of(event)],
                    Metadata(actor=actor),
                    conn=conn,
                )
        except asyncpg.UniqueViolationError as exc:
            # A concurrent registration of the same entry won the race (a double submit): it
            # passed every check, so it is not counted as a probe.
            raise _already_registered() from exc
        return candidate_id

    async def _count_refusal(self, entry_key: str, client: str) -> None:
        """Count a refusal that depends on the roster; past the limits, the lock it caused."""
        lock = await self._registrations.record_failure(entry_key, client)
        if lock is not None:
            raise RegistrationLocked(lock.seconds_left)

    async def login(self, command: LoginCandidate) -> uuid.UUID:
        """The candidate id when identifier, password and captcha are right; else an error."""
        column, value, key = self._identify(command.identifier)
        lock = await self._throttle.lock_in_force(key, command.client)
        if lock is not None:
            raise LoginLocked(lock.seconds_left)
        await check_captcha(self._captchas, command.captcha_id, command.captcha_answer)
        row = None
        if column is not None:
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(
                    f"SELECT candidate_id, password_hash FROM identity.candidate_accounts"
                    f" WHERE {column} = $1",
                    value,
                )
        stored = None if row is None else row["password_hash"]
        if not await self._passwords.verify(stored, command.password) or row is None:
            lock = await self._throttle.record_failure(key, command.client)
            if lock is not None:
                raise LoginLocked(lock.seconds_left)
            raise LoginFailed("账号或密码错误", "wrong identifier or password")
        await self._throttle.record_success(key)
        candidate_id: uuid.UUID = row["candidate_id"]
        return candidate_id

    def _identify(self, identifier: str) -> tuple[str | None, str, str]:
        """(column, value, throttle key) for an ID number or a ticket number."""
        text = normalise_id_text(identifier)
        if len(text) == 18:
            parsed = IdCardNumber.check(text)
            if isinstance(parsed, IdCardNumber):
                lookup = self._cipher.lookup_hash(parsed.value)
                return "id_lookup_hash", lookup, f"id:{lookup}"
        if _TICKET.match(text):
            return "ticket_number", text, f"ticket:{text}"
        # Not a possible account: still throttled, keyed without keeping what was typed.
        return None, "", f"other:{hashlib.sha256(text.encode()).hexdigest()[:32]}"
