"""SMS verification codes (短信验证码): send one to a mobile number, check it at registration.

A code is six digits, valid for five minutes, good for one registration and for at most
MAX_ATTEMPTS wrong tries; only a keyed hash of it is stored (with the row id in the message), and
the mobile number only as a keyed hash. Sends are behind the image captcha and throttled per
mobile number and per client address. The answer to a send never depends on whether an account
exists for the number (ADR 0017)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import asyncpg

from contracts.base import mask_mobile
from eventkit.db import Conn
from identity_service.adapters.captcha import CaptchaStore
from identity_service.adapters.sms import SmsSender
from identity_service.adapters.throttle import LoginThrottle
from identity_service.domain.contact import check_mobile
from identity_service.domain.errors import DomainError
from identity_service.domain.throttle import ThrottlePolicy, ThrottleRule, minutes_left

CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
REGISTER_TEMPLATE = "SMS_REGISTER_CODE"  # 【自考免考】您的注册验证码为{code}，5分钟内有效。


def send_policy(per_mobile: int = 5, per_address: int = 20) -> ThrottlePolicy:
    """Sends per mobile number and per client address in an hour; past them, locked for the
    rest of the hour."""
    hour = timedelta(hours=1)
    return ThrottlePolicy(
        account=ThrottleRule(per_mobile, hour, hour), client=ThrottleRule(per_address, hour, hour)
    )


class Purpose(StrEnum):
    """What a code is for; a code for one purpose never serves another."""

    REGISTER = "register"


class SmsSendLocked(DomainError):
    """Too many codes sent to this number or from this address; ends by itself."""

    code = "identity.sms_send_locked"
    status = 429

    def __init__(self, seconds_left: float) -> None:
        minutes = minutes_left(seconds_left)
        super().__init__(
            f"短信验证码发送过于频繁，请{minutes}分钟后再试", f"locked for {seconds_left:.0f}s"
        )
        self.retry_after = int(seconds_left) + 1


class SmsCodeRefused(DomainError):
    """The SMS code was wrong, expired, used, tried too often, or never sent to this number."""

    status = 400
    field = "sms_code"


class SmsProblem(StrEnum):
    """Why an SMS code was not accepted."""

    MISSING = "missing"
    WRONG = "wrong"
    EXPIRED = "expired"
    USED = "used"
    EXHAUSTED = "exhausted"


_MESSAGES = {
    SmsProblem.MISSING: ("identity.sms_code_missing", "请先获取短信验证码"),
    SmsProblem.WRONG: ("identity.sms_code_wrong", "短信验证码错误，请重新输入"),
    SmsProblem.EXPIRED: ("identity.sms_code_expired", "短信验证码已过期，请重新获取"),
    SmsProblem.USED: ("identity.sms_code_used", "短信验证码已使用，请重新获取"),
    SmsProblem.EXHAUSTED: ("identity.sms_code_exhausted", "短信验证码错误次数过多，请重新获取"),
}


def refused(problem: SmsProblem) -> SmsCodeRefused:
    """The error for `problem`."""
    code, message = _MESSAGES[problem]
    return SmsCodeRefused(message, f"sms code {problem.value}", code=code)


@dataclass(frozen=True)
class SendSmsCode:
    """获取短信验证码: the number, the purpose, the image captcha, the client's address."""

    mobile: str
    purpose: Purpose
    captcha_id: uuid.UUID
    captcha_answer: str
    client: str


@dataclass(frozen=True)
class SentCode:
    """What the caller may show: the masked number and how long the code lasts."""

    mobile_masked: str
    expires_in: int


@dataclass(frozen=True)
class CheckedCode:
    """A code that matched; `spend` it in the transaction that uses it."""

    code_id: uuid.UUID


class SmsCodes:
    """Sends codes through the gateway and checks them."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        key: bytes,
        sender: SmsSender,
        captchas: CaptchaStore,
        *,
        ttl: timedelta = CODE_TTL,
        policy: ThrottlePolicy | None = None,
    ) -> None:
        self._pool = pool
        self._key = key
        self._sender = sender
        self._captchas = captchas
        self._ttl = ttl
        self._throttle = LoginThrottle(pool, policy or send_policy(), namespace="sms:")

    def _mobile_hash(self, mobile: str) -> str:
        return hmac.new(self._key, f"mobile:{mobile}".encode(), hashlib.sha256).hexdigest()

    def _code_hash(self, code_id: uuid.UUID, code: str) -> bytes:
        return hmac.new(self._key, f"{code_id}:{code}".encode(), hashlib.sha256).digest()

    async def send(self, command: SendSmsCode) -> SentCode:
        """Send a new code to the number (earlier unused ones stop counting)."""
        from identity_service.service_layer.accounts import check_captcha

        mobile = check_mobile(command.mobile)
        mobile_hash = self._mobile_hash(mobile)
        lock = await self._throttle.lock_in_force(mobile_hash, command.client)
        if lock is not None:
            raise SmsSendLocked(lock.seconds_left)
        await check_captcha(self._captchas, command.captcha_id, command.captcha_answer)
        # Counted before the gateway is called: a send that fails still costs one.
        await self._throttle.record_failure(mobile_hash, command.client)
        code = f"{secrets.randbelow(1_000_000):06d}"
        code_id = uuid.uuid4()
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO identity.sms_codes (id, purpose, mobile_hash, code_hash, expires_at)"
                " VALUES ($1, $2, $3, $4, now() + $5)",
                code_id,
                command.purpose.value,
                mobile_hash,
                self._code_hash(code_id, code),
                self._ttl,
            )
        try:
            await self._sender.send(mobile, REGISTER_TEMPLATE, {"code": code})
        except BaseException:
            async with self._pool.acquire() as conn:
                await conn.execute("DELETE FROM identity.sms_codes WHERE id = $1", code_id)
            raise
        return SentCode(mask_mobile(mobile), int(self._ttl.total_seconds()))

    async def check(self, mobile: str, purpose: Purpose, code: str) -> CheckedCode:
        """The newest code sent to `mobile` for `purpose`, if `code` is it; else SmsCodeRefused
        (a wrong code counts as one of the MAX_ATTEMPTS tries). Not spent yet: see `spend`."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                """
                WITH newest AS (
                    SELECT id FROM identity.sms_codes WHERE mobile_hash = $1 AND purpose = $2
                    ORDER BY created_at DESC LIMIT 1 FOR UPDATE
                )
                UPDATE identity.sms_codes c SET attempts = c.attempts + 1
                FROM newest n WHERE c.id = n.id
                RETURNING c.id, c.code_hash, c.attempts, c.used_at IS NOT NULL AS used,
                          c.expires_at <= now() AS expired
                """,
                self._mobile_hash(mobile),
                purpose.value,
            )
        if row is None:
            raise refused(SmsProblem.MISSING)
        if row["used"]:
            raise refused(SmsProblem.USED)
        if row["expired"]:
            raise refused(SmsProblem.EXPIRED)
        if row["attempts"] > MAX_ATTEMPTS:
            raise refused(SmsProblem.EXHAUSTED)
        typed = code.strip()
        if not hmac.compare_digest(bytes(row["code_hash"]), self._code_hash(row["id"], typed)):
            if row["attempts"] >= MAX_ATTEMPTS:
                raise refused(SmsProblem.EXHAUSTED)
            raise refused(SmsProblem.WRONG)
        return CheckedCode(row["id"])

    async def spend(self, checked: CheckedCode, conn: Conn) -> None:
        """Mark the code used inside the caller's transaction; raises if another use won."""
        result = await conn.execute(
            "UPDATE identity.sms_codes SET used_at = now() WHERE id = $1 AND used_at IS NULL",
            checked.code_id,
        )
        if result.split()[-1] != "1":
            raise refused(SmsProblem.USED)

    async def sweep(self) -> int:
        """Delete codes that expired over an hour ago; returns how many."""
        async with self._pool.acquire() as conn:
            result = await conn.execute(
                "DELETE FROM identity.sms_codes WHERE expires_at < now() - interval '1 hour'"
            )
        return int(result.split()[-1])
