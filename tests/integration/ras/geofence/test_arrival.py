"""Location reports and arrival suggestions over the real app: entering, staying, leaving,
suppression after the door was opened by other means, confirmation and its expiry."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from heslock.protocol import BoltState, DoorState
from heslock.ras.services.geofence.policy import SUGGESTION_TTL_S
from heslock.ras.store.models import (
    AuditRecord,
    Command,
    CommandState,
    LocationReport,
    LockEventRecord,
)
from tests.integration.ras.geofence.conftest import Rig, fence_body, north, report


async def _armed_lock(rig: Rig, **fence: object) -> str:
    lock = str(await rig.add_lock("olga"))
    body = fence_body(arrival="suggest", suppress_after_open_s=300, **fence)
    await rig.call("PUT", f"/v1/locks/{lock}/geofence", "olga", 201, json=body)
    return lock


async def test_entering_raises_one_suggestion_and_confirming_names_the_unlock(rig: Rig) -> None:
    lock = await _armed_lock(rig)
    away = await report(rig, "olga", 2_000.0)
    assert (away["suggestions"], away["suppressed_lock_ids"]) == ([], [])
    rig.clock.at += timedelta(seconds=30)
    edge = await report(rig, "olga", 95.0)  # uncertain: no change yet
    assert edge["suggestions"] == []
    rig.clock.at += timedelta(seconds=30)
    home = await report(rig, "olga", 10.0)
    (suggestion,) = home["suggestions"]
    assert (suggestion["lock_id"], suggestion["mode"]) == (lock, "suggest")
    assert suggestion["confirmed_at"] is None
    rig.clock.at += timedelta(seconds=10)
    staying = await report(rig, "olga", 5.0)
    assert staying["suggestions"] == []  # already inside: not entering

    listed = await rig.call("GET", "/v1/arrivals", "olga", 200)
    assert [s["id"] for s in listed] == [suggestion["id"]]
    assert await rig.call("GET", "/v1/arrivals", "gus", 200) == []
    url = f"/v1/arrivals/{suggestion['id']}/confirm"
    await rig.call("POST", url, "gus", 404)  # someone else's: as if it did not exist
    confirmed = await rig.call("POST", url, "olga", 200)
    assert confirmed["next"] == {
        "method": "POST",
        "path": f"/v1/locks/{lock}/commands",
        "idempotency_key": f"arrival-{suggestion['id']}",
        "body": {"command": "unlock"},
    }
    assert confirmed["suggestion"]["confirmed_at"] is not None
    again = await rig.call("POST", url, "olga", 409)
    assert again["type"].endswith("/suggestion-not-confirmable")
    assert again["reason"] == "already-confirmed"
    assert await rig.call("GET", "/v1/arrivals", "olga", 200) == []
    # Nothing was unlocked: a location (and its confirmation) sends no command.
    async with rig.maker() as session:
        count = (await session.execute(select(func.count()).select_from(Command))).scalar_one()
        assert count == 0
    ok, denied = await rig.audit("geofence.arrival.confirm")
    assert (ok.result, ok.target, denied.result, denied.details["reason"]) == (
        "ok", f"lock:{lock}", "denied", "already-confirmed",
    )  # fmt: skip


async def test_leaving_and_coming_back_suggests_again(rig: Rig) -> None:
    await _armed_lock(rig)
    assert len((await report(rig, "olga", 0.0))["suggestions"]) == 1  # nothing known: entering
    rig.clock.at += timedelta(seconds=SUGGESTION_TTL_S + 1)
    assert (await report(rig, "olga", 3_000.0))["suggestions"] == []  # leaving
    rig.clock.at += timedelta(seconds=60)
    assert len((await report(rig, "olga", 0.0))["suggestions"]) == 1


async def test_a_suggestion_expires(rig: Rig) -> None:
    await _armed_lock(rig)
    (suggestion,) = (await report(rig, "olga", 0.0))["suggestions"]
    rig.clock.at += timedelta(seconds=SUGGESTION_TTL_S)
    assert await rig.call("GET", "/v1/arrivals", "olga", 200) == []
    problem = await rig.call("POST", f"/v1/arrivals/{suggestion['id']}/confirm", "olga", 409)
    assert problem["reason"] == "expired"


async def test_stale_and_inaccurate_reports_raise_nothing(rig: Rig) -> None:
    await _armed_lock(rig)
    assert (await report(rig, "olga", 0.0, age_s=600))["suggestions"] == []
    assert (await report(rig, "olga", 0.0, accuracy=80.0))["suggestions"] == []
    assert len((await report(rig, "olga", 0.0))["suggestions"]) == 1


async def test_no_suggestion_right_after_the_door_was_opened_by_hand(rig: Rig) -> None:
    lock = await _armed_lock(rig)
    await report(rig, "olga", 2_000.0)
    async with rig.maker() as session, session.begin():
        session.add(
            LockEventRecord(
                lock_id=uuid.UUID(lock), kind="manual_operation", detail=int(BoltState.UNLOCKED),
                counter=1, lock_time=rig.clock.at, received_at=rig.clock.at - timedelta(seconds=60),
                gateway="gw@ras.test",
            )
        )  # fmt: skip
    arriving = await report(rig, "olga", 0.0)
    assert (arriving["suggestions"], arriving["suppressed_lock_ids"]) == ([], [lock])
    # Later, away and back again after the window: suggested.
    rig.clock.at += timedelta(seconds=600)
    await report(rig, "olga", 2_000.0)
    rig.clock.at += timedelta(seconds=60)
    assert len((await report(rig, "olga", 0.0))["suggestions"]) == 1


async def test_a_door_sensor_or_a_command_suppresses_too(rig: Rig) -> None:
    lock = await _armed_lock(rig)
    await report(rig, "olga", 2_000.0)
    async with rig.maker() as session, session.begin():
        session.add(
            LockEventRecord(
                lock_id=uuid.UUID(lock), kind="door", detail=int(DoorState.OPEN), counter=2,
                lock_time=rig.clock.at, received_at=rig.clock.at - timedelta(seconds=10),
                gateway="gw@ras.test",
            )
        )  # fmt: skip
    assert (await report(rig, "olga", 0.0))["suppressed_lock_ids"] == [lock]

    other = await _armed_lock(rig)
    rig.clock.at += timedelta(seconds=600)
    await report(rig, "olga", 2_000.0)
    async with rig.maker() as session, session.begin():
        session.add(
            Command(
                lock_id=uuid.UUID(other), user_id=rig.ids["mia"], idempotency_key="k1",
                command="unlock", state=CommandState.OK.value, seq=3, key_version=1,
                frame=b"\0" * 20, finished_at=rig.clock.at - timedelta(seconds=5),
            )
        )  # fmt: skip
    arriving = await report(rig, "olga", 0.0)
    assert arriving["suppressed_lock_ids"] == [other]
    assert [s["lock_id"] for s in arriving["suggestions"]] == [lock]  # its window has passed


async def test_shared_locks_and_home_fences_suggest_to_those_who_may_unlock(rig: Rig) -> None:
    home = await rig.home()
    lock = str(await rig.add_lock("olga"))
    await rig.call("PUT", f"/v1/homes/{home}/locks/{lock}", "olga", 200)
    await rig.call(
        "PUT", f"/v1/homes/{home}/geofence", "olga", 201, json=fence_body(arrival="auto_unlock")
    )
    await rig.accept("mia", (await rig.member(home, "mia"))["id"])
    await rig.granted("olga", "gus", lock_ids=[lock], permissions=["lock"])  # may not unlock
    (for_mia,) = (await report(rig, "mia", 0.0))["suggestions"]
    assert (for_mia["lock_id"], for_mia["mode"]) == (lock, "auto_unlock")
    assert (await report(rig, "gus", 0.0))["suggestions"] == []
    assert (await report(rig, "sam", 0.0))["suggestions"] == []


async def test_reports_are_validated_and_throttled(rig: Rig) -> None:
    await report(rig, "olga", 0.0, age_s=-60, expect=422)  # from the future
    for bad in (
        {"latitude": 91, "longitude": 0, "accuracy_m": 5, "taken_at": rig.clock.at.isoformat()},
        {"latitude": 0, "longitude": 0, "accuracy_m": 0, "taken_at": rig.clock.at.isoformat()},
        {"latitude": 0, "longitude": 0, "accuracy_m": 5, "taken_at": "2026-06-03T10:00:00"},
    ):
        await rig.call("POST", "/v1/location", "olga", 422, json=bad)
    for _ in range(12):
        await report(rig, "olga", 0.0)
    response = await rig.client.post(
        "/v1/location",
        headers={"Authorization": "Bearer olga"},
        json={"latitude": 0, "longitude": 0, "accuracy_m": 5, "taken_at": rig.clock.at.isoformat()},
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    await report(rig, "mia", 0.0)  # per user: others are not held up
    rig.clock.at += timedelta(seconds=10)
    await report(rig, "olga", 0.0)
    async with rig.maker() as session:
        query = select(func.count()).where(LocationReport.user_id == rig.ids["olga"])
        assert (await session.execute(query)).scalar_one() == 13


async def test_a_person_may_erase_their_location_history(rig: Rig) -> None:
    await report(rig, "olga", 0.0)
    await report(rig, "mia", 0.0)
    await rig.call("DELETE", "/v1/location", "olga", 204)
    async with rig.maker() as session:
        owners = (await session.execute(select(LocationReport.user_id))).scalars().all()
    assert owners == [rig.ids["mia"]]


async def test_coordinates_never_reach_the_logs_or_the_audit(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    lock = await _armed_lock(rig)
    caplog.set_level(logging.DEBUG)
    await report(rig, "olga", 2_000.0)
    rig.clock.at += timedelta(seconds=30)
    (suggestion,) = (await report(rig, "olga", 0.0))["suggestions"]
    await rig.call("POST", f"/v1/arrivals/{suggestion['id']}/confirm", "olga", 200)
    await rig.call("DELETE", f"/v1/locks/{lock}/geofence", "olga", 204)
    async with rig.maker() as session:
        details = [r.details for r in (await session.execute(select(AuditRecord))).scalars()]
    sent = [f"{value:.4f}" for value in (*north(0.0), *north(2_000.0))]
    assert any("geofence" in r.getMessage() for r in caplog.records)  # logging was on
    for text in (caplog.text, json.dumps(details)):
        for value in sent:
            assert value not in text
