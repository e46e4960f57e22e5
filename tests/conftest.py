"""Shared test fixtures.

- Every async test must leave no asyncio task behind (aioesphomeapi's practice): a task
  still running after the test means a leak that production would accumulate.
- Tests that need a service (PostgreSQL, Redis, NATS) call :func:`require_service`: on a
  laptop without the service they skip with the reason; with ``CI=true`` (as ``.ci/run``
  sets it) a missing service fails the run instead, so CI never passes by skipping.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (CI) unless ``host:port`` accepts a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc.strerror or exc})"
        if IN_CI:
            pytest.fail(f"{message}; it is mandatory when CI=true")
        pytest.skip(f"{message}; start it, or run under CI=true to make this test mandatory")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the PostgreSQL databases and templates the tests left for the end (each
    pytest-xdist worker its own; see ``tests.support.drop_database_at_end``)."""
    support = sys.modules.get("tests.support")  # not imported: nothing was registered
    if support is not None:
        support.cleanup_at_session_end()


@pytest.fixture(autouse=True)
async def _no_lingering_tasks() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if left:
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        names = ", ".join(sorted(t.get_name() + ":" + repr(t.get_coro()) for t in left))
        pytest.fail(f"test left {len(left)} asyncio task(s) running: {names}")
