"""200 people on one lock, listed with paging; the cap on active shares per lock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from heslock.ras.services import audit
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.sharing import invitations, shares
from heslock.ras.services.sharing.policy import LockAction, Path
from heslock.ras.services.sharing.resolver import effective_access
from heslock.ras.store.models import Contact, ContactKind, Lock, User
from tests.integration.ras.sharing.conftest import Rig

PEOPLE = 200
#: Hundreds of grants through the services: several seconds per database.
pytestmark = pytest.mark.slow


async def _crowd(rig: Rig, lock_id: uuid.UUID, home_id: str, count: int) -> list[uuid.UUID]:
    """``count`` people with verified contacts, half invited to the home, half to the
    lock alone, all accepted: through the services, in one transaction (fast). Ten at a
    time share one creation instant, so paging must break ties by id."""
    owner = rig.principal("olga")
    ctx = audit.AuditContext(owner.audit_actor)
    people = []
    async with rig.maker() as session, session.begin():
        for n in range(count):
            user = User(display_name=f"p{n}")
            session.add(user)
            await session.flush()
            session.add(
                Contact(
                    user_id=user.id,
                    kind=ContactKind.EMAIL.value,
                    address=f"p{n}@crowd.example.org",
                    verified_at=datetime.now(UTC),
                )
            )
            people.append(user.id)
        await session.flush()
        for n, user_id in enumerate(people):
            home = uuid.UUID(home_id) if n % 2 else None
            made = await shares.create(
                session, owner, ctx, contact_kind=ContactKind.EMAIL,
                contact=f"p{n}@crowd.example.org", wanted=shares.terms(role="guest"),
                now=rig.clock.at - timedelta(seconds=count - n // 10), home_id=home,
                lock_ids=() if home else (lock_id,),
            )  # fmt: skip
            person = Principal(PrincipalKind.USER, user_id)
            await invitations.accept(
                session, person, audit.AuditContext(person.audit_actor), made.share.id, rig.clock.at
            )
    return people


async def test_two_hundred_people_on_one_lock_paged(rig: Rig) -> None:
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    people = await _crowd(rig, lock, home, PEOPLE)
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        query = f"?limit=64&cursor={cursor}" if cursor else "?limit=64"
        page = await rig.call("GET", f"/v1/locks/{lock}/shares{query}", "olga", 200)
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4  # 64 + 64 + 64 + 8
    assert len({s["id"] for s in seen}) == PEOPLE
    assert {uuid.UUID(str(s["grantee_id"])) for s in seen} == set(people)
    order = [(datetime.fromisoformat(s["created_at"]), uuid.UUID(s["id"])) for s in seen]
    assert order == sorted(order)
    assert len({at for at, _ in order}) == PEOPLE // 10
    assert {s["status"] for s in seen} == {"active"}
    # Every one of them may open the door (the last one as much as the first).
    async with rig.maker() as session:
        row = await session.get(Lock, lock)
        assert row is not None
        for person in (people[0], people[-1]):
            access = await effective_access(
                session, Principal(PrincipalKind.USER, person), row, rig.clock.at, Path.REMOTE
            )
            assert access.decide(LockAction.UNLOCK).allowed
    # One page can hold them all; the bound is enforced.
    everything = await rig.call("GET", f"/v1/locks/{lock}/shares?limit=200", "olga", 200)
    assert (len(everything["items"]), everything["next_cursor"]) == (PEOPLE, None)
    await rig.call("GET", f"/v1/locks/{lock}/shares?limit=201", "olga", 422)
    members = await rig.call("GET", f"/v1/homes/{home}/members?limit=200", "olga", 200)
    assert len(members["items"]) == PEOPLE // 2


async def test_the_cap_on_active_shares_per_lock(rig: Rig) -> None:
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    await _crowd(rig, lock, home, shares.MAX_ACTIVE_SHARES_PER_LOCK)
    refused = await rig.share("olga", "gus", 409, lock_ids=[str(lock)])
    assert refused["type"].endswith("/share-limit-reached")
    assert refused["limit"] == shares.MAX_ACTIVE_SHARES_PER_LOCK
    await rig.member(home, "gus", 409)
    # Revoking one makes room for one.
    first = (await rig.call("GET", f"/v1/locks/{lock}/shares?limit=1", "olga", 200))["items"][0]
    await rig.call("POST", f"/v1/shares/{first['id']}/revoke", "olga", 200)
    await rig.share("olga", "gus", lock_ids=[str(lock)])
    await rig.share("olga", "mia", 409, lock_ids=[str(lock)])
    # A lock of the same owner outside the home is not affected.
    other = await rig.add_lock("olga", "shed")
    await rig.share("olga", "mia", lock_ids=[str(other)])
