"""Everything guessable is limited: one-time code expiry, reuse and attempts; login
challenges; passwords and codes throttled per account and per source address (429 +
Retry-After, held in the database); SMS caps per number."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.api.problems import PROBLEM_BASE
from heslock.ras.store import utcnow
from heslock.ras.store.models import OtpCode, RateLimitBucket
from tests.integration.ras.udms.conftest import (
    ACCOUNT_ATTEMPTS,
    ADDRESS_ATTEMPTS,
    PASSWORD,
    SMS_PER_NUMBER,
    Ras,
    new_email,
)


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def _verify(ras: Ras, contact_id: str, code: str) -> int:
    response = await ras.client.post(
        "/v1/account/verify", json={"contact_id": contact_id, "code": code}
    )
    if response.status_code != 200:
        assert response.json()["type"] in {
            PROBLEM_BASE + "code-refused",
            PROBLEM_BASE + "rate-limited",
        }
    return response.status_code


async def test_verification_code_expires(ras: Ras) -> None:
    email = new_email()
    contact = (await ras.register(email=email))["contacts"][0]
    async with AsyncSession(ras.engine) as session, session.begin():
        await session.execute(update(OtpCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert await _verify(ras, contact["id"], ras.code_for(email, "verify_contact")) == 400
    # A fresh code works, and only once.
    resent = await ras.client.post("/v1/account/verify/resend", json={"contact_id": contact["id"]})
    assert resent.status_code == 202
    code = ras.code_for(email, "verify_contact")
    assert await _verify(ras, contact["id"], code) == 200
    assert await _verify(ras, contact["id"], code) == 400
    again = await ras.client.post("/v1/account/verify/resend", json={"contact_id": contact["id"]})
    assert again.status_code == 409


async def test_a_resent_code_retires_the_previous_one(ras: Ras) -> None:
    email = new_email()
    contact = (await ras.register(email=email))["contacts"][0]
    first = ras.code_for(email, "verify_contact")
    await ras.client.post("/v1/account/verify/resend", json={"contact_id": contact["id"]})
    second = ras.code_for(email, "verify_contact")
    if first != second:
        assert await _verify(ras, contact["id"], first) == 400
    assert await _verify(ras, contact["id"], second) == 200


async def test_five_wrong_codes_burn_the_code(ras: Ras) -> None:
    email = new_email()
    contact = (await ras.register(email=email))["contacts"][0]
    code = ras.code_for(email, "verify_contact")
    for _ in range(ras.settings.otp_max_attempts):
        assert await _verify(ras, contact["id"], _wrong(code)) == 400
    # The right code, after five wrong ones, is refused: the code is used up.
    assert await _verify(ras, contact["id"], code) == 400
    async with AsyncSession(ras.engine) as session:
        attempts = await session.scalar(select(OtpCode.attempts))
    assert attempts == ras.settings.otp_max_attempts
    denied = await ras.audit("account.verify_contact")
    assert len(denied) == 6
    assert {r.result for r in denied} == {"denied"}
    assert all(code not in str(r.details) for r in denied)


async def test_login_code_single_use_and_challenge_attempts(ras: Ras) -> None:
    email = new_email()
    account = await ras.register(email=email)
    await ras.verify_all(account)
    challenge = (await ras.challenge(email))["challenge"]
    await ras.client.post("/v1/session/code", json={"challenge": challenge, "channel": "email"})
    code = ras.code_for(email, "login")
    body = {"challenge": challenge, "method": "email"}
    # A code sent by e-mail is not accepted as an SMS code.
    wrong_channel = await ras.client.post(
        "/v1/session/second-factor", json={**body, "method": "sms", "code": code}
    )
    assert wrong_channel.status_code == 400
    ok = await ras.client.post("/v1/session/second-factor", json={**body, "code": code})
    assert ok.status_code == 201
    # The challenge and the code are spent.
    reused = await ras.client.post("/v1/session/second-factor", json={**body, "code": code})
    assert reused.status_code == 401
    # A new challenge: five wrong guesses end it, the right code comes too late.
    challenge = (await ras.challenge(email))["challenge"]
    await ras.client.post("/v1/session/code", json={"challenge": challenge, "channel": "email"})
    code = ras.code_for(email, "login")
    statuses = []
    for _ in range(5):
        response = await ras.client.post(
            "/v1/session/second-factor",
            json={"challenge": challenge, "method": "email", "code": _wrong(code)},
        )
        statuses.append(response.status_code)
    late = await ras.client.post(
        "/v1/session/second-factor", json={"challenge": challenge, "method": "email", "code": code}
    )
    assert statuses == [400] * 5
    assert late.status_code == 401


async def test_password_lockout_per_account(ras: Ras) -> None:
    email = new_email()
    account = await ras.register(email=email)
    await ras.verify_all(account)
    for _ in range(ACCOUNT_ATTEMPTS):
        response = await ras.client.post(
            "/v1/session", json={"login": email, "password": "nope" * 4}
        )
        assert response.status_code == 401
    locked = await ras.client.post("/v1/session", json={"login": email, "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["type"] == PROBLEM_BASE + "rate-limited"
    retry = int(locked.headers["retry-after"])
    assert 0 < retry <= ras.settings.limits_lockout_s
    assert (await ras.audit("throttle.lockout"))[0].details[
        "bucket"
    ] == f"password:acct:{account['id']}"
    # The lockout is in the database: lift it there, and the right password works again.
    async with AsyncSession(ras.engine) as session, session.begin():
        await session.execute(
            update(RateLimitBucket).values(
                blocked_until=utcnow(), updated_at=utcnow() - timedelta(days=1)
            )
        )
    assert (await ras.challenge(email))["methods"] == ["email"]
    async with AsyncSession(ras.engine) as session:
        keys = set((await session.execute(select(RateLimitBucket.key))).scalars())
    assert f"password:acct:{account['id']}" not in keys  # a success clears the account


async def test_password_throttle_per_source_address(ras: Ras) -> None:
    # Many accounts (or none) guessed from one address: the address is stopped.
    statuses = []
    for _ in range(ADDRESS_ATTEMPTS + 1):
        response = await ras.client.post(
            "/v1/session", json={"login": new_email(), "password": "guess guess guess"}
        )
        statuses.append(response.status_code)
    assert statuses[:ADDRESS_ATTEMPTS] == [401] * ADDRESS_ATTEMPTS
    assert statuses[-1] == 429
    # ... even for a right password of a real account.
    blocked = await ras.client.post(
        "/v1/session", json={"login": ras.admin.admin_login, "password": ras.admin.admin_password}
    )
    assert blocked.status_code == 429
    assert "retry-after" in blocked.headers


async def test_sms_cap_per_number(ras: Ras) -> None:
    phone = "+442079460123"
    contact = (await ras.register(phone=phone))["contacts"][0]
    statuses = []
    for _ in range(SMS_PER_NUMBER):
        response = await ras.client.post(
            "/v1/account/verify/resend", json={"contact_id": contact["id"]}
        )
        statuses.append(response.status_code)
    assert statuses == [202] * (SMS_PER_NUMBER - 1) + [429]
    sent = [m for m in ras.outbox() if m["to"] == phone]
    assert len(sent) == SMS_PER_NUMBER
    async with AsyncSession(ras.engine) as session:
        keys = list((await session.execute(select(RateLimitBucket.key))).scalars())
        codes = await session.scalar(select(func.count()).select_from(OtpCode))
    assert codes == SMS_PER_NUMBER
    assert all(phone not in key and phone[1:] not in key for key in keys)


async def test_probing_registrations_from_one_address_is_throttled(ras: Ras) -> None:
    # "Is this address registered?" asked over and over gets a 429, refusals included.
    statuses = []
    for _ in range(ADDRESS_ATTEMPTS + 1):
        response = await ras.client.post(
            "/v1/account", json={"email": ras.admin.admin_login, "password": PASSWORD}
        )
        statuses.append(response.status_code)
    assert statuses == [409] * ADDRESS_ATTEMPTS + [429]
