"""Deliveries: signed, retried with the same id, de-duplicable, rotated, disabled after
sustained failure (owner told) and re-enabled, resumed from the cursor after a restart,
and limited to what the app's grant may see now."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from heslock.ras.services.feed.publish import publish
from heslock.ras.services.udms.senders import outbox_path
from heslock.ras.services.webhooks.dispatcher import WebhookDispatcher
from heslock.ras.store import create_sessionmaker
from heslock.ras.store.models import FeedPath
from tests.integration.ras.webhooks.conftest import WAIT_S, HookRig, Received, free_port, verify

pytestmark = pytest.mark.asyncio


async def eventually(probe: Any, what: str) -> Any:
    """Poll ``probe()`` (async) until it returns something truthy, within WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def ok_ids(got: list[Received]) -> list[str]:
    return [r.id for r in got if r.status == 200]


async def test_signed_retried_deduplicated_and_filtered(hooks: HookRig) -> None:
    olga = await hooks.person("olga")
    granted = await hooks.add_lock(olga, "front")
    hidden = await hooks.add_lock(olga, "back")  # olga's, but not given to the app
    _app, token = await hooks.app_token(olga, [granted])
    receiver = await hooks.receiver(script=[500])  # the first attempt fails
    hook = await hooks.subscribe(token, receiver.url, ["lock.*"])

    await hooks.lock_event(hidden)
    first = await hooks.lock_event(granted)
    await hooks.lock_event(granted, "command.ok")  # not subscribed
    door = await hooks.lock_event(granted, "lock.door")

    got = await receiver.wait_for(lambda g: str(door) in ok_ids(g))
    assert [(r.id, r.status) for r in got] == [
        (str(first), 500),
        (str(first), 200),  # the retry carries the same webhook-id
        (str(door), 200),
    ]
    processed: dict[str, dict[str, Any]] = {}
    for delivery in got:  # a receiver: verify, check the clock, de-duplicate
        assert verify(hook["secret"], delivery.headers, delivery.body) == 1
        assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 300
        assert delivery.headers["content-type"] == "application/json"
        processed.setdefault(delivery.id, delivery.json)
    assert list(processed) == [str(first), str(door)]

    # The body's data is the event exactly as GET /v1/events shows it to the app.
    listed = await hooks.api("GET", "/v1/events", token, params={"kind": "lock.*"})
    by_id = {str(e["id"]): e for e in listed.json()}
    assert set(by_id) == {str(first), str(door)}
    body = processed[str(door)]
    assert body["id"] == str(door)
    assert body["type"] == "lock.door"
    assert body["subscription"] == hook["id"]
    assert body["timestamp"].endswith("Z")
    assert body["data"] == by_id[str(door)]

    async def settled() -> list[dict[str, Any]]:  # the log is written after the answer
        found = await hooks.deliveries(token, hook["id"])
        return found if len(found) == 3 else []

    log = await eventually(settled, "three attempts in the log")
    assert [(d["event_id"], d["attempt"], d["status_code"]) for d in reversed(log)] == [
        (str(first), 1, 500),
        (str(first), 2, 200),
        (str(door), 1, 200),
    ]
    assert log[-1]["next_retry_at"] is not None
    assert log[0]["next_retry_at"] is None
    # A tampered body does not verify.
    assert verify(hook["secret"], got[-1].headers, got[-1].body + b" ") == 0


async def test_connection_refused_is_retried(hooks: HookRig) -> None:
    olga = await hooks.person("olga")
    lock = await hooks.add_lock(olga)
    _app, token = await hooks.app_token(olga, [lock])
    port = await free_port()
    hook = await hooks.subscribe(token, f"http://127.0.0.1:{port}/hook")
    event = await hooks.lock_event(lock)

    async def refused() -> bool:
        log = await hooks.deliveries(token, hook["id"])
        return any(d["error"] and "connection" in d["error"] for d in log)

    await eventually(refused, "a refused attempt in the log")
    receiver = await hooks.receiver(port=port)
    got = await receiver.wait_for(bool)
    assert got[0].id == str(event)
    assert got[0].status == 200
    assert verify(hook["secret"], got[0].headers, got[0].body) == 1


async def test_rotation_signs_with_both_secrets(hooks: HookRig) -> None:
    olga = await hooks.person("olga")
    lock = await hooks.add_lock(olga)
    _app, token = await hooks.app_token(olga, [lock])
    receiver = await hooks.receiver()
    hook = await hooks.subscribe(token, receiver.url)
    rotated = await hooks.api("POST", f"/v1/webhooks/{hook['id']}/rotate", token)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != hook["secret"]
    assert new_secret.startswith("whsec_")
    assert rotated.json()["previous_valid_until"]

    await hooks.lock_event(lock)
    (delivery,) = await receiver.wait_for(bool)
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    assert verify(new_secret, delivery.headers, delivery.body) == 1
    assert verify(hook["secret"], delivery.headers, delivery.body) == 1


async def test_disabled_after_sustained_failure_then_reenabled(hooks: HookRig) -> None:
    olga = await hooks.person("olga")
    lock = await hooks.add_lock(olga)
    app, token = await hooks.app_token(olga, [lock])
    receiver = await hooks.receiver(default=503)
    hook = await hooks.subscribe(token, receiver.url)
    first = await hooks.lock_event(lock)
    second = await hooks.lock_event(lock)

    async def disabled() -> dict[str, Any] | None:
        answer = await hooks.api("GET", f"/v1/webhooks/{hook['id']}", token)
        found: dict[str, Any] = answer.json()
        return found if found["state"] == "disabled" else None

    state = await eventually(disabled, "the webhook to be disabled")
    assert state["disabled_reason"] == "too-many-failed-events"
    # Three attempts at each of the two events (webhooks_max_attempts), then nothing.
    assert [r.id for r in receiver.got] == [str(first)] * 3 + [str(second)] * 3

    # The owner is told: a feed event addressed to them, and a message in the outbox.
    owner_feed = await hooks.client.get(
        "/v1/events", params={"kind": "webhook.disabled"}, headers=olga.auth
    )
    (notice,) = owner_feed.json()
    assert notice["payload"]["subscription_id"] == hook["id"]
    assert notice["payload"]["client_id"] == app.client_id
    lines = outbox_path(hooks.ras.settings).read_text().splitlines()
    mails = [json.loads(line) for line in lines if "webhook_disabled" in line]
    assert [m["to"] for m in mails] == [olga.email]
    assert hook["id"] in mails[0]["text"]
    # The app never sees the owner's notice (it is addressed to a person).
    assert (await hooks.api("GET", "/v1/events", token, params={"kind": "webhook.*"})).json() == []

    receiver.default = 200
    enabled = await hooks.api("POST", f"/v1/webhooks/{hook['id']}/enable", token)
    assert enabled.status_code == 200
    assert enabled.json()["state"] == "active"
    third = await hooks.lock_event(lock)
    got = await receiver.wait_for(lambda g: str(third) in ok_ids(g))
    assert ok_ids(got) == [str(third)]


async def test_a_restart_resumes_from_the_cursor(hooks: HookRig) -> None:
    olga = await hooks.person("olga")
    lock = await hooks.add_lock(olga)
    _app, token = await hooks.app_token(olga, [lock])
    receiver = await hooks.receiver()
    await hooks.subscribe(token, receiver.url)
    relay = hooks.server.relay
    assert relay is not None
    first = await hooks.lock_event(lock)
    await receiver.wait_for(lambda g: str(first) in ok_ids(g))

    await relay.webhooks.stop()  # the RAS goes away...
    missed = [await hooks.lock_event(lock) for _ in range(3)]  # ...events keep coming
    assert ok_ids(receiver.got) == [str(first)]

    settings = hooks.ras.settings
    sessionmaker = create_sessionmaker(hooks.ras.engine)
    again = WebhookDispatcher(sessionmaker, relay.webhooks.keystore, settings, time.time)
    again.start()  # a new process, from the stored cursor
    try:
        got = await receiver.wait_for(lambda g: len(ok_ids(g)) == 4)
    finally:
        await again.stop()
    assert ok_ids(got) == [str(first), *(str(m) for m in missed)]

    async def swept() -> bool:  # the OAuth sweep runs with the same background tasks
        return relay.oauth_sweep.runs >= 1

    await eventually(swept, "the OAuth sweep's first run")


async def test_only_what_the_grant_may_see_now(hooks: HookRig) -> None:
    olga = await hooks.person("olga")
    gus = await hooks.person("gus")
    olgas = await hooks.add_lock(olga, "olga's door")
    olgas_other = await hooks.add_lock(olga, "olga's shed")
    guses = await hooks.add_lock(gus, "gus's door")
    shared = await hooks.client.post(
        "/v1/shares",
        json={"invitee": {"email": gus.email}, "lock_ids": [str(olgas)], "role": "guest"},
        headers=olga.auth,
    )
    assert shared.status_code == 201, shared.text
    share_id = shared.json()["id"]
    accepted = await hooks.client.post(f"/v1/invitations/{share_id}/accept", headers=gus.auth)
    assert accepted.status_code == 200, accepted.text
    _app, token = await hooks.app_token(gus, [olgas, guses])
    receiver = await hooks.receiver()
    await hooks.subscribe(token, receiver.url)

    before = await hooks.lock_event(olgas)
    await receiver.wait_for(lambda g: str(before) in ok_ids(g))

    revoked = await hooks.client.post(f"/v1/shares/{share_id}/revoke", headers=olga.auth)
    assert revoked.status_code == 200, revoked.text
    after = await hooks.lock_event(olgas)  # no longer gus's to see
    never_shared = await hooks.lock_event(olgas_other)
    async with create_sessionmaker(hooks.ras.engine)() as session, session.begin():
        # Addressed to gus, about no lock (his gateways): not for his apps.
        await publish(session, "gateway.offline", path=FeedPath.SYSTEM, user_id=gus.id)
    own = await hooks.lock_event(guses)
    got = await receiver.wait_for(lambda g: str(own) in ok_ids(g))
    assert ok_ids(got) == [str(before), str(own)]
    assert not {str(after), str(never_shared)} & {r.id for r in got}
    assert uuid.UUID(got[-1].json["data"]["lock_id"]) == guses
    # share.revoked went to gus too, but about a lock he may no longer see.
    assert not [r for r in got if r.json["type"].startswith("share.")]
    listed = await hooks.api("GET", "/v1/events", token)
    assert [e["id"] for e in listed.json()] == [own]


async def test_share_changes_reach_the_owners_app(hooks: HookRig) -> None:
    olga = await hooks.person("olga")
    gus = await hooks.person("gus")
    lock = await hooks.add_lock(olga)
    _app, token = await hooks.app_token(olga, [lock])
    receiver = await hooks.receiver()
    await hooks.subscribe(token, receiver.url, ["share.*"])
    body = {"invitee": {"email": gus.email}, "lock_ids": [str(lock)], "role": "guest"}
    shared = await hooks.client.post("/v1/shares", json=body, headers=olga.auth)
    assert shared.status_code == 201, shared.text
    share_id = shared.json()["id"]
    accepted = await hooks.client.post(f"/v1/invitations/{share_id}/accept", headers=gus.auth)
    assert accepted.status_code == 200, accepted.text
    got = await receiver.wait_for(lambda g: len(ok_ids(g)) == 2)
    assert [r.json["type"] for r in got] == ["share.created", "share.accepted"]
    assert {r.json["data"]["payload"]["share_id"] for r in got} == {share_id}
