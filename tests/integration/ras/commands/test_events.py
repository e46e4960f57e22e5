"""Step 3: a lock's own events reach the RAS through the gateway, are opened under the
lock key, verified (FROM_LOCK acceptor), stored, and update the lock's last known state."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from heslock.protocol import BoltState, EventType
from heslock.protocol.makers import ACME, LUMEN
from tests.integration.ras.commands.conftest import Rig
from tests.integration.ras.commands.test_commands import bound_lock
from tests.support import auth

pytestmark = pytest.mark.timeout(90)


async def test_knob_turned_at_the_lock_appears_in_events_and_state(rig: Rig) -> None:
    peripheral, lock_id, account, _ = await bound_lock(rig, LUMEN)
    ingest = rig.relay.events
    handled = ingest.stored + ingest.refused

    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.UNLOCKED, t))
    notice = await rig.events.next(lambda e: e.lock == peripheral.lock.identity.device_id)
    await ingest.wait_handled(handled + 1)
    assert ingest.stored >= 1

    response = await rig.client.get(f"/v1/locks/{lock_id}/events", headers=auth("a"))
    assert response.status_code == 200, response.text
    [event] = response.json()
    assert event["kind"] == EventType.MANUAL_OPERATION.name.lower()
    assert event["detail"] == BoltState.UNLOCKED
    assert event["bolt_state"] == BoltState.UNLOCKED
    assert event["gateway"] == notice.gateway == account.jid.split("/")[0]
    assert event["counter"] >= 1
    view = (await rig.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).json()
    assert view["bolt_state"] == BoltState.UNLOCKED

    # The same frame again (a replay by the gateway or anyone on the path) is refused.
    refused = ingest.refused
    rig.relay.endpoint.events.publish(notice)
    await ingest.wait_handled(ingest.stored + refused + 1)
    assert ingest.refused == refused + 1
    # So is a frame that is not under this lock's key.
    forged = dataclasses.replace(notice, frame=bytes(len(notice.frame)))
    rig.relay.endpoint.events.publish(forged)
    await ingest.wait_handled(ingest.stored + refused + 2)
    assert ingest.refused == refused + 2

    # More events: newest first, paged.
    handled = ingest.stored + ingest.refused
    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.LOCKED, t))
    await ingest.wait_handled(handled + 1)
    page = (await rig.client.get(f"/v1/locks/{lock_id}/events?limit=1", headers=auth("a"))).json()
    assert [e["detail"] for e in page] == [BoltState.LOCKED]
    older = (
        await rig.client.get(
            f"/v1/locks/{lock_id}/events?limit=1&before={page[0]['id']}", headers=auth("a")
        )
    ).json()
    assert [e["id"] for e in older] == [event["id"]]
    view = (await rig.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).json()
    assert view["bolt_state"] == BoltState.LOCKED

    # Only the owner reads them.
    for token, status in (("b", 404), ("admin", 403)):
        denied = await rig.client.get(f"/v1/locks/{lock_id}/events", headers=auth(token))
        assert denied.status_code == status
    missing = await rig.client.get(f"/v1/locks/{uuid.uuid4()}/events", headers=auth("a"))
    assert missing.status_code == 404


async def test_event_of_an_unbound_lock_is_dropped(rig: Rig) -> None:
    peripheral, lock_id, _, _ = await bound_lock(rig, ACME)
    ingest = rig.relay.events
    handled = ingest.stored + ingest.refused
    peripheral.press(lambda t: peripheral.lock.turn_knob(BoltState.UNLOCKED, t))
    notice = await rig.events.next(lambda e: e.lock == peripheral.lock.identity.device_id)
    await ingest.wait_handled(handled + 1)
    assert ingest.stored == 1
    deleted = await rig.client.delete(f"/v1/locks/{lock_id}", headers=auth("a"))
    assert deleted.status_code == 204
    refused = ingest.refused
    rig.relay.endpoint.events.publish(notice)
    await ingest.wait_handled(ingest.stored + refused + 1)
    assert ingest.refused == refused + 1
