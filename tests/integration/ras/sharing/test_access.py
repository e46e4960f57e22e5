"""effective_access against a real database: the role x permission x path matrix, the
owner and the RAS's administrator, one-time keys, revocation, transfer, moving a lock,
and schedule boundaries across DST changes in the lock's home zone.

The command paths (remote, nearby) call exactly this resolver; these tests pin what it
answers, so wiring a path to it carries the matrix over.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from heslock.ras.services import audit
from heslock.ras.services.errors import Forbidden, NotFound
from heslock.ras.services.sharing.errors import AccessDenied
from heslock.ras.services.sharing.policy import LockAction, Path, Permission, Reason
from heslock.ras.services.sharing.resolver import Access, effective_access, record_use
from heslock.ras.store.models import Lock, Share
from tests.integration.ras.sharing.conftest import Rig

ALL = set(LockAction)
ACTUATE = {LockAction.UNLOCK, LockAction.LOCK}
#: Who holds what on the lock (set up in ``_people``), and what each may do.
EXPECTED: dict[str, set[LockAction]] = {
    "olga": ALL,  # owner
    "ada": ALL,  # home admin (membership)
    "mia": ACTUATE | {LockAction.STATUS, LockAction.EVENTS},  # home member
    "gus": ACTUATE | {LockAction.STATUS},  # guest share on the lock
    "lea": {LockAction.LOCK},  # lock only, on the lock
    "nia": ACTUATE | {LockAction.STATUS},  # guest, nearby path only
    "root": set(),  # the RAS's administrator: sees, does not operate
    "sam": set(),  # a stranger
}


async def _access(
    rig: Rig,
    who: str,
    lock_id: uuid.UUID,
    path: Path,
    scope: frozenset[Permission] | None = None,
) -> Access:
    async with rig.maker() as session:
        lock = await session.get(Lock, lock_id)
        assert lock is not None
        return await effective_access(
            session, rig.principal(who), lock, rig.clock.at, path, scope=scope
        )


async def _people(rig: Rig) -> uuid.UUID:
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    for name, role in (("ada", "admin"), ("mia", "member")):
        await rig.accept(name, (await rig.member(home, name, role=role))["id"])
    await rig.add_person("lea")
    await rig.add_person("nia")
    await rig.granted("olga", "gus", lock_ids=[str(lock)])
    await rig.granted("olga", "lea", lock_ids=[str(lock)], permissions=["lock"])
    await rig.granted("olga", "nia", lock_ids=[str(lock)], paths=["nearby"])
    return lock


async def test_role_permission_path_matrix(rig: Rig) -> None:
    lock = await _people(rig)
    failures = []
    for who, path in itertools.product(EXPECTED, Path):
        access = await _access(rig, who, lock, path)
        for action in LockAction:
            expected = action in EXPECTED[who] and (who != "nia" or path is Path.NEARBY)
            if access.decide(action).allowed != expected:
                failures.append((who, path.value, action.value))
    assert failures == []


async def test_refusals_are_404_403_or_access_denied(rig: Rig) -> None:
    lock = await _people(rig)
    with pytest.raises(NotFound):
        (await _access(rig, "sam", lock, Path.REMOTE)).require(LockAction.STATUS)
    with pytest.raises(Forbidden) as admin:
        (await _access(rig, "root", lock, Path.REMOTE)).require(LockAction.UNLOCK)
    assert not isinstance(admin.value, AccessDenied)  # as the RAS policy says today
    with pytest.raises(AccessDenied) as lock_only:
        (await _access(rig, "lea", lock, Path.REMOTE)).require(LockAction.UNLOCK)
    assert lock_only.value.extensions == {"reason": "permission"}
    with pytest.raises(AccessDenied) as nearby_only:
        (await _access(rig, "nia", lock, Path.REMOTE)).require(LockAction.UNLOCK)
    assert nearby_only.value.extensions == {"reason": "path"}


async def test_integration_scope_narrows_even_the_owner(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    access = await _access(rig, "olga", lock, Path.INTEGRATION, scope=frozenset({Permission.LOCK}))
    assert access.decide(LockAction.LOCK).allowed
    refused = access.decide(LockAction.UNLOCK)
    assert (refused.allowed, refused.reason) == (False, Reason.SCOPE)
    assert access.permissions == {Permission.LOCK}


async def test_revocation_refuses_the_next_command_on_every_path(rig: Rig) -> None:
    """A nearby frame handed out before stays usable only within the lock's window (its
    timestamp); the RAS refuses the next request of any kind at once."""
    lock = await rig.add_lock("olga")
    share_id = await rig.granted("olga", "gus", lock_ids=[str(lock)])
    for path in Path:
        assert (await _access(rig, "gus", lock, path)).decide(LockAction.UNLOCK).allowed
    await rig.call("POST", f"/v1/shares/{share_id}/revoke", "olga", 200)
    for path in Path:
        with pytest.raises(NotFound):
            (await _access(rig, "gus", lock, path)).require(LockAction.UNLOCK)


async def test_a_one_time_key_is_spent_once(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    share_id = await rig.granted("olga", "gus", lock_ids=[str(lock)], validity={"kind": "one_time"})
    ctx = audit.AuditContext(f"user:{rig.ids['gus']}")
    first = await _access(rig, "gus", lock, Path.NEARBY)
    stale = await _access(rig, "gus", lock, Path.REMOTE)  # read before the first use
    assert first.decide(LockAction.STATUS).allowed  # reading does not spend it
    decision = first.require(LockAction.UNLOCK)
    assert decision.spends
    async with rig.maker() as session, session.begin():
        await record_use(session, ctx, first, decision, action=LockAction.UNLOCK)
    # A request that decided before the use committed loses the conditional update.
    async with rig.maker() as session, session.begin():
        with pytest.raises(AccessDenied) as raced:
            await record_use(session, ctx, stale, stale.require(LockAction.LOCK))
    assert raced.value.extensions == {"reason": "spent"}
    with pytest.raises(AccessDenied) as spent:
        (await _access(rig, "gus", lock, Path.REMOTE)).require(LockAction.STATUS)
    assert spent.value.extensions == {"reason": "spent"}
    # The spending command's own retry (same Idempotency-Key) is not refused as spent...
    after = await _access(rig, "gus", lock, Path.NEARBY)
    assert after.require_replay(LockAction.UNLOCK).reason is Reason.SPENT
    # ... but a revoked key refuses even a retry.
    await rig.call("POST", f"/v1/shares/{share_id}/revoke", "olga", 200)
    with pytest.raises(NotFound):
        (await _access(rig, "gus", lock, Path.NEARBY)).require_replay(LockAction.UNLOCK)
    got = await rig.call("GET", f"/v1/shares/{share_id}", "olga", 200)
    assert (got["status"], got["uses"]) == ("revoked", 1)
    assert got["spent_at"] is not None
    (use,) = await rig.audit("share.use")
    assert use.actor == f"user:{rig.ids['gus']}"
    assert use.details["spent"] is True
    assert use.details["path"] == "nearby"


async def test_uses_of_a_permanent_share_are_counted_and_audited(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    share_id = await rig.granted("olga", "gus", lock_ids=[str(lock)])
    ctx = audit.AuditContext(f"user:{rig.ids['gus']}")
    command_id = uuid.uuid4()
    for _ in range(2):
        access = await _access(rig, "gus", lock, Path.REMOTE)
        async with rig.maker() as session, session.begin():
            decision = access.require(LockAction.UNLOCK)
            await record_use(
                session, ctx, access, decision, action=LockAction.UNLOCK, command_id=command_id
            )
    # The owner's own commands are not share uses.
    owner = await _access(rig, "olga", lock, Path.REMOTE)
    async with rig.maker() as session, session.begin():
        await record_use(session, ctx, owner, owner.require(LockAction.UNLOCK))
    assert (await rig.call("GET", f"/v1/shares/{share_id}", "olga", 200))["uses"] == 2
    uses = await rig.audit("share.use")
    assert [u.details["command_id"] for u in uses] == [str(command_id)] * 2
    assert {u.target for u in uses} == {f"share:{share_id}"}


async def test_validity_window(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    start = rig.clock.at + timedelta(hours=1)
    end = start + timedelta(hours=2)
    await rig.granted(
        "olga", "gus", lock_ids=[str(lock)],
        validity={
            "kind": "from_until", "not_before": start.isoformat(), "not_after": end.isoformat()
        },
    )  # fmt: skip
    reasons = []
    for at in (start - timedelta(seconds=1), start, end - timedelta(seconds=1), end):
        rig.clock.at = at
        access = await _access(rig, "gus", lock, Path.REMOTE)
        reasons.append(access.decide(LockAction.UNLOCK).reason)
    assert reasons == [Reason.NOT_YET_VALID, Reason.SHARE, Reason.SHARE, Reason.EXPIRED]


async def test_a_transfer_ends_every_share(rig: Rig) -> None:
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    membership = await rig.member(home, "mia", 201)
    await rig.accept("mia", membership["id"])
    await rig.granted("olga", "gus", lock_ids=[str(lock)])
    to_sam = {"to_user": str(rig.ids["sam"])}
    await rig.call("POST", f"/v1/locks/{lock}/transfer", "olga", 200, json=to_sam)
    for who in ("mia", "gus", "olga"):
        with pytest.raises(NotFound):
            (await _access(rig, who, lock, Path.REMOTE)).require(LockAction.UNLOCK)
    sam = await _access(rig, "sam", lock, Path.REMOTE)
    assert sam.decide(LockAction.UNLOCK).reason is Reason.OWNER


async def test_a_lock_taken_out_of_a_home_leaves_its_members(rig: Rig) -> None:
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    membership = await rig.member(home, "mia", 201)
    await rig.accept("mia", membership["id"])
    scheduled = await rig.granted(
        "olga", "gus", lock_ids=[str(lock)],
        schedule={"windows": [{"days": ["wed"], "start": "08:00", "end": "18:00"}]},
    )  # fmt: skip
    assert (await _access(rig, "gus", lock, Path.REMOTE)).decide(LockAction.UNLOCK).allowed
    await rig.call("DELETE", f"/v1/homes/{home}/locks/{lock}", "olga", 204)
    with pytest.raises(NotFound):
        (await _access(rig, "mia", lock, Path.REMOTE)).require(LockAction.UNLOCK)
    # The guest's share was made in the home: it applies only while the lock is there.
    with pytest.raises(NotFound):
        (await _access(rig, "gus", lock, Path.REMOTE)).require(LockAction.UNLOCK)
    # Back in the home, both apply again (revocation is the way to end them for good).
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    assert (await _access(rig, "gus", lock, Path.REMOTE)).decide(LockAction.UNLOCK).allowed
    assert scheduled


async def test_a_scheduled_share_without_a_zone_fails_closed(rig: Rig) -> None:
    """A schedule made while the lock was in a home, and a lock moved out of every home
    by a share made outside: no zone, so no window opens."""
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    share_id = await rig.granted(
        "olga", "gus", lock_ids=[str(lock)],
        schedule={"windows": [{"days": ["wed"], "start": "08:00", "end": "18:00"}]},
    )  # fmt: skip
    async with rig.maker() as session, session.begin():  # as if made outside any home
        outside = update(Share).where(Share.id == uuid.UUID(share_id)).values(home_id=None)
        await session.execute(outside)
    await rig.call("DELETE", f"/v1/homes/{home}/locks/{lock}", "olga", 204)
    with pytest.raises(AccessDenied) as refused:
        (await _access(rig, "gus", lock, Path.REMOTE)).require(LockAction.UNLOCK)
    assert refused.value.extensions == {"reason": "no-time-zone"}


# --------------------------------------------------------------- schedules and DST

NIGHT = {"windows": [{"days": ["sat"], "start": "22:00", "end": "06:00"}]}
SECOND = timedelta(seconds=1)


async def _night_guest(rig: Rig, zone: str) -> tuple[uuid.UUID, str]:
    home = await rig.home(zone=zone)
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    await rig.granted("olga", "gus", lock_ids=[str(lock)], schedule=NIGHT)
    return lock, home


async def _allowed_at(rig: Rig, lock: uuid.UUID, *instants: datetime) -> list[bool]:
    found = []
    for at in instants:
        rig.clock.at = at
        access = await _access(rig, "gus", lock, Path.REMOTE)
        found.append(access.decide(LockAction.UNLOCK).allowed)
    return found


async def test_schedule_boundaries_across_berlin_spring_forward(rig: Rig) -> None:
    """Sat 2026-03-28 22:00 CET to Sun 06:00 CEST: seven real hours."""
    lock, _home = await _night_guest(rig, "Europe/Berlin")
    opens = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)
    closes = datetime(2026, 3, 29, 4, 0, tzinfo=UTC)
    jump = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert await _allowed_at(
        rig, lock, opens - SECOND, opens, jump - SECOND, jump, closes - SECOND, closes
    ) == [False, True, True, True, True, False]


async def test_schedule_boundaries_across_berlin_fall_back(rig: Rig) -> None:
    """Sat 2026-10-24 22:00 CEST to Sun 06:00 CET: nine real hours, the repeat inside."""
    lock, _home = await _night_guest(rig, "Europe/Berlin")
    opens = datetime(2026, 10, 24, 20, 0, tzinfo=UTC)
    closes = datetime(2026, 10, 25, 5, 0, tzinfo=UTC)
    repeat = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # the second 02:30
    assert await _allowed_at(rig, lock, opens - SECOND, opens, repeat, closes - SECOND, closes) == [
        False,
        True,
        True,
        True,
        False,
    ]


async def test_schedule_follows_the_home_zone(rig: Rig) -> None:
    lock, home = await _night_guest(rig, "Europe/Berlin")
    at = datetime(2026, 6, 6, 21, 0, tzinfo=UTC)  # Sat 23:00 in Berlin, 17:00 in New York
    assert await _allowed_at(rig, lock, at) == [True]
    new_york = {"time_zone": "America/New_York"}
    await rig.call("PATCH", f"/v1/homes/{home}", "olga", 200, json=new_york)
    assert await _allowed_at(rig, lock, at, at + timedelta(hours=5)) == [False, True]
    # New York's own spring forward: 2026-03-08 02:00 EST -> 03:00 EDT.
    opens = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)  # Sat 22:00 EST
    closes = datetime(2026, 3, 8, 10, 0, tzinfo=UTC)  # Sun 06:00 EDT
    assert await _allowed_at(rig, lock, opens - SECOND, opens, closes - SECOND, closes) == [
        False,
        True,
        True,
        False,
    ]


async def test_schedule_at_lord_howe_half_hour_change(rig: Rig) -> None:
    home = await rig.home(zone="Australia/Lord_Howe")
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    await rig.granted(
        "olga", "gus", lock_ids=[str(lock)],
        schedule={"windows": [{"days": ["sun"], "start": "02:15", "end": "03:00"}]},
    )  # fmt: skip
    jump = datetime(2026, 10, 3, 15, 30, tzinfo=UTC)  # 02:00 +10:30 -> 02:30 +11:00
    closes = datetime(2026, 10, 3, 16, 0, tzinfo=UTC)
    assert await _allowed_at(rig, lock, jump - SECOND, jump, closes - SECOND, closes) == [
        False,
        True,
        True,
        False,
    ]
