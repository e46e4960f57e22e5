"""``check_remote_unlock``: what the command path asks before a remote unlock.

Reports go through the real API; the check runs on a session of the same database, as
the command path will call it. Every refusal is a registered 403 problem type.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from heslock.ras.api.problems import REGISTRY
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.geofence.errors import (
    GeofenceOutside,
    GeofenceRefused,
    LocationInaccurate,
    LocationMissing,
    LocationStale,
)
from heslock.ras.services.geofence.service import check_remote_unlock
from heslock.ras.store.models import Lock
from tests.integration.ras.geofence.conftest import Rig, fence_body, report


async def _check(rig: Rig, who: str | Principal, lock_id: str, now: datetime | None = None) -> None:
    principal = rig.principal(who) if isinstance(who, str) else who
    async with rig.maker() as session:
        lock = await session.get(Lock, uuid.UUID(lock_id))
        assert lock is not None
        await check_remote_unlock(session, principal, lock, now or rig.clock.at)


async def _refusal(rig: Rig, who: str, lock_id: str) -> GeofenceRefused:
    with pytest.raises(GeofenceRefused) as caught:
        await _check(rig, who, lock_id)
    assert caught.value.extensions == {"lock_id": lock_id, "reason": caught.value.code}
    assert REGISTRY[caught.value.code].status == 403
    return caught.value


async def test_no_fence_or_the_policy_off_lets_everything_through(rig: Rig) -> None:
    lock = str(await rig.add_lock("olga"))
    await _check(rig, "olga", lock)  # no fence, no report: the fence has no say
    await rig.call("PUT", f"/v1/locks/{lock}/geofence", "olga", 201, json=fence_body())
    await _check(rig, "olga", lock)  # a fence, its remote-unlock policy off


async def test_inside_outside_stale_inaccurate_missing(rig: Rig) -> None:
    lock = str(await rig.add_lock("olga"))
    body = fence_body(remote_unlock_inside=True, max_age_s=60)
    await rig.call("PUT", f"/v1/locks/{lock}/geofence", "olga", 201, json=body)

    assert isinstance(await _refusal(rig, "olga", lock), LocationMissing)
    await report(rig, "olga", 10.0)
    await _check(rig, "olga", lock)  # inside: allowed
    await report(rig, "olga", 95.0)  # the latest counts: on the edge is not inside
    assert isinstance(await _refusal(rig, "olga", lock), GeofenceOutside)
    await report(rig, "olga", 5_000.0)
    assert isinstance(await _refusal(rig, "olga", lock), GeofenceOutside)
    await report(rig, "olga", 0.0, accuracy=60.0)  # worse than half the radius
    assert isinstance(await _refusal(rig, "olga", lock), LocationInaccurate)
    await report(rig, "olga", 0.0)
    rig.clock.at += timedelta(seconds=61)  # the same report, now too old
    assert isinstance(await _refusal(rig, "olga", lock), LocationStale)
    await report(rig, "olga", 0.0, age_s=0)
    await _check(rig, "olga", lock)
    # Each refusal names itself for the client.
    assert [c.code for c in (GeofenceOutside, LocationStale, LocationInaccurate)] == [
        "geofence-outside", "location-stale", "location-inaccurate",
    ]  # fmt: skip
    assert LocationMissing.code == "location-missing"


async def test_another_persons_location_does_not_count(rig: Rig) -> None:
    lock = str(await rig.add_lock("olga"))
    body = fence_body(remote_unlock_inside=True)
    await rig.call("PUT", f"/v1/locks/{lock}/geofence", "olga", 201, json=body)
    await rig.granted("olga", "gus", lock_ids=[lock])
    await report(rig, "olga", 0.0)
    await _check(rig, "olga", lock)
    assert isinstance(await _refusal(rig, "gus", lock), LocationMissing)
    await report(rig, "gus", 0.0)
    await _check(rig, "gus", lock)


async def test_a_home_fence_applies_to_its_locks_and_a_lock_fence_wins(rig: Rig) -> None:
    home = await rig.home()
    lock = str(await rig.add_lock("olga"))
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    body = fence_body(remote_unlock_inside=True)
    await rig.call("PUT", f"/v1/homes/{home}/geofence", "olga", 201, json=body)
    await report(rig, "olga", 5_000.0)
    assert isinstance(await _refusal(rig, "olga", lock), GeofenceOutside)
    # The lock's own fence (policy off) takes precedence over the home's.
    await rig.call("PUT", f"/v1/locks/{lock}/geofence", "olga", 201, json=fence_body())
    await _check(rig, "olga", lock)
    # Out of the home: the home's fence no longer applies either.
    await rig.call("DELETE", f"/v1/locks/{lock}/geofence", "olga", 204)
    assert isinstance(await _refusal(rig, "olga", lock), GeofenceOutside)
    await rig.call("DELETE", f"/v1/homes/{home}/locks/{lock}", "olga", 204)
    await _check(rig, "olga", lock)


async def test_a_principal_without_a_location_is_refused(rig: Rig) -> None:
    lock = str(await rig.add_lock("olga"))
    body = fence_body(remote_unlock_inside=True)
    await rig.call("PUT", f"/v1/locks/{lock}/geofence", "olga", 201, json=body)
    system = Principal(PrincipalKind.SYSTEM, None, is_admin=True)
    with pytest.raises(LocationMissing):
        await _check(rig, system, lock)
