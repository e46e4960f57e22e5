"""RFC 9700 (OAuth 2.0 Security Best Current Practice) as tests, each against the
running RAS over TLS: redirect-URI matching, PKCE, refused grants, code reuse, scope
escalation, and a token that loses its power when the user loses theirs."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.ras.oauth.conftest import REDIRECT, OAuthRig, pkce, query_of

VARIANTS = [
    REDIRECT + "/",  # trailing slash
    REDIRECT.replace("app.example.net", "APP.example.net"),  # case of the host
    REDIRECT.replace("/callback", "/Callback"),  # case of the path
    REDIRECT.replace("app.example.net", "app.example.net:443"),  # explicit port
    REDIRECT.replace("app.example.net", "app.example.net:8443"),  # other port
    REDIRECT + "/extra",  # extra path
    REDIRECT + "?next=https://evil.example",  # extra query
    REDIRECT.replace("https:", "http:"),  # downgraded scheme
    "https://evil.example/callback",  # another host
]


@pytest.mark.parametrize("variant", VARIANTS)
async def test_redirect_uri_is_matched_exactly(rig: OAuthRig, variant: str) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    _verifier, challenge = pkce()
    params = rig.authorize_query(app, challenge=challenge, redirect_uri=variant)
    page = await rig.client.get("/oauth/authorize", params=params)
    # Never a redirect to an unverified URI (no open redirector): an error page.
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "not supported by client" in page.text


@pytest.mark.parametrize("variant", [REDIRECT + "/", REDIRECT + "?a=1", None])
async def test_token_endpoint_wants_the_same_redirect_uri(
    rig: OAuthRig, variant: str | None
) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    auth = await rig.authorise(olga, app, scope="locks:read")
    form = {"grant_type": "authorization_code", "code": auth.code, "code_verifier": auth.verifier}
    if variant is not None:
        form["redirect_uri"] = variant
    response = await rig.token(app, form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_pkce_is_required(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    params = rig.authorize_query(app, challenge=None, state="s-9")
    answer = await rig.client.get("/oauth/authorize", params=params)
    assert answer.status_code == 302
    got = query_of(answer.headers["location"])
    assert got["error"] == "invalid_request"
    assert got["state"] == "s-9"
    assert got["iss"] == rig.ras.server.url


async def test_pkce_plain_is_refused(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    verifier, _ = pkce()
    params = rig.authorize_query(
        app, code_challenge=verifier, code_challenge_method="plain", state="s-p"
    )
    answer = await rig.client.get("/oauth/authorize", params=params)
    assert answer.status_code == 302
    got = query_of(answer.headers["location"])
    assert got["error"] == "invalid_request"
    # A challenge without a method means plain (RFC 7636 4.3): refused as well.
    params = rig.authorize_query(app, code_challenge=verifier + "A" * 0)
    answer = await rig.client.get("/oauth/authorize", params=params)
    assert query_of(answer.headers["location"])["error"] == "invalid_request"


@pytest.mark.parametrize("verifier", [None, "wrong", "W" * 64])
async def test_missing_or_wrong_verifier(rig: OAuthRig, verifier: str | None) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    auth = await rig.authorise(olga, app, scope="locks:read")
    form = {"grant_type": "authorization_code", "code": auth.code, "redirect_uri": REDIRECT}
    if verifier is not None:
        form["code_verifier"] = verifier
    response = await rig.token(app, form)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "invalid_grant")
    # The code is spent: the right verifier does not rescue it.
    retry = await rig.redeem(app, auth)
    assert retry.status_code == 400


async def test_implicit_grant_is_refused(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    _verifier, challenge = pkce()
    params = rig.authorize_query(app, challenge=challenge, response_type="token", state="s-i")
    answer = await rig.client.get("/oauth/authorize", params=params)
    assert answer.status_code == 302
    got = query_of(answer.headers["location"])
    assert got["error"] == "unsupported_response_type"
    assert "access_token" not in answer.headers["location"]


async def test_password_grant_is_refused(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga, "confidential")
    response = await rig.token(
        app, {"grant_type": "password", "username": olga.email, "password": "x"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_code_reuse_revokes_what_the_first_use_produced(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    await rig.add_lock(olga)
    app = await rig.register_app(olga)
    auth = await rig.authorise(olga, app, scope="locks:read")
    first = await rig.redeem(app, auth)
    assert first.status_code == 200
    tokens = first.json()
    assert (await rig.api("GET", "/v1/locks", tokens["access_token"])).status_code == 200

    second = await rig.redeem(app, auth)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert (await rig.api("GET", "/v1/locks", tokens["access_token"])).status_code == 401
    refresh = await rig.token(
        app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 400
    assert len(await rig.ras.audit("oauth.code_reuse")) == 1


async def test_code_of_another_app_is_refused(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    other = await rig.register_app(olga)
    auth = await rig.authorise(olga, app, scope="locks:read")
    response = await rig.redeem(other, auth)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_scope_escalation_is_refused(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    lock_id = await rig.add_lock(olga)
    app = await rig.register_app(olga)
    # The app asks for everything; the user narrows it to locking only.
    tokens = await rig.tokens(olga, app, chosen=["locks:lock"])
    assert tokens["scope"] == "locks:lock"
    token = tokens["access_token"]
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    unlock = await rig.api(
        "POST",
        f"/v1/locks/{lock_id}/commands",
        token,
        json={"command": "unlock"},
        headers=headers,
    )
    assert unlock.status_code == 403, unlock.text
    assert unlock.json()["type"].endswith("/forbidden")
    # Locking is within the scope: the request gets past every check to the relay,
    # which this RAS does not run (503), so nothing but the relay refused it.
    lock = await rig.api(
        "POST",
        f"/v1/locks/{lock_id}/commands",
        token,
        json={"command": "lock"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert lock.status_code == 503, lock.text
    events = await rig.api("GET", f"/v1/locks/{lock_id}/events", token)
    assert events.status_code == 403
    # A broader scope on refresh is refused (RFC 6749 6).
    wider = await rig.token(
        app,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "locks:lock locks:operate",
        },
    )
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"
    # An unknown scope at the authorisation endpoint is refused too.
    _verifier, challenge = pkce()
    params = rig.authorize_query(app, challenge=challenge, scope="locks:read admin")
    answer = await rig.client.get("/oauth/authorize", params=params)
    assert query_of(answer.headers["location"])["error"] == "invalid_scope"


async def test_token_loses_power_when_the_share_is_revoked(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    gus = await rig.person("gus")
    lock_id = await rig.add_lock(olga)
    shared = await rig.client.post(
        "/v1/shares",
        json={"invitee": {"email": gus.email}, "lock_ids": [str(lock_id)], "role": "guest"},
        headers=olga.auth,
    )
    assert shared.status_code == 201, shared.text
    share_id = shared.json()["id"]
    accepted = await rig.client.post(f"/v1/invitations/{share_id}/accept", headers=gus.auth)
    assert accepted.status_code == 200, accepted.text

    app = await rig.register_app(gus)
    tokens = await rig.tokens(gus, app, scope="locks:read")
    token = tokens["access_token"]
    assert (await rig.api("GET", f"/v1/locks/{lock_id}", token)).status_code == 200

    revoked = await rig.client.post(f"/v1/shares/{share_id}/revoke", headers=olga.auth)
    assert revoked.status_code == 200, revoked.text
    assert (await rig.api("GET", f"/v1/locks/{lock_id}", token)).status_code == 404
    assert (await rig.api("GET", "/v1/locks", token)).json() == []


async def test_app_tokens_are_refused_outside_the_app_routes(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    await rig.add_lock(olga)
    app = await rig.register_app(olga)
    token = (await rig.tokens(olga, app))["access_token"]
    for method, url in [
        ("GET", "/v1/account"),
        ("GET", "/v1/sessions"),
        ("GET", "/v1/gateways"),
        ("GET", "/v1/apps"),
        ("GET", "/v1/grants"),
        ("GET", "/v1/homes"),
        ("GET", "/v1/shares"),
    ]:
        response = await rig.api(method, url, token)
        assert response.status_code == 403, (url, response.text)
    ticket = await rig.api("POST", "/oauth/authorize/ticket", token, json={"query": "a=b"})
    assert ticket.status_code == 403


async def test_locks_outside_the_narrowing_are_hidden(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    front = await rig.add_lock(olga, "front")
    back = await rig.add_lock(olga, "back")
    app = await rig.register_app(olga)
    token = (await rig.tokens(olga, app, scope="locks:read", lock_ids=[front]))["access_token"]
    assert (await rig.api("GET", f"/v1/locks/{front}", token)).status_code == 200
    assert (await rig.api("GET", f"/v1/locks/{back}", token)).status_code == 404
    listed = await rig.api("GET", "/v1/locks", token)
    assert [lock["id"] for lock in listed.json()] == [str(front)]  # the list is narrowed too


async def test_a_share_not_granted_for_integrations_does_not_serve_an_app(rig: OAuthRig) -> None:
    """The user holds a guest share for the remote and nearby paths only: in their own
    hands it lets them unlock (the command gets as far as the relay, which this rig does
    not run), through an app (the integration path) it does not; the app still sees the
    lock exists (the share is the user's), with no permission on its path."""
    olga = await rig.person("olga")
    gus = await rig.person("gus")
    lock_id = await rig.add_lock(olga)
    body = {
        "invitee": {"email": gus.email},
        "lock_ids": [str(lock_id)],
        "role": "guest",
        "paths": ["remote", "nearby"],
    }
    shared = await rig.client.post("/v1/shares", json=body, headers=olga.auth)
    assert shared.status_code == 201, shared.text
    share_id = shared.json()["id"]
    accepted = await rig.client.post(f"/v1/invitations/{share_id}/accept", headers=gus.auth)
    assert accepted.status_code == 200, accepted.text
    url = f"/v1/locks/{lock_id}/commands"
    unlock = {"command": "unlock"}
    own = await rig.client.post(url, json=unlock, headers={**gus.auth, "Idempotency-Key": "gus-1"})
    assert (own.status_code, own.json()["type"].rsplit("/", 1)[-1]) == (503, "gateway-unavailable")

    app = await rig.register_app(gus)
    token = (await rig.tokens(gus, app, scope="locks:read locks:operate"))["access_token"]
    view = await rig.api("GET", f"/v1/locks/{lock_id}", token)
    assert view.status_code == 200, view.text
    assert view.json()["permissions"].get("integration", []) == []
    refused = await rig.api("POST", url, token, headers={"Idempotency-Key": "app-1"}, json=unlock)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].rsplit("/", 1)[-1] == "access-denied"


async def test_denial_goes_back_with_state_and_issuer(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    _verifier, challenge = pkce()
    params = rig.authorize_query(app, challenge=challenge, state="s-d")
    answer = await rig.decide(olga, params, decision="deny")
    assert answer.status_code == 302
    got = query_of(answer.headers["location"])
    assert answer.headers["location"].startswith(REDIRECT + "?")
    assert got["error"] == "access_denied"
    assert (got["state"], got["iss"]) == ("s-d", rig.ras.server.url)
    assert "code" not in got
    assert (await rig.client.get("/v1/grants", headers=olga.auth)).json() == []


async def test_consent_page_needs_a_ticket_and_its_form_token(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    _verifier, challenge = pkce()
    params = rig.authorize_query(app, challenge=challenge)
    bare = await rig.client.get("/oauth/authorize", params=params)
    assert bare.status_code == 401
    assert bare.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in bare.headers["content-security-policy"]

    page, _url = await rig.consent_page(olga, params)
    action, fields = rig.form_of(page)
    forged = {**fields, "form_token": ["hlof_" + "A" * 43], "decision": ["approve"]}
    refused = await rig.client.post(action, data=forged)
    assert refused.status_code == 403
    # The real form posts once; a replay is refused.
    real = {**fields, "decision": ["approve"]}
    assert (await rig.client.post(action, data=real)).status_code == 302
    assert (await rig.client.post(action, data=real)).status_code == 403

    # A ticket is bound to its request: another scope needs another ticket.
    page, url = await rig.consent_page(olga, params)
    tampered = url.replace("scope=", "scope=shares%3Amanage+")
    assert (await rig.client.get(tampered)).status_code == 401
