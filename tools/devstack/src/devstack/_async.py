"""Run a coroutine to completion from synchronous code, whatever thread we are on."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(factory())``; on a thread that already runs a loop (e.g. an async test
    fixture calling ``Stack.start()``), run it on a fresh helper thread instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="devstack-async") as ex:
        return ex.submit(lambda: asyncio.run(factory())).result()
