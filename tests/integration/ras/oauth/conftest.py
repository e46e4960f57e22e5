"""A real RAS over HTTPS (uvicorn in-process, self-generated CA) for the OAuth 2.0 tests,
on SQLite and PostgreSQL, with real user logins (password + e-mail code).

An :class:`OAuthRig` plays the three parties: the user (their RAS session and their
signed-in app that fetches consent tickets), the user's browser (the consent page), and
the third-party app (PKCE, the token endpoint, then the RAS API with its token).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import os
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from heslock.ras.api import create_app
from heslock.ras.keystore import LOCK_KEY, Keystore
from heslock.ras.server import RasServer
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.models import Device, DeviceStatus, Lock
from heslock.ras.tls import client_context
from tests.integration.ras.conftest import initialise_from_template
from tests.integration.ras.udms.conftest import ADMIN_EMAIL, Ras, bearer, make_settings, new_email

REDIRECT = "https://app.example.net/callback"
ALL_SCOPES = "events:read locks:lock locks:operate locks:read shares:manage"


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636 4.1-4.2."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Person:
    email: str
    id: uuid.UUID
    tokens: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.tokens)


@dataclass
class App:
    client_id: str
    secret: str | None
    redirect_uris: list[str]

    @property
    def basic(self) -> httpx.BasicAuth:
        assert self.secret is not None
        return httpx.BasicAuth(self.client_id, self.secret)


@dataclass
class Authorisation:
    """What an app holds after one run of the code flow."""

    code: str
    verifier: str
    state: str
    location: str


@dataclass
class OAuthRig:
    ras: Ras
    devices: int = 0
    people: dict[str, Person] = field(default_factory=dict)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.ras.client

    async def person(self, name: str) -> Person:
        email = f"{name}-{new_email()}"
        account, tokens = await self.ras.user(email)
        found = Person(email, uuid.UUID(account["id"]), tokens)
        self.people[name] = found
        return found

    async def add_lock(self, owner: Person, name: str = "front door") -> uuid.UUID:
        self.devices += 1
        device_id = f"{self.devices:012X}"
        async with create_sessionmaker(self.ras.engine)() as session, session.begin():
            session.add(
                Device(
                    device_id=device_id,
                    maker="Lumen",
                    model="L1",
                    ble_version="5.0",
                    profile="secure",
                    factory_key_enc=os.urandom(60),
                    status=DeviceStatus.BOUND.value,
                )
            )
            await session.flush()
            # A real envelope: the command path opens it before it looks for a relay.
            lock_id = uuid.uuid4()
            keystore = Keystore.from_files(self.ras.settings.master_key_file)
            session.add(
                Lock(
                    id=lock_id,
                    device_id=device_id,
                    owner_id=owner.id,
                    name=name,
                    key_version=1,
                    lock_key_enc=keystore.seal(LOCK_KEY, str(lock_id), os.urandom(16)),
                )
            )
        return lock_id

    async def register_app(
        self, owner: Person, kind: str = "public", redirect_uris: list[str] | None = None
    ) -> App:
        uris = redirect_uris or [REDIRECT]
        response = await self.client.post(
            "/v1/apps",
            json={"name": "Rentals & <Co>", "type": kind, "redirect_uris": uris},
            headers=owner.auth,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["client_secret"] is not None) == (kind == "confidential")
        return App(body["client_id"], body["client_secret"], uris)

    def authorize_query(
        self,
        app: App,
        *,
        scope: str = ALL_SCOPES,
        challenge: str | None = None,
        state: str = "st-1",
        redirect_uri: str | None = None,
        **extra: str,
    ) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": redirect_uri or app.redirect_uris[0],
            "scope": scope,
            "state": state,
        }
        if challenge is not None:
            params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        params |= extra
        return params

    async def consent_page(self, user: Person, params: dict[str, str]) -> tuple[str, str]:
        """The user's app fetches a ticket; the browser opens the page: (html, url)."""
        ticket = await self.client.post(
            "/oauth/authorize/ticket", json={"query": urlencode(params)}, headers=user.auth
        )
        assert ticket.status_code == 201, ticket.text
        url = ticket.json()["consent_url"]
        page = await self.client.get(url)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        return page.text, url

    @staticmethod
    def form_of(page: str) -> tuple[str, dict[str, list[str]]]:
        """The consent form's action and its fields as the browser would send them."""
        found = re.search(r'<form method=post action="([^"]+)"', page)
        assert found is not None, page
        action = html.unescape(found[1])
        fields: dict[str, list[str]] = {}
        for name, value in re.findall(
            r'<input type=(?:hidden|checkbox) name=(\w+) value="([^"]*)"', page
        ):
            fields.setdefault(name, []).append(html.unescape(value))
        return action, fields

    async def decide(
        self,
        user: Person,
        params: dict[str, str],
        *,
        decision: str = "approve",
        scopes: list[str] | None = None,
        lock_ids: list[uuid.UUID] | None = None,
    ) -> httpx.Response:
        page, _url = await self.consent_page(user, params)
        action, fields = self.form_of(page)
        if scopes is not None:
            fields["scope"] = scopes
        if lock_ids is not None:
            fields["lock_id"] = [str(i) for i in lock_ids]
        form = [(k, v) for k, values in fields.items() for v in values]
        form.append(("decision", decision))
        return await self.client.post(action, data=dict_list(form))

    async def authorise(
        self,
        user: Person,
        app: App,
        *,
        scope: str = ALL_SCOPES,
        chosen: list[str] | None = None,
        lock_ids: list[uuid.UUID] | None = None,
    ) -> Authorisation:
        verifier, challenge = pkce()
        state = secrets.token_urlsafe(8)
        params = self.authorize_query(app, scope=scope, challenge=challenge, state=state)
        answer = await self.decide(user, params, scopes=chosen, lock_ids=lock_ids)
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        got = query_of(location)
        assert location.startswith(app.redirect_uris[0] + "?")
        assert got["state"] == state
        assert got["iss"] == self.ras.server.url
        return Authorisation(got["code"], verifier, state, location)

    async def token(self, app: App, form: dict[str, str]) -> httpx.Response:
        auth = app.basic if app.secret is not None else None
        if auth is None:
            form = {**form, "client_id": app.client_id}
        response = await self.client.post(
            "/oauth/token", data=form, auth=auth or httpx.USE_CLIENT_DEFAULT
        )
        assert response.headers.get("cache-control") == "no-store"
        return response

    async def redeem(self, app: App, auth: Authorisation) -> httpx.Response:
        return await self.token(
            app,
            {
                "grant_type": "authorization_code",
                "code": auth.code,
                "redirect_uri": app.redirect_uris[0],
                "code_verifier": auth.verifier,
            },
        )

    async def tokens(self, user: Person, app: App, **kwargs: Any) -> dict[str, Any]:
        auth = await self.authorise(user, app, **kwargs)
        response = await self.redeem(app, auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def api(
        self,
        method: str,
        url: str,
        token: str,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {**(headers or {}), "Authorization": f"Bearer {token}"}
        return await self.client.request(method, url, headers=headers, **kwargs)


def dict_list(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


@contextlib.asynccontextmanager
async def open_rig(tmp_path: Path, database_url: str, **overrides: Any) -> AsyncIterator[OAuthRig]:
    """A running RAS (HTTPS only) on a migrated copy, with ``overrides`` in its settings."""
    settings = make_settings(tmp_path, database_url, **overrides)
    admin = await initialise_from_template(settings, ADMIN_EMAIL)
    server = RasServer(settings, create_app(settings))
    await server.start()
    engine = create_engine(settings.database_url)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, verify=client_context(settings.tls_ca), timeout=10
        ) as client:
            yield OAuthRig(Ras(settings, client, engine, admin, server))
    finally:
        await engine.dispose()
        await server.stop()


@pytest.fixture
async def rig(tmp_path: Path, database_url: str) -> AsyncIterator[OAuthRig]:
    async with open_rig(tmp_path, database_url) as rig:
        yield rig
