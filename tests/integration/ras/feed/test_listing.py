"""The feed's listing, visibility, filters, retention and migration, on SQLite and
PostgreSQL: events are published with the service call itself (as the sources do) into
a RAS whose people, locks, homes and shares are real rows made through the sharing API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from heslock.ras.services.feed.publish import FeedKind, publish
from heslock.ras.services.feed.retention import RetentionSweeper, sweep
from heslock.ras.store.migrate import downgrade, upgrade
from heslock.ras.store.models import FeedPath
from tests.integration.ras.feed.conftest import feed
from tests.integration.ras.sharing.conftest import Rig


async def put(rig: Rig, kind: str, **kwargs: Any) -> int:
    async with rig.maker() as session, session.begin():
        row = await publish(session, kind, path=kwargs.pop("path", FeedPath.SYSTEM), **kwargs)
    return row.id


def ids(events: list[dict[str, Any]]) -> list[int]:
    return [e["id"] for e in events]


async def test_who_sees_what(sharing_rig: Rig) -> None:
    rig = sharing_rig
    home = await rig.home()
    shared = await rig.add_lock("olga")
    private = await rig.add_lock("olga", "shed")
    await rig.call("PUT", f"/v1/homes/{home}/locks/{shared}", "olga", 200)
    await rig.accept("mia", (await rig.member(home, "mia", role="member"))["id"])
    guest = await rig.granted("olga", "gus", lock_ids=[str(shared)])  # view_status
    await rig.add_person("lea")
    await rig.granted("olga", "lea", lock_ids=[str(shared)], permissions=["lock"])
    gateway = await rig.add_gateway("olga")

    on_shared = await put(rig, "lock.manual_operation", lock_id=shared, path=FeedPath.MANUAL)
    on_private = await put(rig, "lock.door", lock_id=private)
    to_olga = await put(
        rig, FeedKind.GATEWAY_OFFLINE.value, gateway_id=gateway, user_id=rig.ids["olga"]
    )

    devices = {"kind": ["lock.*", "gateway.*"]}  # (share changes: their own test)
    assert ids(await feed(rig.client, "olga", **devices)) == [to_olga, on_private, on_shared]
    for who in ("mia", "gus"):
        assert ids(await feed(rig.client, who, **devices)) == [on_shared], who
    for who in ("lea", "sam", "root"):  # no view permission, a stranger, the RAS admin
        assert await feed(rig.client, who, **devices) == [], who
    [event] = await feed(rig.client, "mia", **devices)
    assert event["home_id"] == home  # the lock's home, named when it was published
    assert event["path"] == "manual"

    # A revoked share stops showing the lock's events at once (listing).
    await rig.call("POST", f"/v1/shares/{guest}/revoke", "olga", 200)
    assert await feed(rig.client, "gus", **devices) == []
    # No bearer token, no feed.
    assert (await rig.client.get("/v1/events")).status_code == 401


async def test_paging_and_filters(sharing_rig: Rig) -> None:
    rig = sharing_rig
    front, back = await rig.add_lock("olga"), await rig.add_lock("olga", "back")
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    made = [
        await put(rig, "lock.manual_operation", lock_id=front, at=t0),
        await put(rig, "command.ok", lock_id=front, at=t0 + timedelta(hours=1)),
        await put(rig, "lock.door", lock_id=back, at=t0 + timedelta(hours=2)),
        await put(rig, "lock.offline", lock_id=front, at=t0 + timedelta(hours=3)),
        await put(rig, "command.refused", lock_id=back, at=t0 + timedelta(hours=4)),
    ]
    assert made == sorted(made)

    page = await feed(rig.client, "olga", limit=2)
    assert ids(page) == made[:2:-1][:2] == [made[4], made[3]]
    older = await feed(rig.client, "olga", limit=2, before=page[-1]["id"])
    assert ids(older) == [made[2], made[1]]
    oldest = await feed(rig.client, "olga", limit=2, before=older[-1]["id"])
    assert ids(oldest) == [made[0]]
    assert ids(await feed(rig.client, "olga", after=made[1], limit=2)) == [made[2], made[3]]

    assert ids(await feed(rig.client, "olga", lock_id=str(back))) == [made[4], made[2]]
    assert ids(await feed(rig.client, "olga", kind="command.*")) == [made[4], made[1]]
    assert ids(await feed(rig.client, "olga", kind=["lock.door", "lock.offline"])) == [
        made[3],
        made[2],
    ]
    window = {
        "since": (t0 + timedelta(hours=1)).isoformat(),
        "until": (t0 + timedelta(hours=3)).isoformat(),
    }
    assert ids(await feed(rig.client, "olga", **window)) == [made[2], made[1]]
    assert ids(await feed(rig.client, "olga", kind="lock.*", lock_id=str(front))) == [
        made[3],
        made[0],
    ]
    # "%" and "_" in a family are literal characters, not patterns.
    assert await feed(rig.client, "olga", kind="lock%.*") == []

    for params, status in (
        ({"before": made[2], "after": made[1]}, 422),
        ({"since": "2026-06-01T00:00:00"}, 422),  # no time zone
        ({"limit": 0}, 422),
        ({"kind": "x" * 49}, 422),
        ({"lock_id": "not-a-uuid"}, 422),
    ):
        response = await rig.client.get(
            "/v1/events", params=params, headers={"authorization": "Bearer olga"}
        )
        assert response.status_code == status, (params, response.text)


async def test_retention_deletes_old_events_and_ids_are_never_reused(sharing_rig: Rig) -> None:
    rig = sharing_rig
    lock = await rig.add_lock("olga")
    now = datetime(2026, 6, 3, 10, 0, tzinfo=UTC)
    old = [await put(rig, "lock.door", lock_id=lock, at=now - timedelta(days=d)) for d in (91, 95)]
    kept = await put(rig, "lock.door", lock_id=lock, at=now - timedelta(days=89))

    sweeper = RetentionSweeper(rig.maker, 90, clock=now.timestamp)
    assert await sweeper.run_once() == 2
    assert ids(await feed(rig.client, "olga")) == [kept]
    assert await sweeper.run_once() == 0  # idempotent

    # Emptied entirely, the next event still gets a larger id (SSE cursors stay valid).
    assert await sweep(rig.maker, now + timedelta(days=365), 90) == 1
    assert await feed(rig.client, "olga") == []
    fresh = await put(rig, "lock.door", lock_id=lock)
    assert fresh > max([*old, kept])


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_migration_0007_up_and_down(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.connect() as conn:
        assert "feed_events" in await conn.run_sync(_tables)
    await downgrade(engine, "0006")
    async with engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert "feed_events" not in tables
    assert "shares" in tables  # only this revision's table went
    await upgrade(engine)
    async with engine.connect() as conn:
        assert "feed_events" in await conn.run_sync(_tables)


async def test_share_changes_reach_owner_and_grantee(sharing_rig: Rig) -> None:
    rig = sharing_rig
    lock = await rig.add_lock("olga")
    share_id = await rig.granted("olga", "gus", lock_ids=[str(lock)])
    accepted, created = await feed(rig.client, "olga", kind="share.*")  # newest first
    assert created["kind"] == "share.created"
    assert accepted["kind"] == "share.accepted"
    assert accepted["actor_id"] == str(rig.ids["gus"])  # the invitee accepted it
    assert accepted["payload"]["share_id"] == share_id
    assert created["actor_id"] == str(rig.ids["olga"])
    assert created["credential"] == "owner"
    assert created["payload"]["share_id"] == share_id
    assert created["payload"]["lock_ids"] == [str(lock)]

    await rig.call("POST", f"/v1/shares/{share_id}/revoke", "olga", 200)
    for who in ("olga", "gus"):
        newest = (await feed(rig.client, who, kind="share.*"))[0]
        assert newest["kind"] == "share.revoked", who
        assert newest["payload"]["revoke_reason"] is not None
    assert await feed(rig.client, "sam", kind="share.*") == []
