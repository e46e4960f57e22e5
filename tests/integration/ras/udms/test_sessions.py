"""Sessions: refresh-token rotation and reuse detection, user B against user A's
sessions, password change, and the request hygiene of every UDMS route (unknown fields
refused, oversized bodies refused, problem details)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.api.problems import MEDIA_TYPE, PROBLEM_BASE
from heslock.ras.store.models import User, UserSession
from tests.integration.ras.udms.conftest import BODY_LIMIT, PASSWORD, Ras, bearer, new_email

NEW_PASSWORD = "seven quiet herons at dawn"


async def _refresh(ras: Ras, token: str) -> Any:
    return await ras.client.post("/v1/session/refresh", json={"refresh_token": token})


async def test_refresh_reuse_revokes_the_whole_family(ras: Ras) -> None:
    _, first = await ras.user(new_email())
    second = (await _refresh(ras, first["refresh_token"])).json()
    third = (await _refresh(ras, second["refresh_token"])).json()
    assert (await ras.client.get("/v1/account", headers=bearer(third))).status_code == 200
    # An attacker replays the stolen first-generation token.
    stolen = await _refresh(ras, first["refresh_token"])
    assert stolen.status_code == 401
    assert stolen.headers["content-type"] == MEDIA_TYPE
    # Every token of the family is dead now, the legitimate client's included.
    assert (await ras.client.get("/v1/account", headers=bearer(third))).status_code == 401
    assert (await _refresh(ras, third["refresh_token"])).status_code == 401
    reuse = await ras.audit("session.refresh_reuse")
    assert reuse[0].result == "denied"
    assert reuse[0].target == f"session:{first['session_id']}"
    assert reuse[0].details["family_revoked"] is True
    async with AsyncSession(ras.engine) as session:
        family = await session.get(UserSession, uuid.UUID(first["session_id"]))
    assert family is not None
    assert family.revoke_reason == "refresh_reuse"


async def test_garbage_refresh_tokens_are_401(ras: Ras) -> None:
    for token in ("x", "hlr_" + "A" * 43, "hla_" + "A" * 43):
        response = await _refresh(ras, token)
        assert response.status_code == 401
        assert response.json()["type"] == PROBLEM_BASE + "unauthenticated"


async def test_user_b_cannot_see_or_revoke_user_a_sessions(ras: Ras) -> None:
    _, alice = await ras.user(new_email())
    _, bob = await ras.user(new_email())
    bob_sees = (await ras.client.get("/v1/sessions", headers=bearer(bob))).json()
    assert [s["id"] for s in bob_sees] == [bob["session_id"]]
    answers = []
    for target in (alice["session_id"], str(uuid.uuid4())):
        response = await ras.client.delete(f"/v1/sessions/{target}", headers=bearer(bob))
        assert response.status_code == 404
        assert response.json()["type"] == PROBLEM_BASE + "not-found"
        answers.append({k: v for k, v in response.json().items() if k != "instance"})
    assert answers[0] == answers[1]  # Alice's session is indistinguishable from none
    assert (await ras.client.get("/v1/account", headers=bearer(alice))).status_code == 200
    # Alice can revoke her own, by id.
    own = await ras.client.delete(f"/v1/sessions/{alice['session_id']}", headers=bearer(alice))
    assert own.status_code == 204
    assert (await ras.client.get("/v1/account", headers=bearer(alice))).status_code == 401


async def test_change_password_revokes_other_sessions(ras: Ras) -> None:
    email = new_email()
    _, here = await ras.user(email)
    there = await ras.login(email)
    weak = await ras.client.post(
        "/v1/account/password",
        json={"current_password": PASSWORD, "new_password": "password1234"},
        headers=bearer(here),
    )
    assert weak.status_code == 422
    assert weak.json()["type"] == PROBLEM_BASE + "password-refused"
    assert "commonly used" in weak.json()["reasons"][0]
    wrong = await ras.client.post(
        "/v1/account/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=bearer(here),
    )
    assert wrong.status_code == 401
    changed = await ras.client.post(
        "/v1/account/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(here),
    )
    assert changed.status_code == 200
    assert changed.json() == {"sessions_revoked": 1}
    assert (await ras.client.get("/v1/account", headers=bearer(here))).status_code == 200
    assert (await ras.client.get("/v1/account", headers=bearer(there))).status_code == 401
    old = await ras.client.post("/v1/session", json={"login": email, "password": PASSWORD})
    assert old.status_code == 401
    assert (await ras.challenge(email, NEW_PASSWORD))["methods"] == ["email"]


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/v1/account", {"is_admin": True}),
        ("/v1/account", {"id": "00000000-0000-0000-0000-000000000001"}),
        ("/v1/account", {"verified": True}),
        ("/v1/session", {"is_admin": True}),
    ],
)
async def test_mass_assignment_is_refused(ras: Ras, path: str, extra: dict[str, Any]) -> None:
    email = new_email()
    body: dict[str, Any] = (
        {"email": email, "password": PASSWORD}
        if path == "/v1/account"
        else {"login": email, "password": PASSWORD}
    )
    response = await ras.client.post(path, json={**body, **extra})
    assert response.status_code == 422
    assert response.json()["type"] == PROBLEM_BASE + "validation-failed"
    assert [e["type"] for e in response.json()["errors"]] == ["extra_forbidden"]
    assert PASSWORD not in response.text
    async with AsyncSession(ras.engine) as session:
        users = list((await session.execute(select(User))).scalars())
    assert len(users) == 1  # only the admin of `ras init`
    assert ras.outbox() == []


async def test_oversized_body_is_413(ras: Ras) -> None:
    response = await ras.client.post(
        "/v1/account", json={"email": new_email(), "password": "x" * (BODY_LIMIT + 1)}
    )
    assert response.status_code == 413
    assert response.json()["type"] == PROBLEM_BASE + "body-too-large"


async def test_register_refusals(ras: Ras) -> None:
    cases = [
        ({"password": PASSWORD}, "invalid-input"),
        ({"email": "not-an-address", "password": PASSWORD}, "invalid-input"),
        ({"phone": "0151 1234567", "password": PASSWORD}, "invalid-input"),
        ({"phone": "+44 20 7946 095", "password": PASSWORD}, "invalid-input"),
        ({"email": new_email(), "password": "short"}, "password-refused"),
        ({"email": "bob.smith@example.org", "password": "bob.smith rules all"}, "password-refused"),
    ]
    for body, code in cases:
        response = await ras.client.post("/v1/account", json=body)
        assert response.status_code == 422, body
        assert response.json()["type"] == PROBLEM_BASE + code
    email = new_email()
    await ras.register(email=email.upper())
    taken = await ras.client.post("/v1/account", json={"email": email, "password": PASSWORD})
    assert taken.status_code == 409


async def test_openapi_documents_the_udms_routes(ras: Ras) -> None:
    spec = (await ras.client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path, method in [
        ("/v1/account", "post"),
        ("/v1/account", "get"),
        ("/v1/account", "delete"),
        ("/v1/account/verify", "post"),
        ("/v1/account/verify/resend", "post"),
        ("/v1/account/password", "post"),
        ("/v1/account/totp", "post"),
        ("/v1/account/totp/confirm", "post"),
        ("/v1/session", "post"),
        ("/v1/session", "delete"),
        ("/v1/session/code", "post"),
        ("/v1/session/second-factor", "post"),
        ("/v1/session/refresh", "post"),
        ("/v1/sessions", "get"),
        ("/v1/sessions/{session_id}", "delete"),
    ]:
        operation = paths[path][method]
        assert operation["summary"]
        assert "422" in operation["responses"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert paths["/v1/sessions"]["get"]["security"] == [{"bearer": []}]
    assert "is_admin" not in spec["components"]["schemas"]["RegisterRequest"]["properties"]
