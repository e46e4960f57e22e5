"""Geofencing over HTTPS: fences of locks and homes, location reports, arrival suggestions.

Thin adapters over :mod:`heslock.ras.services.geofence.service`; the rules are there, in
:mod:`heslock.ras.services.geofence.policy` and in docs/security.md ("Geofencing and
location data"). Confirming an arrival suggestion unlocks nothing: its answer names the
remote command the client is to send (``next``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep
from heslock.ras.api.routers.devices import RuntimeDep
from heslock.ras.services.ddms.runtime import DdmsRuntime
from heslock.ras.services.errors import InvalidInput
from heslock.ras.services.geofence import policy, service
from heslock.ras.store.models import ArrivalSuggestion, Geofence

router = APIRouter(prefix="/v1", tags=["geofence"], dependencies=BEARER)

Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]


def _now(runtime: DdmsRuntime) -> datetime:
    return datetime.fromtimestamp(runtime.clock(), UTC)


class FenceIn(BaseModel):
    """A fence and its opt-in policies (each off unless given)."""

    model_config = ConfigDict(extra="forbid")

    latitude: Latitude
    longitude: Longitude
    radius_m: Annotated[
        float,
        Field(ge=policy.MIN_RADIUS_M, le=policy.MAX_RADIUS_M, allow_inf_nan=False),
    ]
    #: Remote unlock only with a fresh, accurate location report inside the fence.
    remote_unlock_inside: bool = False
    #: ``suggest``: an arrival notification; ``auto_unlock``: a one-tap "unlock now?"
    #: prompt. Both need the person's explicit confirmation; neither unlocks by itself.
    arrival: Literal["off", "suggest", "auto_unlock"] = "off"
    #: No arrival suggestion this long after the door was opened by other means.
    suppress_after_open_s: Annotated[int, Field(ge=0, le=policy.MAX_SUPPRESS_AFTER_OPEN_S)] = (
        policy.DEFAULT_SUPPRESS_AFTER_OPEN_S
    )
    #: A report older than this is stale.
    max_age_s: Annotated[int, Field(ge=policy.MIN_MAX_AGE_S, le=policy.MAX_MAX_AGE_S)] = (
        policy.DEFAULT_MAX_AGE_S
    )
    #: A report less accurate than this (or than half the radius) is refused.
    max_accuracy_m: Annotated[
        float,
        Field(ge=policy.MIN_MAX_ACCURACY_M, le=policy.MAX_MAX_ACCURACY_M, allow_inf_nan=False),
    ] = policy.DEFAULT_MAX_ACCURACY_M

    def settings(self) -> service.FenceSettings:
        return service.FenceSettings(
            latitude=self.latitude,
            longitude=self.longitude,
            radius_m=self.radius_m,
            remote_unlock_inside=self.remote_unlock_inside,
            arrival=policy.ArrivalMode(self.arrival),
            suppress_after_open_s=self.suppress_after_open_s,
            max_age_s=self.max_age_s,
            max_accuracy_m=self.max_accuracy_m,
        )


class FenceView(BaseModel):
    id: uuid.UUID
    lock_id: uuid.UUID | None
    home_id: uuid.UUID | None
    latitude: float
    longitude: float
    radius_m: float
    remote_unlock_inside: bool
    arrival: str
    suppress_after_open_s: int
    max_age_s: int
    max_accuracy_m: float
    #: The worst report accuracy accepted: min(max_accuracy_m, radius_m / 2).
    accuracy_limit_m: float
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Geofence) -> FenceView:
        return cls(
            id=row.id,
            lock_id=row.lock_id,
            home_id=row.home_id,
            latitude=row.latitude,
            longitude=row.longitude,
            radius_m=row.radius_m,
            remote_unlock_inside=row.remote_unlock_inside,
            arrival=row.arrival,
            suppress_after_open_s=row.suppress_after_open_s,
            max_age_s=row.max_age_s,
            max_accuracy_m=row.max_accuracy_m,
            accuracy_limit_m=service.policy_of(row).accuracy_limit_m,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class LocationIn(BaseModel):
    """One fix of the caller's device: where, how accurate (metres, the radius of the
    device's confidence disc), and when it was taken (with a time zone)."""

    model_config = ConfigDict(extra="forbid")

    latitude: Latitude
    longitude: Longitude
    accuracy_m: Annotated[
        float, Field(gt=0.0, le=policy.MAX_REPORTED_ACCURACY_M, allow_inf_nan=False)
    ]
    taken_at: AwareDatetime


class SuggestionView(BaseModel):
    id: uuid.UUID
    lock_id: uuid.UUID
    #: ``suggest`` or ``auto_unlock`` (prompt at once); both need a confirmation.
    mode: str
    created_at: datetime
    expires_at: datetime
    confirmed_at: datetime | None

    @classmethod
    def of(cls, row: ArrivalSuggestion) -> SuggestionView:
        return cls(
            id=row.id,
            lock_id=row.lock_id,
            mode=row.mode,
            created_at=row.created_at,
            expires_at=row.expires_at,
            confirmed_at=row.confirmed_at,
        )


class LocationAccepted(BaseModel):
    received_at: datetime
    #: Arrival suggestions this report raised.
    suggestions: list[SuggestionView]
    #: Locks whose arrival suggestion was suppressed: their door was opened lately.
    suppressed_lock_ids: list[uuid.UUID]


class NextCommand(BaseModel):
    """The request the client sends to unlock (authorised there like any other)."""

    method: Literal["POST"] = "POST"
    path: str
    idempotency_key: str
    body: dict[str, str]


class Confirmation(BaseModel):
    suggestion: SuggestionView
    next: NextCommand


# ------------------------------------------------------------------ fences


async def _put(
    kind: str,
    target_id: uuid.UUID,
    body: FenceIn,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
    response: Response,
) -> FenceView:
    row, created = await service.put_fence(
        session, principal, ctx, kind, target_id, body.settings(), _now(runtime)
    )
    response.status_code = 201 if created else 200
    return FenceView.of(row)


@router.put(
    "/locks/{lock_id}/geofence",
    summary="Set a lock's geofence (201 created, 200 replaced)",
    responses={201: {"description": "Created"}},
)
async def put_lock_fence(
    lock_id: uuid.UUID,
    body: FenceIn,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
    response: Response,
) -> FenceView:
    return await _put(
        service.TargetKind.LOCK, lock_id, body, principal, session, runtime, ctx, response
    )


@router.get("/locks/{lock_id}/geofence", summary="A lock's own geofence")
async def get_lock_fence(
    lock_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> FenceView:
    row = await service.get_fence(
        session, principal, service.TargetKind.LOCK, lock_id, _now(runtime)
    )
    return FenceView.of(row)


@router.delete("/locks/{lock_id}/geofence", status_code=204, summary="Remove a lock's geofence")
async def delete_lock_fence(
    lock_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> Response:
    await service.delete_fence(
        session, principal, ctx, service.TargetKind.LOCK, lock_id, _now(runtime)
    )
    return Response(status_code=204)


@router.put(
    "/homes/{home_id}/geofence",
    summary="Set a home's geofence (its locks without their own use it)",
    responses={201: {"description": "Created"}},
)
async def put_home_fence(
    home_id: uuid.UUID,
    body: FenceIn,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
    response: Response,
) -> FenceView:
    return await _put(
        service.TargetKind.HOME, home_id, body, principal, session, runtime, ctx, response
    )


@router.get("/homes/{home_id}/geofence", summary="A home's geofence")
async def get_home_fence(
    home_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> FenceView:
    row = await service.get_fence(
        session, principal, service.TargetKind.HOME, home_id, _now(runtime)
    )
    return FenceView.of(row)


@router.delete("/homes/{home_id}/geofence", status_code=204, summary="Remove a home's geofence")
async def delete_home_fence(
    home_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> Response:
    await service.delete_fence(
        session, principal, ctx, service.TargetKind.HOME, home_id, _now(runtime)
    )
    return Response(status_code=204)


# ------------------------------------------------------------------ location and arrival


@router.post("/location", status_code=201, summary="Report the caller's location (throttled)")
async def post_location(
    body: LocationIn,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> LocationAccepted:
    try:
        report = policy.Report(body.latitude, body.longitude, body.accuracy_m, body.taken_at)
    except policy.GeofenceError as exc:
        raise InvalidInput(str(exc)) from None
    outcome = await service.report_location(session, principal, ctx, report, _now(runtime))
    return LocationAccepted(
        received_at=outcome.report.received_at,
        suggestions=[SuggestionView.of(s) for s in outcome.suggestions],
        suppressed_lock_ids=outcome.suppressed,
    )


@router.delete("/location", status_code=204, summary="Delete the caller's location history")
async def delete_location(principal: PrincipalDep, session: SessionDep) -> Response:
    await service.forget_reports(session, principal)
    return Response(status_code=204)


@router.get("/arrivals", summary="The caller's arrival suggestions that may be confirmed")
async def list_arrivals(
    principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> list[SuggestionView]:
    found = await service.open_suggestions(session, principal, _now(runtime))
    return [SuggestionView.of(s) for s in found]


@router.post(
    "/arrivals/{suggestion_id}/confirm",
    summary="Confirm an arrival suggestion: the answer names the unlock to send",
)
async def confirm_arrival(
    suggestion_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> Confirmation:
    row = await service.confirm(session, principal, ctx, suggestion_id, _now(runtime))
    return Confirmation(
        suggestion=SuggestionView.of(row),
        next=NextCommand(
            path=f"/v1/locks/{row.lock_id}/commands",
            idempotency_key=service.idempotency_key(row.id),
            body={"command": "unlock"},
        ),
    )
