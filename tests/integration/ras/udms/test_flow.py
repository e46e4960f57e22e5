"""The whole UDMS path over real HTTPS: register -> verify -> login with each second
factor (e-mail code, SMS code, TOTP) -> use -> refresh -> logout; the admin of
``ras init`` logs in with an e-mail code from the outbox and enrols TOTP."""

from __future__ import annotations

import datetime as dt

import pyotp

from heslock.ras.api.problems import PROBLEM_BASE
from tests.integration.ras.udms.conftest import ADMIN_EMAIL, PASSWORD, Ras, bearer, new_email

PHONE = "+442079460958"  # Ofcom's drama range: valid, never assigned


async def test_register_verify_login_refresh_logout(ras: Ras) -> None:
    email = new_email()
    account = await ras.register(email=email, phone="+44 20 7946 0958")
    kinds = {c["kind"]: c for c in account["contacts"]}
    assert kinds["phone"]["address"] == PHONE  # normalised to E.164
    assert not kinds["phone"]["verified"]
    assert not kinds["email"]["verified"]
    assert "password" not in str(account)
    # Not verified yet: the login does not exist as far as the RAS is concerned.
    refused = await ras.client.post("/v1/session", json={"login": email, "password": PASSWORD})
    assert refused.status_code == 401
    await ras.verify_all(account)

    by_email = await ras.login(email, method="email")
    assert by_email["token_type"] == "Bearer"
    assert by_email["access_token"].startswith("hla_")
    assert by_email["refresh_token"].startswith("hlr_")
    assert 0 < by_email["expires_in"] <= ras.settings.token_access_ttl_s
    by_sms = await ras.login(PHONE, method="sms")
    sms = [m for m in ras.outbox() if m["channel"] == "sms" and m["purpose"] == "login"][-1]
    assert sms["text"].endswith(f"@{ras.settings.domain} #{sms['code']}")

    me = await ras.client.get("/v1/account", headers=bearer(by_sms))
    assert me.status_code == 200
    assert me.json()["id"] == account["id"]
    assert me.json()["is_admin"] is False
    assert me.headers.get("cache-control") is None

    refreshed = await ras.client.post(
        "/v1/session/refresh", json={"refresh_token": by_sms["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert refreshed.headers["cache-control"] == "no-store"
    pair = refreshed.json()
    assert pair["session_id"] == by_sms["session_id"]
    assert pair["access_token"] != by_sms["access_token"]
    assert (await ras.client.get("/v1/account", headers=bearer(pair))).status_code == 200

    sessions = (await ras.client.get("/v1/sessions", headers=bearer(pair))).json()
    assert {s["id"] for s in sessions} == {by_email["session_id"], by_sms["session_id"]}
    assert [s["current"] for s in sessions if s["id"] == pair["session_id"]] == [True]

    assert (await ras.client.delete("/v1/session", headers=bearer(pair))).status_code == 204
    after = await ras.client.get("/v1/account", headers=bearer(pair))
    assert after.status_code == 401
    assert after.json()["type"] == PROBLEM_BASE + "unauthenticated"
    dead = await ras.client.post(
        "/v1/session/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert dead.status_code == 401
    # The other session is untouched.
    assert (await ras.client.get("/v1/account", headers=bearer(by_email))).status_code == 200

    actions = [r.action for r in await ras.audit()]
    for expected in (
        "account.create",
        "account.verify_contact",
        "session.password",
        "session.code_sent",
        "session.create",
        "session.refresh",
        "session.revoke",
    ):
        assert expected in actions
    rendered = " ".join(f"{r.actor} {r.target} {r.details}" for r in await ras.audit())
    assert email not in rendered
    assert PHONE not in rendered
    assert all(m["code"] not in rendered for m in ras.outbox())


async def test_totp_enrolment_and_login(ras: Ras) -> None:
    email = new_email()
    account, tokens = await ras.user(email)
    enrol = await ras.client.post(
        "/v1/account/totp", json={"password": PASSWORD}, headers=bearer(tokens)
    )
    assert enrol.status_code == 201, enrol.text
    seed = enrol.json()["secret"]
    uri = enrol.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/heslock:")
    assert pyotp.parse_uri(uri).secret == seed
    # Pending: TOTP is not a login method until one code confirms it.
    assert "totp" not in (await ras.challenge(email))["methods"]
    wrong = await ras.client.post(
        "/v1/account/totp/confirm", json={"code": "000000"}, headers=bearer(tokens)
    )
    if pyotp.TOTP(seed).verify("000000", valid_window=1):  # 3-in-a-million
        return
    assert wrong.status_code == 400
    assert wrong.json()["type"] == PROBLEM_BASE + "code-refused"
    totp = pyotp.TOTP(seed)
    moment = dt.datetime.now(dt.UTC)
    confirm = await ras.client.post(
        "/v1/account/totp/confirm", json={"code": totp.at(moment)}, headers=bearer(tokens)
    )
    assert confirm.status_code == 204, confirm.text
    me = (await ras.client.get("/v1/account", headers=bearer(tokens))).json()
    assert me["totp_active"] is True
    challenge = await ras.challenge(email)
    assert challenge["methods"][0] == "totp"
    # The code that confirmed the enrolment cannot be replayed within its window; the
    # next step's code (accepted for clock drift) can, once.
    replay = await ras.client.post(
        "/v1/session/second-factor",
        json={"challenge": challenge["challenge"], "method": "totp", "code": totp.at(moment)},
    )
    assert replay.status_code == 400
    later = totp.at(moment + dt.timedelta(seconds=30))
    ok = await ras.client.post(
        "/v1/session/second-factor",
        json={"challenge": challenge["challenge"], "method": "totp", "code": later},
    )
    assert ok.status_code == 201, ok.text
    assert (
        account["id"]
        == (await ras.client.get("/v1/account", headers=bearer(ok.json()))).json()["id"]
    )


async def test_admin_from_ras_init_logs_in_with_an_outbox_code(ras: Ras) -> None:
    tokens = await ras.login(ADMIN_EMAIL, password=ras.admin.admin_password, method="email")
    me = (await ras.client.get("/v1/account", headers=bearer(tokens))).json()
    assert me["is_admin"] is True
    assert me["id"] == ras.admin.admin_id
    audit = await ras.client.get("/v1/audit", headers=bearer(tokens))
    assert audit.status_code == 200
    assert audit.json()["items"][0]["action"] == "account.create"
