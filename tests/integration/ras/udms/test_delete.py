"""Account deletion: sessions revoked, personal data removed, the audit log keeps only
an opaque id that no longer maps to anyone; the last administrator cannot leave."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.store.models import (
    AccessToken,
    Contact,
    LoginChallenge,
    OtpCode,
    PasswordCredential,
    RefreshToken,
    TotpSecret,
    User,
    UserSession,
)
from tests.integration.ras.udms.conftest import ADMIN_EMAIL, PASSWORD, Ras, bearer, new_email

PHONE = "+442079460777"


async def _count(ras: Ras, model: type, user_id: uuid.UUID) -> int:
    async with AsyncSession(ras.engine) as session:
        column = model.user_id  # type: ignore[attr-defined]  # every UDMS table has one
        return int(await session.scalar(select(func.count()).where(column == user_id)) or 0)


async def test_deletion_removes_personal_data(ras: Ras) -> None:
    email = new_email()
    account = await ras.register(email=email, phone=PHONE)
    await ras.verify_all(account)
    tokens = await ras.login(email)
    other = await ras.login(PHONE, method="sms")
    enrol = await ras.client.post(
        "/v1/account/totp", json={"password": PASSWORD}, headers=bearer(tokens)
    )
    assert enrol.status_code == 201
    user_id = uuid.UUID(account["id"])

    wrong = await ras.client.request(
        "DELETE", "/v1/account", json={"password": "not the password"}, headers=bearer(tokens)
    )
    assert wrong.status_code == 401
    deleted = await ras.client.request(
        "DELETE", "/v1/account", json={"password": PASSWORD}, headers=bearer(tokens)
    )
    assert deleted.status_code == 204

    for pair in (tokens, other):
        assert (await ras.client.get("/v1/account", headers=bearer(pair))).status_code == 401
        refresh = await ras.client.post(
            "/v1/session/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refresh.status_code == 401
    for model in (Contact, PasswordCredential, TotpSecret, OtpCode, UserSession, LoginChallenge):
        assert await _count(ras, model, user_id) == 0, model.__name__
    async with AsyncSession(ras.engine) as session:
        user = await session.get(User, user_id)
        assert await session.scalar(select(func.count()).select_from(AccessToken)) == 0
        assert await session.scalar(select(func.count()).select_from(RefreshToken)) == 0
    assert user is not None
    assert (user.status, user.display_name, user.is_admin) == ("deleted", None, False)
    assert user.deleted_at is not None

    records = await ras.audit()
    assert any(r.action == "account.delete" and r.target == f"user:{user_id}" for r in records)
    rendered = " ".join(f"{r.actor} {r.target} {r.source_ip} {r.details}" for r in records)
    assert email not in rendered
    assert PHONE not in rendered
    # The login is gone, and the address is free for a new account.
    gone = await ras.client.post("/v1/session", json={"login": email, "password": PASSWORD})
    assert gone.status_code == 401
    again = await ras.register(email=email)
    assert again["id"] != account["id"]


async def test_the_last_administrator_cannot_delete_their_account(ras: Ras) -> None:
    tokens = await ras.login(ADMIN_EMAIL, password=ras.admin.admin_password)
    response = await ras.client.request(
        "DELETE", "/v1/account", json={"password": ras.admin.admin_password}, headers=bearer(tokens)
    )
    assert response.status_code == 409
    assert (await ras.client.get("/v1/account", headers=bearer(tokens))).status_code == 200
