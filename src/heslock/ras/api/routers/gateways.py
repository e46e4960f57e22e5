"""BGW accounts over HTTPS: create (secret shown once), list, rename, revoke, rotate secret."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.api.routers.devices import RuntimeDep
from heslock.ras.api.routers.registrations import Name
from heslock.ras.services.access import Action
from heslock.ras.services.ddms import gateways
from heslock.ras.store.models import Gateway

router = APIRouter(prefix="/v1", tags=["gateways"], dependencies=BEARER)


class GatewayView(BaseModel):
    """A gateway; only SCRAM verifiers are stored and none of them appears here."""

    id: uuid.UUID
    name: str
    jid: str
    username: str
    created_at: datetime
    secret_rotated_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, gateway: Gateway) -> GatewayView:
        return cls(
            id=gateway.id,
            name=gateway.name,
            jid=gateways.full_jid(gateway),
            username=str(gateway.id),
            created_at=gateway.created_at,
            secret_rotated_at=gateway.secret_rotated_at,
            revoked_at=gateway.revoked_at,
        )


class GatewayWithSecret(GatewayView):
    secret: str  #: shown once: the RAS keeps only verifiers


class GatewayCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


class GatewayPatch(GatewayCreate):
    pass


def _with_secret(gateway: Gateway, secret: str) -> GatewayWithSecret:
    return GatewayWithSecret(**GatewayView.of(gateway).model_dump(), secret=secret)


@router.post("/gateways", status_code=201, summary="Register a gateway (secret shown once)")
async def create_gateway(
    body: GatewayCreate,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
) -> GatewayWithSecret:
    s = state.settings
    gateway, secret = await gateways.create(
        session, principal, ctx, body.name, s.domain, s.scram_iterations
    )
    return _with_secret(gateway, secret)


@router.get("/gateways", summary="The caller's gateways")
async def list_gateways(principal: PrincipalDep, session: SessionDep) -> list[GatewayView]:
    return [GatewayView.of(g) for g in await gateways.list_own(session, principal)]


@router.get("/gateways/{gateway_id}", summary="One gateway")
async def get_gateway(
    gateway_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> GatewayView:
    gateway = await gateways.load(session, principal, gateway_id, Action.GATEWAY_READ)
    return GatewayView.of(gateway)


@router.patch("/gateways/{gateway_id}", summary="Rename a gateway")
async def patch_gateway(
    gateway_id: uuid.UUID,
    body: GatewayPatch,
    principal: PrincipalDep,
    session: SessionDep,
    ctx: AuditDep,
) -> GatewayView:
    return GatewayView.of(await gateways.rename(session, principal, ctx, gateway_id, body.name))


@router.post("/gateways/{gateway_id}/revoke", summary="Revoke a gateway (drops its session)")
async def revoke_gateway(
    gateway_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> GatewayView:
    gateway = await gateways.revoke(session, principal, ctx, gateway_id)
    view = GatewayView.of(gateway)
    await session.commit()  # durable before the live session is dropped
    await runtime.gateway_sessions.gateway_disconnect(gateway.id, gateway.jid, "revoked")
    return view


@router.post("/gateways/{gateway_id}/secret", summary="Rotate a gateway's secret (shown once)")
async def rotate_gateway_secret(
    gateway_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> GatewayWithSecret:
    gateway, secret = await gateways.rotate_secret(
        session, principal, ctx, gateway_id, state.settings.scram_iterations
    )
    result = _with_secret(gateway, secret)
    await session.commit()
    await runtime.gateway_sessions.gateway_disconnect(gateway.id, gateway.jid, "secret-rotated")
    return result
