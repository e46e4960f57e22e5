"""A real RAS over HTTPS (uvicorn in-process, self-generated CA) for UDMS API tests,
on SQLite and PostgreSQL (the ``database_url`` fixture of tests/integration/ras).

Codes go to the development outbox (the default sender), which the tests read like a
user reads their phone: :meth:`Ras.code_for`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from heslock.ras.api import create_app
from heslock.ras.bootstrap import InitResult
from heslock.ras.server import RasServer
from heslock.ras.services.udms.senders import outbox_path
from heslock.ras.settings import Settings, load_settings
from heslock.ras.store import create_engine
from heslock.ras.store.models import AuditRecord
from heslock.ras.tls import client_context
from tests.integration.ras.conftest import CHEAP_ARGON2, initialise_from_template

BODY_LIMIT = 8192
#: Small limits so throttling is reached in a few requests (account > 5 code attempts).
ACCOUNT_ATTEMPTS = 6
ADDRESS_ATTEMPTS = 14
SMS_PER_NUMBER = 3
PASSWORD = "plum tart on a windy tuesday"
ADMIN_EMAIL = "admin@localhost"


@dataclass
class Ras:
    settings: Settings
    client: httpx.AsyncClient
    engine: AsyncEngine
    admin: InitResult
    server: RasServer

    def outbox(self) -> list[dict[str, Any]]:
        path = outbox_path(self.settings)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def code_for(self, to: str, purpose: str) -> str:
        codes = [m["code"] for m in self.outbox() if m["to"] == to and m["purpose"] == purpose]
        assert codes, f"no {purpose} code sent to {to}"
        code: str = codes[-1]
        return code

    async def audit(self, action: str | None = None) -> list[AuditRecord]:
        async with AsyncSession(self.engine) as session:
            query = select(AuditRecord).order_by(AuditRecord.id)
            if action is not None:
                query = query.where(AuditRecord.action == action)
            return list((await session.execute(query)).scalars())

    async def register(
        self, email: str | None = None, phone: str | None = None, password: str = PASSWORD
    ) -> dict[str, Any]:
        body = {"password": password}
        if email:
            body["email"] = email
        if phone:
            body["phone"] = phone
        response = await self.client.post("/v1/account", json=body)
        assert response.status_code == 201, response.text
        account: dict[str, Any] = response.json()
        return account

    async def verify_all(self, account: dict[str, Any]) -> None:
        for contact in account["contacts"]:
            code = self.code_for(contact["address"], "verify_contact")
            response = await self.client.post(
                "/v1/account/verify", json={"contact_id": contact["id"], "code": code}
            )
            assert response.status_code == 200, response.text
            assert response.json()["verified"] is True

    async def challenge(self, login: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/session", json={"login": login, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def login(
        self,
        login: str,
        password: str = PASSWORD,
        method: str = "email",
        totp_seed: str | None = None,
    ) -> dict[str, Any]:
        challenge = (await self.challenge(login, password))["challenge"]
        if method == "totp":
            assert totp_seed is not None
            code = pyotp.TOTP(totp_seed).now()
        else:
            sent = await self.client.post(
                "/v1/session/code", json={"challenge": challenge, "channel": method}
            )
            assert sent.status_code == 202, sent.text
            to = [m["to"] for m in self.outbox() if m["purpose"] == "login"][-1]
            code = self.code_for(to, "login")
        response = await self.client.post(
            "/v1/session/second-factor",
            json={"challenge": challenge, "method": method, "code": code},
        )
        assert response.status_code == 201, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    async def user(self, email: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Register, verify and log in a user by e-mail: (account, tokens)."""
        account = await self.register(email=email)
        await self.verify_all(account)
        return account, await self.login(email)


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def make_settings(tmp_path: Path, database_url: str, **extra: Any) -> Settings:
    return load_settings(
        {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "https_port": 0,
            "limits_max_body_bytes": BODY_LIMIT,
            "limits_account_attempts": ACCOUNT_ATTEMPTS,
            "limits_address_attempts": ADDRESS_ATTEMPTS,
            "otp_sms_per_number_per_day": SMS_PER_NUMBER,
            **CHEAP_ARGON2,
            **extra,
        },
        env={},
    )


@pytest.fixture
async def ras(tmp_path: Path, database_url: str) -> AsyncIterator[Ras]:
    settings = make_settings(tmp_path, database_url)
    admin = await initialise_from_template(settings, ADMIN_EMAIL)
    server = RasServer(settings, create_app(settings))
    await server.start()
    engine = create_engine(settings.database_url)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, verify=client_context(settings.tls_ca), timeout=10
        ) as client:
            yield Ras(settings, client, engine, admin, server)
    finally:
        await engine.dispose()
        await server.stop()


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:8]}@example.org"
