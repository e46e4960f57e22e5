"""A typed view of what an UPDATE or DELETE did (``AsyncSession.execute`` is typed as
``Result``; for those statements it is a ``CursorResult`` with ``rowcount``)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result


def rowcount(result: Result[Any]) -> int:
    """Rows matched by the UPDATE or DELETE that produced ``result``."""
    return cast("CursorResult[Any]", result).rowcount
