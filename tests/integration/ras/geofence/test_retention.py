"""Location data is personal: kept only as long as configured, deleted with the account."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from heslock.ras.services import audit
from heslock.ras.services.geofence import service
from heslock.ras.services.geofence.retention import run_retention
from heslock.ras.store.models import ArrivalSuggestion, Geofence, LocationReport
from tests.integration.ras.geofence.conftest import Rig, fence_body, report


async def _count(rig: Rig, model: type[object], **where: object) -> int:
    async with rig.maker() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int((await session.execute(query)).scalar_one())


async def test_the_retention_setting_defaults_to_a_day(rig: Rig) -> None:
    assert rig.app.state.ras.settings.location_retention_hours == 24


async def test_purge_deletes_only_what_is_older_than_the_retention_time(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    await rig.call(
        "PUT", f"/v1/locks/{lock}/geofence", "olga", 201, json=fence_body(arrival="suggest")
    )
    await report(rig, "olga", 0.0)  # a report and a suggestion
    rig.clock.at += timedelta(hours=23)
    await report(rig, "mia", 0.0)
    rig.clock.at += timedelta(hours=1, seconds=1)  # olga's are 24 h 1 s old, mia's 1 h
    async with rig.maker() as session, session.begin():
        removed = await service.purge_expired(session, rig.clock.at, 24)
    assert removed == 2
    assert await _count(rig, LocationReport, user_id=rig.ids["olga"]) == 0
    assert await _count(rig, ArrivalSuggestion) == 0
    assert await _count(rig, LocationReport, user_id=rig.ids["mia"]) == 1
    assert await _count(rig, Geofence) == 1  # the fence is not location history


async def test_the_retention_task_sweeps_with_the_injected_clock_and_stops(rig: Rig) -> None:
    await report(rig, "olga", 0.0)
    stop = asyncio.Event()
    later = rig.clock.at + timedelta(hours=25)
    swept = asyncio.Event()

    def clock() -> float:  # the sweep reads the clock once: then it may stop
        swept.set()
        stop.set()
        return later.timestamp()

    task = asyncio.create_task(
        run_retention(rig.app.state.ras.sessionmaker, 24, clock, stop, interval_s=3600)
    )
    await asyncio.wait_for(task, timeout=30)
    assert swept.is_set()
    assert await _count(rig, LocationReport) == 0


async def test_deleting_the_account_deletes_reports_suggestions_and_fences(rig: Rig) -> None:
    assert service.release_account in rig.app.state.udms.deletion_hooks
    home = await rig.home()
    lock = await rig.add_lock("olga")
    await rig.call(
        "PUT", f"/v1/locks/{lock}/geofence", "olga", 201, json=fence_body(arrival="suggest")
    )
    await rig.call("PUT", f"/v1/homes/{home}/geofence", "olga", 201, json=fence_body())
    mias = await rig.add_lock("mia")
    await rig.call("PUT", f"/v1/locks/{mias}/geofence", "mia", 201, json=fence_body())
    await report(rig, "olga", 0.0)
    await report(rig, "mia", 0.0)
    assert await _count(rig, ArrivalSuggestion, user_id=rig.ids["olga"]) == 1

    ctx = audit.AuditContext(f"user:{rig.ids['olga']}")
    async with rig.maker() as session, session.begin():
        await service.release_account(session, rig.ids["olga"], ctx, rig.clock.at)
    assert await _count(rig, LocationReport, user_id=rig.ids["olga"]) == 0
    assert await _count(rig, ArrivalSuggestion) == 0
    assert await _count(rig, LocationReport, user_id=rig.ids["mia"]) == 1
    async with rig.maker() as session:
        left = (await session.execute(select(Geofence.lock_id))).scalars().all()
    assert left == [mias]
    deleted = await rig.audit("geofence.delete")
    assert {(r.target, r.details["reason"]) for r in deleted} == {
        (f"lock:{lock}", "account-deleted"),
        (f"home:{uuid.UUID(home)}", "account-deleted"),
    }
