"""Keyset paging of share listings: ``limit`` and an opaque ``cursor``.

Rows are listed oldest first by ``(created_at, id)``, a total order that does not move
when rows are added or revoked meanwhile (unlike offsets). The cursor is the position
of the last row of a page, base64url-encoded; clients treat it as opaque. A cursor
that does not decode is :class:`InvalidInput`, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Generic, TypeVar

from sqlalchemy import Select, and_, or_

from heslock.ras.services.errors import InvalidInput
from heslock.ras.store.models import Share

DEFAULT_PAGE: Final = 50
#: One page holds at most this many rows: a lock's 200 people fit in one page.
MAX_PAGE: Final = 200
#: An encoded cursor is ~70 characters; anything much longer is not ours.
MAX_CURSOR_LEN: Final = 128

_T = TypeVar("_T")


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.created_at.astimezone(UTC).isoformat()}|{self.id.hex}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        if len(text) > MAX_CURSOR_LEN:
            raise InvalidInput("not a cursor of this listing")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at, _, hex_id = raw.partition("|")
            created = datetime.fromisoformat(at)
            position = cls(created, uuid.UUID(hex=hex_id))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidInput("not a cursor of this listing") from None
        if created.tzinfo is None:
            raise InvalidInput("not a cursor of this listing")
        return position


@dataclass(frozen=True)
class Page(Generic[_T]):
    items: list[_T]
    next_cursor: str | None


def after(query: Select[Share], cursor: str | None, limit: int) -> Select[Share]:
    """``query`` ordered by (created_at, id), after ``cursor``, one row more than a page."""
    if cursor is not None:
        position = Cursor.decode(cursor)
        query = query.where(
            or_(
                Share.created_at > position.created_at,
                and_(Share.created_at == position.created_at, Share.id > position.id),
            )
        )
    return query.order_by(Share.created_at, Share.id).limit(clamp(limit) + 1)


def clamp(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


def page_of(rows: Sequence[Share], limit: int) -> Page[Share]:
    """The page for ``rows`` fetched by :func:`after` (one extra row means "more")."""
    limit = clamp(limit)
    items = list(rows[:limit])
    more = len(rows) > limit
    last = items[-1] if items and more else None
    cursor = Cursor(last.created_at, last.id).encode() if last is not None else None
    return Page(items, cursor)
