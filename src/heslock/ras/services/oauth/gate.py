"""What an app's token may reach, checked on every request before the route runs.

:func:`check` is called by :func:`heslock.ras.api.deps.current_principal` for a principal
with an :class:`~heslock.ras.services.access.Integration`:

1. the route must be in :data:`.scopes.ROUTES` and the token hold one of its scopes,
   else 403 (every other route -- account, sessions, gateways, registrations, the app
   management routes themselves -- refuses apps);
2. a ``{lock_id}`` in the path must be a lock the user let the app reach (listed on the
   grant, or in a listed home), else 404 as for any lock one cannot see;
3. a ``{share_id}`` must be a share whose locks (or home) the app may all reach, and
   ``POST /v1/shares`` may only name such locks or home;
4. ``POST /v1/locks/{id}/commands`` must ask for a command the token's scope covers
   (``locks:lock`` never unlocks) -- defence in depth: the command path decides again
   with ``effective_access(..., path=Path.INTEGRATION, scope=principal.scope)``.

Whether the *user* may do it at all is then the route's usual decision, made on the
user's rights at that moment: nothing is cached.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from heslock.ras.services.access import Integration, Principal
from heslock.ras.services.errors import Forbidden, NotFound
from heslock.ras.services.oauth import scopes as oauth_scopes
from heslock.ras.store.models import HomeLock, Share, ShareLock


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def _home_of(session: AsyncSession, lock_id: uuid.UUID) -> uuid.UUID | None:
    query = select(HomeLock.home_id).where(HomeLock.lock_id == lock_id)
    return (await session.execute(query)).scalar_one_or_none()


async def reaches_lock(session: AsyncSession, integration: Integration, lock_id: uuid.UUID) -> bool:
    if lock_id in integration.lock_ids:
        return True
    return integration.reaches(lock_id, await _home_of(session, lock_id))


async def _reaches_share(
    session: AsyncSession, integration: Integration, share_id: uuid.UUID
) -> bool:
    share = await session.get(Share, share_id)
    if share is None:
        return False
    if share.home_id is not None and share.home_id in integration.home_ids:
        return True
    locks = select(ShareLock.lock_id).where(ShareLock.share_id == share_id)
    lock_ids = list((await session.execute(locks)).scalars())
    if not lock_ids:
        return False
    for lock_id in lock_ids:
        if not await reaches_lock(session, integration, lock_id):
            return False
    return True


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        return None  # the route's own validation answers 422


async def check(session: AsyncSession, request: Request, principal: Principal) -> None:
    """Raise unless ``principal``'s app may make this request (module docstring)."""
    integration = principal.integration
    if integration is None:
        return
    route = request.scope.get("route")
    template = getattr(route, "path", None) or ""
    scopes = frozenset(oauth_scopes.Scope(s) for s in integration.scopes)
    if not oauth_scopes.route_allows(request.method, template, scopes):
        raise Forbidden("this route is not open to third-party apps with this token's scope")
    params = request.path_params
    if "lock_id" in params:
        lock_id = _uuid(params["lock_id"])
        if lock_id is None or not await reaches_lock(session, integration, lock_id):
            raise NotFound("no such lock")
    if "share_id" in params:
        share_id = _uuid(params["share_id"])
        if share_id is None or not await _reaches_share(session, integration, share_id):
            raise NotFound("no such share")
    if (request.method, template) == ("POST", "/v1/locks/{lock_id}/commands"):
        await _check_command(request, integration)
    if (request.method, template) == ("POST", "/v1/shares"):
        await _check_new_share(session, request, integration)


async def _check_command(request: Request, integration: Integration) -> None:
    body = await _json(request)
    command = body.get("command") if isinstance(body, dict) else None
    if command is not None and not oauth_scopes.command_allowed(command, integration.permissions):
        raise Forbidden("the token's scope does not allow this command")


async def _check_new_share(
    session: AsyncSession, request: Request, integration: Integration
) -> None:
    body = await _json(request)
    if not isinstance(body, dict):
        return
    if body.get("home_id") is not None:
        home = _uuid(body["home_id"])
        if home is None or home not in integration.home_ids:
            raise NotFound("no such home")
    raw_locks = body.get("lock_ids")
    for raw in raw_locks if isinstance(raw_locks, list) else []:
        lock_id = _uuid(raw)
        if lock_id is None or not await reaches_lock(session, integration, lock_id):
            raise NotFound("no such lock")
