"""The user-visible event feed: ``GET /v1/events`` and ``GET /v1/events/stream``.

``GET /v1/events`` lists the caller's events (:mod:`heslock.ras.services.feed`): their
locks' events (owned, or shared with ``view_log``/``view_status``), command outcomes,
lock and gateway online/offline. Newest first, ``limit`` per page, ``before`` (the
smallest id of the previous page) pages further back; ``after`` reads oldest first from
an id instead. Filters: ``lock_id``, ``kind`` (repeatable; ``lock.*`` names a family),
``since``/``until`` (RFC 3339, on the event's time).

``GET /v1/events/stream`` is the same feed live, as Server-Sent Events (``id:`` = the
event's id, ``event:`` = its kind, ``data:`` = the listing's JSON). Reconnecting with the
``Last-Event-ID`` header (or ``?last_event_id=``, for EventSource clients that cannot set
it on the first connection) resumes after that id: nothing lost, nothing twice. Comments
every 15 s keep proxies from closing it; it ends after the access token's lifetime (the
client reconnects with a fresh token). At most a few streams per user at once: 429 above.

A third-party app's token with scope ``events:read`` reads both, limited to the locks its
grant reaches and the granting user may view now (:mod:`heslock.ras.services.feed.visibility`).
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from heslock.errors import UsageError
from heslock.ras.api.deps import BEARER, PrincipalDep, SessionDep, StateDep
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.errors import Forbidden, InvalidInput
from heslock.ras.services.feed.query import MAX_KIND_FILTERS, FeedFilter, list_feed, view
from heslock.ras.services.feed.stream import FeedStream, StreamSlots, parse_last_event_id
from heslock.ras.services.feed.visibility import app_sees_addressed, visible_locks
from heslock.ras.store.models import FeedEvent
from heslock.ras.store.models.feed import MAX_KIND_LEN

router = APIRouter(prefix="/v1", tags=["events"], dependencies=BEARER)

DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 500
EVENT_STREAM: Final = "text/event-stream"


class FeedEventView(BaseModel):
    """One feed event; ``path``: remote, nearby, manual or system; ``credential``:
    ``owner``, ``share`` or ``gateway:<jid>``; ``payload`` depends on ``kind``."""

    id: int
    kind: str
    created_at: datetime
    lock_id: uuid.UUID | None
    home_id: uuid.UUID | None
    gateway_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    path: str
    credential: str | None
    payload: dict[str, Any]


KindQuery = Annotated[
    list[str] | None,
    Query(
        max_length=MAX_KIND_FILTERS,
        description="Kinds to keep (repeatable); a value ending in `.*` keeps a family.",
    ),
]


def _user(principal: Principal) -> uuid.UUID:
    if principal.kind is not PrincipalKind.USER or principal.id is None:
        raise Forbidden("only a user has an event feed")
    return principal.id


def _filter(
    lock_id: uuid.UUID | None,
    kind: list[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> FeedFilter:
    kinds = tuple(kind or ())
    for value in kinds:
        if not 1 <= len(value) <= MAX_KIND_LEN:
            raise InvalidInput(f"a kind is 1..{MAX_KIND_LEN} characters")
    try:
        return FeedFilter(lock_id=lock_id, kinds=kinds, since=since, until=until)
    except UsageError as exc:
        raise InvalidInput(str(exc)) from None


def _now(request: Request) -> datetime:
    return datetime.fromtimestamp(request.app.state.ddms.clock(), UTC)


@router.get("/events", summary="The caller's event feed, newest first")
async def list_events(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    before: Annotated[int | None, Query(ge=1)] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
    lock_id: uuid.UUID | None = None,
    kind: KindQuery = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[FeedEventView]:
    user = _user(principal)
    if before is not None and after is not None:
        raise InvalidInput("page with before or after, not both")
    flt = _filter(lock_id, kind, since, until)
    locks = await visible_locks(session, principal, _now(request))
    # An app's token (scope events:read) sees its grant's locks' events, and of those
    # addressed to its user only share changes about them (feed.visibility).
    integration = principal.integration
    if integration is None:
        rows = await list_feed(session, user, locks, flt, limit=limit, before=before, after=after)
    else:

        async def seen(wanted: set[uuid.UUID]) -> set[uuid.UUID]:
            return wanted & locks

        async def addressed(row: FeedEvent) -> bool:
            assert integration is not None
            return await app_sees_addressed(row, integration, seen)

        rows = await list_feed(
            session,
            None,
            locks,
            flt,
            limit=limit,
            before=before,
            after=after,
            app_user=user,
            addressed=addressed,
        )
    return [FeedEventView.model_validate(view(row)) for row in rows]


class _Held:
    """One acquired stream slot, released exactly once."""

    def __init__(self, slots: StreamSlots, user: uuid.UUID) -> None:
        self.slots, self.user, self.held = slots, user, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release(self.user)


def stream_slots(request: Request) -> StreamSlots:
    slots: StreamSlots | None = getattr(request.app.state, "feed_streams", None)
    if slots is None:
        slots = request.app.state.feed_streams = StreamSlots()
    return slots


@router.get(
    "/events/stream",
    summary="The caller's event feed, live (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {EVENT_STREAM: {}}, "description": "An event stream"}},
)
async def stream_events(
    request: Request,
    principal: PrincipalDep,
    state: StateDep,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[int | None, Query(ge=0)] = None,
    lock_id: uuid.UUID | None = None,
    kind: KindQuery = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    user = _user(principal)
    flt = _filter(lock_id, kind, since, until)
    resume = parse_last_event_id(last_event_id_header)
    if resume is None:
        resume = last_event_id
    clock = request.app.state.ddms.clock
    stream = FeedStream(
        state.sessionmaker,
        principal,
        flt,
        resume,
        clock=lambda: datetime.fromtimestamp(clock(), UTC),
        max_age_s=float(state.settings.token_access_ttl_s),
    )
    slots = stream_slots(request)
    slots.acquire(user)
    held = _Held(slots, user)

    async def body() -> AsyncIterator[str]:
        try:
            async for chunk in stream.events():
                yield chunk
        finally:
            held.release()

    chunks = body()
    # A response never started (the client left first) never runs the generator's
    # ``finally``: the slot is then given back when the generator is collected.
    weakref.finalize(chunks, held.release)
    return StreamingResponse(
        chunks,
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
