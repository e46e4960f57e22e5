"""Grouping and sharing over HTTPS: homes, members, shares, invitations, "my shares".

Thin adapters over :mod:`heslock.ras.services.sharing`; the rules are there and in
docs/security.md ("Sharing model"). Listings page with ``limit`` and ``cursor``
(``next_cursor`` in the answer; absent on the last page); ``state=all`` includes revoked,
expired, spent and lapsed shares, the default ``active`` leaves them out.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.api.routers.devices import RuntimeDep
from heslock.ras.api.routers.registrations import check_name
from heslock.ras.api.routers.udms_common import UdmsDep
from heslock.ras.services.ddms.runtime import DdmsRuntime
from heslock.ras.services.errors import NotFound
from heslock.ras.services.sharing import homes, invitations, notify, shares
from heslock.ras.services.sharing.paging import DEFAULT_PAGE, MAX_CURSOR_LEN, MAX_PAGE, Page
from heslock.ras.services.sharing.policy import Path, Permission
from heslock.ras.services.sharing.schedule import MAX_DATE_RANGES, MAX_WINDOWS, MAX_ZONE_NAME
from heslock.ras.store.models import ContactKind, ShareScope, User
from heslock.ras.store.models.sharing import MAX_NAME_LEN

router = APIRouter(prefix="/v1", tags=["sharing"], dependencies=BEARER)

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LEN), AfterValidator(check_name)]
Zone = Annotated[str, Field(min_length=1, max_length=MAX_ZONE_NAME, examples=["Europe/Berlin"])]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Clock = Annotated[str, Field(pattern=r"^(?:[01]\d|2[0-3]):[0-5]\d$", examples=["08:00"])]
RoleIn = Literal["admin", "member", "guest"]
PermissionIn = Literal[
    "operate", "lock", "view_status", "view_log", "manage_shares", "manage_settings"
]
PathIn = Literal["remote", "nearby", "integration"]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
CursorQ = Annotated[str | None, Query(max_length=MAX_CURSOR_LEN)]
State = Annotated[Literal["active", "all"], Query()]


def _now(runtime: DdmsRuntime) -> datetime:
    return datetime.fromtimestamp(runtime.clock(), UTC)


# ------------------------------------------------------------------------ models


class Invitee(BaseModel):
    """Whom to invite: one e-mail address or one phone number (international form)."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=32)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Invitee:
        if (self.email is None) == (self.phone is None):
            raise ValueError("give exactly one of email and phone")
        return self

    def contact(self) -> tuple[ContactKind, str]:
        if self.email is not None:
            return ContactKind.EMAIL, self.email
        assert self.phone is not None
        return ContactKind.PHONE, self.phone


class ValidityIn(BaseModel):
    """``permanent``; ``from_until`` (``not_before`` <= t < ``not_after``); ``one_time``
    (spent by its first unlock or lock; optionally bounded too)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["permanent", "from_until", "one_time"] = "permanent"
    not_before: AwareDatetime | None = None
    not_after: AwareDatetime | None = None


class WindowIn(BaseModel):
    """Weekdays and local times; ``end`` <= ``start`` crosses midnight (equal: 24 h)."""

    model_config = ConfigDict(extra="forbid")

    days: Annotated[list[Day], Field(min_length=1, max_length=7)]
    start: Clock
    end: Clock


class DateRangeIn(BaseModel):
    """Local calendar dates, both included."""

    model_config = ConfigDict(extra="forbid")

    first: date
    last: date


class ScheduleIn(BaseModel):
    """Weekly windows and date ranges in the lock's time zone (its home's)."""

    model_config = ConfigDict(extra="forbid")

    windows: Annotated[list[WindowIn], Field(max_length=MAX_WINDOWS)] = []
    date_ranges: Annotated[list[DateRangeIn], Field(max_length=MAX_DATE_RANGES)] = []


class TermsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: RoleIn = "guest"
    #: None: the role's defaults. Else a subset of them (operate implies lock).
    permissions: Annotated[list[PermissionIn], Field(max_length=6)] | None = None
    paths: Annotated[list[PathIn], Field(min_length=1, max_length=3)] | None = None
    validity: ValidityIn = ValidityIn()
    schedule: ScheduleIn | None = None
    label: Name | None = None

    def terms(self) -> shares.Terms:
        return shares.terms(
            role=self.role,
            permissions=self.permissions,
            paths=self.paths,
            validity=self.validity.kind,
            not_before=self.validity.not_before,
            not_after=self.validity.not_after,
            schedule=self.schedule.model_dump(mode="json") if self.schedule else None,
            label=self.label,
        )


class ShareCreate(TermsIn):
    """A share of some locks (``lock_ids``) or of a whole home (``home_id``)."""

    invitee: Invitee
    lock_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=32)] | None = None
    home_id: uuid.UUID | None = None


class MemberCreate(TermsIn):
    invitee: Invitee
    role: RoleIn = "member"


class SharePatch(BaseModel):
    """Only the members sent change; ``schedule: null`` or ``label: null`` removes it.
    A new ``role`` without ``permissions`` takes the new role's defaults."""

    model_config = ConfigDict(extra="forbid")

    role: RoleIn | None = None
    permissions: Annotated[list[PermissionIn], Field(max_length=6)] | None = None
    paths: Annotated[list[PathIn], Field(min_length=1, max_length=3)] | None = None
    validity: ValidityIn | None = None
    schedule: ScheduleIn | None = None
    label: Name | None = None

    def changes(self) -> shares.Changes:
        sent = self.model_fields_set
        return shares.Changes(
            role=self.role,
            permissions=list(self.permissions) if self.permissions is not None else None,
            paths=list(self.paths) if self.paths is not None else None,
            validity=self.validity.kind if self.validity is not None else None,
            not_before=self.validity.not_before if self.validity is not None else None,
            not_after=self.validity.not_after if self.validity is not None else None,
            schedule=self.schedule.model_dump(mode="json") if self.schedule else None,
            clear_schedule="schedule" in sent and self.schedule is None,
            label=self.label,
            clear_label="label" in sent and self.label is None,
        )


class HomeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    time_zone: Zone


class HomePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    time_zone: Zone | None = None


class HomeView(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    time_zone: str
    #: The caller's role here (owner, admin, member, guest); None for a RAS administrator.
    role: str | None
    #: What the caller may do in this home now (by the API).
    permissions: list[Permission]
    lock_ids: list[uuid.UUID]
    gateway_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, found: homes.HomeDetail) -> HomeView:
        home = found.home
        return cls(
            id=home.id,
            owner_id=home.owner_id,
            name=home.name,
            time_zone=home.time_zone,
            role=found.role.value if found.role is not None else None,
            permissions=sorted(found.permissions),
            lock_ids=found.lock_ids,
            gateway_ids=found.gateway_ids,
            created_at=home.created_at,
            updated_at=home.updated_at,
        )


class LockRefView(BaseModel):
    id: uuid.UUID
    name: str


class InviteeView(BaseModel):
    kind: str
    address: str | None  #: None once erased (the grantee deleted their account)


class ValidityView(BaseModel):
    kind: str
    not_before: datetime | None
    not_after: datetime | None


class ShareView(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    scope: ShareScope
    home_id: uuid.UUID | None
    home_name: str | None
    #: The locks the share covers now (for a home share: the home's locks).
    locks: list[LockRefView]
    status: shares.ShareStatus
    grantee_id: uuid.UUID | None
    invitee: InviteeView | None
    label: str | None
    role: str
    permissions: list[Permission]
    paths: list[Path]
    validity: ValidityView
    schedule: ScheduleIn | None
    uses: int
    spent_at: datetime | None
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    revoked_by: uuid.UUID | None
    revoke_reason: str | None

    @classmethod
    def of(cls, found: shares.ShareDetail) -> ShareView:
        s = found.share
        return cls(
            id=s.id,
            owner_id=s.owner_id,
            scope=ShareScope(s.scope),
            home_id=s.home_id,
            home_name=found.home_name,
            locks=[LockRefView(id=lock.id, name=lock.name) for lock in found.locks],
            status=found.status,
            grantee_id=s.grantee_id,
            invitee=InviteeView(kind=s.invite_kind, address=s.invite_address)
            if s.invite_kind is not None
            else None,
            label=s.label,
            role=s.role,
            permissions=[Permission(p) for p in s.permissions],
            paths=[Path(p) for p in s.paths],
            validity=ValidityView(kind=s.validity, not_before=s.not_before, not_after=s.not_after),
            schedule=ScheduleIn.model_validate(s.schedule) if s.schedule is not None else None,
            uses=s.uses,
            spent_at=s.spent_at,
            created_by=s.created_by,
            created_at=s.created_at,
            updated_at=s.updated_at,
            accepted_at=s.accepted_at,
            revoked_at=s.revoked_at,
            revoked_by=s.revoked_by,
            revoke_reason=s.revoke_reason,
        )


class SharePage(BaseModel):
    items: list[ShareView]
    #: Pass as ``cursor`` for the next page; None on the last page.
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[shares.ShareDetail]) -> SharePage:
        return cls(items=[ShareView.of(d) for d in page.items], next_cursor=page.next_cursor)


class InvitationView(BaseModel):
    """An invitation to the caller's verified contact: what accepting it gives."""

    id: uuid.UUID
    scope: ShareScope
    home_name: str | None
    locks: list[LockRefView]
    owner_name: str | None  #: the display name of the owner, if they set one
    role: str
    permissions: list[Permission]
    paths: list[Path]
    validity: ValidityView
    schedule: ScheduleIn | None
    label: str | None
    invited_at: datetime
    expires_at: datetime


async def _invitation_view(session: AsyncSession, found: shares.ShareDetail) -> InvitationView:
    view = ShareView.of(found)
    owner = await session.get(User, found.share.owner_id)
    return InvitationView(
        id=view.id,
        scope=view.scope,
        home_name=view.home_name,
        locks=view.locks,
        owner_name=owner.display_name if owner is not None else None,
        role=view.role,
        permissions=view.permissions,
        paths=view.paths,
        validity=view.validity,
        schedule=view.schedule,
        label=view.label,
        invited_at=view.created_at,
        expires_at=view.created_at + shares.INVITATION_TTL,
    )


# ------------------------------------------------------------------------ homes


@router.post("/homes", status_code=201, summary="Create a home")
async def create_home(
    body: HomeCreate,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> HomeView:
    found = await homes.create(session, principal, ctx, body.name, body.time_zone, _now(runtime))
    return HomeView.of(found)


@router.get("/homes", summary="The homes the caller owns or is a member of")
async def list_homes(
    principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> list[HomeView]:
    return [HomeView.of(h) for h in await homes.list_visible(session, principal, _now(runtime))]


@router.get("/homes/{home_id}", summary="One home")
async def get_home(
    home_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> HomeView:
    return HomeView.of(await homes.get(session, principal, home_id, _now(runtime)))


@router.patch("/homes/{home_id}", summary="Rename a home or change its time zone")
async def patch_home(
    home_id: uuid.UUID,
    body: HomePatch,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> HomeView:
    found = await homes.update(
        session, principal, ctx, home_id, _now(runtime), name=body.name, time_zone=body.time_zone
    )
    return HomeView.of(found)


@router.delete("/homes/{home_id}", status_code=204, summary="Delete a home (revokes its shares)")
async def delete_home(
    home_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> Response:
    await homes.delete(session, principal, ctx, home_id, _now(runtime))
    return Response(status_code=204)


@router.put("/homes/{home_id}/locks/{lock_id}", summary="Put one of the owner's locks in a home")
async def put_home_lock(
    home_id: uuid.UUID,
    lock_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> HomeView:
    found = await homes.add_lock(session, principal, ctx, home_id, lock_id, _now(runtime))
    return HomeView.of(found)


@router.delete("/homes/{home_id}/locks/{lock_id}", status_code=204, summary="Take a lock out")
async def delete_home_lock(
    home_id: uuid.UUID,
    lock_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> Response:
    await homes.remove_lock(session, principal, ctx, home_id, lock_id, _now(runtime))
    return Response(status_code=204)


@router.put("/homes/{home_id}/gateways/{gateway_id}", summary="Put a gateway in a home")
async def put_home_gateway(
    home_id: uuid.UUID,
    gateway_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> HomeView:
    found = await homes.add_gateway(session, principal, ctx, home_id, gateway_id, _now(runtime))
    return HomeView.of(found)


@router.delete(
    "/homes/{home_id}/gateways/{gateway_id}", status_code=204, summary="Take a gateway out"
)
async def delete_home_gateway(
    home_id: uuid.UUID,
    gateway_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> Response:
    await homes.remove_gateway(session, principal, ctx, home_id, gateway_id, _now(runtime))
    return Response(status_code=204)


@router.get("/homes/{home_id}/members", summary="A home's members (paged)")
async def list_home_members(
    home_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    limit: Limit = DEFAULT_PAGE,
    cursor: CursorQ = None,
    state: State = "active",
) -> SharePage:
    page = await shares.list_members(
        session, principal, home_id, _now(runtime), limit=limit, cursor=cursor,
        active_only=state == "active",
    )  # fmt: skip
    return SharePage.of(page)


@router.post("/homes/{home_id}/members", status_code=201, summary="Invite a member")
async def invite_home_member(
    home_id: uuid.UUID,
    body: MemberCreate,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
    udms: UdmsDep,
    state: StateDep,
) -> ShareView:
    kind, address = body.invitee.contact()
    # throttled, and the invitee notified (heslock.ras.services.sharing.notify)
    found = await notify.grant(
        session, principal, ctx, udms, state.settings, contact_kind=kind, contact=address,
        wanted=body.terms(), now=_now(runtime), home_id=home_id,
    )  # fmt: skip
    return ShareView.of(found)


@router.delete(
    "/homes/{home_id}/members/{share_id}",
    summary="Revoke a membership (and what came with it)",
)
async def revoke_home_member(
    home_id: uuid.UUID,
    share_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> ShareView:
    now = _now(runtime)
    found = await shares.get(session, principal, share_id, now)
    if found.share.scope != "home" or found.share.home_id != home_id:
        raise NotFound("no such member of this home")
    return ShareView.of(await shares.revoke(session, principal, ctx, share_id, now))


# ------------------------------------------------------------------------ shares


@router.post("/shares", status_code=201, summary="Share locks or a home with someone")
async def create_share(
    body: ShareCreate,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
    udms: UdmsDep,
    state: StateDep,
) -> ShareView:
    kind, address = body.invitee.contact()
    # throttled, and the invitee notified (heslock.ras.services.sharing.notify)
    found = await notify.grant(
        session, principal, ctx, udms, state.settings, contact_kind=kind, contact=address,
        wanted=body.terms(), now=_now(runtime), home_id=body.home_id,
        lock_ids=body.lock_ids or (),
    )  # fmt: skip
    return ShareView.of(found)


@router.get("/shares", summary="Shares of the caller's locks and homes (paged)")
async def list_shares(
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    limit: Limit = DEFAULT_PAGE,
    cursor: CursorQ = None,
    state: State = "active",
) -> SharePage:
    page = await shares.list_granted(
        session, principal, _now(runtime), limit=limit, cursor=cursor,
        active_only=state == "active",
    )  # fmt: skip
    return SharePage.of(page)


@router.get("/shares/{share_id}", summary="One share")
async def get_share(
    share_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> ShareView:
    return ShareView.of(await shares.get(session, principal, share_id, _now(runtime)))


@router.patch("/shares/{share_id}", summary="Change a share's terms")
async def patch_share(
    share_id: uuid.UUID,
    body: SharePatch,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> ShareView:
    found = await shares.update(session, principal, ctx, share_id, body.changes(), _now(runtime))
    return ShareView.of(found)


@router.post("/shares/{share_id}/revoke", summary="Revoke a share (at once, on every path)")
async def revoke_share(
    share_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> ShareView:
    return ShareView.of(await shares.revoke(session, principal, ctx, share_id, _now(runtime)))


@router.get("/locks/{lock_id}/shares", summary="Everyone a lock is shared with (paged)")
async def list_lock_shares(
    lock_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    limit: Limit = DEFAULT_PAGE,
    cursor: CursorQ = None,
    state: State = "active",
) -> SharePage:
    page = await shares.list_for_lock(
        session, principal, lock_id, _now(runtime), limit=limit, cursor=cursor,
        active_only=state == "active",
    )  # fmt: skip
    return SharePage.of(page)


@router.get("/me/shares", summary="Shares granted to the caller (paged)")
async def list_my_shares(
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    limit: Limit = DEFAULT_PAGE,
    cursor: CursorQ = None,
    state: State = "active",
) -> SharePage:
    page = await shares.list_received(
        session, principal, _now(runtime), limit=limit, cursor=cursor,
        active_only=state == "active",
    )  # fmt: skip
    return SharePage.of(page)


# ------------------------------------------------------------------------ invitations


@router.get("/invitations", summary="Invitations to the caller's verified contacts")
async def list_invitations(
    principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> list[InvitationView]:
    found = await invitations.pending_for(session, principal, _now(runtime))
    return [await _invitation_view(session, d) for d in found]


@router.post("/invitations/{share_id}/accept", summary="Accept an invitation")
async def accept_invitation(
    share_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> ShareView:
    found = await invitations.accept(session, principal, ctx, share_id, _now(runtime))
    return ShareView.of(found)


@router.post("/invitations/{share_id}/decline", status_code=204, summary="Decline an invitation")
async def decline_invitation(
    share_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> Response:
    await invitations.decline(session, principal, ctx, share_id, _now(runtime))
    return Response(status_code=204)
