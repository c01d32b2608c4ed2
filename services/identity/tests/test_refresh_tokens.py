"""Rotating refresh tokens on a real PostgreSQL: rotation, reuse detection, logout, expiry."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from identity_service.adapters.refresh_tokens import RefreshProblem, RefreshRefused, RefreshTokens

pytestmark = pytest.mark.integration


async def test_rotation_hands_out_a_new_token_in_the_same_family(
    identity_pool: asyncpg.Pool,
) -> None:
    tokens = RefreshTokens(identity_pool)
    first = await tokens.issue("cand-1", "candidate")
    second = await tokens.rotate(first.token)
    assert second.token != first.token
    assert (second.family_id, second.account_id, second.account_kind) == (
        first.family_id,
        "cand-1",
        "candidate",
    )
    third = await tokens.rotate(second.token)
    assert third.family_id == first.family_id
    async with identity_pool.acquire() as conn:
        stored = await conn.fetch("SELECT token_hash FROM identity.refresh_tokens")
    assert all(first.token.encode() not in bytes(r["token_hash"]) for r in stored)


async def _after_the_grace(pool: asyncpg.Pool, seconds: float = 31) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE identity.refresh_tokens SET used_at = used_at - make_interval(secs => $1)"
            " WHERE used_at IS NOT NULL",
            seconds,
        )


async def test_a_reused_token_revokes_the_family(identity_pool: asyncpg.Pool) -> None:
    tokens = RefreshTokens(identity_pool)
    first = await tokens.issue("cand-1", "candidate")
    second = await tokens.rotate(first.token)
    await _after_the_grace(identity_pool)
    with pytest.raises(RefreshRefused) as reused:
        await tokens.rotate(first.token)
    assert reused.value.problem == RefreshProblem.REUSED
    with pytest.raises(RefreshRefused) as revoked:
        await tokens.rotate(second.token)
    assert revoked.value.problem == RefreshProblem.REVOKED
    other = await tokens.issue("cand-1", "candidate")
    assert (await tokens.rotate(other.token)).family_id == other.family_id


async def test_without_a_grace_interval_any_second_use_is_reuse(
    identity_pool: asyncpg.Pool,
) -> None:
    tokens = RefreshTokens(identity_pool, grace=timedelta(0))
    first = await tokens.issue("cand-1", "candidate")
    second = await tokens.rotate(first.token)
    with pytest.raises(RefreshRefused) as reused:
        await tokens.rotate(first.token)
    assert reused.value.problem == RefreshProblem.REUSED
    with pytest.raises(RefreshRefused):
        await tokens.rotate(second.token)


async def test_within_the_grace_the_just_rotated_token_yields_the_same_successor(
    identity_pool: asyncpg.Pool,
) -> None:
    tokens = RefreshTokens(identity_pool, grace=timedelta(seconds=30))
    first = await tokens.issue("cand-1", "candidate")
    second = await tokens.rotate(first.token)
    again = await tokens.rotate(first.token)  # the other tab, a moment later
    assert again.token == second.token
    assert (again.family_id, again.account_id, again.account_kind) == (
        first.family_id, "cand-1", "candidate",
    )  # fmt: skip
    assert 0 < again.expires_in <= second.expires_in
    async with identity_pool.acquire() as conn:
        rows = await conn.fetch("SELECT successor_sealed FROM identity.refresh_tokens")
    assert len(rows) == 2  # no third token was issued
    assert all(second.token.encode() not in bytes(r["successor_sealed"] or b"") for r in rows)
    # The successor lives on normally; its own rotation has its own grace.
    third = await tokens.rotate(second.token)
    assert (await tokens.rotate(second.token)).token == third.token
    # Once the grace has passed, the old token is reuse: the whole family ends.
    await _after_the_grace(identity_pool)
    with pytest.raises(RefreshRefused) as reused:
        await tokens.rotate(first.token)
    assert reused.value.problem == RefreshProblem.REUSED
    with pytest.raises(RefreshRefused) as revoked:
        await tokens.rotate(third.token)
    assert revoked.value.problem == RefreshProblem.REVOKED


async def test_within_the_grace_a_revoked_successor_is_not_handed_out(
    identity_pool: asyncpg.Pool,
) -> None:
    tokens = RefreshTokens(identity_pool)
    first = await tokens.issue("cand-1", "candidate")
    second = await tokens.rotate(first.token)
    assert await tokens.revoke(second.token)  # logged out in the first tab
    with pytest.raises(RefreshRefused) as revoked:
        await tokens.rotate(first.token)
    assert revoked.value.problem == RefreshProblem.REVOKED


async def test_concurrent_rotation_of_one_token_hands_out_one_successor(
    identity_pool: asyncpg.Pool,
) -> None:
    tokens = RefreshTokens(identity_pool)
    first = await tokens.issue("cand-1", "candidate")
    results = await asyncio.gather(*(tokens.rotate(first.token) for _ in range(5)))
    assert len({r.token for r in results}) == 1
    strict = RefreshTokens(identity_pool, grace=timedelta(0))
    other = await strict.issue("cand-2", "candidate")
    outcomes = await asyncio.gather(
        *(strict.rotate(other.token) for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in outcomes) == 1
    assert all(isinstance(r, RefreshRefused) for r in outcomes if isinstance(r, BaseException))


async def test_logout_and_expiry_and_unknown(identity_pool: asyncpg.Pool) -> None:
    tokens = RefreshTokens(identity_pool)
    live = await tokens.issue("staff-1", "staff")
    assert await tokens.revoke(live.token)
    assert not await tokens.revoke("not-a-token")
    with pytest.raises(RefreshRefused) as revoked:
        await tokens.rotate(live.token)
    assert revoked.value.problem == RefreshProblem.REVOKED
    short = RefreshTokens(identity_pool, ttl=timedelta(milliseconds=1))
    expiring = await short.issue("staff-1", "staff")
    await asyncio.sleep(0.01)
    with pytest.raises(RefreshRefused) as expired:
        await short.rotate(expiring.token)
    assert expired.value.problem == RefreshProblem.EXPIRED
    with pytest.raises(RefreshRefused) as unknown:
        await tokens.rotate("x" * 43)
    assert unknown.value.problem == RefreshProblem.UNKNOWN


async def test_revoke_account_ends_every_family(identity_pool: asyncpg.Pool) -> None:
    tokens = RefreshTokens(identity_pool)
    a = await tokens.issue("cand-9", "candidate")
    b = await tokens.issue("cand-9", "candidate")
    keep = await tokens.issue("cand-8", "candidate")
    assert await tokens.revoke_account("cand-9") == 2
    for token in (a, b):
        with pytest.raises(RefreshRefused):
            await tokens.rotate(token.token)
    await tokens.rotate(keep.token)
