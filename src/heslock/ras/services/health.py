"""Liveness and readiness of the RAS (for load balancers and orchestrators).

Ready means: the database answers and its schema is at the migration head this code
expects. A node that is not ready must not receive traffic.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ras.store.migrate import current_revision, head_revision

log = logging.getLogger(__name__)


async def readiness(engine: AsyncEngine) -> dict[str, str]:
    """Check name -> problem for each failing check; empty when ready."""
    problems: dict[str, str] = {}
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        revision = await current_revision(engine)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        problems["database"] = "unreachable"
        return problems
    if revision != head_revision():
        problems["migrations"] = (
            f"database at {revision or 'no revision'}, code needs {head_revision()}"
        )
    return problems
