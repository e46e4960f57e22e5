"""DDMS gateways (BGW accounts) and their SCRAM-SHA-256 credentials (SCS).

A gateway authenticates to the RAS's XMPP endpoint with SASL SCRAM-SHA-256 (RFC 5802,
RFC 7677) as ``<gateway-id>@<domain>/bgw``. Its secret is drawn here from the CSPRNG,
shown once, and never stored: the RAS keeps only the verifiers scramp's
``make_auth_info`` derives (salt, StoredKey, ServerKey, iteration count from settings).

Revoking a gateway, or rotating its secret, commits first and then asks the
:class:`~heslock.ras.services.ddms.runtime.GatewaySessionHook` to drop its live XMPP
session, so a reconnect is already refused when the old session dies.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from datetime import UTC, datetime
from typing import Final

from scramp import ScramMechanism
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.access import Action, Principal, Resource, ResourceKind, authorize
from heslock.ras.services.errors import Conflict, NotFound
from heslock.ras.store.base import new_id
from heslock.ras.store.models import Gateway

log = logging.getLogger(__name__)

#: 32 random bytes = 256 bits, 43 URL-safe characters: no dictionary, no brute force.
SECRET_BYTES: Final = 32
#: The resource every gateway binds (ARCHITECTURE.md: ``<gateway-id>@<domain>/bgw``).
GATEWAY_RESOURCE: Final = "bgw"
MECHANISM: Final = "SCRAM-SHA-256"


def bare_jid(gateway_id: uuid.UUID, domain: str) -> str:
    return f"{gateway_id}@{domain}"


def full_jid(gateway: Gateway) -> str:
    return f"{gateway.jid}/{GATEWAY_RESOURCE}"


async def _verifiers(secret: str, iterations: int) -> tuple[bytes, bytes, bytes, int]:
    """RFC 5802 section 3: salt, StoredKey, ServerKey, i (PBKDF2 runs off the loop)."""
    mechanism = ScramMechanism(MECHANISM)
    salt, stored_key, server_key, count = await asyncio.to_thread(
        mechanism.make_auth_info, secret, iteration_count=iterations
    )
    return salt, stored_key, server_key, count


def _set_verifiers(gateway: Gateway, info: tuple[bytes, bytes, bytes, int]) -> None:
    gateway.scram_salt, gateway.scram_stored_key, gateway.scram_server_key = info[:3]
    gateway.scram_iterations = info[3]


def _resource(gateway: Gateway) -> Resource:
    return Resource(ResourceKind.GATEWAY, str(gateway.id), gateway.owner_id)


async def create(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    name: str,
    domain: str,
    iterations: int,
) -> tuple[Gateway, str]:
    """Register a gateway for the caller; returns it and its one-time secret."""
    authorize(
        principal, Action.GATEWAY_CREATE, Resource(ResourceKind.GATEWAY, owner_id=principal.id)
    )
    assert principal.id is not None  # owner role implies a user id
    secret = secrets.token_urlsafe(SECRET_BYTES)
    gateway_id = new_id()
    gateway = Gateway(
        id=gateway_id, owner_id=principal.id, name=name, jid=bare_jid(gateway_id, domain)
    )
    _set_verifiers(gateway, await _verifiers(secret, iterations))
    session.add(gateway)
    await session.flush()
    await audit.record(
        session, ctx, "gateway.create", audit.AuditResult.OK, target=f"gateway:{gateway.id}"
    )
    log.info("SCS gateway %s created", gateway.id)
    return gateway, secret


async def load(
    session: AsyncSession, principal: Principal, gateway_id: uuid.UUID, action: Action
) -> Gateway:
    gateway = await session.get(
        Gateway, gateway_id, with_for_update=action is not Action.GATEWAY_READ
    )
    if gateway is None:
        raise NotFound("no such gateway")
    authorize(principal, action, _resource(gateway))
    return gateway


async def list_own(session: AsyncSession, principal: Principal) -> list[Gateway]:
    authorize(principal, Action.GATEWAY_READ, Resource(ResourceKind.GATEWAY, owner_id=principal.id))
    query = (
        select(Gateway)
        .where(Gateway.owner_id == principal.id)
        .order_by(Gateway.created_at, Gateway.id)
    )
    return list((await session.execute(query)).scalars())


async def rename(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    gateway_id: uuid.UUID,
    name: str,
) -> Gateway:
    gateway = await load(session, principal, gateway_id, Action.GATEWAY_UPDATE)
    gateway.name = name
    await audit.record(
        session, ctx, "gateway.rename", audit.AuditResult.OK, target=f"gateway:{gateway.id}"
    )
    return gateway


async def revoke(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    gateway_id: uuid.UUID,
    now: datetime | None = None,
) -> Gateway:
    """Mark the gateway revoked (idempotent). The caller commits, then runs the hook."""
    gateway = await load(session, principal, gateway_id, Action.GATEWAY_REVOKE)
    if gateway.revoked_at is None:
        gateway.revoked_at = now or datetime.now(UTC)
        await audit.record(
            session, ctx, "gateway.revoke", audit.AuditResult.OK, target=f"gateway:{gateway.id}"
        )
        log.info("SCS gateway %s revoked", gateway.id)
    return gateway


async def rotate_secret(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    gateway_id: uuid.UUID,
    iterations: int,
    now: datetime | None = None,
) -> tuple[Gateway, str]:
    """A new one-time secret; the old verifiers are replaced (the old secret stops working)."""
    gateway = await load(session, principal, gateway_id, Action.GATEWAY_ROTATE_SECRET)
    if gateway.revoked_at is not None:
        raise Conflict("the gateway is revoked")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    _set_verifiers(gateway, await _verifiers(secret, iterations))
    gateway.secret_rotated_at = now or datetime.now(UTC)
    await audit.record(
        session,
        ctx,
        "gateway.rotate_secret",
        audit.AuditResult.OK,
        target=f"gateway:{gateway.id}",
    )
    return gateway, secret
