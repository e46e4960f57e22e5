"""The RAS API foundation over real HTTPS (uvicorn in-process, self-generated CA).

Covers: health, readiness, metrics, OpenAPI; RFC 9457 problem details for 401, 403,
404, 405, 413 and 422; the body size limit (declared and streamed); the authorisation
hook; the audit helper's same-transaction guarantee; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from heslock.ras.api import create_app
from heslock.ras.api.deps import AuditDep, PrincipalDep, SessionDep
from heslock.ras.api.problems import MEDIA_TYPE, PROBLEM_BASE
from heslock.ras.bootstrap import initialise
from heslock.ras.server import RasServer
from heslock.ras.services import audit
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.errors import Conflict
from heslock.ras.settings import Settings, load_settings
from heslock.ras.store import create_engine
from heslock.ras.store.migrate import downgrade
from heslock.ras.store.models import AuditRecord
from heslock.ras.tls import client_context
from tests.integration.ras.conftest import CHEAP_ARGON2

BODY_LIMIT = 2048
ADMIN = Principal(PrincipalKind.USER, uuid.uuid4(), is_admin=True)
USER = Principal(PrincipalKind.USER, uuid.uuid4())


class TokenTable:
    """A stand-in authenticator until UDMS issues real tokens."""

    tokens: ClassVar[dict[str, Principal]] = {"admin-token": ADMIN, "user-token": USER}

    async def authenticate(self, session: AsyncSession, credential: str) -> Principal | None:
        return self.tokens.get(credential)


class Echo(BaseModel):
    name: str
    count: int


def _add_test_routes(app: FastAPI) -> None:
    @app.post("/test/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @app.post("/test/audited/{marker}")
    async def audited(marker: str, session: SessionDep, ctx: AuditDep) -> dict[str, int]:
        entry = await audit.record(session, ctx, "test.action", audit.AuditResult.OK, marker=marker)
        return {"id": entry.id}

    @app.post("/test/audited-then-fails/{marker}")
    async def audited_then_fails(marker: str, session: SessionDep, ctx: AuditDep) -> None:
        await audit.record(session, ctx, "test.action", audit.AuditResult.OK, marker=marker)
        raise Conflict("the action failed after its audit record was added")

    @app.get("/test/pool-exhausted")
    async def pool_exhausted() -> None:
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached, secret=xyz")

    @app.get("/test/database-locked")
    async def database_locked() -> None:
        raise OperationalError("UPDATE users SET secret='xyz'", {}, Exception("database is locked"))

    @app.get("/test/whoami")
    async def whoami(principal: PrincipalDep) -> dict[str, str]:
        return {"actor": principal.audit_actor}


@dataclass
class Ras:
    settings: Settings
    client: httpx.AsyncClient
    engine: AsyncEngine

    async def audit_rows(self) -> list[AuditRecord]:
        async with AsyncSession(self.engine) as session:
            return list((await session.execute(select(AuditRecord))).scalars())


@pytest.fixture
async def ras(tmp_path: Path, database_url: str) -> AsyncIterator[Ras]:
    settings = load_settings(
        {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "https_port": 0,
            "limits_max_body_bytes": BODY_LIMIT,
            **CHEAP_ARGON2,
        },
        env={},
    )
    await initialise(settings, "admin@localhost")
    app = create_app(settings, authenticator=TokenTable())
    _add_test_routes(app)
    server = RasServer(settings, app)
    await server.start()
    engine = create_engine(settings.database_url)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, verify=client_context(settings.tls_ca), timeout=10
        ) as client:
            yield Ras(settings, client, engine)
    finally:
        await engine.dispose()
        await server.stop()


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == MEDIA_TYPE
    body: dict[str, object] = response.json()
    assert body["type"] == PROBLEM_BASE + code
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["instance"] == response.request.url.path
    return body


async def test_health_and_readiness(ras: Ras) -> None:
    response = await ras.client.get("/healthz")
    assert response.json() == {"status": "ok"}
    assert response.extensions["http_version"] == b"HTTP/1.1"
    response = await ras.client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_not_ready_when_not_migrated(ras: Ras) -> None:
    await downgrade(ras.engine, "base")
    body = _assert_problem(await ras.client.get("/readyz"), 503, "unavailable")
    assert "migrations" in body["checks"]  # type: ignore[operator]  # JSON object


async def test_openapi_and_docs(ras: Ras) -> None:
    spec = (await ras.client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "heslock RAS"
    assert {"/healthz", "/readyz", "/v1/audit"} <= set(spec["paths"])
    docs = await ras.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_metrics_by_route_template_and_status(ras: Ras) -> None:
    await ras.client.get("/healthz")
    await ras.client.get("/no/such/path/12345")
    await ras.client.get("/v1/audit", headers={"Authorization": "Bearer wrong"})
    text = (await ras.client.get("/metrics")).text
    assert 'heslock_ras_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'route="<unmatched>",status="404"} 1.0' in text
    assert "/no/such/path" not in text
    assert 'heslock_ras_http_request_duration_seconds_count{method="GET",route="/healthz"}' in text
    assert 'heslock_ras_auth_failures_total{mechanism="bearer",reason="invalid"} 1.0' in text


async def test_problem_404_405(ras: Ras) -> None:
    _assert_problem(await ras.client.get("/nope"), 404, "not-found")
    response = await ras.client.post("/healthz")
    _assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET"


async def test_problem_422_does_not_echo_input(ras: Ras) -> None:
    secret = "s3cr3t-value-never-echoed"
    response = await ras.client.post("/test/echo", json={"name": 1, "count": secret})
    body = _assert_problem(response, 422, "validation-failed")
    assert secret not in response.text
    locs = [e["loc"] for e in body["errors"]]  # type: ignore[attr-defined]  # JSON list
    assert ["body", "count"] in locs
    bad_json = await ras.client.post(
        "/test/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    _assert_problem(bad_json, 422, "validation-failed")
    bad_query = await ras.client.get(
        "/v1/audit", params={"limit": 0}, headers={"Authorization": "Bearer admin-token"}
    )
    _assert_problem(bad_query, 422, "validation-failed")


async def test_body_within_limit_is_accepted(ras: Ras) -> None:
    response = await ras.client.post("/test/echo", json={"name": "x" * 100, "count": 3})
    assert response.json() == {"name": "x" * 100, "count": 3}


async def test_413_by_declared_length(ras: Ras) -> None:
    response = await ras.client.post(
        "/test/echo", content=b"x" * (BODY_LIMIT + 1), headers={"content-type": "application/json"}
    )
    _assert_problem(response, 413, "body-too-large")


async def test_413_while_streaming(ras: Ras) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 512  # 4 KiB in total, no Content-Length: chunked encoding

    response = await ras.client.post(
        "/test/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    _assert_problem(response, 413, "body-too-large")


async def test_401_is_audited_and_counted(ras: Ras) -> None:
    missing = await ras.client.get("/v1/audit")
    _assert_problem(missing, 401, "unauthenticated")
    assert missing.headers["www-authenticate"] == "Bearer"
    bad = await ras.client.get(
        "/v1/audit", headers={"Authorization": "Bearer forged", "X-Request-ID": "req-401"}
    )
    _assert_problem(bad, 401, "unauthenticated")
    assert bad.headers["x-request-id"] == "req-401"
    denied = [r for r in await ras.audit_rows() if r.action == "auth.bearer"]
    assert len(denied) == 1  # a missing token is not an attempt; a forged one is
    assert denied[0].result == "denied"
    assert denied[0].actor == "anonymous"
    assert denied[0].source_ip == "127.0.0.1"
    assert denied[0].details["request_id"] == "req-401"
    assert "forged" not in str(denied[0].details)


async def test_audit_log_is_admin_only(ras: Ras) -> None:
    forbidden = await ras.client.get("/v1/audit", headers={"Authorization": "Bearer user-token"})
    _assert_problem(forbidden, 403, "forbidden")
    page = (
        await ras.client.get("/v1/audit", headers={"Authorization": "Bearer admin-token"})
    ).json()
    actions = [item["action"] for item in page["items"]]
    assert actions[0] == "account.create"  # written by `ras init`
    assert page["next_after_id"] is None


async def test_audit_page_keyset(ras: Ras) -> None:
    auth = {"Authorization": "Bearer admin-token"}
    for i in range(3):
        await ras.client.post(f"/test/audited/m{i}", headers=auth)
    first = (await ras.client.get("/v1/audit", params={"limit": 2}, headers=auth)).json()
    assert len(first["items"]) == 2
    rest = await ras.client.get(
        "/v1/audit", params={"after_id": first["next_after_id"]}, headers=auth
    )
    ids = [i["id"] for i in first["items"]] + [i["id"] for i in rest.json()["items"]]
    assert ids == sorted(set(ids))
    assert len(ids) == 4


async def test_audit_record_is_committed_before_the_response(ras: Ras) -> None:
    response = await ras.client.post(
        "/test/audited/committed", headers={"Authorization": "Bearer user-token"}
    )
    assert response.status_code == 200
    rows = {r.id: r for r in await ras.audit_rows()}
    row = rows[response.json()["id"]]
    assert (row.action, row.actor, row.details["marker"]) == (
        "test.action",
        USER.audit_actor,
        "committed",
    )


async def test_failed_action_rolls_back_its_audit_record(ras: Ras) -> None:
    response = await ras.client.post(
        "/test/audited-then-fails/rolled-back", headers={"Authorization": "Bearer user-token"}
    )
    _assert_problem(response, 409, "conflict")
    assert all(r.details.get("marker") != "rolled-back" for r in await ras.audit_rows())


async def test_a_forwarded_for_header_is_not_believed_without_a_trusted_proxy(ras: Ras) -> None:
    """By default the socket peer is the source: a local process cannot choose the address
    the audit log and the per-address throttles see (uvicorn would trust loopback)."""
    bad = await ras.client.get(
        "/v1/audit", headers={"Authorization": "Bearer forged", "X-Forwarded-For": "203.0.113.9"}
    )
    _assert_problem(bad, 401, "unauthenticated")
    denied = [r for r in await ras.audit_rows() if r.action == "auth.bearer"]
    assert [r.source_ip for r in denied] == ["127.0.0.1"]


@pytest.mark.parametrize("route", ["/test/pool-exhausted", "/test/database-locked"])
async def test_database_overload_is_503_with_retry_after_and_no_detail_leak(
    ras: Ras, route: str
) -> None:
    response = await ras.client.get(route)
    body = _assert_problem(response, 503, "unavailable")
    assert response.headers["retry-after"] == "1"
    assert "xyz" not in response.text
    assert "secret" not in str(body)
