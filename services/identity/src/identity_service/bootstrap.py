"""Where identity's ports meet their adapters: one place builds everything the API uses."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import asyncpg
from starlette.requests import Request

from eventkit.migrations import migrate
from eventkit.settings import PlatformSettings
from eventkit.store import EventStore
from identity_service.adapters.captcha import CaptchaStore
from identity_service.adapters.passwords import Passwords
from identity_service.adapters.pii import PiiCipher, PiiSettings
from identity_service.adapters.refresh_tokens import RefreshSettings, RefreshTokens
from identity_service.adapters.signing_keys import SigningKeys
from identity_service.adapters.sms import HttpSmsSender, SmsSender
from identity_service.adapters.throttle import LoginThrottle
from identity_service.service_layer.accounts import CandidateAccounts
from identity_service.service_layer.profile import CandidateProfiles
from identity_service.service_layer.sms_codes import SmsCodes, send_policy
from identity_service.service_layer.staff import StaffAccounts
from identity_service.service_layer.tokens import Tokens
from identity_service.settings import IdentitySettings
from servicekit.context import client_address, parse_networks
from servicekit.db import service_pool

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Identity:
    """The wired service: its pool and the use cases the entrypoints call."""

    pool: asyncpg.Pool
    accounts: CandidateAccounts
    profiles: CandidateProfiles
    captchas: CaptchaStore
    keys: SigningKeys
    tokens: Tokens
    staff: StaffAccounts
    passwords: Passwords
    sms_codes: SmsCodes
    sms_sender: SmsSender
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()  # whose X-Forwarded-For counts

    def client_of(self, request: Request) -> str:
        """The address login throttling counts: behind our web UIs, the person's."""
        return client_address(request, self.trusted_proxies)

    async def close(self) -> None:
        """Release the SMS gateway's connections and the database pool."""
        if isinstance(self.sms_sender, HttpSmsSender):
            await self.sms_sender.aclose()
        await self.pool.close()


def wire(
    pool: asyncpg.Pool,
    settings: IdentitySettings,
    cipher: PiiCipher,
    refresh_settings: RefreshSettings | None = None,
    sms: SmsSender | None = None,
) -> Identity:
    """Build the service on an existing pool (tests pass theirs); the refresh tokens' grace
    interval from IDENTITY_REFRESH_GRACE_SECONDS unless `refresh_settings` says; the SMS gateway
    over HTTP at IDENTITY_SMS_URL unless `sms` is given."""
    store = EventStore(pool)
    captchas = CaptchaStore(
        pool,
        settings.captcha_secret.get_secret_value().encode(),
        ttl=timedelta(seconds=settings.captcha_ttl_seconds),
    )
    keys = SigningKeys(pool, cipher)
    refresh = RefreshTokens(
        pool,
        ttl=timedelta(days=settings.refresh_ttl_days),
        grace=(refresh_settings or RefreshSettings()).grace,
    )
    throttle = LoginThrottle(pool)
    passwords = Passwords(settings.password_hash_limit, settings.password_hash_wait_seconds)
    staff = StaffAccounts(pool, store, captchas, throttle, passwords)
    sender = sms or HttpSmsSender(
        settings.sms_url,
        settings.sms_secret.get_secret_value(),
        timeout=settings.sms_timeout_seconds,
    )
    # The codes' hash key, derived from the captcha secret (refused when public, like it).
    code_key = hmac.new(
        settings.captcha_secret.get_secret_value().encode(), b"identity.sms_codes", hashlib.sha256
    ).digest()
    sms_codes = SmsCodes(
        pool,
        code_key,
        sender,
        captchas,
        policy=send_policy(settings.sms_sends_per_mobile, settings.sms_sends_per_address),
    )
    return Identity(
        pool=pool,
        accounts=CandidateAccounts(
            pool, cipher, store, captchas, throttle, passwords, sms_codes=sms_codes
        ),
        profiles=CandidateProfiles(pool, cipher, store),
        captchas=captchas,
        keys=keys,
        tokens=Tokens(
            keys,
            refresh,
            access_ttl=timedelta(seconds=settings.access_ttl_seconds),
            staff_lookup=staff.current,
        ),
        staff=staff,
        passwords=passwords,
        sms_codes=sms_codes,
        sms_sender=sender,
        trusted_proxies=parse_networks(settings.trusted_proxies),
    )


async def start() -> Identity:
    """Connect, migrate, make sure a signing key exists, and wire the service from settings."""
    platform = PlatformSettings()
    # Settings first: a missing key (or a public development one) stops the start before any
    # connection is made, naming the variable to set.
    cipher, settings = PiiCipher.from_settings(PiiSettings()), IdentitySettings()
    dsn = platform.pg_dsn.get_secret_value()
    await migrate(dsn, "identity", MIGRATIONS)
    pool = await service_pool(dsn, min_size=platform.pg_pool_min, max_size=platform.pg_pool_max)
    identity = wire(pool, settings, cipher)
    try:
        await identity.keys.ensure_key()
    except BaseException:  # PostgreSQL went away meanwhile: the API's Startup tries again
        await identity.close()
        raise
    return identity
