"""Test helpers on a running stack: throwaway databases."""

from __future__ import annotations

import asyncpg

from devstack.endpoints import Endpoints


async def create_database(stack: Endpoints, name: str) -> str:
    """Create an empty database on the stack; its DSN."""
    admin = await asyncpg.connect(stack.pg_dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return stack.pg_dsn(name)


async def drop_database(stack: Endpoints, name: str) -> None:
    """Drop a database, closing whatever still uses it."""
    admin = await asyncpg.connect(stack.pg_dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
