"""``GET /v1/events`` and ``/v1/events/stream`` for an app's token (scope events:read):
the granted locks' events the user may see, nothing addressed to the person."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from heslock.ras.services.feed.publish import publish
from heslock.ras.store import create_sessionmaker
from heslock.ras.store.models import FeedPath
from tests.integration.ras.oauth.conftest import OAuthRig

pytestmark = pytest.mark.asyncio
WAIT_S = 10.0


async def lock_event(rig: OAuthRig, lock_id: uuid.UUID, kind: str = "lock.door") -> int:
    async with create_sessionmaker(rig.ras.engine)() as session:
        async with session.begin():
            row = await publish(session, kind, path=FeedPath.MANUAL, lock_id=lock_id)
        return int(row.id)


async def test_app_reads_its_grants_events_listed_and_live(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    granted = await rig.add_lock(olga, "front")
    other = await rig.add_lock(olga, "back")
    app = await rig.register_app(olga)
    token = (await rig.tokens(olga, app, scope="events:read", lock_ids=[granted]))["access_token"]
    other_app = await rig.register_app(olga)  # one grant per user and app: another app
    narrow_tokens = await rig.tokens(olga, other_app, scope="locks:read", lock_ids=[granted])
    narrow = narrow_tokens["access_token"]

    seen = await lock_event(rig, granted)
    await lock_event(rig, other)
    async with create_sessionmaker(rig.ras.engine)() as session, session.begin():
        await publish(session, "gateway.offline", path=FeedPath.SYSTEM, user_id=olga.id)

    # Share changes addressed to olga: the app sees those of the locks it may see.
    gus = await rig.person("gus")
    for lock in (granted, other):
        body = {"invitee": {"email": gus.email}, "lock_ids": [str(lock)], "role": "guest"}
        shared = await rig.client.post("/v1/shares", json=body, headers=olga.auth)
        assert shared.status_code == 201, shared.text
    mine = await rig.client.get("/v1/events", headers=olga.auth)  # the person sees all five
    assert [e["kind"] for e in mine.json()] == [
        "share.created",
        "share.created",
        "gateway.offline",
        "lock.door",
        "lock.door",
    ]
    listed = await rig.api("GET", "/v1/events", token)
    assert listed.status_code == 200, listed.text
    events = listed.json()
    assert [e["kind"] for e in events] == ["share.created", "lock.door"]
    assert events[0]["payload"]["lock_ids"] == [str(granted)]
    assert events[1]["id"] == seen
    assert (await rig.api("GET", "/v1/events", narrow)).status_code == 403
    assert (await rig.api("GET", "/v1/events/stream", narrow)).status_code == 403

    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": "0"}
    async with rig.client.stream("GET", "/v1/events/stream", headers=headers) as stream:
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        live = None

        async def next_data() -> dict[str, object]:
            async for line in lines:
                if line.startswith("data:"):
                    found: dict[str, object] = json.loads(line[5:])
                    return found
            raise AssertionError("the stream ended")

        first = await asyncio.wait_for(next_data(), WAIT_S)  # catch-up from id 0
        assert first["id"] == seen
        share = await asyncio.wait_for(next_data(), WAIT_S)
        assert share["kind"] == "share.created"
        await lock_event(rig, other)
        live = await lock_event(rig, granted, "lock.manual_operation")
        second = await asyncio.wait_for(next_data(), WAIT_S)
        assert second["id"] == live  # the other lock's event was skipped
