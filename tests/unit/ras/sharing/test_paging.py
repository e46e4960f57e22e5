"""Keyset cursors: opaque, round-trip exactly, and a bad one is a clear 422, never a 500."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from heslock.ras.services.errors import InvalidInput
from heslock.ras.services.sharing.paging import MAX_PAGE, Cursor, clamp


def test_round_trip_keeps_microseconds_and_normalises_to_utc() -> None:
    at = datetime(2026, 6, 3, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    cursor = Cursor(at, uuid.uuid4())
    decoded = Cursor.decode(cursor.encode())
    assert decoded == cursor
    assert decoded.created_at.utcoffset() == timedelta(0)
    assert "=" not in cursor.encode()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "bogus",
        "!!!!",
        _b64("2026-06-03T12:00:00+00:00"),  # no id
        _b64(f"2026-06-03T12:00:00|{uuid.uuid4().hex}"),  # naive time
        _b64(f"yesterday|{uuid.uuid4().hex}"),
        _b64("2026-06-03T12:00:00+00:00|not-a-uuid"),
        "A" * 200,
    ],
    # Stable ids (the random uuids would differ between xdist workers' collections).
    ids=["empty", "bogus", "not-base64", "no-id", "naive-time", "not-a-time", "bad-id", "long"],
)
def test_bad_cursors_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        Cursor.decode(text)


def test_limits_are_clamped() -> None:
    assert (clamp(0), clamp(1), clamp(MAX_PAGE), clamp(MAX_PAGE + 1)) == (1, 1, MAX_PAGE, MAX_PAGE)
    assert Cursor(datetime(2026, 1, 1, tzinfo=UTC), uuid.UUID(int=1)).encode()
