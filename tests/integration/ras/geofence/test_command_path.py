"""The geofence on the real command path: HTTPS -> RAS -> XMPP -> gateway -> BLE -> lock.

A fence with the remote-unlock policy on refuses a remote unlock before anything is
written or sent (the lock does not move); inside it, the unlock reaches the lock. Lock
commands and nearby mode are not asked (a location alone never opens, and never keeps
a door shut either). Locations carry the time of the RAS's clock (the rig's runtime).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from heslock.protocol import BoltState
from heslock.protocol.makers import makers
from heslock.ras.services.geofence.policy import EARTH_RADIUS_M
from heslock.ras.store.models import Command
from tests.integration.ras.commands.conftest import Rig
from tests.integration.ras.commands.conftest import rig as remote_rig  # noqa: F401 - fixture
from tests.support import auth

CENTRE = (52.52, 13.405)


async def report(r: Rig, metres_north: float) -> None:
    taken = datetime.fromtimestamp(time.time(), UTC) - timedelta(seconds=2)
    body = {
        "latitude": CENTRE[0] + math.degrees(metres_north / EARTH_RADIUS_M),
        "longitude": CENTRE[1],
        "accuracy_m": 10.0,
        "taken_at": taken.isoformat(),
    }
    response = await r.client.post("/v1/location", json=body, headers=auth("a"))
    assert response.status_code == 201, response.text


def problem(response: Any) -> tuple[int, str]:
    return response.status_code, str(response.json()["type"]).rsplit("/", 1)[-1]


async def test_remote_unlock_only_from_inside_the_fence(remote_rig: Rig) -> None:  # noqa: F811
    rig = remote_rig
    account = await rig.create_gateway()
    await rig.start_gateway(account)
    peripheral = await rig.add_lock(makers()[0])
    await rig.seen_by(account, peripheral.lock.identity.device_id)
    lock_id = await rig.register(peripheral, account.jid)
    fence = {
        "latitude": CENTRE[0],
        "longitude": CENTRE[1],
        "radius_m": 100.0,
        "remote_unlock_inside": True,
    }
    response = await rig.client.put(f"/v1/locks/{lock_id}/geofence", json=fence, headers=auth("a"))
    assert response.status_code == 201, response.text

    assert problem(await rig.command(lock_id, "unlock", "u-1")) == (403, "location-missing")
    await report(rig, 5_000.0)
    assert problem(await rig.command(lock_id, "unlock", "u-2")) == (403, "geofence-outside")
    assert peripheral.lock.status(0).bolt is not BoltState.UNLOCKED  # nothing reached the lock
    async with rig.maker()() as session:
        assert (await session.execute(select(Command.id))).scalars().all() == []

    locked = await rig.command(lock_id, "lock", "l-1")  # the fence has no say on locking
    assert locked.status_code == 200, locked.text

    await report(rig, 10.0)
    unlocked = await rig.command(lock_id, "unlock", "u-3")
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["bolt"] == "unlocked"
    assert peripheral.lock.status(0).bolt is BoltState.UNLOCKED
