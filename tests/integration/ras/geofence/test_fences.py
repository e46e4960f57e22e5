"""Fences of locks and homes over the real app: who may set, read and remove them."""

from __future__ import annotations

import json

from tests.integration.ras.geofence.conftest import CENTRE, Rig, fence_body


async def test_the_owner_sets_replaces_reads_and_removes_a_lock_fence(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    url = f"/v1/locks/{lock}/geofence"
    await rig.call("GET", url, "olga", 404)
    created = await rig.call("PUT", url, "olga", 201, json=fence_body(arrival="suggest"))
    assert (created["lock_id"], created["home_id"]) == (str(lock), None)
    assert (created["radius_m"], created["arrival"], created["remote_unlock_inside"]) == (
        100.0, "suggest", False,
    )  # fmt: skip
    assert created["accuracy_limit_m"] == 50.0  # half the radius, below the 100 m default
    replaced = await rig.call(
        "PUT", url, "olga", 200, json=fence_body(radius_m=400.0, remote_unlock_inside=True)
    )
    assert replaced["id"] == created["id"]
    assert (replaced["radius_m"], replaced["arrival"]) == (400.0, "off")  # opt-ins default off
    assert (await rig.call("GET", url, "olga", 200))["remote_unlock_inside"] is True
    await rig.call("DELETE", url, "olga", 204)
    await rig.call("GET", url, "olga", 404)
    await rig.call("DELETE", url, "olga", 404)

    records = await rig.audit("geofence.set") + await rig.audit("geofence.delete")
    assert [r.action for r in records] == ["geofence.set", "geofence.set", "geofence.delete"]
    assert {r.target for r in records} == {f"lock:{lock}"}
    assert [r.details.get("created") for r in records[:2]] == [True, False]
    for record in records:  # personal data: never the centre
        text = json.dumps(record.details)
        for forbidden in ("latitude", "longitude", str(CENTRE[0]), str(CENTRE[1])):
            assert forbidden not in text


async def test_who_may_manage_and_read_a_lock_fence(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    url = f"/v1/locks/{lock}/geofence"
    await rig.call("PUT", url, "olga", 201, json=fence_body())
    await rig.granted("olga", "gus", lock_ids=[str(lock)])  # a guest
    await rig.granted("olga", "ada", lock_ids=[str(lock)], role="admin")
    assert (await rig.call("GET", url, "gus", 200))["radius_m"] == 100.0
    problem = await rig.call("PUT", url, "gus", 403, json=fence_body(radius_m=50.0))
    assert problem["type"].endswith("/forbidden")
    await rig.call("DELETE", url, "gus", 403)
    await rig.call("PUT", url, "ada", 200, json=fence_body(radius_m=60.0))  # manage_settings
    await rig.call("GET", url, "sam", 404)  # a stranger does not learn the lock exists
    await rig.call("PUT", url, "sam", 404, json=fence_body())
    await rig.call("GET", url, "root", 403)  # a RAS administrator: not the owner's location


async def test_a_home_fence_is_managed_by_the_owner_and_home_admins(rig: Rig) -> None:
    home = await rig.home()
    url = f"/v1/homes/{home}/geofence"
    await rig.accept("ada", (await rig.member(home, "ada", role="admin"))["id"])
    await rig.accept("mia", (await rig.member(home, "mia"))["id"])
    created = await rig.call("PUT", url, "olga", 201, json=fence_body(arrival="auto_unlock"))
    assert (created["home_id"], created["lock_id"]) == (home, None)
    await rig.call("PUT", url, "ada", 200, json=fence_body(radius_m=250.0))
    assert (await rig.call("GET", url, "mia", 200))["radius_m"] == 250.0
    await rig.call("PUT", url, "mia", 403, json=fence_body())
    await rig.call("DELETE", url, "mia", 403)
    await rig.call("GET", url, "sam", 404)
    await rig.call("DELETE", url, "ada", 204)
    await rig.call("GET", url, "olga", 404)


async def test_bad_fences_are_refused_and_nothing_is_stored(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    url = f"/v1/locks/{lock}/geofence"
    for bad in (
        fence_body(radius_m=19.0),
        fence_body(radius_m=50_001.0),
        fence_body(latitude=90.5),
        fence_body(longitude=-181.0),
        fence_body(arrival="always"),
        fence_body(max_age_s=5),
        fence_body(suppress_after_open_s=-1),
        fence_body(max_accuracy_m=1.0),
        fence_body(colour="red"),
    ):
        problem = await rig.call("PUT", url, "olga", 422, json=bad)
        assert problem["type"].endswith("/validation-failed")
    await rig.call("GET", url, "olga", 404)
    assert await rig.audit("geofence.set") == []
