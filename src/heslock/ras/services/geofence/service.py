"""Geofences, location reports and arrival suggestions: the services behind the API.

The rules are in :mod:`.policy`; this module loads rows, checks rights, stores, audits.

**Rights.** A lock's fence is set and removed by whoever may change the lock's settings
(``manage_settings`` in force by the sharing policy: the owner, an admin share); a
home's fence by the home's owner or a home admin. Anyone holding a grant on the lock (the
home) may read the fence: a member needs to know where arrival is detected. A RAS
administrator without a grant sees nothing here: the centre is the owner's personal data.

**Which fence applies to a lock**: its own, else its home's (:func:`fence_for_lock`).

**Location reports** (``POST /v1/location``) are throttled per user
(:data:`REPORT_POLICY`), stored for ``location_retention_hours`` and judged by the
pure core against the fences of the locks the person may unlock remotely now
(ownership or shares, :func:`heslock.ras.services.sharing.resolver.effective_access`).
The person's previous definite presence per fence is read from their last
:data:`PREVIOUS_REPORTS` reports (each judged at the time it was received). An entering
person gets at most one open suggestion per lock.

**The remote-unlock check** (:func:`check_remote_unlock`) is called by the command path
for an ``unlock``, after the sharing policy allowed it; it reads only, so it may run
before the lock row is taken.

**Confirmation never unlocks.** Confirming a suggestion (the same person, before it
expires, once; audited) answers with the remote command the client is to send:
``POST /v1/locks/{id}/commands`` with ``{"command": "unlock"}`` and the Idempotency-Key
``arrival-<suggestion id>``, which is authorised there like any other remote command
(sharing policy, then this fence), so no authorisation is duplicated or bypassed here.

**Personal data.** Coordinates are never written to the audit log or to any log line;
audit records of fences carry the target, radius and policies only. Nothing records
that a suggestion was raised (that would be an arrival history kept beyond the
retention time); confirmations are audited, as the first step of an unlock.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.protocol import BoltState, DoorState, EventType
from heslock.ras.services import audit
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.ddms import throttle
from heslock.ras.services.errors import Forbidden, InvalidInput, NotFound, TooManyRequests
from heslock.ras.services.geofence.errors import REFUSALS, SuggestionNotConfirmable
from heslock.ras.services.geofence.policy import (
    MAX_FUTURE_SKEW_S,
    ArrivalMode,
    ArrivalOutcome,
    ConfirmRefusal,
    Fence,
    GeofenceError,
    Policy,
    Presence,
    Report,
    arrival,
    confirmable,
    definite_presence,
    remote_unlock_allowed,
    suggestion_expiry,
)
from heslock.ras.services.sharing.policy import LockAction, Path, Permission
from heslock.ras.services.sharing.resolver import effective_access
from heslock.ras.services.sharing.rights import home_rights, lock_access, require_decision
from heslock.ras.store.models import (
    ArrivalSuggestion,
    Command,
    CommandState,
    Geofence,
    Home,
    HomeLock,
    LocationReport,
    Lock,
    LockEventRecord,
    Share,
    ShareLock,
    ShareScope,
)

log = logging.getLogger(__name__)

#: Location reports per user: a burst of 12, then one every 10 s on average (a phone
#: reporting on significant movement sends far fewer).
REPORT_POLICY: Final = throttle.BucketPolicy(capacity=12, refill_per_s=0.1)
#: Earlier reports read to find a person's previous definite presence at a fence.
PREVIOUS_REPORTS: Final = 20
#: Locks whose fences one report is judged against (a person's own and shared locks).
MAX_LOCKS_PER_REPORT: Final = 64
#: Open suggestions listed at most (they expire within minutes).
MAX_SUGGESTIONS_LISTED: Final = 100
#: The Idempotency-Key prefix of the unlock a confirmation hands back.
IDEMPOTENCY_PREFIX: Final = "arrival-"


class TargetKind:
    LOCK = "lock"
    HOME = "home"


@dataclass(frozen=True)
class FenceSettings:
    """What a PUT sets (validated again by :class:`Policy` before it is stored)."""

    latitude: float
    longitude: float
    radius_m: float
    remote_unlock_inside: bool
    arrival: ArrivalMode
    suppress_after_open_s: int
    max_age_s: int
    max_accuracy_m: float

    def policy(self) -> Policy:
        try:
            return Policy(
                Fence(self.latitude, self.longitude, self.radius_m),
                remote_unlock_inside=self.remote_unlock_inside,
                arrival=self.arrival,
                suppress_after_open_s=self.suppress_after_open_s,
                max_age_s=self.max_age_s,
                max_accuracy_m=self.max_accuracy_m,
            )
        except GeofenceError as exc:
            raise InvalidInput(str(exc)) from None


def policy_of(row: Geofence) -> Policy:
    """The pure-core view of a fence row (validated on its way in)."""
    return Policy(
        Fence(row.latitude, row.longitude, row.radius_m),
        remote_unlock_inside=row.remote_unlock_inside,
        arrival=ArrivalMode(row.arrival),
        suppress_after_open_s=row.suppress_after_open_s,
        max_age_s=row.max_age_s,
        max_accuracy_m=row.max_accuracy_m,
    )


def report_of(row: LocationReport) -> Report:
    return Report(row.latitude, row.longitude, row.accuracy_m, row.taken_at)


def _user_id(principal: Principal) -> uuid.UUID:
    if principal.kind is not PrincipalKind.USER or principal.id is None:
        raise Forbidden("only a person has a location")
    return principal.id


# ------------------------------------------------------------------ fences


async def _authorise(
    session: AsyncSession,
    principal: Principal,
    kind: str,
    target_id: uuid.UUID,
    now: datetime,
    *,
    manage: bool,
) -> None:
    """``manage``: manage_settings in force; else any grant. NotFound when invisible."""
    if kind == TargetKind.LOCK:
        _lock, access = await lock_access(session, principal, target_id, now)
        if manage:
            require_decision(access.decide(Permission.MANAGE_SETTINGS))
        elif not access.grants:
            raise Forbidden("not allowed to read this lock's geofence")
        return
    rights = await home_rights(session, principal, target_id, now)
    if manage:
        rights.require_permission(Permission.MANAGE_SETTINGS)
    elif not rights.grants:
        raise Forbidden("not allowed to read this home's geofence")


async def _fence_row(session: AsyncSession, kind: str, target_id: uuid.UUID) -> Geofence | None:
    column = Geofence.lock_id if kind == TargetKind.LOCK else Geofence.home_id
    query = select(Geofence).where(column == target_id)
    return (await session.execute(query)).scalar_one_or_none()


def _audit_details(row: Geofence) -> dict[str, object]:
    """What the audit may say about a fence: never where it is."""
    return {
        "radius_m": row.radius_m,
        "remote_unlock_inside": row.remote_unlock_inside,
        "arrival": row.arrival,
        "suppress_after_open_s": row.suppress_after_open_s,
        "max_age_s": row.max_age_s,
        "max_accuracy_m": row.max_accuracy_m,
    }


async def put_fence(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    kind: str,
    target_id: uuid.UUID,
    wanted: FenceSettings,
    now: datetime,
) -> tuple[Geofence, bool]:
    """Set (create or replace) the fence of a lock or a home; the row and "created"."""
    await _authorise(session, principal, kind, target_id, now, manage=True)
    wanted.policy()  # refuses what the pure core refuses, before anything is written
    row = await _fence_row(session, kind, target_id)
    created = row is None
    if row is None:
        row = Geofence(
            lock_id=target_id if kind == TargetKind.LOCK else None,
            home_id=target_id if kind == TargetKind.HOME else None,
            created_at=now,
        )
        session.add(row)
    row.latitude, row.longitude, row.radius_m = wanted.latitude, wanted.longitude, wanted.radius_m
    row.remote_unlock_inside = wanted.remote_unlock_inside
    row.arrival = wanted.arrival.value
    row.suppress_after_open_s = wanted.suppress_after_open_s
    row.max_age_s = wanted.max_age_s
    row.max_accuracy_m = wanted.max_accuracy_m
    row.updated_by = principal.id if principal.kind is PrincipalKind.USER else None
    row.updated_at = now
    await session.flush()
    await audit.record(
        session, ctx, "geofence.set", audit.AuditResult.OK, target=f"{kind}:{target_id}",
        fence_id=str(row.id), created=created, **_audit_details(row),
    )  # fmt: skip
    return row, created


async def get_fence(
    session: AsyncSession, principal: Principal, kind: str, target_id: uuid.UUID, now: datetime
) -> Geofence:
    await _authorise(session, principal, kind, target_id, now, manage=False)
    row = await _fence_row(session, kind, target_id)
    if row is None:
        raise NotFound(f"this {kind} has no geofence")
    return row


async def delete_fence(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    kind: str,
    target_id: uuid.UUID,
    now: datetime,
) -> None:
    await _authorise(session, principal, kind, target_id, now, manage=True)
    row = await _fence_row(session, kind, target_id)
    if row is None:
        raise NotFound(f"this {kind} has no geofence")
    fence_id = row.id
    await session.delete(row)
    await session.flush()
    await audit.record(
        session, ctx, "geofence.delete", audit.AuditResult.OK, target=f"{kind}:{target_id}",
        fence_id=str(fence_id),
    )  # fmt: skip


async def fence_for_lock(session: AsyncSession, lock_id: uuid.UUID) -> Geofence | None:
    """The lock's own fence, else the fence of the home it is in, else None."""
    own = await _fence_row(session, TargetKind.LOCK, lock_id)
    if own is not None:
        return own
    query = (
        select(Geofence)
        .join(HomeLock, HomeLock.home_id == Geofence.home_id)
        .where(HomeLock.lock_id == lock_id)
    )
    return (await session.execute(query)).scalar_one_or_none()


# ------------------------------------------------------------------ the remote-unlock check


async def latest_report(session: AsyncSession, user_id: uuid.UUID) -> Report | None:
    """The person's most recently received report (within the retention time)."""
    query = (
        select(LocationReport)
        .where(LocationReport.user_id == user_id)
        .order_by(LocationReport.id.desc())
        .limit(1)
    )
    row = (await session.execute(query)).scalar_one_or_none()
    return report_of(row) if row is not None else None


async def check_remote_unlock(
    session: AsyncSession, principal: Principal, lock: Lock, now: datetime
) -> None:
    """Refuse a remote unlock the lock's fence does not let through; else return.

    Call it for ``unlock`` by the ``remote`` path only, after the sharing policy allowed
    the command (this narrows, never widens). No fence, or its ``remote_unlock_inside``
    policy off: returns. Otherwise the caller's latest report must be fresh, accurate and
    inside: else :class:`~.errors.GeofenceOutside`, ``LocationStale``,
    ``LocationInaccurate`` or ``LocationMissing`` (403, extensions ``lock_id`` and
    ``reason`` = the problem code, which the command path's denial audit picks up; a
    principal that is not a person has no location: ``LocationMissing``). Reads only:
    writes nothing, audits nothing (the command path audits its refusal).
    """
    row = await fence_for_lock(session, lock.id)
    if row is None or not row.remote_unlock_inside:
        return
    report = None
    if principal.kind is PrincipalKind.USER and principal.id is not None:
        report = await latest_report(session, principal.id)
    decision = remote_unlock_allowed(policy_of(row), report, now)
    if decision.allowed:
        return
    assert decision.verdict is not None
    refusal = REFUSALS[decision.verdict]
    messages = {
        "geofence-outside": "remote unlock is allowed only from inside the lock's geofence",
        "location-stale": "the latest location report is too old: send a fresh one",
        "location-inaccurate": "the latest location report is not accurate enough",
        "location-missing": "remote unlock of this lock needs a fresh location report",
    }
    raise refusal(messages[refusal.code], lock_id=str(lock.id), reason=refusal.code)


# ------------------------------------------------------------------ reports and arrival


async def last_opened_at(session: AsyncSession, lock_id: uuid.UUID) -> datetime | None:
    """When the door was last opened as far as the RAS knows, by any means.

    The latest of: an event from the lock saying its bolt was turned open by hand
    (``manual_operation`` with detail UNLOCKED) or its door opened (``door`` with detail
    OPEN), by the time the RAS received it; and an ``unlock`` command that succeeded
    (remote or nearby, anyone's), by the time it finished.
    """
    manual = EventType.MANUAL_OPERATION.name.lower()
    door = EventType.DOOR.name.lower()
    events = select(func.max(LockEventRecord.received_at)).where(
        LockEventRecord.lock_id == lock_id,
        or_(
            and_(LockEventRecord.kind == manual, LockEventRecord.detail == int(BoltState.UNLOCKED)),
            and_(LockEventRecord.kind == door, LockEventRecord.detail == int(DoorState.OPEN)),
        ),
    )
    commands = select(func.max(Command.finished_at)).where(
        Command.lock_id == lock_id,
        Command.command == "unlock",
        Command.state == CommandState.OK.value,
    )
    found = [
        (await session.execute(events)).scalar_one_or_none(),
        (await session.execute(commands)).scalar_one_or_none(),
    ]
    known = [moment for moment in found if moment is not None]
    return max(known) if known else None


async def candidate_locks(session: AsyncSession, user_id: uuid.UUID) -> list[Lock]:
    """Locks the person owns or holds an accepted, live share on (bounded).

    Only candidates: the resolver decides afterwards whether they may unlock them now.
    """
    homes_shared = select(Share.home_id).where(
        Share.grantee_id == user_id,
        Share.scope == ShareScope.HOME.value,
        Share.accepted_at.is_not(None),
        Share.revoked_at.is_(None),
    )
    locks_shared = (
        select(ShareLock.lock_id)
        .join(Share, Share.id == ShareLock.share_id)
        .where(
            Share.grantee_id == user_id,
            Share.accepted_at.is_not(None),
            Share.revoked_at.is_(None),
        )
    )
    in_shared_homes = select(HomeLock.lock_id).where(HomeLock.home_id.in_(homes_shared))
    query = (
        select(Lock)
        .where(
            or_(
                Lock.owner_id == user_id,
                Lock.id.in_(locks_shared),
                Lock.id.in_(in_shared_homes),
            )
        )
        .order_by(Lock.bound_at, Lock.id)
        .limit(MAX_LOCKS_PER_REPORT)
    )
    return list((await session.execute(query)).scalars())


def _previous_presence(policy: Policy, earlier: list[LocationReport]) -> Presence | None:
    """The last definite presence among ``earlier`` (newest first), each judged then."""
    for row in earlier:
        found = definite_presence(policy, report_of(row), row.received_at)
        if found is not None:
            return found
    return None


async def _open_suggestion(
    session: AsyncSession, user_id: uuid.UUID, lock_id: uuid.UUID, now: datetime
) -> bool:
    query = select(ArrivalSuggestion.id).where(
        ArrivalSuggestion.user_id == user_id,
        ArrivalSuggestion.lock_id == lock_id,
        ArrivalSuggestion.confirmed_at.is_(None),
        ArrivalSuggestion.expires_at > now,
    )
    return (await session.execute(query.limit(1))).first() is not None


@dataclass(frozen=True)
class ReportOutcome:
    report: LocationReport
    #: Suggestions raised by this report.
    suggestions: list[ArrivalSuggestion]
    #: Locks whose suggestion was suppressed (the door was opened by other means lately).
    suppressed: list[uuid.UUID]


async def report_location(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    report: Report,
    now: datetime,
) -> ReportOutcome:
    """Store a report (throttled) and raise the arrival suggestions it causes."""
    user_id = _user_id(principal)
    if report.taken_at - now > timedelta(seconds=MAX_FUTURE_SKEW_S):
        raise InvalidInput("taken_at is in the future: check the device's clock")
    wait = await throttle.take(
        session, f"geofence.location:{user_id}", REPORT_POLICY, now.timestamp()
    )
    if wait is not None:
        await audit.record_and_commit(
            session, ctx, "location.report", audit.AuditResult.DENIED, reason="rate-limited"
        )
        raise TooManyRequests("too many location reports; slow down", retry_after=wait)
    earlier_query = (
        select(LocationReport)
        .where(LocationReport.user_id == user_id)
        .order_by(LocationReport.id.desc())
        .limit(PREVIOUS_REPORTS)
    )
    earlier = list((await session.execute(earlier_query)).scalars())
    row = LocationReport(
        user_id=user_id,
        latitude=report.latitude,
        longitude=report.longitude,
        accuracy_m=report.accuracy_m,
        taken_at=report.taken_at,
        received_at=now,
    )
    session.add(row)
    raised: list[ArrivalSuggestion] = []
    quiet: list[uuid.UUID] = []
    for lock in await candidate_locks(session, user_id):
        fence = await fence_for_lock(session, lock.id)
        if fence is None or fence.arrival == ArrivalMode.OFF.value:
            continue
        access = await effective_access(session, principal, lock, now, Path.REMOTE)
        if not access.decide(LockAction.UNLOCK).allowed:
            continue
        policy = policy_of(fence)
        previous = _previous_presence(policy, earlier)
        outcome = arrival(policy, previous, report, now, await last_opened_at(session, lock.id))
        if outcome is ArrivalOutcome.SUPPRESSED:
            quiet.append(lock.id)
        if outcome is not ArrivalOutcome.SUGGEST:
            continue
        if await _open_suggestion(session, user_id, lock.id, now):
            continue
        suggestion = ArrivalSuggestion(
            user_id=user_id,
            lock_id=lock.id,
            fence_id=fence.id,
            mode=fence.arrival,
            created_at=now,
            expires_at=suggestion_expiry(now),
        )
        session.add(suggestion)
        raised.append(suggestion)
    await session.flush()
    log.debug("location report stored: %d suggestion(s) raised", len(raised))
    return ReportOutcome(row, raised, quiet)


async def forget_reports(session: AsyncSession, principal: Principal) -> int:
    """Delete every report of the caller (their right to erase); how many."""
    user_id = _user_id(principal)
    result = await session.execute(delete(LocationReport).where(LocationReport.user_id == user_id))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def open_suggestions(
    session: AsyncSession, principal: Principal, now: datetime
) -> list[ArrivalSuggestion]:
    """The caller's suggestions that may still be confirmed, newest first."""
    user_id = _user_id(principal)
    query = (
        select(ArrivalSuggestion)
        .where(
            ArrivalSuggestion.user_id == user_id,
            ArrivalSuggestion.confirmed_at.is_(None),
            ArrivalSuggestion.expires_at > now,
        )
        .order_by(ArrivalSuggestion.created_at.desc(), ArrivalSuggestion.id)
        .limit(MAX_SUGGESTIONS_LISTED)
    )
    return list((await session.execute(query)).scalars())


def idempotency_key(suggestion_id: uuid.UUID) -> str:
    return f"{IDEMPOTENCY_PREFIX}{suggestion_id}"


async def confirm(
    session: AsyncSession,
    principal: Principal,
    ctx: audit.AuditContext,
    suggestion_id: uuid.UUID,
    now: datetime,
) -> ArrivalSuggestion:
    """Confirm one's own suggestion, before it expires, once (audited).

    Unlocks nothing: the caller sends the remote unlock the answer names (module
    docstring). Someone else's suggestion is :class:`NotFound`, as if it did not exist.
    """
    user_id = _user_id(principal)
    row = await session.get(ArrivalSuggestion, suggestion_id, with_for_update=True)
    if row is None or row.user_id != user_id:
        raise NotFound("no such arrival suggestion")
    refusal = confirmable(row.expires_at, row.confirmed_at, now)
    if refusal is not None:
        await audit.record_and_commit(
            session, ctx, "geofence.arrival.confirm", audit.AuditResult.DENIED,
            target=f"lock:{row.lock_id}", suggestion_id=str(row.id), reason=refusal.value,
        )  # fmt: skip
        detail = {
            ConfirmRefusal.EXPIRED: "this arrival suggestion has expired",
            ConfirmRefusal.CONFIRMED: "this arrival suggestion was confirmed already",
            ConfirmRefusal.NOT_YOURS: "no such arrival suggestion",
        }[refusal]
        raise SuggestionNotConfirmable(detail, reason=refusal.value)
    row.confirmed_at = now
    await session.flush()
    await audit.record(
        session, ctx, "geofence.arrival.confirm", audit.AuditResult.OK,
        target=f"lock:{row.lock_id}", suggestion_id=str(row.id), mode=row.mode,
    )  # fmt: skip
    return row


# ------------------------------------------------------------------ retention and accounts


async def purge_expired(session: AsyncSession, now: datetime, retention_hours: int) -> int:
    """Delete reports and suggestions older than the retention time; how many rows.

    Run it periodically (:func:`.retention.run_retention`) on any node: it is one
    ``DELETE`` per table by an indexed time column, safe to run concurrently.
    """
    cutoff = now - timedelta(hours=retention_hours)
    reports = await session.execute(
        delete(LocationReport).where(LocationReport.received_at < cutoff)
    )
    suggestions = await session.execute(
        delete(ArrivalSuggestion).where(ArrivalSuggestion.created_at < cutoff)
    )
    removed = int(reports.rowcount) + int(suggestions.rowcount)  # type: ignore[attr-defined]
    if removed:
        log.info("location retention: %d row(s) older than %d h deleted", removed, retention_hours)
    return removed


async def release_account(
    session: AsyncSession, user_id: uuid.UUID, ctx: audit.AuditContext, now: datetime
) -> None:
    """UDMS deletion hook: the person's reports and suggestions, and the fences of their
    locks and homes (their centres are the person's personal data), in the deletion's
    own transaction."""
    await session.execute(delete(LocationReport).where(LocationReport.user_id == user_id))
    await session.execute(delete(ArrivalSuggestion).where(ArrivalSuggestion.user_id == user_id))
    owned_locks = select(Lock.id).where(Lock.owner_id == user_id)
    owned_homes = select(Home.id).where(Home.owner_id == user_id)
    fences = await session.execute(
        delete(Geofence)
        .where(or_(Geofence.lock_id.in_(owned_locks), Geofence.home_id.in_(owned_homes)))
        .returning(Geofence.id, Geofence.lock_id, Geofence.home_id)
    )
    for fence_id, lock_id, home_id in fences.all():
        target = f"lock:{lock_id}" if lock_id is not None else f"home:{home_id}"
        await audit.record(
            session, ctx, "geofence.delete", audit.AuditResult.OK, target=target,
            fence_id=str(fence_id), reason="account-deleted",
        )  # fmt: skip
    await session.flush()
    log.info("geofence released a deleted account")
