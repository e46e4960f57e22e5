"""The token endpoint's throttle, and the sweep of expired codes, tickets and tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from heslock.ras.services.oauth.sweep import CODE_GRACE, sweep
from heslock.ras.store import create_sessionmaker, utcnow
from heslock.ras.store.models import (
    OAuthCode,
    OAuthConsentTicket,
    OAuthToken,
    WebhookSubscription,
)
from tests.integration.ras.oauth.conftest import App, OAuthRig, open_rig

pytestmark = pytest.mark.asyncio

THROTTLE = {
    "oauth_token_client_attempts": 6,
    "oauth_token_address_attempts": 1000,
    "oauth_token_failure_weight": 5,
}


@pytest.fixture
async def tight(tmp_path: Path, database_url: str) -> AsyncIterator[OAuthRig]:
    async with open_rig(tmp_path, database_url, **THROTTLE) as rig:
        yield rig


async def count(rig: OAuthRig, model: type) -> int:
    async with create_sessionmaker(rig.ras.engine)() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_token_endpoint_is_throttled_per_client(tight: OAuthRig) -> None:
    olga = await tight.person("olga")
    app = await tight.register_app(olga, "confidential")
    grant = {"grant_type": "client_credentials", "scope": "locks:read"}
    # Authenticated (no grant from the owner yet, so refused: not a throttle matter).
    first = await tight.token(app, grant)
    assert first.status_code == 400, first.text
    # One wrong secret costs five attempts: 1 + 5 = 6, the limit.
    wrong = App(app.client_id, "hlos_" + "A" * 43, app.redirect_uris)
    refused = await tight.token(wrong, grant)
    assert refused.status_code == 401
    throttled = await tight.token(app, grant)  # even with the right secret now
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) >= 1
    assert throttled.json()["type"].endswith("/rate-limited")
    # Another client from the same address is not held up by it.
    other = await tight.register_app(olga, "confidential")
    assert (await tight.token(other, grant)).status_code == 400


async def test_sweep_removes_expired_codes_tickets_and_old_tokens(rig: OAuthRig) -> None:
    olga = await rig.person("olga")
    app = await rig.register_app(olga)
    await rig.authorise(olga, app)  # a code never redeemed, a spent ticket
    tokens = await rig.tokens(olga, app)  # a code redeemed, an access + refresh token
    assert await count(rig, OAuthCode) == 2
    assert await count(rig, OAuthConsentTicket) == 2
    assert await count(rig, OAuthToken) == 2
    sessionmaker = create_sessionmaker(rig.ras.engine)
    keep = timedelta(days=rig.ras.settings.oauth_token_keep_days)

    now = utcnow()
    swept = await sweep(sessionmaker, now, keep)
    assert (swept.codes, swept.tickets, swept.tokens) == (0, 0, 0)  # all still current

    later = now + timedelta(seconds=rig.ras.settings.oauth_code_ttl_s) + CODE_GRACE * 2
    swept = await sweep(sessionmaker, later, keep)
    assert (swept.codes, swept.tickets, swept.tokens) == (2, 2, 0)
    # The access token still works (its row stays while in force).
    answer = await rig.api("GET", "/v1/locks", tokens["access_token"])
    assert answer.status_code == 200

    # A webhook of a grant the user revoked goes with the next sweep.
    hook = await rig.api(
        "POST",
        "/v1/webhooks",
        tokens["access_token"],
        json={"url": "https://93.184.215.14/hook", "events": ["lock.*"]},
    )
    assert hook.status_code == 201, hook.text
    assert (await sweep(sessionmaker, later, keep)).webhooks == 0
    grants = await rig.client.get("/v1/grants", headers=olga.auth)
    (grant,) = grants.json()
    revoked = await rig.client.delete(f"/v1/grants/{grant['id']}", headers=olga.auth)
    assert revoked.status_code == 204
    assert (await sweep(sessionmaker, later, keep)).webhooks == 1
    assert await count(rig, WebhookSubscription) == 0

    much_later = now + timedelta(seconds=rig.ras.settings.oauth_refresh_ttl_s) + keep * 2
    swept = await sweep(sessionmaker, much_later, keep)
    assert swept.tokens == 2
    assert await count(rig, OAuthToken) == 0
