"""OAuth housekeeping: deleting what the authorisation server no longer needs.

Run every ``oauth_sweep_every_s`` on each node that runs the relay (``heslock ras
serve``), in batches of :data:`DELETE_BATCH` rows, one short transaction each:

=====================  ===================================================================
what                   deleted when
=====================  ===================================================================
authorisation codes    expired for :data:`CODE_GRACE` (used or not). A used code is kept
                       until then so that its replay still revokes what it produced
                       (RFC 9700 4.5); codes live at most 10 minutes.
consent tickets        expired for :data:`CODE_GRACE` (used or not).
access/refresh tokens  expired, or revoked, for ``oauth_token_keep_days``: until then
                       introspection answers ``active: false`` from the row and reuse of a
                       rotated refresh token still revokes its family; after it the
                       token is unknown, which gives the same answers.
webhook subscriptions  of a revoked grant or a deleted app (nothing is delivered for
                       them any more), with their delivery log.
=====================  ===================================================================

Grants (who gave which app what, and when they revoked it) and apps are kept: they are
what the audit trail and the user's "apps I allowed" page need; account deletion
removes them with the account.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.ras.store.models import (
    OAuthClient,
    OAuthCode,
    OAuthConsentTicket,
    OAuthGrant,
    OAuthToken,
    WebhookDelivery,
    WebhookSubscription,
)

logger = logging.getLogger(__name__)

DELETE_BATCH: Final = 2_000
#: Seconds stopping waits for a sweep in progress.
STOP_TIMEOUT_S: Final = 30.0
#: Codes and tickets are kept this long after they expire (module docstring).
CODE_GRACE: Final = timedelta(hours=1)

Clock = Callable[[], float]


@dataclass(frozen=True)
class Swept:
    codes: int
    tickets: int
    tokens: int
    webhooks: int = 0


async def _delete_batches(
    sessionmaker: async_sessionmaker[AsyncSession], model: Any, condition: Any
) -> int:
    total = 0
    while True:
        async with sessionmaker() as session, session.begin():
            ids = list(
                (
                    await session.execute(
                        select(model.id).where(condition).order_by(model.id).limit(DELETE_BATCH)
                    )
                ).scalars()
            )
            if ids:
                await session.execute(
                    delete(model)
                    .where(model.id.in_(ids))
                    .execution_options(synchronize_session=False)
                )
        total += len(ids)
        if len(ids) < DELETE_BATCH:
            return total


async def sweep(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime, token_keep: timedelta
) -> Swept:
    """Delete what the module docstring lists; how many of each."""
    stale = now - CODE_GRACE
    codes = await _delete_batches(sessionmaker, OAuthCode, OAuthCode.expires_at < stale)
    tickets = await _delete_batches(
        sessionmaker, OAuthConsentTicket, OAuthConsentTicket.expires_at < stale
    )
    horizon = now - token_keep
    tokens = await _delete_batches(
        sessionmaker,
        OAuthToken,
        or_(OAuthToken.expires_at < horizon, OAuthToken.revoked_at < horizon),
    )
    webhooks = await _sweep_webhooks(sessionmaker)
    if codes or tickets or tokens or webhooks:
        logger.info(
            "oauth sweep: %d codes, %d tickets, %d tokens, %d webhooks deleted",
            codes,
            tickets,
            tokens,
            webhooks,
        )
    return Swept(codes, tickets, tokens, webhooks)


async def _sweep_webhooks(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Subscriptions whose grant was revoked or whose app was deleted, with their log."""
    dead_grants = select(OAuthGrant.id).where(OAuthGrant.revoked_at.is_not(None))
    dead_apps = select(OAuthClient.id).where(OAuthClient.revoked_at.is_not(None))
    async with sessionmaker() as session, session.begin():
        ids = list(
            (
                await session.execute(
                    select(WebhookSubscription.id)
                    .where(
                        or_(
                            WebhookSubscription.grant_id.in_(dead_grants),
                            WebhookSubscription.client_id.in_(dead_apps),
                        )
                    )
                    .limit(DELETE_BATCH)
                )
            ).scalars()
        )
        if ids:
            await session.execute(
                delete(WebhookDelivery)
                .where(WebhookDelivery.subscription_id.in_(ids))
                .execution_options(synchronize_session=False)
            )
            await session.execute(
                delete(WebhookSubscription)
                .where(WebhookSubscription.id.in_(ids))
                .execution_options(synchronize_session=False)
            )
    return len(ids)


class OAuthSweeper:
    """Runs :func:`sweep` at start and then every ``every_s`` (module docstring)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        every_s: float,
        token_keep_days: int,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.every_s = every_s
        self.token_keep = timedelta(days=token_keep_days)
        self.runs = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="ras-oauth-sweep")

    async def stop(self) -> None:
        """Let a sweep in progress finish its batch (never cut a query), then stop."""
        task, self._task = self._task, None
        self._stopping.set()
        if task is not None:
            try:
                await asyncio.wait_for(task, STOP_TIMEOUT_S)
            except TimeoutError:
                logger.warning("oauth sweep did not stop in time; cancelled")

    async def run_once(self) -> Swept:
        swept = await sweep(
            self.sessionmaker, datetime.fromtimestamp(self.clock(), UTC), self.token_keep
        )
        self.runs += 1
        return swept

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception:
                logger.exception("oauth sweep failed; again in %.0f s", self.every_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.every_s)
