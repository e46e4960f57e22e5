"""DDMS registration driven by the test as relay in front of a real SimulatedLock.

Both frame profiles; a lost part-1 ack; a lost commit answer and a retried commit (the
lock had already committed); a lock that rolled back (LockRefused); expiry of stage a;
TIME sync before stage a; idempotent repeats; and a registration continued by a second
RAS node (two FastAPI apps, one database).
"""

from __future__ import annotations

import base64
import uuid

import pytest

from heslock.protocol import NEGOTIATION_TIMEOUT_S, Profile
from heslock.ras.keystore import LOCK_KEY
from heslock.ras.store.models import Device, Lock, Registration
from tests.integration.ras.ddms.conftest import Ras
from tests.support import auth


async def _stored_lock_key(ras: Ras, lock_id: str) -> tuple[bytes, int, int]:
    async with ras.maker()() as session:
        row = await session.get(Lock, uuid.UUID(lock_id))
        assert row is not None
        key = ras.keystore.open(LOCK_KEY, lock_id, row.lock_key_enc)
        return key, row.key_version, row.next_counter


@pytest.mark.parametrize("profile", [Profile.BASE, Profile.SECURE])
async def test_registration_with_lost_acks_and_commit_retry(ras: Ras, profile: Profile) -> None:
    lock = await ras.new_lock(profile)
    view = await ras.start(lock)
    assert view["phase"] == "started"
    assert view["kind"] == "register"
    part1, part2 = (base64.b64decode(f) for f in view["frames"])
    assert len(part1) == profile.wire_size
    rid = view["registration_id"]

    # The part-1 ack is lost on the way back: the relay goes on with part 2.
    lock.handle_frame(part1, ras.clock())
    proof = lock.handle_frame(part2, ras.clock())
    view = await ras.answer(rid, proof)
    assert view["phase"] == "proven"
    assert view["expires_at"] is None  # PROVEN never expires
    (commit,) = (base64.b64decode(f) for f in view["frames"])

    # The same proof again: the same result (idempotent), the same commit frame.
    again = await ras.answer(rid, proof)
    assert again == view

    # The commit reaches the lock, its answer is lost.
    lock.handle_frame(commit, ras.clock())
    assert lock.bound
    # The relay asks for the frames again: a COMMIT with the next counter.
    response = await ras.client.post(f"/v1/registrations/{rid}/frames", headers=auth("a"))
    retry = response.json()
    (commit2,) = (base64.b64decode(f) for f in retry["frames"])
    assert commit2 != commit
    done = await ras.answer(rid, lock.handle_frame(commit2, ras.clock()))
    assert done["phase"] == "committed"
    assert done["done"] is True
    lock_id = done["lock_id"]

    key, version, next_counter = await _stored_lock_key(ras, lock_id)
    assert key == lock._negotiation.state.lock_key  # the RAS and the lock share the key
    assert (version, next_counter) == (1, 3)  # two commits used counters 1 and 2

    got = (await ras.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).json()
    assert got["name"] == "front door"
    assert got["profile"] == profile.value
    assert got["key_version"] == 1
    assert got["owner_id"] == str(ras.ids["a"])
    async with ras.maker()() as session:
        reg = await session.get(Registration, uuid.UUID(rid))
        device = await session.get(Device, lock.identity.device_id.hex)
    assert reg is not None
    assert reg.new_key_enc == b""
    assert reg.old_key_enc == b""
    assert device is not None
    assert device.status == "bound"
    actions = [r.action for r in await ras.audit_rows()]
    assert {"register.start", "register.answer", "register.commit_retry", "register.commit"} <= set(
        actions
    )


async def test_lock_rolled_back_marks_failed_and_restart_works(ras: Ras) -> None:
    lock = await ras.new_lock()
    view = await ras.start(lock)
    rid = view["registration_id"]
    part1, part2 = (base64.b64decode(f) for f in view["frames"])
    await ras.answer(rid, lock.handle_frame(part1, ras.clock()))
    view = await ras.answer(rid, lock.handle_frame(part2, ras.clock()))
    assert view["phase"] == "proven"
    # The relay vanishes; the lock rolls back after its own timeout.
    ras.clock.advance(NEGOTIATION_TIMEOUT_S + 1)
    lock.tick(ras.clock())
    refused = await ras.client.post(f"/v1/registrations/{rid}/frames", headers=auth("a"))
    (commit,) = (base64.b64decode(f) for f in refused.json()["frames"])
    failed = await ras.answer(rid, lock.handle_frame(commit, ras.clock()))
    assert failed["phase"] == "failed"
    assert failed["failure"] is not None
    assert failed["frames"] == []
    assert not lock.bound
    # Started again (the button again: the window is 15 min, still open here).
    lock.press_registration_button(ras.clock())
    restarted = await ras.start(lock)
    assert restarted["registration_id"] != rid
    done = await ras.relay(lock, restarted)
    assert done["phase"] == "committed"


async def test_stage_a_expires(ras: Ras) -> None:
    lock = await ras.new_lock()
    view = await ras.start(lock)
    rid = view["registration_id"]
    part1, _ = (base64.b64decode(f) for f in view["frames"])
    ack = lock.handle_frame(part1, ras.clock())
    ras.clock.advance(NEGOTIATION_TIMEOUT_S)
    expired = await ras.answer(rid, ack)
    assert (expired["phase"], expired["frames"], expired["done"]) == ("expired", [], True)
    got = (await ras.client.get(f"/v1/registrations/{rid}", headers=auth("a"))).json()
    assert got["phase"] == "expired"
    legit = await ras.client.get(
        f"/v1/devices/{lock.identity.device_id}/legitimacy", headers=auth("a")
    )
    assert legit.json() == {
        "status": 1,
        "device_id": lock.identity.device_id.hex,
        "reason": "registration-expired",
    }
    lock.tick(ras.clock())  # the lock rolled back too
    restarted = await ras.start(lock)
    assert restarted["registration_id"] != rid
    assert (await ras.relay(lock, restarted))["phase"] == "committed"


async def test_time_sync_before_stage_a(ras: Ras) -> None:
    # A lock whose clock is an hour fast refuses stage a as STALE...
    skewed = await ras.new_lock(offset_s=3600.0)
    failed = await ras.relay(skewed, await ras.start(skewed))
    assert (failed["phase"], failed["failure"]) == ("failed", "STALE")
    # ...and registers once the relay runs the TIME frames first (GET, then SET echoing it).
    view = await ras.start(skewed, time_sync=True)
    assert view["phase"] == "time-get"
    assert len(view["frames"]) == 1
    get_answer = skewed.handle_frame(base64.b64decode(view["frames"][0]), ras.clock())
    view = await ras.answer(view["registration_id"], get_answer)
    assert view["phase"] == "time-set"
    set_answer = skewed.handle_frame(base64.b64decode(view["frames"][0]), ras.clock())
    view = await ras.answer(view["registration_id"], set_answer)
    assert view["phase"] == "started"
    assert abs(skewed.clock.now(ras.clock()) - ras.clock()) < 5
    done = await ras.relay(skewed, view)
    assert done["phase"] == "committed"
    assert skewed.bound


async def test_idempotent_start_and_second_node_continues(ras: Ras) -> None:
    lock = await ras.new_lock(Profile.BASE)
    first = await ras.start(lock)
    again = await ras.client.post(
        "/v1/registrations",
        json={"device_id": lock.identity.device_id.hex, "name": "front door"},
        headers=auth("a"),
    )
    assert again.status_code == 200
    assert again.json()["registration_id"] == first["registration_id"]
    other_node = await ras.second_client()
    done = await ras.relay(lock, again.json(), client=other_node)
    assert done["phase"] == "committed"
    seen = await ras.client.get(f"/v1/registrations/{first['registration_id']}", headers=auth("a"))
    assert seen.json()["phase"] == "committed"


async def test_foreign_frame_is_refused_and_changes_nothing(ras: Ras) -> None:
    lock = await ras.new_lock()
    other = await ras.new_lock()
    view = await ras.start(lock)
    stranger = other.handle_frame(base64.b64decode(view["frames"][0]), ras.clock())
    response = await ras.client.post(
        f"/v1/registrations/{view['registration_id']}/answers",
        json={"frame": base64.b64encode(stranger).decode()},
        headers=auth("a"),
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("/frame-refused")
    garbage = await ras.client.post(
        f"/v1/registrations/{view['registration_id']}/answers",
        json={"frame": "not base64!"},
        headers=auth("a"),
    )
    assert garbage.status_code == 422
    got = await ras.client.get(f"/v1/registrations/{view['registration_id']}", headers=auth("a"))
    assert got.json()["phase"] == "started"
    denied = [r for r in await ras.audit_rows() if r.action == "register.answer"]
    assert [r.result for r in denied] == ["denied"]
    assert (await ras.relay(lock, view))["phase"] == "committed"
