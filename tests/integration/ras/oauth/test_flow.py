"""The authorisation code flow with PKCE and the client credentials grant, end to end:
real logins, the consent page, the token endpoint and the RAS API over TLS."""

from __future__ import annotations

import asyncio
import uuid

from tests.integration.ras.oauth.conftest import ALL_SCOPES, OAuthRig


async def test_metadata_is_rfc_8414(rig: OAuthRig) -> None:
    response = await rig.client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    meta = response.json()
    issuer = rig.ras.server.url
    assert meta["issuer"] == issuer
    assert meta["authorization_endpoint"] == f"{issuer}/oauth/authorize"
    assert meta["token_endpoint"] == f"{issuer}/oauth/token"
    assert meta["revocation_endpoint"] == f"{issuer}/oauth/revoke"
    assert meta["introspection_endpoint"] == f"{issuer}/oauth/introspect"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert "implicit" not in meta["grant_types_supported"]
    assert "password" not in meta["grant_types_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert set(meta["scopes_supported"]) == set(ALL_SCOPES.split())


async def test_code_flow_with_pkce_reaches_the_lock(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    lock_id = await rig.add_lock(olga)
    dev = await rig.person("dev")
    app = await rig.register_app(dev)

    page, _ = await rig.consent_page(
        olga, rig.authorize_query(app, challenge="x" * 43, scope="locks:read events:read")
    )
    # The page names the app (escaped), the scopes asked for and the user's locks.
    assert "Rentals &amp; &lt;Co&gt;" in page
    assert "<Co>" not in page
    assert "locks:read" in page
    assert "events:read" in page
    assert "locks:operate" not in page
    assert str(lock_id) in page

    tokens = await rig.tokens(olga, app, scope="locks:read events:read")
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "events:read locks:read"
    assert 0 < tokens["expires_in"] <= 900
    assert tokens["access_token"].startswith("hloa_")
    assert tokens["refresh_token"].startswith("hlor_")

    listed = await rig.api("GET", "/v1/locks", tokens["access_token"])
    assert listed.status_code == 200, listed.text
    assert [lock["id"] for lock in listed.json()] == [str(lock_id)]
    one = await rig.api("GET", f"/v1/locks/{lock_id}", tokens["access_token"])
    assert one.status_code == 200
    events = await rig.api("GET", f"/v1/locks/{lock_id}/events", tokens["access_token"])
    assert events.status_code == 200
    assert events.json() == []

    # The user sees the grant and can revoke it: the app's token dies at once.
    grants = await rig.client.get("/v1/grants", headers=olga.auth)
    assert grants.status_code == 200
    [grant] = grants.json()
    assert grant["app_id"] == app.client_id
    assert grant["scopes"] == ["events:read", "locks:read"]
    assert grant["lock_ids"] == [str(lock_id)]
    revoked = await rig.client.delete(f"/v1/grants/{grant['id']}", headers=olga.auth)
    assert revoked.status_code == 204
    after = await rig.api("GET", "/v1/locks", tokens["access_token"])
    assert after.status_code == 401
    assert (await rig.client.get("/v1/grants", headers=olga.auth)).json() == []


async def test_refresh_rotates_and_reuse_revokes_the_family(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    await rig.add_lock(olga)
    app = await rig.register_app(olga)
    first = await rig.tokens(olga, app, scope="locks:read")

    second = await rig.token(
        app, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert (await rig.api("GET", "/v1/locks", rotated["access_token"])).status_code == 200

    # The old refresh token again: someone else holds the family. All of it dies.
    reuse = await rig.token(
        app, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    assert (await rig.api("GET", "/v1/locks", rotated["access_token"])).status_code == 401
    newest = await rig.token(
        app, {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}
    )
    assert newest.status_code == 400
    assert [r.action for r in await rig.ras.audit("oauth.refresh_reuse")] == ["oauth.refresh_reuse"]


async def test_confidential_app_introspects_and_revokes(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    await rig.add_lock(olga)
    app = await rig.register_app(olga, "confidential")
    tokens = await rig.tokens(olga, app, scope="locks:read")

    seen = await rig.client.post(
        "/oauth/introspect", data={"token": tokens["access_token"]}, auth=app.basic
    )
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert body["active"] is True
    assert body["scope"] == "locks:read"
    assert body["client_id"] == app.client_id
    assert body["sub"] == str(olga.id)

    wrong = await rig.client.post(
        "/oauth/introspect",
        data={"token": tokens["access_token"]},
        auth=(app.client_id, "hlos_" + "A" * 43),
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"

    gone = await rig.client.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"]}, auth=app.basic
    )
    assert gone.status_code == 200
    after = await rig.client.post(
        "/oauth/introspect", data={"token": tokens["access_token"]}, auth=app.basic
    )
    assert after.json() == {"active": False}
    assert (await rig.api("GET", "/v1/locks", tokens["access_token"])).status_code == 401


async def test_public_app_cannot_introspect(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    tokens = await rig.tokens(olga, app, scope="locks:read")
    response = await rig.client.post(
        "/oauth/introspect", data={"token": tokens["access_token"], "client_id": app.client_id}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_client_credentials_within_the_owners_grant(rig: OAuthRig) -> None:
    dev = await rig.person("dev")
    lock_id = await rig.add_lock(dev)
    app = await rig.register_app(dev, "confidential")

    # Nothing granted yet: the app has no access of its own.
    none = await rig.token(app, {"grant_type": "client_credentials"})
    assert none.status_code == 400
    assert none.json()["error"] == "unauthorized_client"

    await rig.tokens(dev, app, scope="locks:read locks:lock")
    issued = await rig.token(app, {"grant_type": "client_credentials", "scope": "locks:read"})
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["scope"] == "locks:read"
    assert "refresh_token" not in body
    listed = await rig.api("GET", "/v1/locks", body["access_token"])
    assert [lock["id"] for lock in listed.json()] == [str(lock_id)]

    beyond = await rig.token(
        app, {"grant_type": "client_credentials", "scope": "locks:read locks:operate"}
    )
    assert beyond.status_code == 400
    assert beyond.json()["error"] == "invalid_scope"


async def test_public_app_has_no_client_credentials(rig: OAuthRig) -> None:
    dev = await rig.person("dev")
    app = await rig.register_app(dev)
    response = await rig.token(app, {"grant_type": "client_credentials"})
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("unauthorized_client", "invalid_client")


async def test_apps_are_listed_and_deleted_by_their_owner(rig: OAuthRig) -> None:
    dev = await rig.person("dev")
    other = await rig.person("other")
    app = await rig.register_app(dev, "confidential")
    listed = (await rig.client.get("/v1/apps", headers=dev.auth)).json()
    assert [a["client_id"] for a in listed] == [app.client_id]
    assert listed[0]["client_secret"] is None  # shown once, at registration
    assert (await rig.client.get("/v1/apps", headers=other.auth)).json() == []
    stranger = await rig.client.delete(f"/v1/apps/{app.client_id}", headers=other.auth)
    assert stranger.status_code == 404
    tokens = await rig.tokens(dev, app, scope="locks:read")
    deleted = await rig.client.delete(f"/v1/apps/{app.client_id}", headers=dev.auth)
    assert deleted.status_code == 204
    assert (await rig.api("GET", "/v1/locks", tokens["access_token"])).status_code == 401
    again = await rig.token(app, {"grant_type": "client_credentials"})
    assert again.json()["error"] == "invalid_client"
    bad = await rig.client.post(
        "/v1/apps",
        json={"name": "x", "type": "public", "redirect_uris": ["http://evil.example/cb"]},
        headers=dev.auth,
    )
    assert bad.status_code == 422
    assert uuid.UUID(app.client_id)


async def test_two_refreshes_at_once_leave_no_live_family(rig: OAuthRig) -> None:
    """Two presentations of one refresh token race: at most one wins, and the family
    ends either way (two holders of one family is the theft signal, RFC 9700 4.14.2)."""
    olga = await rig.person("olga")
    await rig.add_lock(olga)
    app = await rig.register_app(olga)
    first = await rig.tokens(olga, app, scope="locks:read")
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    answers = await asyncio.gather(rig.token(app, form), rig.token(app, form))
    assert sorted(a.status_code for a in answers) in ([200, 400], [400, 400])
    for answer in answers:
        if answer.status_code == 200:
            token = answer.json()["access_token"]
            assert (await rig.api("GET", "/v1/locks", token)).status_code == 401
    assert (await rig.api("GET", "/v1/locks", first["access_token"])).status_code == 401
