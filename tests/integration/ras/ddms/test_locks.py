"""Bound locks over real HTTPS: read, rename, unbind and re-registration after a factory
reset, transfer, key rotation; secrets never in a response or a log."""

from __future__ import annotations

import base64
import logging
import uuid

import pytest

from heslock.protocol import Profile
from heslock.ras.keystore import LOCK_KEY
from heslock.ras.store.models import Device, Lock
from tests.integration.ras.ddms.conftest import Ras
from tests.support import auth


async def test_list_get_rename(ras: Ras) -> None:
    first = await ras.bind(await ras.new_lock())
    second = await ras.bind(await ras.new_lock(Profile.BASE))
    listed = (await ras.client.get("/v1/locks", headers=auth("a"))).json()
    assert [item["id"] for item in listed] == [first, second]
    assert [item["profile"] for item in listed] == ["secure", "base"]
    assert (await ras.client.get("/v1/locks", headers=auth("b"))).json() == []
    renamed = await ras.client.patch(
        f"/v1/locks/{first}", json={"name": "  back door "}, headers=auth("a")
    )
    assert renamed.json()["name"] == "back door"
    assert (await ras.client.get(f"/v1/locks/{first}", headers=auth("a"))).json()["name"] == (
        "back door"
    )
    # The admin may read, not rename (renaming is the owner's).
    assert (await ras.client.get(f"/v1/locks/{first}", headers=auth("admin"))).status_code == 200
    admin_rename = await ras.client.patch(
        f"/v1/locks/{first}", json={"name": "x"}, headers=auth("admin")
    )
    assert admin_rename.status_code == 403


async def test_unbind_then_register_again_only_after_factory_reset(ras: Ras) -> None:
    lock = await ras.new_lock()
    lock_id = await ras.bind(lock)
    gone = await ras.client.delete(f"/v1/locks/{lock_id}", headers=auth("a"))
    assert gone.status_code == 204
    assert (await ras.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).status_code == 404
    async with ras.maker()() as session:
        assert await session.get(Lock, uuid.UUID(lock_id)) is None  # the key went with it
        device = await session.get(Device, lock.identity.device_id.hex)
    assert device is not None
    assert device.status == "reset_required"
    legit = await ras.client.get(
        f"/v1/devices/{lock.identity.device_id}/legitimacy", headers=auth("b")
    )
    assert legit.json()["status"] == 0
    assert legit.json()["factory_reset_required"] is True
    # The lock was not reset: it still holds its lock key and refuses the factory key.
    view = await ras.start(lock, "b", name="bought second hand")
    answer = lock.handle_frame(base64.b64decode(view["frames"][0]), ras.clock())
    refused = await ras.client.post(
        f"/v1/registrations/{view['registration_id']}/answers",
        json={"frame": base64.b64encode(answer).decode()},
        headers=auth("b"),
    )
    assert refused.status_code == 422  # sealed under a key the RAS no longer has
    # After the physical reset (and the registration button) it registers to B.
    lock.factory_reset(ras.clock())
    lock.press_registration_button(ras.clock())
    again = await ras.start(lock, "b", name="bought second hand")
    assert again["registration_id"] == view["registration_id"]  # the same one, fresh frames
    done = await ras.relay(lock, again, "b")
    assert done["phase"] == "committed"
    mine = (await ras.client.get("/v1/locks", headers=auth("b"))).json()
    assert [item["name"] for item in mine] == ["bought second hand"]


async def test_transfer(ras: Ras) -> None:
    lock_id = await ras.bind(await ras.new_lock())
    moved = await ras.client.post(
        f"/v1/locks/{lock_id}/transfer", json={"to_user": str(ras.ids["b"])}, headers=auth("a")
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["owner_id"] == str(ras.ids["b"])
    assert (await ras.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).status_code == 404
    assert (await ras.client.get(f"/v1/locks/{lock_id}", headers=auth("b"))).status_code == 200
    back = await ras.client.post(
        f"/v1/locks/{lock_id}/transfer", json={"to_user": str(ras.ids["a"])}, headers=auth("a")
    )
    assert back.status_code == 404  # A lost every right at once
    nobody = await ras.client.post(
        f"/v1/locks/{lock_id}/transfer", json={"to_user": str(uuid.uuid4())}, headers=auth("b")
    )
    assert nobody.status_code == 422
    rows = [r for r in await ras.audit_rows() if r.action == "lock.transfer"]
    assert [(r.actor, r.details["new_owner"]) for r in rows] == [
        (f"user:{ras.ids['a']}", str(ras.ids["b"]))
    ]


@pytest.mark.parametrize("profile", [Profile.BASE, Profile.SECURE])
async def test_key_rotation(ras: Ras, profile: Profile) -> None:
    lock = await ras.new_lock(profile)
    lock_id = await ras.bind(lock)
    old_key = lock._negotiation.state.lock_key
    started = await ras.client.post(f"/v1/locks/{lock_id}/rotation", headers=auth("a"))
    assert started.status_code == 201
    view = started.json()
    assert (view["kind"], view["version"], view["phase"]) == ("rotate", 2, "started")
    done = await ras.relay(lock, view)
    assert done["phase"] == "committed"
    assert done["lock_id"] == lock_id
    assert lock.key_version == 2
    new_key = lock._negotiation.state.lock_key
    assert new_key != old_key
    async with ras.maker()() as session:
        row = await session.get(Lock, uuid.UUID(lock_id))
    assert row is not None
    assert ras.keystore.open(LOCK_KEY, lock_id, row.lock_key_enc) == new_key
    got = (await ras.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).json()
    assert got["key_version"] == 2
    # Unbinding removes the finished rotation with the lock.
    assert (await ras.client.delete(f"/v1/locks/{lock_id}", headers=auth("a"))).status_code == 204
    assert (
        await ras.client.get(f"/v1/registrations/{view['registration_id']}", headers=auth("a"))
    ).status_code == 404


async def test_secrets_never_in_responses_or_logs(
    ras: Ras, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lock = await ras.new_lock()
    view = await ras.start(lock)
    done = await ras.relay(lock, view)
    lock_id = done["lock_id"]
    keys = [lock.identity.factory_key, lock._negotiation.state.lock_key]
    paths = [
        f"/v1/locks/{lock_id}",
        "/v1/locks",
        f"/v1/registrations/{view['registration_id']}",
        f"/v1/admin/devices/{lock.identity.device_id}",
        "/v1/audit",
    ]
    bodies = [str(view), str(done)]
    bodies += [(await ras.client.get(p, headers=auth("admin"))).text for p in paths]
    rotation = await ras.client.post(f"/v1/locks/{lock_id}/rotation", headers=auth("a"))
    bodies += [rotation.text, str(await ras.relay(lock, rotation.json()))]
    keys.append(lock._negotiation.state.lock_key)
    assert len({k for k in keys if k is not None}) == 3
    forms = []
    for key in keys:
        assert key is not None
        forms += [key.hex(), key.hex().upper(), base64.b64encode(key).decode(), repr(key)]
    text = "\n".join(bodies) + "\n".join(r.getMessage() for r in caplog.records)
    assert any("committed" in r.getMessage() for r in caplog.records)  # the flow did log
    for form in forms:
        assert form not in text
