"""The SDK's account and session API against a real RAS over TLS: register, verify with
the outbox's codes, log in with each second factor, refresh, sessions, logout."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import replace

import pyotp
import pytest

from heslock.rac import (
    MemoryTokenStore,
    NotLoggedIn,
    RasClient,
    RasProblem,
)
from tests.integration.rac.conftest import PASSWORD, System, new_email

PHONE = "+442079460958"  # Ofcom's drama range: valid, never assigned


async def test_register_verify_login_refresh_logout(system: System) -> None:
    email = new_email()
    store = MemoryTokenStore()
    async with system.client(tokens=store) as ras:
        account = await ras.account.register(
            email=email, phone="+44 20 7946 0958", password=PASSWORD
        )
        assert {c.kind for c in account.contacts} == {"email", "phone"}
        assert account.contact(PHONE) is not None  # stored in E.164
        assert not any(c.verified for c in account.contacts)
        for contact in account.contacts:
            verified = await ras.account.verify(
                contact, system.code_for(contact.address, "verify_contact")
            )
            assert verified.verified
            assert verified.id == contact.id

        challenge = await ras.sessions.login(email, PASSWORD)
        assert set(challenge.methods) == {"sms", "email"}
        assert challenge.challenge not in repr(challenge)
        sent = await ras.sessions.send_code(challenge, "sms")
        assert sent.channel == "sms"
        assert "*" in sent.destination
        tokens = await ras.sessions.second_factor(challenge, system.code_for(PHONE, "login"))
        assert store.load() == tokens
        assert tokens.access_token not in repr(tokens)
        assert tokens.refresh_token not in repr(tokens)

        me = await ras.account.get()
        assert me.id == account.id
        assert all(c.verified for c in me.contacts)
        sessions = await ras.sessions.list()
        assert [s.current for s in sessions] == [True]
        assert sessions[0].id == tokens.session_id

        rotated = await ras.sessions.refresh()
        assert rotated.session_id == tokens.session_id
        assert rotated.access_token != tokens.access_token
        assert store.load() == rotated
        assert (await ras.account.get()).id == account.id  # the new pair works

        await ras.sessions.logout()
        assert store.load() is None
        with pytest.raises(NotLoggedIn):
            await ras.account.get()
    # The old pair is dead on the server too.
    async with system.client(tokens=MemoryTokenStore(rotated)) as stale:
        with pytest.raises(NotLoggedIn):
            await stale.account.get()  # 401, then its refresh token is refused: session over


async def test_totp_enrolment_and_login(system: System) -> None:
    async with await system.user() as ras:
        me = await ras.account.get()
        email = me.contacts[0].address
        with pytest.raises(RasProblem) as wrong:
            await ras.account.totp_enrol("not the password at all")
        assert wrong.value.code == "unauthenticated"
        assert await _audit(system, "session.refresh") == []  # a 401 with a password: no retry
        enrolment = await ras.account.totp_enrol(PASSWORD)
        assert enrolment.secret not in repr(enrolment)
        assert enrolment.otpauth_uri.startswith("otpauth://totp/")
        totp = pyotp.TOTP(enrolment.secret)
        moment = dt.datetime.now(dt.UTC)
        await ras.account.totp_confirm(totp.at(moment))
        assert (await ras.account.get()).totp_active
        await ras.sessions.logout()

        challenge = await ras.sessions.login(email, PASSWORD)
        assert "totp" in challenge.methods
        # method defaults to TOTP when no code was sent for this challenge; the code that
        # confirmed the enrolment is spent, the next step's (accepted for drift) is not.
        with pytest.raises(RasProblem) as replay:
            await ras.sessions.second_factor(challenge, totp.at(moment))
        assert replay.value.code == "code-refused"
        await ras.sessions.second_factor(challenge, totp.at(moment + dt.timedelta(seconds=30)))
        assert (await ras.account.get()).id == me.id


async def test_problems_carry_the_servers_type_and_code(system: System) -> None:
    email = new_email()
    async with system.client() as ras:
        account = await ras.account.register(email=email, password=PASSWORD)
        contact = account.contacts[0]
        good = system.code_for(email, "verify_contact")
        wrong = f"{(int(good) + 1) % 1_000_000:06d}"
        with pytest.raises(RasProblem) as refused:
            await ras.account.verify(contact, wrong)
        problem = refused.value
        assert (problem.status, problem.code) == (400, "code-refused")
        assert problem.type == "https://heslock.dev/problems/code-refused"
        assert problem.exit_code == 4
        assert wrong not in str(problem)

        with pytest.raises(RasProblem) as weak:
            await ras.account.register(email=new_email(), password="aaaaaaaaaaaa")
        assert (weak.value.status, weak.value.code) == (422, "password-refused")
        assert weak.value.extensions["reasons"]
        assert weak.value.exit_code == 2

        with pytest.raises(RasProblem) as taken:
            await ras.account.register(email=email, password=PASSWORD)
        assert (taken.value.status, taken.value.code) == (409, "conflict")

        with pytest.raises(RasProblem) as login:
            await ras.sessions.login(email, PASSWORD)  # not verified yet: no such login
        assert login.value.code == "unauthenticated"
        assert PASSWORD not in str(login.value)
        assert PASSWORD not in repr(login.value)

    async with await system.user() as user:
        with pytest.raises(RasProblem) as missing:
            await user.locks.get(uuid.uuid4())
        assert (missing.value.status, missing.value.code) == (404, "not-found")
        legit = await user.devices.legitimacy("00:11:22:33:44:55")
        assert (legit.status, legit.reason, legit.free) == (1, "unknown", False)
        with pytest.raises(RasProblem) as unknown:
            await user.registrations.start("001122334455", "front door")
        assert unknown.value.status in (404, 409)


async def test_an_invalid_access_token_is_refreshed_once_and_the_call_repeated(
    system: System,
) -> None:
    async with await system.user() as ras:
        store = ras.tokens
        good = store.load()
        assert good is not None
        # The access token is refused (as an expired one is); the refresh token is valid.
        store.save(replace(good, access_token="hla_" + "x" * 43))
        me = await ras.account.get()  # 401 -> refresh -> the same call again
        fresh = store.load()
        assert fresh is not None
        assert fresh.access_token != good.access_token
        assert fresh.session_id == good.session_id
        assert me.id is not None
        assert len(list(await _audit(system, "session.refresh"))) == 1


async def test_concurrent_calls_refresh_only_once(system: System) -> None:
    """Eight calls find the access token refused at once: one refresh, every call succeeds,
    and the session survives (a second refresh with the old token would have ended it)."""
    async with await system.user() as ras:
        good = ras.tokens.load()
        assert good is not None
        ras.tokens.save(replace(good, access_token="hla_" + "y" * 43))
        results = await asyncio.gather(*(ras.account.get() for _ in range(8)))
        assert len({r.id for r in results}) == 1
        assert len(await _audit(system, "session.refresh")) == 1
        assert len(await ras.sessions.list()) == 1  # the session is alive


async def test_synchronous_client(system: System) -> None:
    """RasClient has its own httpx.Client and no event loop: run it in a thread, since
    this test's loop serves the RAS."""
    email = new_email()

    def flow() -> tuple[str, int]:
        with RasClient(system.url, ca=system.ca) as ras:
            account = ras.account.register(email=email, password=PASSWORD)
            ras.account.verify(account.contacts[0], system.code_for(email, "verify_contact"))
            challenge = ras.sessions.login(email, PASSWORD)
            ras.sessions.send_code(challenge, "email")
            ras.sessions.second_factor(challenge, system.code_for(email, "login"))
            credentials = ras.gateways.add("hall")
            names = [g.name for g in ras.gateways.list()]
            ras.sessions.refresh()
            with pytest.raises(RasProblem) as problem:
                ras.locks.rename(uuid.uuid4(), "x")
            ras.sessions.logout()
            with pytest.raises(NotLoggedIn):
                ras.locks.list()
            assert problem.value.code == "not-found"
            return names[0], len(credentials.secret)

    name, secret_length = await asyncio.to_thread(flow)
    assert name == "hall"
    assert secret_length > 20


async def _audit(system: System, action: str) -> list[object]:
    async with await system.admin_client() as admin:
        page = await admin.admin.audit(0, 500)
    return [r for r in page.items if r.action == action]
