"""The retention sweep of location data: a periodic task any RAS node may run.

:func:`run_retention` calls :func:`.service.purge_expired` every ``interval_s`` until
``stop`` is set, each sweep in its own short transaction. It waits on ``stop`` with a
timeout (never a bare sleep), so stopping it is immediate. A failed sweep is logged and
retried at the next interval: reports are then kept at most one interval longer.

Wiring (the composition root, e.g. ``RasServer``)::

    stop = asyncio.Event()
    task = asyncio.create_task(run_retention(app.state.ras.sessionmaker,
                                             settings.location_retention_hours,
                                             clock, stop))
    ...
    stop.set(); await task
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.ras.services.geofence.service import purge_expired

log = logging.getLogger(__name__)

#: Sweep every 5 minutes: reports outlive the retention time by at most this.
DEFAULT_INTERVAL_S: Final = 300.0


async def sweep_once(
    sessionmaker: async_sessionmaker[AsyncSession], retention_hours: int, now: datetime
) -> int:
    """One sweep in its own transaction; rows deleted."""
    async with sessionmaker() as session, session.begin():
        return await purge_expired(session, now, retention_hours)


async def run_retention(
    sessionmaker: async_sessionmaker[AsyncSession],
    retention_hours: int,
    clock: Callable[[], float],
    stop: asyncio.Event,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
) -> None:
    """Sweep now and then every ``interval_s`` until ``stop`` is set (module docstring)."""
    while not stop.is_set():
        try:
            await sweep_once(sessionmaker, retention_hours, datetime.fromtimestamp(clock(), UTC))
        except SQLAlchemyError:
            log.exception("location retention sweep failed; retrying at the next interval")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
