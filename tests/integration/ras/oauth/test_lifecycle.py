"""What ends an app's access besides the user's own revocation: an expired code, the
user's account deletion, the developer's; and what the audit log keeps of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.store.models import AuditRecord, OAuthCode, OAuthGrant, OAuthToken
from tests.integration.ras.oauth.conftest import REDIRECT, OAuthRig
from tests.integration.ras.udms.conftest import PASSWORD


async def test_expired_code_is_refused(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    auth = await rig.authorise(olga, app, scope="locks:read")
    async with AsyncSession(rig.ras.engine) as session, session.begin():
        [code] = (await session.execute(select(OAuthCode))).scalars()
        # At most ten minutes, whatever the settings say.
        assert code.expires_at - code.created_at <= timedelta(minutes=10)
        await session.execute(
            update(OAuthCode).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await rig.redeem(app, auth)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_confidential_app_may_post_its_secret(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga, "confidential")
    auth = await rig.authorise(olga, app, scope="locks:read")
    assert app.secret is not None
    response = await rig.client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": auth.code,
            "redirect_uri": REDIRECT,
            "code_verifier": auth.verifier,
            "client_id": app.client_id,
            "client_secret": app.secret,
        },
    )
    assert response.status_code == 200, response.text
    # Without its secret, a confidential app is refused even with the right verifier.
    again = await rig.authorise(olga, app, scope="locks:read")
    bare = await rig.client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": again.code,
            "redirect_uri": REDIRECT,
            "code_verifier": again.verifier,
            "client_id": app.client_id,
        },
    )
    assert bare.status_code == 401
    assert bare.json()["error"] == "invalid_client"


async def test_account_deletion_ends_grants_and_apps(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    dev = await rig.person("dev")
    app = await rig.register_app(dev, "confidential")
    olga_token = (await rig.tokens(olga, app, scope="locks:read"))["access_token"]
    await rig.tokens(dev, app, scope="locks:read")
    service = (await rig.token(app, {"grant_type": "client_credentials"})).json()["access_token"]

    deleted = await rig.client.request(
        "DELETE", "/v1/account", json={"password": PASSWORD}, headers=olga.auth
    )
    assert deleted.status_code == 204
    assert (await rig.api("GET", "/v1/locks", olga_token)).status_code == 401
    assert (await rig.api("GET", "/v1/locks", service)).status_code == 200

    deleted = await rig.client.request(
        "DELETE", "/v1/account", json={"password": PASSWORD}, headers=dev.auth
    )
    assert deleted.status_code == 204
    assert (await rig.api("GET", "/v1/locks", service)).status_code == 401
    refused = await rig.token(app, {"grant_type": "client_credentials"})
    assert refused.json()["error"] == "invalid_client"
    async with AsyncSession(rig.ras.engine) as session:
        grants = (await session.execute(select(OAuthGrant))).scalars().all()
        tokens = (await session.execute(select(OAuthToken))).scalars().all()
    assert grants
    assert all(g.revoked_at is not None for g in grants)
    assert all(t.revoked_at is not None for t in tokens)


async def test_audit_names_apps_and_grants_never_tokens(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga, "confidential")
    tokens = await rig.tokens(olga, app, scope="locks:read")
    async with AsyncSession(rig.ras.engine) as session:
        records = (await session.execute(select(AuditRecord))).scalars().all()
    actions = [r.action for r in records]
    for action in ("app.create", "oauth.consent_ticket", "oauth.consent", "oauth.token"):
        assert action in actions, action
    [issued] = [r for r in records if r.action == "oauth.token"]
    assert issued.actor == f"app:{app.client_id}"
    dump = repr([(r.actor, r.target, r.details) for r in records])
    assert tokens["access_token"] not in dump
    assert tokens["refresh_token"] not in dump
    assert app.secret is not None
    assert app.secret not in dump
    assert uuid.UUID(app.client_id)
