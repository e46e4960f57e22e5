"""Live events to people's XMPP sessions, in the RAS process next to the relay (issue 7).

:class:`PersonEvents` hangs off the relay's :class:`~heslock.ras.relay.RelayEndpoint`:
it is the endpoint's :class:`~heslock.xmpp.server.PersonListener` (which sessions of
which person are bound) and the handler of ``urn:heslock:events:1`` IQs, registered for
people's sessions only (:mod:`.wire` is the XML).

One loop for the whole node, not one per session (a session costs no task and no
database connection)::

    seen = notifier.generation
    read up to READ_BATCH feed events after the cursor (one short database session)
    for each: who may see it? -- addressed to a person: that person; about a lock: each
      connected person who owns it or holds a share of it or its home (one query for the
      batch) and whose VisibilityCache says they may view the lock (the SSE rule,
      heslock.ras.services.feed.visibility, the same TTL; a share.* event addressed to a
      person drops their cached verdicts first, so a revocation is effective at once)
    push one headline per event to every bound session of each of them
    every heartbeat: close the sessions of logins revoked or deleted meanwhile
    wait for the notifier (heslock.ras.services.feed.notifier) or the heartbeat

The cursor starts at the feed's high-water mark when the relay starts: live means
"committed from now on". A session that (re)connects asks for what it missed with the
resume IQ (:meth:`PersonEvents.resume`); the ids make the overlap harmless. Events
committed by another RAS node are seen within one heartbeat (as for SSE).

Slow readers: a session's queue is the unread output the server holds for it; a push
finding more than :data:`MAX_UNREAD_BYTES` there closes the session
(``policy-violation``, :meth:`heslock.xmpp.server.XmppServer.push`) instead of letting it
grow: the client reconnects and resumes, losing nothing. One resume request per session
at a time (another is ``resource-constraint``), so a session cannot queue database reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from xml.etree.ElementTree import Element

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from heslock.ras.relay import RelayEndpoint
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.feed.notifier import NOTIFIER, FeedNotifier
from heslock.ras.services.feed.query import FeedFilter, high_water, read_after, view
from heslock.ras.services.feed.visibility import VisibilityCache
from heslock.ras.services.xmppusers import logins
from heslock.ras.services.xmppusers.wire import (
    NS_EVENTS,
    EventItem,
    EventNsError,
    ResumeRequest,
    ResumeResult,
    headline,
)
from heslock.ras.store.models import FeedEvent, HomeLock, Lock, Share, ShareLock, ShareScope
from heslock.xmpp.errors import StanzaError, StanzaErrorCondition, StreamErrorCondition
from heslock.xmpp.jid import Jid
from heslock.xmpp.sasl import EntityKind
from heslock.xmpp.stream import serialize

logger = logging.getLogger(__name__)

#: Seconds between revocation sweeps, and the longest wait without reading the feed
#: (bounds how late another node's events arrive, as the SSE heartbeat does).
HEARTBEAT_S: Final = 15.0
#: Feed events read per database round trip.
READ_BATCH: Final = 200
#: Unread output one session may have before it is closed: a few hundred events, far
#: more than a reading client ever lags, small enough that 10,000 stalled sessions
#: cannot take the node's memory.
MAX_UNREAD_BYTES: Final = 256 * 1024
#: After a failed pass (database down), wait this long before the next one.
RETRY_S: Final = 1.0

PERSON_ONLY: Final = frozenset({EntityKind.PERSON})
#: Feed kinds that change what a person may see (:meth:`PersonEvents._forget_verdicts`).
SHARE_KINDS: Final = "share."


@dataclass
class _Person:
    cache: VisibilityCache
    sessions: set[str] = field(default_factory=set)


async def _candidates(
    session: AsyncSession, locks: set[uuid.UUID], people: Collection[uuid.UUID]
) -> dict[uuid.UUID, set[uuid.UUID]]:
    """Of the connected ``people``, who could see each of ``locks`` at all: owners, and
    holders of an accepted, unrevoked share of the lock or of its home -- the candidates
    of :func:`heslock.ras.services.feed.visibility.visible_locks`. Only they are asked
    the policy, so a lock's event costs its few interested people, not everyone online.
    """
    wanted = list(locks)
    held = and_(Share.accepted_at.is_not(None), Share.revoked_at.is_(None))
    owners = select(Lock.id, Lock.owner_id).where(Lock.id.in_(wanted))
    by_lock = (
        select(ShareLock.lock_id, Share.grantee_id)
        .join(Share, Share.id == ShareLock.share_id)
        .where(ShareLock.lock_id.in_(wanted), held)
    )
    by_home = (
        select(HomeLock.lock_id, Share.grantee_id)
        .join(Share, Share.home_id == HomeLock.home_id)
        .where(HomeLock.lock_id.in_(wanted), Share.scope == ShareScope.HOME.value, held)
    )
    found: dict[uuid.UUID, set[uuid.UUID]] = {}
    for query in (owners, by_lock, by_home):
        for lock, user in (await session.execute(query)).all():
            if user is not None and user in people:
                found.setdefault(user, set()).add(lock)
    return found


class PersonEvents:
    """The node's delivery of feed events to people's XMPP sessions (module docstring)."""

    def __init__(
        self,
        endpoint: RelayEndpoint,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], float],
        *,
        notifier: FeedNotifier = NOTIFIER,
        heartbeat_s: float = HEARTBEAT_S,
        max_unread: int = MAX_UNREAD_BYTES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.notifier = notifier
        self.heartbeat_s = heartbeat_s
        self.max_unread = max_unread
        self.monotonic = monotonic
        self.delivered = 0
        self.dropped = 0
        self._people: dict[uuid.UUID, _Person] = {}
        self._sessions: dict[str, uuid.UUID] = {}  # full JID -> person
        self._busy: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._waiting = False
        endpoint.person_listener = self
        endpoint.iq_handlers.register(NS_EVENTS, self.resume, PERSON_ONLY)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # ------------------------------------------------------------------ PersonListener

    def person_bound(self, jid: Jid, owner: str) -> None:
        try:
            user = uuid.UUID(owner)
        except ValueError:  # pragma: no cover - the credential store always sets it
            logger.exception("a person's session without an owner: closed")
            self.disconnect(jid.bare, "no owner")
            return
        person = self._people.get(user)
        if person is None:
            principal = Principal(PrincipalKind.USER, user)
            person = self._people[user] = _Person(VisibilityCache(principal))
        person.sessions.add(jid.full)
        self._sessions[jid.full] = user

    def person_gone(self, jid: Jid, owner: str) -> None:
        user = self._sessions.pop(jid.full, None)
        if user is None:
            return
        person = self._people.get(user)
        if person is not None:
            person.sessions.discard(jid.full)
            if not person.sessions:
                del self._people[user]

    @property
    def sessions(self) -> int:
        """People's sessions bound on this node."""
        return len(self._sessions)

    # ------------------------------------------------------------------ LoginSessions

    def disconnect(self, bare_jid: str, reason: str) -> None:
        """Close the session of a revoked login (``not-authorized``), if it is here."""
        if self.endpoint.running:
            self.endpoint.server.disconnect(
                bare_jid, StreamErrorCondition.NOT_AUTHORIZED, f"login {reason}"
            )

    @property
    def ports(self) -> dict[str, int]:
        """The relay's bound ports (what a new login's client is told)."""
        return self.endpoint.ports if self.endpoint.running else {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="heslock-xmpp-person-events")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        if self._waiting:
            task.cancel()  # only ever while it waits: no read is cut in half
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        cursor: int | None = None
        last_sweep = self.monotonic()
        while not self._stopping:
            seen = self.notifier.generation
            more = False
            try:
                if cursor is None:
                    async with self.sessionmaker() as session:
                        cursor = await high_water(session)
                more, cursor = await self._pass(cursor)
                if self.monotonic() - last_sweep >= self.heartbeat_s:
                    last_sweep = self.monotonic()
                    await self._sweep()
                pause = self.heartbeat_s
            except Exception:
                logger.exception("delivering events to XMPP sessions failed; retrying")
                pause = RETRY_S
            if more or self._stopping:
                continue
            self._waiting = True
            try:
                await self.notifier.wait(seen, pause)
            finally:
                self._waiting = False

    # ------------------------------------------------------------------ delivery

    async def _pass(self, cursor: int) -> tuple[bool, int]:
        """Push the events after ``cursor``; (read on at once?, the new cursor)."""
        async with self.sessionmaker() as session:
            high = await high_water(session)
            if high <= cursor:
                return False, cursor
            if not self._people:
                return False, high  # nobody to tell: move on without reading
            query = (
                select(FeedEvent)
                .where(FeedEvent.id > cursor, FeedEvent.id <= high)
                .order_by(FeedEvent.id)
                .limit(READ_BATCH)
            )
            rows = list((await session.execute(query)).scalars())
            self._forget_verdicts(rows)
            locks = {row.lock_id for row in rows if row.user_id is None and row.lock_id}
            visible: dict[uuid.UUID, set[uuid.UUID]] = {}
            if locks:
                now, mono = self._now(), self.monotonic()
                for user, maybe in (await _candidates(session, locks, self._people)).items():
                    person = self._people.get(user)
                    if person is not None:
                        visible[user] = await person.cache.visible(session, maybe, now, mono)
        full = len(rows) == READ_BATCH
        self._push(rows, visible)
        return full, rows[-1].id if full else high

    def _forget_verdicts(self, rows: list[FeedEvent]) -> None:
        """A share changed for someone connected (granted, accepted, revoked): their
        cached verdicts go, so this very pass evaluates the policy afresh for them and a
        revocation stops their events at once instead of within the cache's TTL."""
        for row in rows:
            if row.user_id is not None and row.kind.startswith(SHARE_KINDS):
                person = self._people.get(row.user_id)
                if person is not None:
                    person.cache = VisibilityCache(Principal(PrincipalKind.USER, row.user_id))

    def _push(self, rows: list[FeedEvent], visible: dict[uuid.UUID, set[uuid.UUID]]) -> None:
        if not self.endpoint.running:
            return
        server = self.endpoint.server
        domain = self.endpoint.config.domain
        server.batch_begin()  # one TLS record per session for the whole batch
        try:
            for row in rows:
                if row.user_id is not None:
                    users = [row.user_id] if row.user_id in self._people else []
                elif row.lock_id is not None:
                    users = [u for u, locks in visible.items() if row.lock_id in locks]
                else:
                    continue
                if not users:
                    continue
                item = EventItem.from_view(view(row))
                for user in users:
                    person = self._people.get(user)
                    for full in list(person.sessions) if person is not None else ():
                        data = serialize(headline(item, full, domain))
                        if server.push(full, data, self.max_unread):
                            self.delivered += 1
                        else:
                            self.dropped += 1
        finally:
            server.batch_end()

    async def _sweep(self) -> None:
        """Close the sessions whose login was revoked or deleted (module docstring)."""
        if not self._sessions:
            return
        by_name = {Jid.parse(full).local: Jid.parse(full).bare for full in self._sessions}
        async with self.sessionmaker() as session:
            live = await logins.live_usernames(session, by_name)
        for name, bare in by_name.items():
            if name not in live:
                logger.info("XMPP login %s is no longer valid: session closed", name)
                self.disconnect(bare, "revoked")

    # ------------------------------------------------------------------ resume IQ

    async def resume(self, sender: Jid, iq: Element) -> Element:
        """``<events after='N'/>``: what the person may see after N (:mod:`.wire`)."""
        user = self._sessions.get(sender.full)
        if user is None:  # pragma: no cover - the server lets only bound people call
            raise StanzaError(StanzaErrorCondition.FORBIDDEN)
        try:
            request = ResumeRequest.from_element(iq[0])
        except EventNsError as exc:
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, text=str(exc)) from None
        if iq.get("type") != "get":
            raise StanzaError(StanzaErrorCondition.BAD_REQUEST, text="a resume is an IQ get")
        if sender.full in self._busy:
            raise StanzaError(StanzaErrorCondition.RESOURCE_CONSTRAINT, text="one resume at a time")
        person = self._people.get(user)
        cache = (
            person.cache
            if person is not None
            else VisibilityCache(Principal(PrincipalKind.USER, user))
        )
        self._busy.add(sender.full)
        try:
            async with self.sessionmaker() as session:

                async def visible(locks: set[uuid.UUID]) -> set[uuid.UUID]:
                    return await cache.visible(session, locks, self._now(), self.monotonic())

                rows, cursor, more = await read_after(
                    session, user, visible, FeedFilter(), request.after, request.max
                )
        finally:
            self._busy.discard(sender.full)
        items = [EventItem.from_view(view(row)) for row in rows]
        return ResumeResult(request.after, cursor, not more, items).element()


__all__ = ["HEARTBEAT_S", "MAX_UNREAD_BYTES", "PersonEvents"]
