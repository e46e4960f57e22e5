"""Subscribing: who may, to what, and the answers (CRUD, auth, SSRF refusals)."""

from __future__ import annotations

import pytest

from tests.integration.ras.webhooks.conftest import HookRig

pytestmark = pytest.mark.asyncio


async def test_crud_auth_and_isolation(hooks: HookRig) -> None:
    olga = await hooks.person("olga")
    lock = await hooks.add_lock(olga)
    app, token = await hooks.app_token(olga, [lock])
    receiver = await hooks.receiver()

    created = await hooks.subscribe(token, receiver.url, ["lock.*", "command.ok", "lock.*"])
    assert created["state"] == "active"
    assert created["events"] == ["command.ok", "lock.*"]
    assert created["secret"].startswith("whsec_")
    assert created["app_id"] == app.client_id
    hook_id = created["id"]

    listed = await hooks.api("GET", "/v1/webhooks", token)
    assert [h["id"] for h in listed.json()] == [hook_id]
    assert listed.json()[0]["secret"] is None  # shown once
    one = await hooks.api("GET", f"/v1/webhooks/{hook_id}", token)
    assert one.status_code == 200
    assert one.json()["url"] == receiver.url

    # Without events:read the routes are closed to the app.
    _app2, narrow = await hooks.app_token(olga, [lock], scope="locks:read")
    assert (await hooks.api("GET", "/v1/webhooks", narrow)).status_code == 403
    # Another app (even of the same user) sees nothing of it.
    _other, other_token = await hooks.app_token(olga, [lock])
    for method, path in [
        ("GET", f"/v1/webhooks/{hook_id}"),
        ("DELETE", f"/v1/webhooks/{hook_id}"),
        ("POST", f"/v1/webhooks/{hook_id}/rotate"),
        ("GET", f"/v1/webhooks/{hook_id}/deliveries"),
    ]:
        assert (await hooks.api(method, path, other_token)).status_code == 404, path
    assert (await hooks.api("GET", "/v1/webhooks", other_token)).json() == []
    # A person's own token is not an app's.
    person = await hooks.client.get("/v1/webhooks", headers=olga.auth)
    assert person.status_code == 403

    # The owning account sees the app's webhooks, another user does not.
    owned = await hooks.client.get(f"/v1/apps/{app.client_id}/webhooks", headers=olga.auth)
    assert [h["id"] for h in owned.json()] == [hook_id]
    vera = await hooks.person("vera")
    foreign = await hooks.client.get(f"/v1/apps/{app.client_id}/webhooks", headers=vera.auth)
    assert foreign.status_code == 404

    deleted = await hooks.api("DELETE", f"/v1/webhooks/{hook_id}", token)
    assert deleted.status_code == 204
    assert (await hooks.api("GET", f"/v1/webhooks/{hook_id}", token)).status_code == 404


REFUSED = [
    ("http://hooks.example.com/x", ["*"]),  # not https
    ("https://10.0.0.8/x", ["*"]),  # private
    ("https://169.254.169.254/latest", ["*"]),  # cloud metadata (link-local)
    ("https://[::ffff:192.168.1.1]/x", ["*"]),  # private behind an IPv4-mapped address
    ("https://user:pw@203.0.113.9/x", ["*"]),  # credentials in the URL
    ("http://127.0.0.1:9/x", ["LOCK"]),  # not a kind
    ("http://127.0.0.1:9/x", []),  # no kind
]


async def test_refused_subscriptions(hooks: HookRig) -> None:
    olga = await hooks.person("olga")
    lock = await hooks.add_lock(olga)
    _app, token = await hooks.app_token(olga, [lock])
    for url, events in REFUSED:
        body = {"url": url, "events": events}
        answer = await hooks.api("POST", "/v1/webhooks", token, json=body)
        assert answer.status_code == 422, (url, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert (await hooks.api("GET", "/v1/webhooks", token)).json() == []
