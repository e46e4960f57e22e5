"""Tokens and derived keys; the database throttle's window, lockout and clearing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.keystore import Keystore, MasterKey
from heslock.ras.services import audit
from heslock.ras.services.errors import TooManyRequests
from heslock.ras.services.udms import throttle
from heslock.ras.services.udms.keys import (
    BUCKET_PEPPER,
    OTP_PEPPER,
    Pepper,
    TokenKind,
    derive_key,
    is_token,
    new_token,
    token_hash,
)
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.migrate import upgrade
from heslock.ras.store.models import AuditRecord

CTX = audit.AuditContext("anonymous", "192.0.2.1")
T0 = datetime(2030, 1, 1, tzinfo=UTC)
LIMIT = throttle.Limit(3, timedelta(minutes=15), timedelta(minutes=5))


def test_tokens() -> None:
    token = new_token(TokenKind.REFRESH)
    assert token.startswith("hlr_")
    assert len(token) == 47
    assert is_token(token, TokenKind.REFRESH)
    assert not is_token(token, TokenKind.ACCESS)
    assert not is_token(token + "x", TokenKind.REFRESH)
    assert not is_token("hlr_" + "!" * 43, TokenKind.REFRESH)
    assert len(token_hash(token)) == 32
    assert new_token(TokenKind.REFRESH) != token


def test_derived_keys_depend_on_master_key_and_slot() -> None:
    one = Keystore(MasterKey(bytes(range(32))))
    same = Keystore(MasterKey(bytes(range(32))))
    other = Keystore(MasterKey(bytes(32)))
    assert derive_key(one, OTP_PEPPER) == derive_key(same, OTP_PEPPER)
    assert derive_key(one, OTP_PEPPER) != derive_key(one, BUCKET_PEPPER)
    assert derive_key(one, OTP_PEPPER) != derive_key(other, OTP_PEPPER)
    assert len(derive_key(one, OTP_PEPPER)) == 32


def test_code_digest_binds_the_row() -> None:
    pepper = Pepper(bytes(32))
    a, b = uuid.uuid4(), uuid.uuid4()
    assert pepper.code_digest(a, "123456") == pepper.code_digest(a, "123456")
    assert pepper.code_digest(a, "123456") != pepper.code_digest(b, "123456")
    assert pepper.code_digest(a, "123456") != pepper.code_digest(a, "123457")
    assert repr(pepper) == "Pepper(<hidden>)"


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[AsyncSession]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ras.db'}")
    await upgrade(engine)
    try:
        async with create_sessionmaker(engine)() as s:
            yield s
    finally:
        await engine.dispose()


async def _attempt(session: AsyncSession, at: datetime) -> int | None:
    """None if allowed, else the Retry-After seconds."""
    try:
        await throttle.charge(session, CTX, {"k": LIMIT}, at)
    except TooManyRequests as exc:
        return int(exc.extensions["retry_after"])
    await session.commit()
    return None


async def test_window_lockout_and_reset(session: AsyncSession) -> None:
    results = [await _attempt(session, T0 + timedelta(seconds=i)) for i in range(4)]
    assert results[:3] == [None, None, None]
    assert results[3] == 300  # locked for five minutes from the fourth attempt
    # Still locked a minute later (and that attempt does not start a second lockout).
    assert await _attempt(session, T0 + timedelta(minutes=1)) == 243
    # After the lockout, and past the window, the bucket starts afresh.
    assert await _attempt(session, T0 + timedelta(minutes=16)) is None
    lockouts = (
        await session.execute(
            AuditRecord.__table__.select().where(AuditRecord.action == "throttle.lockout")
        )
    ).all()
    assert len(lockouts) == 1


async def test_over_the_limit_after_lockout_but_inside_the_window_blocks_again(
    session: AsyncSession,
) -> None:
    for i in range(4):
        await _attempt(session, T0 + timedelta(seconds=i))
    # Lockout ended (5 min) but the window (15 min) has not: one more attempt re-blocks.
    assert await _attempt(session, T0 + timedelta(minutes=6)) == 300


async def test_clear_and_refund(session: AsyncSession) -> None:
    for i in range(3):
        await _attempt(session, T0 + timedelta(seconds=i))
    await throttle.refund(session, "k")
    assert await _attempt(session, T0 + timedelta(seconds=5)) is None
    assert await _attempt(session, T0 + timedelta(seconds=6)) is not None
    await throttle.clear(session, "k")
    await session.commit()
    assert await _attempt(session, T0 + timedelta(seconds=7)) is None


async def test_limit_until_window_end(session: AsyncSession) -> None:
    daily = throttle.Limit(1, timedelta(days=1))
    await throttle.charge(session, CTX, {"d": daily}, T0)
    with pytest.raises(TooManyRequests) as caught:
        await throttle.charge(session, CTX, {"d": daily}, T0 + timedelta(hours=23))
    assert caught.value.extensions["retry_after"] == 3600
