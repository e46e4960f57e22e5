"""Webhooks of third-party apps (issue 8): ``/v1/webhooks`` and the owner's view.

An app's OAuth 2.0 access token with scope ``events:read`` manages the subscriptions it
made under its grant (another app's, or the same app's under another user's grant, are
404). The account that registered the app lists and deletes all of the app's
subscriptions under ``/v1/apps/{app_id}/webhooks`` with its own (UDMS) token.

Deliveries: :mod:`heslock.ras.services.webhooks` (signing, retries, SSRF rules,
disable/re-enable); docs/api.md, "Webhooks", is the contract.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.services import audit
from heslock.ras.services.access import (
    Action,
    Integration,
    Principal,
    Resource,
    ResourceKind,
    authorize,
)
from heslock.ras.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from heslock.ras.services.oauth import store as oauth_store
from heslock.ras.services.udms import throttle
from heslock.ras.services.webhooks import filters, urls
from heslock.ras.services.webhooks import store as hooks
from heslock.ras.store.models import WebhookDelivery, WebhookSubscription
from heslock.ras.store.models.webhooks import MAX_WEBHOOK_DESCRIPTION_LEN, MAX_WEBHOOK_URL_LEN

router = APIRouter(prefix="/v1", tags=["webhooks"], dependencies=BEARER)

NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CREATE_WINDOW: Final = timedelta(hours=1)


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_WEBHOOK_URL_LEN)
    events: list[str] = Field(min_length=1, max_length=filters.MAX_FILTERS)
    description: str | None = Field(default=None, max_length=MAX_WEBHOOK_DESCRIPTION_LEN)


class WebhookOut(BaseModel):
    """A subscription; ``secret`` only in the answer that created it."""

    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    state: str
    created_at: datetime
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    app_id: uuid.UUID
    secret: str | None = None
    previous_valid_until: datetime | None = None


class RotateOut(BaseModel):
    secret: str
    previous_valid_until: datetime


class DeliveryOut(BaseModel):
    """One attempt: ``status_code`` (HTTP) or ``error``; ``next_retry_at`` if retried."""

    id: int
    event_id: str
    attempt: int
    status_code: int | None
    error: str | None
    at: datetime
    next_retry_at: datetime | None


def _now(request: Request) -> datetime:
    return datetime.fromtimestamp(request.app.state.ddms.clock(), UTC)


def _app(principal: Principal) -> Integration:
    if principal.integration is None or principal.id is None:
        raise Forbidden("webhooks are managed with a third-party app's token")
    return principal.integration


def _out(row: WebhookSubscription, secret: str | None = None) -> WebhookOut:
    return WebhookOut(
        id=row.id,
        url=row.url,
        events=list(row.events),
        description=row.description,
        state=row.state,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        app_id=row.client_id,
        secret=secret,
        previous_valid_until=row.previous_valid_until,
    )


async def _mine(
    session: SessionDep, app: Integration, webhook_id: uuid.UUID
) -> WebhookSubscription:
    row = await hooks.find(session, webhook_id, client_id=app.client_id)
    if row is None or row.grant_id != app.grant_id:
        raise NotFound("no such webhook")
    return row


@router.post(
    "/webhooks",
    status_code=201,
    summary="Subscribe a URL to events (the secret is shown once)",
    responses={429: {"description": "Too many subscriptions created; see Retry-After"}},
)
async def create_webhook(
    request: Request,
    body: WebhookCreate,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
    response: Response,
) -> WebhookOut:
    app = _app(principal)
    assert principal.id is not None
    now = _now(request)
    settings = state.settings
    limit = throttle.Limit(settings.webhooks_create_per_hour, CREATE_WINDOW)
    await throttle.charge(session, ctx, {f"webhook:create:{app.client_id}": limit}, now)
    try:
        events = filters.normalise(body.events)
        dest = urls.check(
            body.url, allow_insecure_loopback=settings.webhooks_allow_insecure_loopback
        )
        await urls.resolve(dest)
    except (filters.FilterError, urls.DestinationRefused) as exc:
        raise InvalidInput(str(exc)) from None
    if await hooks.count_for_grant(session, app.grant_id) >= settings.webhooks_max_per_grant:
        raise Conflict(f"at most {settings.webhooks_max_per_grant} webhooks per grant")
    created = await hooks.create(
        session,
        state.keystore,
        client_id=app.client_id,
        grant_id=app.grant_id,
        user_id=principal.id,
        url=body.url,
        events=events,
        description=body.description,
        now=now,
    )
    await audit.record(
        session,
        ctx,
        "webhook.create",
        audit.AuditResult.OK,
        f"webhook:{created.row.id}",
        client=str(app.client_id),
    )
    response.headers.update(NO_STORE)
    return _out(created.row, created.secret)


@router.get("/webhooks", summary="The app's webhooks under this grant")
async def list_webhooks(principal: PrincipalDep, session: SessionDep) -> list[WebhookOut]:
    app = _app(principal)
    rows = await hooks.list_for(session, client_id=app.client_id, grant_id=app.grant_id)
    return [_out(row) for row in rows]


@router.get("/webhooks/{webhook_id}", summary="One webhook")
async def get_webhook(
    webhook_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> WebhookOut:
    return _out(await _mine(session, _app(principal), webhook_id))


@router.delete("/webhooks/{webhook_id}", status_code=204, summary="Delete a webhook")
async def delete_webhook(
    webhook_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, ctx: AuditDep
) -> Response:
    row = await _mine(session, _app(principal), webhook_id)
    await hooks.remove(session, row)
    await audit.record(
        session, ctx, "webhook.delete", audit.AuditResult.OK, f"webhook:{webhook_id}"
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhooks/{webhook_id}/rotate",
    summary="A new signing secret; the old one signs alongside for 24 h",
)
async def rotate_webhook(
    request: Request,
    webhook_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
    response: Response,
) -> RotateOut:
    row = await _mine(session, _app(principal), webhook_id)
    secret, until = await hooks.rotate(session, state.keystore, row, _now(request))
    await audit.record(session, ctx, "webhook.rotate", audit.AuditResult.OK, f"webhook:{row.id}")
    response.headers.update(NO_STORE)
    return RotateOut(secret=secret, previous_valid_until=until)


@router.post("/webhooks/{webhook_id}/enable", summary="Re-enable a disabled webhook")
async def enable_webhook(
    request: Request,
    webhook_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
) -> WebhookOut:
    row = await _mine(session, _app(principal), webhook_id)
    try:
        urls.check(row.url, allow_insecure_loopback=state.settings.webhooks_allow_insecure_loopback)
    except urls.DestinationRefused as exc:
        raise InvalidInput(str(exc)) from None
    await hooks.enable(session, row, _now(request))
    await audit.record(session, ctx, "webhook.enable", audit.AuditResult.OK, f"webhook:{row.id}")
    return _out(row)


def _delivery_out(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        event_id=str(row.event_id),
        attempt=row.attempt,
        status_code=row.status_code,
        error=row.error,
        at=row.created_at,
        next_retry_at=row.next_retry_at,
    )


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    summary="The delivery log, newest first (keyset paging with before)",
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=hooks.MAX_LOG_PAGE)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> list[DeliveryOut]:
    row = await _mine(session, _app(principal), webhook_id)
    found = await hooks.deliveries(session, row.id, limit=limit, before=before)
    return [_delivery_out(d) for d in found]


# --------------------------------------------------------------------------- the owner


async def _owned_app(session: SessionDep, principal: Principal, app_id: uuid.UUID) -> uuid.UUID:
    client = await oauth_store.active_client(session, app_id)
    if client is None:
        raise NotFound("no such app")
    authorize(
        principal, Action.APP_READ, Resource(ResourceKind.APP, str(client.id), client.owner_id)
    )
    return client.id


@router.get("/apps/{app_id}/webhooks", summary="Every webhook of one of the caller's apps")
async def list_app_webhooks(
    app_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> list[WebhookOut]:
    client_id = await _owned_app(session, principal, app_id)
    return [_out(row) for row in await hooks.list_for(session, client_id=client_id)]


@router.delete(
    "/apps/{app_id}/webhooks/{webhook_id}",
    status_code=204,
    summary="Delete a webhook of one of the caller's apps",
)
async def delete_app_webhook(
    app_id: uuid.UUID,
    webhook_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    ctx: AuditDep,
) -> Response:
    client_id = await _owned_app(session, principal, app_id)
    row = await hooks.find(session, webhook_id, client_id=client_id)
    if row is None:
        raise NotFound("no such webhook")
    await hooks.remove(session, row)
    await audit.record(
        session, ctx, "webhook.delete", audit.AuditResult.OK, f"webhook:{webhook_id}"
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


__all__ = ["router"]
