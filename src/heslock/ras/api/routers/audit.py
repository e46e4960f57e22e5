"""SCS audit log, read-only, for administrators: ``GET /v1/audit``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from heslock.ras.api.deps import BEARER, PrincipalDep, SessionDep
from heslock.ras.services import audit
from heslock.ras.services.access import Action, Resource, ResourceKind, authorize

router = APIRouter(prefix="/v1", tags=["audit"], dependencies=BEARER)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    source_ip: str | None
    result: str
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_after_id: int | None


@router.get("/audit", summary="Read the audit log (administrators)")
async def list_audit(
    principal: PrincipalDep,
    session: SessionDep,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
) -> AuditPage:
    authorize(principal, Action.AUDIT_READ, Resource(ResourceKind.AUDIT))
    records = await audit.list_records(session, after_id=after_id, limit=limit)
    items = [AuditEntry.model_validate(r, from_attributes=True) for r in records]
    return AuditPage(items=items, next_after_id=items[-1].id if len(items) == limit else None)
