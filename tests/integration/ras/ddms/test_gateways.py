"""Gateways and the SCS credential store over real HTTPS; the two-user matrix of every
DDMS route; mass assignment refused."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from scramp import ScramClient, ScramException, ScramMechanism

from heslock.ras.services.scs.credentials import ScsCredentialStore
from heslock.ras.store.models import Gateway
from heslock.xmpp.sasl import ScramCredentials
from tests.integration.ras.ddms.conftest import TEST_SCRAM_ITERATIONS, Ras
from tests.support import auth


def scram_login(credentials: ScramCredentials, username: str, password: str) -> None:
    """A full RFC 5802 exchange: scramp's client against the stored verifiers."""
    client = ScramClient(["SCRAM-SHA-256"], username, password)
    server = ScramMechanism("SCRAM-SHA-256").make_server(lambda _u: credentials.auth_info())
    server.set_client_first(client.get_client_first())
    client.set_server_first(server.get_server_first())
    server.set_client_final(client.get_client_final())
    client.set_server_final(server.get_server_final())


async def test_gateway_lifecycle_and_scram(ras: Ras) -> None:
    store = ScsCredentialStore(ras.maker(), ras.settings.domain)
    created = await ras.client.post("/v1/gateways", json={"name": "hall"}, headers=auth("a"))
    assert created.status_code == 201
    gw: dict[str, Any] = created.json()
    assert gw["jid"] == f"{gw['id']}@localhost/bgw"
    assert gw["username"] == gw["id"]
    secret = gw["secret"]
    assert len(secret) >= 40
    async with ras.maker()() as session:
        row = await session.get(Gateway, uuid.UUID(gw["id"]))
    assert row is not None
    assert row.scram_iterations == TEST_SCRAM_ITERATIONS
    assert secret.encode() not in row.scram_salt + row.scram_stored_key + row.scram_server_key

    creds = await store.scram_sha256(gw["id"])
    assert creds is not None
    scram_login(creds, gw["id"], secret)
    with pytest.raises(ScramException):
        scram_login(creds, gw["id"], secret + "x")
    assert await store.scram_sha256("not-a-gateway") is None
    assert await store.scram_sha256(str(uuid.uuid4())) is None

    listed = (await ras.client.get("/v1/gateways", headers=auth("a"))).json()
    assert [g["id"] for g in listed] == [gw["id"]]
    assert "secret" not in listed[0]
    assert secret not in (await ras.client.get(f"/v1/gateways/{gw['id']}", headers=auth("a"))).text
    renamed = await ras.client.patch(
        f"/v1/gateways/{gw['id']}", json={"name": "garage"}, headers=auth("a")
    )
    assert renamed.json()["name"] == "garage"

    rotated = (await ras.client.post(f"/v1/gateways/{gw['id']}/secret", headers=auth("a"))).json()
    assert rotated["secret"] != secret
    fresh = await store.scram_sha256(gw["id"])
    assert fresh is not None
    scram_login(fresh, gw["id"], rotated["secret"])
    with pytest.raises(ScramException):
        scram_login(fresh, gw["id"], secret)  # the old secret is dead
    assert ras.hook.calls == [(uuid.UUID(gw["id"]), f"{gw['id']}@localhost", "secret-rotated")]

    revoked = await ras.client.post(f"/v1/gateways/{gw['id']}/revoke", headers=auth("a"))
    assert revoked.json()["revoked_at"] is not None
    assert ras.hook.calls[-1] == (uuid.UUID(gw["id"]), f"{gw['id']}@localhost", "revoked")
    assert await store.scram_sha256(gw["id"]) is None
    again = await ras.client.post(f"/v1/gateways/{gw['id']}/secret", headers=auth("a"))
    assert again.status_code == 409
    actions = [r.action for r in await ras.audit_rows() if r.action.startswith("gateway.")]
    assert actions == [
        "gateway.create",
        "gateway.rename",
        "gateway.rotate_secret",
        "gateway.revoke",
    ]


async def test_two_user_matrix(ras: Ras) -> None:
    """User B (and anonymous callers) on every route of user A's things: never data."""
    lock = await ras.new_lock()
    lock_id = await ras.bind(lock)
    pending = await ras.new_lock()
    reg = await ras.start(pending)
    gw = (await ras.client.post("/v1/gateways", json={"name": "hall"}, headers=auth("a"))).json()
    frame = base64.b64encode(b"\0" * 20).decode()
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/locks/{lock_id}", None),
        ("PATCH", f"/v1/locks/{lock_id}", {"name": "mine now"}),
        ("DELETE", f"/v1/locks/{lock_id}", None),
        ("POST", f"/v1/locks/{lock_id}/transfer", {"to_user": str(ras.ids["b"])}),
        ("POST", f"/v1/locks/{lock_id}/rotation", None),
        ("GET", f"/v1/registrations/{reg['registration_id']}", None),
        ("POST", f"/v1/registrations/{reg['registration_id']}/answers", {"frame": frame}),
        ("POST", f"/v1/registrations/{reg['registration_id']}/frames", None),
        ("GET", f"/v1/gateways/{gw['id']}", None),
        ("PATCH", f"/v1/gateways/{gw['id']}", {"name": "mine now"}),
        ("POST", f"/v1/gateways/{gw['id']}/revoke", None),
        ("POST", f"/v1/gateways/{gw['id']}/secret", None),
    ]
    secrets = [lock_id, reg["registration_id"], gw["id"], "front door", "hall"]
    for method, path, body in routes:
        response = await ras.client.request(method, path, json=body, headers=auth("b"))
        assert response.status_code == 404, (method, path, response.text)
        assert not any(s in response.text.replace(path, "") for s in secrets), path
        anonymous = await ras.client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
    # Admin-only routes: B is refused (403), the device stays as it was.
    for method, path in (
        ("POST", "/v1/admin/devices/import"),
        ("GET", f"/v1/admin/devices/{lock.identity.device_id}"),
        ("POST", f"/v1/admin/devices/{pending.identity.device_id}/revoke"),
    ):
        refused = await ras.client.request(method, path, json={}, headers=auth("b"))
        assert refused.status_code == 403, path
    assert (await ras.client.get("/v1/locks", headers=auth("b"))).json() == []
    assert (await ras.client.get("/v1/gateways", headers=auth("b"))).json() == []
    # Nothing changed for A.
    mine = (await ras.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).json()
    assert (mine["name"], mine["owner_id"], mine["key_version"]) == (
        "front door",
        str(ras.ids["a"]),
        1,
    )
    gw_now = (await ras.client.get(f"/v1/gateways/{gw['id']}", headers=auth("a"))).json()
    assert (gw_now["name"], gw_now["revoked_at"]) == ("hall", None)
    assert ras.hook.calls == []
    assert (await ras.relay(pending, reg))["phase"] == "committed"


async def test_mass_assignment_is_refused(ras: Ras) -> None:
    lock = await ras.new_lock()
    lock_id = await ras.bind(lock)
    gw = (await ras.client.post("/v1/gateways", json={"name": "hall"}, headers=auth("a"))).json()
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("PATCH", f"/v1/locks/{lock_id}", {"name": "x", "owner_id": str(ras.ids["b"])}),
        ("PATCH", f"/v1/locks/{lock_id}", {"name": "x", "key_version": 9}),
        ("POST", f"/v1/locks/{lock_id}/transfer", {"to_user": str(ras.ids["b"]), "by": "admin"}),
        ("POST", "/v1/gateways", {"name": "x", "owner_id": str(ras.ids["b"])}),
        ("PATCH", f"/v1/gateways/{gw['id']}", {"name": "x", "revoked_at": None}),
        (
            "POST",
            "/v1/registrations",
            {"device_id": lock.identity.device_id.hex, "name": "x", "user_id": "u"},
        ),
        ("POST", f"/v1/registrations/{uuid.uuid4()}/answers", {"frame": "AA==", "phase": "x"}),
    ]
    for method, path, body in attempts:
        response = await ras.client.request(method, path, json=body, headers=auth("a"))
        assert response.status_code == 422, (path, response.text)
        assert response.json()["type"].endswith("/validation-failed")
    mine = (await ras.client.get(f"/v1/locks/{lock_id}", headers=auth("a"))).json()
    assert (mine["name"], mine["key_version"]) == ("front door", 1)
