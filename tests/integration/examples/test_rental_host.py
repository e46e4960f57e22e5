"""examples/rental_host end to end against a real RAS over TLS (conftest), and its webhook
verifier against the documented algorithm.

The host connects the app through the consent page (code + PKCE, state, iss), the app
lists the granted lock, books a guest (a time-limited share), the guest accepts and
unlocks through the gateway, the RAS's signed webhook reaches the app and the booking
shows "arrived"; forged, unsigned, stale and replayed deliveries change nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import shlex
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from examples.rental_host import user_app
from examples.rental_host.webhooks import TOLERANCE_S, WebhookRejected, signature, verify

from tests.integration.examples.conftest import GUEST_EMAIL, World, until
from tests.support import auth

pytestmark = pytest.mark.timeout(90)

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER = "whsec_" + base64.b64encode(b"\x01" * 32).decode()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def headers_for(secret: str, msg_id: str, stamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(secret, msg_id, stamp, body),
        "content-type": "application/json",
    }


# --------------------------------------------------------------------------- the verifier


def test_signature_is_the_documented_hmac() -> None:
    """Standard Webhooks: base64(HMAC-SHA256(base64decode(secret after whsec_),
    "id.timestamp.body")), written out here independently of the example's code."""
    body = b'{"id":"7","type":"command.ok"}'
    key = bytes(range(32))
    mac = hmac.new(key, b"7.1700000000." + body, hashlib.sha256).digest()
    assert signature(SECRET, "7", 1_700_000_000, body) == "v1," + base64.b64encode(mac).decode()


def test_verify_accepts_the_right_signature_among_several() -> None:
    body = b"{}"
    now = int(time.time())
    good = headers_for(SECRET, "41", now, body)
    # during a rotation the RAS signs with both secrets: either of ours may match
    good["webhook-signature"] = f"v1,{'A' * 44} " + good["webhook-signature"]
    delivery = verify([OTHER, SECRET], good, body, now)
    assert (delivery.id, delivery.timestamp, delivery.body) == ("41", now, body)


Headers = dict[str, str]


def _unsigned(h: Headers, b: bytes) -> tuple[Headers, bytes]:
    return h | {"webhook-signature": ""}, b


def _no_id(h: Headers, b: bytes) -> tuple[Headers, bytes]:
    return {k: v for k, v in h.items() if k != "webhook-id"}, b


def _body_changed(h: Headers, b: bytes) -> tuple[Headers, bytes]:
    return h, b + b" "


def _id_changed(h: Headers, b: bytes) -> tuple[Headers, bytes]:
    return h | {"webhook-id": "42"}, b


def _other_scheme(h: Headers, b: bytes) -> tuple[Headers, bytes]:
    return h | {"webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b


def _bad_timestamp(h: Headers, b: bytes) -> tuple[Headers, bytes]:
    return h | {"webhook-timestamp": "soon"}, b


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(_unsigned, "missing", id="unsigned"),
        pytest.param(_no_id, "missing", id="no-id"),
        pytest.param(_body_changed, "no valid signature", id="body-changed"),
        pytest.param(_id_changed, "no valid signature", id="id-changed"),
        pytest.param(_other_scheme, "no valid signature", id="unknown-scheme"),
        pytest.param(_bad_timestamp, "Unix seconds", id="bad-timestamp"),
    ],
)
def test_verify_refuses(
    change: Callable[[Headers, bytes], tuple[Headers, bytes]], reason: str
) -> None:
    body = b'{"id":"41"}'
    now = int(time.time())
    headers, sent = change(headers_for(SECRET, "41", now, body), body)
    with pytest.raises(WebhookRejected, match=reason):
        verify([SECRET], headers, sent, now)


def test_verify_refuses_a_forged_and_an_old_delivery() -> None:
    body = b"{}"
    now = int(time.time())
    with pytest.raises(WebhookRejected, match="no valid signature"):
        verify([SECRET], headers_for(OTHER, "1", now, body), body, now)
    old = now - TOLERANCE_S - 1
    with pytest.raises(WebhookRejected, match="too far"):
        verify([SECRET], headers_for(SECRET, "1", old, body), body, now)
    ahead = now + TOLERANCE_S + 1
    with pytest.raises(WebhookRejected, match="too far"):
        verify([SECRET], headers_for(SECRET, "1", ahead, body), body, now)


# --------------------------------------------------------------------------- end to end


def consent_form(page: str) -> tuple[str, dict[str, list[str]]]:
    """The consent page's form as a browser would post it (action, fields)."""
    found = re.search(r'<form method=post action="([^"]+)"', page)
    assert found is not None, page
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(
        r'<input type=(?:hidden|checkbox) name=(\w+) value="([^"]*)"', page
    ):
        fields.setdefault(name, []).append(html.unescape(value))
    return html.unescape(found[1]), fields


async def connect(world: World) -> None:
    """The host connects the app: /connect, their heslock app's consent ticket, the
    consent page (only the booked lock ticked), Allow, back to the app's /callback."""
    ras = world.rig.client
    page = await world.app.get("/connect")
    assert page.status_code == 200, page.text
    found = re.search(r'<a href="([^"]+)">', page.text)
    assert found is not None, page.text
    authorize = html.unescape(found[1])
    asked = query_of(authorize)
    assert authorize.startswith(f"{world.rig.server.url}/oauth/authorize?")
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43
    assert asked["state"]
    assert asked["redirect_uri"] == f"{world.app_url}/callback"
    assert set(asked["scope"].split()) == {"locks:read", "shares:manage", "events:read"}

    ticket = await ras.post(
        "/oauth/authorize/ticket",
        json={"query": urlsplit(authorize).query},
        headers=auth("host"),
    )
    assert ticket.status_code == 201, ticket.text
    consent = await ras.get(ticket.json()["consent_url"])
    assert consent.status_code == 200, consent.text
    action, fields = consent_form(consent.text)
    assert world.lock_id in fields["lock_id"]
    fields["lock_id"] = [world.lock_id]
    fields["decision"] = ["approve"]
    answer = await ras.post(action, data=fields)
    assert answer.status_code == 302, answer.text
    back = answer.headers["location"]
    assert back.startswith(f"{world.app_url}/callback?")

    # an answer naming another issuer (RFC 9207 mix-up) is refused, and spends the state
    forged = query_of(back) | {"iss": "https://evil.example"}
    refused = await world.app.get("/callback", params=forged)
    assert refused.status_code == 400
    assert "iss" in refused.text
    assert world.host.store.token() is None
    # so the real one is refused too now: start again, the browser follows at once
    again = await world.app.get("/callback", params=query_of(back))
    assert again.status_code == 400
    assert "state" in again.text


async def connect_for_real(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """The same, the host's heslock app being user_app.py (the command /connect shows)."""
    ras = world.rig.client
    page = await world.app.get("/connect")
    found = re.search(r"<pre[^>]*>([^<]+)</pre>", page.text)
    assert found is not None, page.text
    argv = shlex.split(html.unescape(found[1]))
    assert argv[1].endswith("user_app.py")
    capsys.readouterr()
    assert await user_app.run(user_app.parser().parse_args(["--profile", "host", *argv[4:]])) == 0
    consent_url = capsys.readouterr().out.splitlines()[-1]
    assert "consent_ticket=" in consent_url
    consent = await ras.get(consent_url)
    action, fields = consent_form(consent.text)
    fields["lock_id"] = [world.lock_id]
    fields["decision"] = ["approve"]
    answer = await ras.post(action, data=fields)
    assert answer.status_code == 302, answer.text
    done = await world.app.get(answer.headers["location"])
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/"


async def state(world: World) -> dict[str, Any]:
    response = await world.app.get("/api/state")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def book(world: World, check_in: datetime, check_out: datetime) -> dict[str, Any]:
    response = await world.app.post(
        "/bookings",
        data={
            "lock_id": world.lock_id,
            "guest": GUEST_EMAIL,
            "check_in": check_in.isoformat(),
            "check_out": check_out.isoformat(),
        },
        headers={"accept": "application/json"},
    )
    assert response.status_code == 201, response.text
    booking: dict[str, Any] = response.json()
    return booking


async def post_webhook(
    world: World, secret: str, msg_id: str, body: dict[str, Any], stamp: int | None = None
) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = headers_for(secret, msg_id, int(time.time()) if stamp is None else stamp, raw)
    return await world.app.post("/webhooks", content=raw, headers=headers)


async def test_host_connects_books_and_sees_the_guest_arrive(
    world: World, profiles: None, capsys: pytest.CaptureFixture[str]
) -> None:
    ras = world.rig.client
    home = await world.app.get("/")
    assert "Not connected" in home.text

    await connect(world)
    await connect_for_real(world, capsys)
    first = world.host.store.token()
    assert first is not None
    assert set(first["scope"].split()) == {"locks:read", "shares:manage", "events:read"}

    # the granted lock, listed with the app's token
    home = await world.app.get("/")
    assert home.status_code == 200, home.text
    assert "front door" in home.text
    assert world.lock_id in home.text

    # the access token is refreshed when it is about to expire; the newest pair is kept
    token = world.host.ras.oauth.token
    assert token is not None
    token["expires_at"] = int(time.time()) - 1
    home = await world.app.get("/")
    assert "front door" in home.text
    second = world.host.store.token()
    assert second is not None
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]

    # a booking: a guest share of that lock from check-in to check-out
    now = datetime.now(UTC).replace(microsecond=0)
    check_in, check_out = now - timedelta(hours=1), now + timedelta(days=2)
    booking = await book(world, check_in, check_out)
    assert booking["status"] == "invited"
    share = (await ras.get(f"/v1/shares/{booking['share_id']}", headers=auth("host"))).json()
    assert share["invitee"] == {"kind": "email", "address": GUEST_EMAIL}
    assert [lock["id"] for lock in share["locks"]] == [world.lock_id]
    assert share["role"] == "guest"
    assert share["status"] == "pending"
    assert share["validity"]["kind"] == "from_until"
    assert datetime.fromisoformat(share["validity"]["not_before"]) == check_in
    assert datetime.fromisoformat(share["validity"]["not_after"]) == check_out

    # a second booking, cancelled by the host in the app: the share is revoked at the RAS
    later = await book(world, now + timedelta(days=10), now + timedelta(days=12))
    elsewhere = {"origin": "https://evil.example"}
    refused = await world.app.post(f"/bookings/{later['id']}/cancel", headers=elsewhere)
    assert refused.status_code == 403
    cancelled = await world.app.post(
        f"/bookings/{later['id']}/cancel", headers={"origin": world.app_url}
    )
    assert cancelled.status_code == 303
    revoked = (await ras.get(f"/v1/shares/{later['share_id']}", headers=auth("host"))).json()
    assert revoked["status"] == "revoked"

    # the guest accepts the invitation and unlocks, through the gateway
    capsys.readouterr()
    args = user_app.parser().parse_args(["--profile", "guest", "invitations", "--accept"])
    assert await user_app.run(args) == 0
    assert f"accepted: share {booking['share_id']} is active" in capsys.readouterr().out
    unlocked = await ras.post(
        f"/v1/locks/{world.lock_id}/commands",
        json={"command": "unlock"},
        headers={**auth("guest"), "Idempotency-Key": "guest-arrives"},
    )
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["state"] == "ok"

    sub = world.host.store.subscription()
    assert sub is not None
    assert sub["url"] == f"{world.app_url}/webhooks"

    async def arrived() -> bool:
        bookings = {b["id"]: b for b in (await state(world))["bookings"]}
        return bool(bookings[booking["id"]]["status"] == "arrived")

    await until(arrived, "the arrival webhook")
    bookings = {b["id"]: b for b in (await state(world))["bookings"]}
    assert bookings[booking["id"]]["grantee_id"] == str(world.rig.ids["guest"])
    assert bookings[later["id"]]["status"] == "cancelled"
    assert "arrived" in (await world.app.get("/")).text

    # what the RAS delivered: the guest's unlock, by its feed id
    events = (
        await ras.get("/v1/events", params={"kind": "command.ok"}, headers=auth("host"))
    ).json()
    unlock = next(e for e in events if e["actor_id"] == str(world.rig.ids["guest"]))
    delivered = str(unlock["id"])

    # forged, unsigned, stale: refused; a replay of a delivered id (even freshly signed)
    # is acknowledged and not acted on. Each would cancel a third booking if acted on.
    third = await book(world, now + timedelta(days=20), now + timedelta(days=22))
    secret = str(sub["secret"])
    revoke = {
        "id": "999999",
        "type": "share.revoked",
        "timestamp": now.isoformat(),
        "subscription": sub["id"],
        "data": {"payload": {"share_id": third["share_id"]}},
    }
    stranger = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    forged = await post_webhook(world, stranger, "999999", revoke)
    assert forged.status_code == 401, forged.text
    unsigned = await world.app.post(
        "/webhooks",
        json=revoke,
        headers={"webhook-id": "999999", "webhook-timestamp": str(int(time.time()))},
    )
    assert unsigned.status_code == 401, unsigned.text
    old = int(time.time()) - TOLERANCE_S - 60
    stale = await post_webhook(world, secret, "999999", revoke, stamp=old)
    assert stale.status_code == 401, stale.text
    replay = await post_webhook(world, secret, delivered, revoke)
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"duplicate": True}
    bookings = {b["id"]: b for b in (await state(world))["bookings"]}
    assert bookings[third["id"]]["status"] == "invited"
    assert bookings[booking["id"]]["status"] == "arrived"
    # the same delivery with a new id and our secret is acted on: the checks above bite
    genuine = await post_webhook(world, secret, "999999", revoke)
    assert genuine.json() == {"ok": True}
    bookings = {b["id"]: b for b in (await state(world))["bookings"]}
    assert bookings[third["id"]]["status"] == "cancelled"

    # the host revokes the app's grant in their own app: its tokens die, the refresh is
    # refused, and the app forgets the grant and asks to connect again
    grants = (await ras.get("/v1/grants", headers=auth("host"))).json()
    assert len(grants) == 1
    gone = await ras.delete(f"/v1/grants/{grants[0]['id']}", headers=auth("host"))
    assert gone.status_code == 204, gone.text
    home = await world.app.get("/")
    assert "Not connected" in home.text
    assert world.host.store.token() is None
