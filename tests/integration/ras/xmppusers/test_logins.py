"""People's XMPP logins end to end: created over HTTPS (password once, verifiers kept),
used by slixmpp over STARTTLS + SCRAM-SHA-256 to receive live events, resumed after a
reconnect without loss, revoked (session closed, login refused), deleted with the
account; and only what the person may see is delivered."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

import pytest
from slixmpp.exceptions import IqError
from sqlalchemy import select

from heslock.ras.services import audit
from heslock.ras.services.feed.notifier import NOTIFIER
from heslock.ras.services.xmppusers import logins
from heslock.ras.services.xmppusers.wire import NS_EVENTS
from heslock.ras.store.models import AuditRecord, User, XmppLogin
from tests.integration.ras.xmppusers.conftest import WAIT_S, Rig

pytestmark = pytest.mark.timeout(90)

JID = re.compile(r"p-[0-9a-f]{20}@localhost")


async def audits(rig: Rig, action: str) -> list[AuditRecord]:
    async with rig.maker() as session:
        query = select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
        return list((await session.execute(query)).scalars())


async def test_create_list_use_and_revoke_a_login(rig: Rig) -> None:
    response = await rig.client.post(
        "/v1/account/xmpp-logins", json={"label": "phone"}, headers={"Authorization": "Bearer olga"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    login = response.json()
    assert JID.fullmatch(login["jid"])
    assert len(login["password"]) >= 43  # 256 bits, URL-safe base64
    assert login["server"] == {
        "domain": "localhost",
        "starttls_port": rig.xmpp_port,
        "direct_tls_port": rig.server.relay.endpoint.ports["direct_tls"],  # type: ignore[union-attr]
    }

    # Listed without the password; only verifiers stored; audited; not another's.
    listed = await rig.call("GET", "/v1/account/xmpp-logins", "olga", 200)
    assert listed == [{k: login[k] for k in ("id", "jid", "label", "created_at", "revoked_at")}]
    assert await rig.call("GET", "/v1/account/xmpp-logins", "mia", 200) == []
    async with rig.maker() as session:
        row = await session.get(XmppLogin, uuid.UUID(login["id"]))
        assert row is not None
        secret = login["password"].encode()
        assert secret not in row.scram_stored_key + row.scram_server_key + row.scram_salt
        assert row.scram_iterations == 4096
    [created] = await audits(rig, "xmpp_login.create")
    assert created.target == f"xmpp_login:{login['id']}"
    await rig.call("DELETE", f"/v1/account/xmpp-logins/{login['id']}", "mia", 404)

    # A standard client logs in and gets a live event of Olga's lock.
    client = await rig.connect(login)
    lock = await rig.add_lock("olga")
    event_id = await rig.lock_event(lock, 2)
    item = await client.next_event()
    assert (item.id, item.kind, item.lock_id, item.path) == (
        event_id,
        "lock.manual_operation",
        lock,
        "manual",
    )
    assert item.payload == {"detail": 2}

    # Revoked: the live session is closed at once and the password no longer works.
    await rig.call("DELETE", f"/v1/account/xmpp-logins/{login['id']}", "olga", 204)
    await asyncio.wait_for(client.ended.wait(), WAIT_S)
    await rig.refused(login["jid"], login["password"])
    [revoked] = await rig.call("GET", "/v1/account/xmpp-logins", "olga", 200)
    assert revoked["revoked_at"] is not None
    assert len(await audits(rig, "xmpp_login.revoke")) == 1
    # Revoking again is harmless (idempotent, audited once).
    await rig.call("DELETE", f"/v1/account/xmpp-logins/{login['id']}", "olga", 204)
    assert len(await audits(rig, "xmpp_login.revoke")) == 1


async def test_bad_requests_and_limits(rig: Rig) -> None:
    await rig.call("POST", "/v1/account/xmpp-logins", "olga", 422, json={"label": ""})
    await rig.call("POST", "/v1/account/xmpp-logins", "olga", 422, json={"password": "mine"})
    for label in ("   ", "tab\tbell\x07"):  # blank, or a control character
        await rig.call("POST", "/v1/account/xmpp-logins", "olga", 422, json={"label": label})
    await rig.call("DELETE", f"/v1/account/xmpp-logins/{uuid.uuid4()}", "olga", 404)
    response = await rig.client.post("/v1/account/xmpp-logins", json={})
    assert response.status_code == 401
    # Ten at once, then 429 with Retry-After (the bucket refills one per 6 minutes).
    for _ in range(int(logins.CREATE_POLICY.capacity)):
        await rig.new_login("sam")
    response = await rig.client.post(
        "/v1/account/xmpp-logins", json={}, headers={"Authorization": "Bearer sam"}
    )
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_resume_after_reconnect_loses_nothing(rig: Rig) -> None:
    login = await rig.new_login("olga")
    lock = await rig.add_lock("olga")
    client = await rig.connect(login)
    first = await rig.lock_event(lock, 1)
    assert (await client.next_event()).id == first
    await client.close()

    missed = [await rig.lock_event(lock, 2), await rig.lock_event(lock, 3)]
    again = await rig.connect(login, resource="phone")
    live = await rig.lock_event(lock, 4)  # while resuming: live and in the result
    resumed = await again.resume_all(first)
    assert [e.id for e in resumed][:2] == missed
    assert [e.payload["detail"] for e in resumed if e.id in missed] == [2, 3]
    assert {e.id for e in resumed} <= {*missed, live}  # nothing else, nothing twice
    assert (await again.next_event()).id == live

    # Paging: max=1 gives one event and says more are waiting.
    page = await again.resume(first, limit=1)
    assert [e.id for e in page.events] == missed[:1]
    assert not page.complete
    assert page.last == missed[0]

    # Malformed: bad-request, and the session goes on.
    iq = again.xmpp.make_iq_get(ito=rig.domain)
    iq.xml.append(Element(f"{{{NS_EVENTS}}}events", after="yesterday"))
    with pytest.raises(IqError) as refused:
        await iq.send(timeout=10)
    assert refused.value.condition == "bad-request"
    await again.round_trip()


async def test_only_what_the_person_may_see_is_delivered(rig: Rig) -> None:
    lock = await rig.add_lock("olga")
    own = await rig.add_lock("mia", "shed")
    share = await rig.call(
        "POST",
        "/v1/shares",
        "olga",
        201,
        json={
            "invitee": {"email": "mia@example.org"},
            "lock_ids": [str(lock)],
            "role": "member",
            "permissions": ["operate", "view_status", "view_log"],
        },
    )
    await rig.call("POST", f"/v1/invitations/{share['id']}/accept", "mia", 200)
    mia = await rig.connect(await rig.new_login("mia"))
    sam = await rig.connect(await rig.new_login("sam"))

    seen = await rig.lock_event(lock, 1)
    assert (await mia.next_event()).id == seen

    await rig.call("POST", f"/v1/shares/{share['id']}/revoke", "olga", 200)
    revoked = await mia.next_event()  # her own feed says the share is gone ...
    assert revoked.kind == "share.revoked"
    hidden = await rig.lock_event(lock, 2)  # ... and Olga's lock is no longer hers
    mine = await rig.lock_event(own, 3)
    assert (await mia.next_event()).id == mine
    assert hidden not in {e.id for e in await mia.resume_all(seen)}

    # Sam is a member of Olga's home: he sees its lock's events, and no other lock's.
    home = await rig.call(
        "POST", "/v1/homes", "olga", 201, json={"name": "home", "time_zone": "Europe/Berlin"}
    )
    hall = await rig.add_lock("olga", "hall")
    await rig.call("PUT", f"/v1/homes/{home['id']}/locks/{hall}", "olga", 200)
    member = await rig.call(
        "POST", f"/v1/homes/{home['id']}/members", "olga", 201,
        json={"invitee": {"email": "sam@example.org"}},
    )  # fmt: skip
    await rig.call("POST", f"/v1/invitations/{member['id']}/accept", "sam", 200)
    in_home = await rig.lock_event(hall, 4)
    got = [await sam.next_event() for _ in range(3)]
    assert [e.kind for e in got] == ["share.invited", "share.accepted", "lock.manual_operation"]
    assert (got[2].id, got[2].lock_id) == (in_home, hall)
    await sam.round_trip()
    assert sam.events.empty()  # nothing of Olga's other lock, nothing of Mia's


async def test_account_deletion_deletes_logins_and_ends_sessions(rig: Rig) -> None:
    login = await rig.new_login("sam")
    client = await rig.connect(login)
    app = rig.server.app
    assert logins.release_account in app.state.udms.deletion_hooks
    user_id = rig.ids["sam"]
    async with rig.maker() as session, session.begin():
        ctx = audit.AuditContext(actor=f"user:{user_id}")
        await logins.release_account(session, user_id, ctx, datetime.now(UTC))
        user = await session.get(User, user_id)
        assert user is not None
        user.status = "deleted"
    async with rig.maker() as session:
        assert (await session.execute(select(XmppLogin))).first() is None
    # The relay's revocation sweep closes the session (made quick here, then woken).
    assert rig.server.relay is not None
    rig.server.relay.person_events.heartbeat_s = 0.05
    NOTIFIER.poke()
    await asyncio.wait_for(client.ended.wait(), WAIT_S)
    await rig.refused(login["jid"], login["password"])
