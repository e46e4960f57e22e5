"""Homes over the API: create, arrange locks and gateways, members, admins, deletion."""

from __future__ import annotations

import uuid

from tests.integration.ras.sharing.conftest import Rig


async def test_home_lifecycle(rig: Rig) -> None:
    home = await rig.home()
    lock = await rig.add_lock("olga")
    gateway = await rig.add_gateway("olga")
    body = await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    assert body["lock_ids"] == [str(lock)]
    body = await rig.call("PUT", f"/v1/homes/{home}/gateways/{gateway}", "olga", 200)
    assert body["gateway_ids"] == [str(gateway)]
    assert (body["role"], body["time_zone"]) == ("owner", "Europe/Berlin")
    assert len(body["permissions"]) == 6
    patched = await rig.call(
        "PATCH", f"/v1/homes/{home}", "olga", 200, json={"name": "flat", "time_zone": "Asia/Tokyo"}
    )
    assert (patched["name"], patched["time_zone"]) == ("flat", "Asia/Tokyo")
    listed = await rig.call("GET", "/v1/homes", "olga", 200)
    assert [h["id"] for h in listed] == [home]
    await rig.call("DELETE", f"/v1/homes/{home}/gateways/{gateway}", "olga", 204)
    await rig.call("DELETE", f"/v1/homes/{home}/locks/{lock}", "olga", 204)
    await rig.call("DELETE", f"/v1/homes/{home}/locks/{lock}", "olga", 404)
    body = await rig.call("GET", f"/v1/homes/{home}", "olga", 200)
    assert (body["lock_ids"], body["gateway_ids"]) == ([], [])
    actions = [r.action for r in await rig.audit("home.create")]
    actions += [r.action for r in await rig.audit("home.lock_add")]
    actions += [r.action for r in await rig.audit("home.gateway_remove")]
    assert actions == ["home.create", "home.lock_add", "home.gateway_remove"]


async def test_bad_zone_and_names(rig: Rig) -> None:
    for zone in ("Mars/Olympus", "../etc", "localtime", ""):
        await rig.call("POST", "/v1/homes", "olga", 422, json={"name": "h", "time_zone": zone})
    await rig.call("POST", "/v1/homes", "olga", 422, json={"name": "\x00", "time_zone": "UTC"})
    await rig.call(
        "POST", "/v1/homes", "olga", 422, json={"name": "h", "time_zone": "UTC", "owner_id": "x"}
    )


async def test_a_lock_is_in_one_home_and_only_its_owners(rig: Rig) -> None:
    first, second = await rig.home(), await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{first}/locks/{lock}", "olga", 200)
    moved = await rig.call("PUT", f"/v1/homes/{second}/locks/{lock}", "olga", 200)
    assert moved["lock_ids"] == [str(lock)]
    assert (await rig.call("GET", f"/v1/homes/{first}", "olga", 200))["lock_ids"] == []
    (record,) = [r for r in await rig.audit("home.lock_add") if r.details["previous_home"]]
    assert record.details["previous_home"] == first
    # Someone else's lock or gateway cannot be put in, not even by naming it.
    others = await rig.add_lock("mia", "mia's")
    await rig.call("PUT", f"/v1/homes/{first}/locks/{others}", "olga", 404)
    await rig.call("PUT", f"/v1/homes/{first}/gateways/{await rig.add_gateway('mia')}", "olga", 404)
    await rig.call("PUT", f"/v1/homes/{first}/locks/{uuid.uuid4()}", "olga", 404)


async def test_strangers_and_members(rig: Rig) -> None:
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    for method, url in (
        ("GET", f"/v1/homes/{home}"),
        ("PATCH", f"/v1/homes/{home}"),
        ("DELETE", f"/v1/homes/{home}"),
        ("GET", f"/v1/homes/{home}/members"),
        ("PUT", f"/v1/homes/{home}/locks/{lock}"),
    ):
        await rig.call(method, url, "sam", 404, **({"json": {}} if method == "PATCH" else {}))
    member = await rig.member(home, "mia", 201)
    assert (member["role"], member["scope"], member["status"]) == ("member", "home", "pending")
    await rig.accept("mia", member["id"])
    seen = await rig.call("GET", f"/v1/homes/{home}", "mia", 200)
    assert seen["role"] == "member"
    assert "manage_shares" not in seen["permissions"]
    assert [h["id"] for h in await rig.call("GET", "/v1/homes", "mia", 200)] == [home]
    # A member sees the home, but not its member list, and changes nothing.
    await rig.call("GET", f"/v1/homes/{home}/members", "mia", 403)
    await rig.call("PATCH", f"/v1/homes/{home}", "mia", 403, json={"name": "mine"})
    await rig.call("DELETE", f"/v1/homes/{home}", "mia", 403)
    await rig.call("DELETE", f"/v1/homes/{home}/locks/{lock}", "mia", 403)
    # Their membership covers the home's locks: "my shares" lists them.
    mine = await rig.call("GET", "/v1/me/shares", "mia", 200)
    assert mine["items"][0]["locks"] == [{"id": str(lock), "name": "front door"}]
    # One membership per person and home.
    again = await rig.member(home, "mia", 201)
    await rig.accept("mia", again["id"], expect=409)


async def test_home_admin_manages_members_but_not_admins_or_locks(rig: Rig) -> None:
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    admin = await rig.member(home, "ada", role="admin")
    await rig.accept("ada", admin["id"])
    # Ada invites a guest to the home and a member to the lock alone.
    guest = await rig.member(home, "gus", who="ada", role="guest")
    assert guest["created_by"] == str(rig.ids["ada"])
    assert guest["owner_id"] == str(rig.ids["olga"])
    await rig.share("ada", "mia", lock_ids=[str(lock)], role="member")
    # ... but makes no admins, and cannot touch Olga's choice of admins.
    await rig.member(home, "sam", 403, who="ada", role="admin")
    await rig.share("ada", "sam", 403, lock_ids=[str(lock)], role="admin")
    await rig.call("POST", f"/v1/shares/{admin['id']}/revoke", "mia", 404)
    # She renames the home (manage_settings) but does not arrange locks or delete it.
    await rig.call("PATCH", f"/v1/homes/{home}", "ada", 200, json={"name": "shared flat"})
    await rig.call("DELETE", f"/v1/homes/{home}/locks/{lock}", "ada", 403)
    await rig.call("DELETE", f"/v1/homes/{home}", "ada", 403)
    members = await rig.call("GET", f"/v1/homes/{home}/members", "ada", 200)
    assert {m["id"] for m in members["items"]} == {admin["id"], guest["id"]}
    # She revokes the guest she invited.
    await rig.call("DELETE", f"/v1/homes/{home}/members/{guest['id']}", "ada", 200)


async def test_revoking_a_membership_revokes_what_came_with_it(rig: Rig) -> None:
    home = await rig.home()
    inside, outside = await rig.add_lock("olga", "hall"), await rig.add_lock("olga", "shed")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{inside}", "olga", 200)
    membership = await rig.member(home, "mia", 201)
    await rig.accept("mia", membership["id"])
    extra = await rig.granted("olga", "mia", lock_ids=[str(inside)], role="admin")
    pending = await rig.share("olga", "mia", lock_ids=[str(inside)])  # not accepted yet
    unrelated = await rig.granted("olga", "mia", lock_ids=[str(outside)])
    await rig.call("DELETE", f"/v1/homes/{home}/members/{membership['id']}", "olga", 200)
    states = {
        share_id: (await rig.call("GET", f"/v1/shares/{share_id}", "olga", 200))["revoke_reason"]
        for share_id in (membership["id"], extra, pending["id"], unrelated)
    }
    assert states == {
        membership["id"]: "revoked",
        extra: "membership-revoked",
        pending["id"]: "membership-revoked",
        unrelated: None,
    }
    cascades = [r for r in await rig.audit("share.revoke") if r.details.get("cascade_of")]
    assert {r.details["cascade_of"] for r in cascades} == {membership["id"]}
    assert {r.actor for r in cascades} == {f"user:{rig.ids['olga']}"}
    await rig.call("DELETE", f"/v1/homes/{home}/members/{unrelated}", "olga", 404)


async def test_deleting_a_home_revokes_its_shares(rig: Rig) -> None:
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    membership = await rig.member(home, "mia", 201)
    await rig.accept("mia", membership["id"])
    kept = await rig.granted("olga", "gus", lock_ids=[str(lock)])  # made in the home too
    await rig.call("DELETE", f"/v1/homes/{home}", "olga", 204)
    await rig.call("GET", f"/v1/homes/{home}", "olga", 404)
    revoked = await rig.audit("share.revoke")
    assert {r.target for r in revoked} == {f"share:{membership['id']}", f"share:{kept}"}
    assert {r.details["reason"] for r in revoked} == {"home-deleted"}
    (deleted,) = await rig.audit("home.delete")
    assert deleted.details["shares_revoked"] == 2
    # The lock itself stays with its owner, in no home.
    kept_lock = await rig.call("GET", f"/v1/locks/{lock}", "olga", 200)
    assert kept_lock["owner_id"] == str(rig.ids["olga"])
    assert (await rig.call("GET", "/v1/me/shares", "mia", 200))["items"] == []
