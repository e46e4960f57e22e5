"""Webhook subscriptions: create, list, rotate, enable, delete; secrets; the delivery log.

Signing secrets are keystore envelopes (:mod:`heslock.ras.keystore`): slot
``webhook_subscriptions.secret`` (and ``.previous_secret`` during a rotation), bound to
the subscription's id, so a database copy alone signs nothing and an envelope moved to
another row does not open. A secret is shown once, when created or rotated.

The delivery log keeps the newest :data:`LOG_KEEP` attempts per subscription; older ones
are pruned as new ones are written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.keystore import Keystore, Slot
from heslock.ras.services.feed.query import high_water
from heslock.ras.services.webhooks import signing
from heslock.ras.store.models import WebhookDelivery, WebhookState, WebhookSubscription

SECRET_SLOT: Final = Slot("webhook_subscriptions", "secret")
PREVIOUS_SLOT: Final = Slot("webhook_subscriptions", "previous_secret")
#: The previous secret keeps signing this long after a rotation.
ROTATION_OVERLAP: Final = timedelta(hours=24)
#: Delivery attempts kept per subscription (the log's retention).
LOG_KEEP: Final = 500
#: A page of the delivery log at most.
MAX_LOG_PAGE: Final = 200


@dataclass(frozen=True)
class Created:
    row: WebhookSubscription
    secret: str


def seal_secret(keystore: Keystore, row: WebhookSubscription, key: bytes) -> bytes:
    return keystore.seal(SECRET_SLOT, str(row.id), key)


def signing_keys(keystore: Keystore, row: WebhookSubscription, now: datetime) -> list[bytes]:
    """The keys that sign a delivery now: the current one, and the previous one while
    its overlap lasts."""
    keys = [keystore.open(SECRET_SLOT, str(row.id), row.secret_enc)]
    if (
        row.previous_secret_enc is not None
        and row.previous_valid_until is not None
        and row.previous_valid_until > now
    ):
        keys.append(keystore.open(PREVIOUS_SLOT, str(row.id), row.previous_secret_enc))
    return keys


async def count_for_grant(session: AsyncSession, grant_id: uuid.UUID) -> int:
    query = select(func.count()).where(WebhookSubscription.grant_id == grant_id)
    return int((await session.execute(query)).scalar_one())


async def create(
    session: AsyncSession,
    keystore: Keystore,
    *,
    client_id: uuid.UUID,
    grant_id: uuid.UUID,
    user_id: uuid.UUID,
    url: str,
    events: list[str],
    description: str | None,
    now: datetime,
) -> Created:
    """A new active subscription; it delivers events published from now on."""
    key = signing.new_key()
    row = WebhookSubscription(
        id=uuid.uuid4(),
        client_id=client_id,
        grant_id=grant_id,
        user_id=user_id,
        url=url,
        events=events,
        description=description,
        state=WebhookState.ACTIVE.value,
        cursor=await high_water(session),
        attempt=0,
        failed_events=0,
        created_at=now,
        updated_at=now,
    )
    row.secret_enc = seal_secret(keystore, row, key)
    session.add(row)
    await session.flush()
    return Created(row, signing.render_secret(key))


async def find(
    session: AsyncSession, subscription_id: uuid.UUID, *, client_id: uuid.UUID
) -> WebhookSubscription | None:
    """A subscription of ``client_id`` (None for anyone else's: 404, not 403)."""
    row = await session.get(WebhookSubscription, subscription_id)
    return row if row is not None and row.client_id == client_id else None


async def list_for(
    session: AsyncSession, *, client_id: uuid.UUID, grant_id: uuid.UUID | None = None
) -> list[WebhookSubscription]:
    query = select(WebhookSubscription).where(WebhookSubscription.client_id == client_id)
    if grant_id is not None:
        query = query.where(WebhookSubscription.grant_id == grant_id)
    query = query.order_by(WebhookSubscription.created_at, WebhookSubscription.id)
    return list((await session.execute(query)).scalars())


async def rotate(
    session: AsyncSession, keystore: Keystore, row: WebhookSubscription, now: datetime
) -> tuple[str, datetime]:
    """A new secret; the current one signs alongside it for :data:`ROTATION_OVERLAP`."""
    current = keystore.open(SECRET_SLOT, str(row.id), row.secret_enc)
    key = signing.new_key()
    row.previous_secret_enc = keystore.seal(PREVIOUS_SLOT, str(row.id), current)
    row.previous_valid_until = now + ROTATION_OVERLAP
    row.secret_enc = seal_secret(keystore, row, key)
    row.updated_at = now
    await session.flush()
    return signing.render_secret(key), row.previous_valid_until


async def enable(session: AsyncSession, row: WebhookSubscription, now: datetime) -> None:
    """Re-enable: deliveries resume from the present (what was missed while disabled is
    in ``GET /v1/events`` for the app)."""
    if row.state == WebhookState.ACTIVE.value:
        return
    row.state = WebhookState.ACTIVE.value
    row.cursor = max(row.cursor, await high_water(session))
    row.attempt = 0
    row.failed_events = 0
    row.failing_since = None
    row.next_attempt_at = None
    row.disabled_at = None
    row.disabled_reason = None
    row.lease_until = None
    row.updated_at = now
    await session.flush()


async def remove(session: AsyncSession, row: WebhookSubscription) -> None:
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == row.id))
    await session.delete(row)
    await session.flush()


async def deliveries(
    session: AsyncSession, subscription_id: uuid.UUID, *, limit: int, before: int | None
) -> list[WebhookDelivery]:
    """The delivery log, newest first; ``before``: ids below it (keyset paging)."""
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    query = query.order_by(WebhookDelivery.id.desc()).limit(min(limit, MAX_LOG_PAGE))
    return list((await session.execute(query)).scalars())


async def prune_log(session: AsyncSession, subscription_id: uuid.UUID) -> None:
    """Keep the newest :data:`LOG_KEEP` attempts (module docstring)."""
    threshold = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.id.desc())
        .offset(LOG_KEEP)
        .limit(1)
    )
    oldest_kept = (await session.execute(threshold)).scalar_one_or_none()
    if oldest_kept is not None:
        await session.execute(
            delete(WebhookDelivery)
            .where(
                WebhookDelivery.subscription_id == subscription_id,
                WebhookDelivery.id <= oldest_kept,
            )
            .execution_options(synchronize_session=False)
        )
