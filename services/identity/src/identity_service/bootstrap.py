"""Where identity's ports meet their adapters: one place builds everything the API uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import asyncpg
from starlette.requests import Request

from eventkit.db import create_pool
from eventkit.migrations import migrate
from eventkit.settings import PlatformSettings
from eventkit.store import EventStore
from identity_service.adapters.captcha import CaptchaStore
from identity_service.adapters.passwords import Passwords
from identity_service.adapters.pii import PiiCipher, PiiSettings
from identity_service.adapters.refresh_tokens import RefreshSettings, RefreshTokens
from identity_service.adapters.signing_keys import SigningKeys
from identity_service.adapters.throttle import LoginThrottle
from identity_service.service_layer.accounts import CandidateAccounts
from identity_service.service_layer.profile import CandidateProfiles
from identity_service.service_layer.staff import StaffAccounts
from identity_service.service_layer.tokens import Tokens
from identity_service.settings import IdentitySettings
from servicekit.context import client_address, parse_networks

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
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()  # whose X-Forwarded-For counts

    def client_of(self, request: Request) -> str:
        """The address login throttling counts: behind our web UIs, the person's."""
        return client_address(request, self.trusted_proxies)

    async def close(self) -> None:
        """Release the database pool."""
        await self.pool.close()


def wire(
    pool: asyncpg.Pool,
    settings: IdentitySettings,
    cipher: PiiCipher,
    refresh_settings: RefreshSettings | None = None,
) -> Identity:
    """Build the service on an existing pool (tests pass theirs); the refresh tokens' grace
    interval from IDENTITY_REFRESH_GRACE_SECONDS unless `refresh_settings` says."""
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
    return Identity(
        pool=pool,
        accounts=CandidateAccounts(pool, cipher, store, captchas, throttle, passwords),
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
    pool = await create_pool(dsn, min_size=platform.pg_pool_min, max_size=platform.pg_pool_max)
    identity = wire(pool, settings, cipher)
    await identity.keys.ensure_key()
    return identity
