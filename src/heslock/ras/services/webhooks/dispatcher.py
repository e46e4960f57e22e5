"""Delivering feed events to webhook subscriptions: at least once, in order, signed.

One :class:`WebhookDispatcher` runs in each RAS process that runs the relay (started
by :class:`heslock.ras.services.commands.hosting.RelayHost`). A pass (:meth:`run_once`)::

    for each active subscription that is due (next_attempt_at passed or unset):
        claim it (lease_until, so two RAS nodes never deliver one subscription at once)
        read the feed after its cursor: the kinds it wants, the events its app may see
          under its grant now (heslock.ras.services.feed.visibility: same rule as
          GET /v1/events for that app's token)
        POST them one by one, oldest first; after each, in a short transaction:
          2xx      -> cursor = event id, retry state cleared, log "delivered"
          failure  -> log it; attempt += 1, next_attempt_at = now + back-off (jitter);
                      stop this subscription until then. After max_attempts the event
                      is given up (cursor moves past it, failed_events += 1).
        every attempt failing for webhooks_disable_after_s, or failed_events reaching
          webhooks_disable_after_events -> disabled, owner notified (.notify)

The cursor is stored: a restart resumes after the last event settled, and an event whose
delivery was in flight when the process died is sent again (same ``webhook-id``: the
receiver de-duplicates). A revoked share, grant or app stops deliveries at the next
read: visibility is evaluated on every read, never cached across passes.

Each HTTP request goes to the address the SSRF check approved (:mod:`.urls`), with no
redirects, no proxies from the environment, no connection reuse (a pooled connection
to one address must not carry another host's request), a total timeout of
``webhooks_timeout_s`` and the response body left unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from heslock.ras.keystore import Keystore
from heslock.ras.services import audit
from heslock.ras.services.access import Principal, PrincipalKind
from heslock.ras.services.feed.notifier import NOTIFIER, FeedNotifier
from heslock.ras.services.feed.query import FeedFilter, read_after, view
from heslock.ras.services.feed.visibility import VisibilityCache, app_sees_addressed
from heslock.ras.services.oauth import scopes as oauth_scopes
from heslock.ras.services.oauth.store import integration_of
from heslock.ras.services.webhooks import notify, signing, urls
from heslock.ras.services.webhooks.backoff import Schedule
from heslock.ras.services.webhooks.store import prune_log, signing_keys
from heslock.ras.settings import Settings
from heslock.ras.store.models import (
    FeedEvent,
    OAuthClient,
    OAuthGrant,
    User,
    WebhookDelivery,
    WebhookState,
    WebhookSubscription,
)
from heslock.ras.store.models.webhooks import MAX_DELIVERY_ERROR_LEN

logger = logging.getLogger(__name__)

#: Subscriptions examined per pass at most (the rest next pass).
PASS_LIMIT: Final = 200
#: Subscriptions delivered to at once per node.
CONCURRENCY: Final = 16
#: Events read per subscription per round trip.
READ_BATCH: Final = 50
#: Scans of the feed per read when nothing in them is for the app.
SCANS_PER_READ: Final = 20
#: Events delivered per subscription per pass at most (others wait their turn).
EVENTS_PER_PASS: Final = 200
#: Seconds a claim holds beyond one request's timeout.
LEASE_MARGIN_S: Final = 60.0
#: Seconds beyond the request timeout that stopping waits for attempts in flight.
STOP_MARGIN_S: Final = 5.0
#: Audit actor of the dispatcher.
CONTEXT: Final = audit.AuditContext("system:webhooks")

Clock = Callable[[], float]
Random = Callable[[], float]


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Pending:
    """One event to send: its id, body, and what signs it."""

    event_id: int
    body: bytes


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def payload(row: FeedEvent, subscription_id: uuid.UUID) -> bytes:
    """The delivery body (docs/api.md, "Webhooks")."""
    data = view(row)
    data["created_at"] = _utc(row.created_at)  # as the API renders it (RFC 3339, Z)
    document: dict[str, Any] = {
        "id": str(row.id),
        "type": row.kind,
        "timestamp": _utc(row.created_at),
        "subscription": str(subscription_id),
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def feed_filter(events: list[str]) -> FeedFilter:
    if "*" in events:
        return FeedFilter()
    return FeedFilter(kinds=tuple(events))


class WebhookDispatcher:
    """Runs :meth:`run_once` whenever the feed moves or a retry falls due (module docstring)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        keystore: Keystore,
        settings: Settings,
        clock: Clock,
        *,
        notifier: FeedNotifier = NOTIFIER,
        rand: Random = random.random,
        verify: Any = True,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.keystore = keystore
        self.settings = settings
        self.clock = clock
        self.notifier = notifier
        self.rand = rand
        self.schedule = Schedule(
            settings.webhooks_retry_base_s,
            max(settings.webhooks_retry_base_s, settings.webhooks_retry_max_s),
            settings.webhooks_max_attempts,
        )
        self.lease = timedelta(seconds=settings.webhooks_timeout_s + LEASE_MARGIN_S)
        self.verify = verify
        self.attempts = 0
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._stopping = asyncio.Event()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.webhooks_timeout_s),
                verify=self.verify,
                follow_redirects=False,
                trust_env=False,
                limits=httpx.Limits(max_keepalive_connections=0),
                headers={"User-Agent": "heslock-webhooks/1"},
            )
            self._task = asyncio.create_task(self._run(), name="ras-webhooks")

    async def stop(self) -> None:
        """Let attempts in flight finish and settle (bounded by the request timeout),
        start no new one, then stop; cancelled only if that takes too long."""
        task, self._task = self._task, None
        self._stopping.set()
        if task is not None:
            try:
                await asyncio.wait_for(task, self.settings.webhooks_timeout_s + STOP_MARGIN_S)
            except TimeoutError:
                logger.warning("webhook dispatcher did not stop in time; cancelled")
            except Exception:
                logger.exception("webhook dispatcher failed while stopping")
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        # At shutdown the app disposes its engine before the relay stops: a pass run in
        # between checked a new connection into the fresh pool. Close what is idle there
        # (connections in use elsewhere are closed when returned; the engine stays usable).
        bind = self.sessionmaker.kw.get("bind")
        if isinstance(bind, AsyncEngine):
            await bind.dispose()

    async def _run(self) -> None:
        poll = self.settings.webhooks_poll_s
        while not self._stopping.is_set():
            seen = self.notifier.generation
            try:
                wait = await self.run_once()
            except Exception:
                logger.exception("webhook pass failed; again in %.0f s", poll)
                wait = poll
            if self._stopping.is_set():
                return
            woken = asyncio.ensure_future(self.notifier.wait(seen, max(0.01, min(wait, poll))))
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({woken, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (woken, stopping):
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiter

    # ------------------------------------------------------------------ one pass

    async def run_once(self) -> float:
        """Deliver what is due; the seconds until the next retry falls due (or the poll)."""
        now = self.now()
        async with self.sessionmaker() as session:
            query = (
                select(WebhookSubscription.id)
                .where(
                    WebhookSubscription.state == WebhookState.ACTIVE.value,
                    or_(
                        WebhookSubscription.next_attempt_at.is_(None),
                        WebhookSubscription.next_attempt_at <= now,
                    ),
                    or_(
                        WebhookSubscription.lease_until.is_(None),
                        WebhookSubscription.lease_until <= now,
                    ),
                )
                .order_by(WebhookSubscription.next_attempt_at, WebhookSubscription.id)
                .limit(PASS_LIMIT)
            )
            due = list((await session.execute(query)).scalars())
        if due:
            await asyncio.gather(*(self._guarded(sub) for sub in due))
        return await self._next_due()

    async def _next_due(self) -> float:
        now = self.now()
        async with self.sessionmaker() as session:
            query = select(WebhookSubscription.next_attempt_at).where(
                WebhookSubscription.state == WebhookState.ACTIVE.value,
                WebhookSubscription.next_attempt_at.is_not(None),
            )
            query = query.order_by(WebhookSubscription.next_attempt_at).limit(1)
            nxt = (await session.execute(query)).scalar_one_or_none()
        if nxt is None:
            return self.settings.webhooks_poll_s
        return max(0.0, (nxt - now).total_seconds())

    async def _guarded(self, subscription_id: uuid.UUID) -> None:
        async with self._limit:
            try:
                await self.deliver(subscription_id)
            except Exception:
                logger.exception("webhook %s: pass failed", subscription_id)

    async def _claim(self, subscription_id: uuid.UUID) -> bool:
        now = self.now()
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(
                update(WebhookSubscription)
                .where(
                    WebhookSubscription.id == subscription_id,
                    WebhookSubscription.state == WebhookState.ACTIVE.value,
                    or_(
                        WebhookSubscription.lease_until.is_(None),
                        WebhookSubscription.lease_until <= now,
                    ),
                )
                .values(lease_until=now + self.lease)
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def _release(self, subscription_id: uuid.UUID) -> None:
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(WebhookSubscription)
                .where(WebhookSubscription.id == subscription_id)
                .values(lease_until=None)
                .execution_options(synchronize_session=False)
            )

    async def deliver(self, subscription_id: uuid.UUID) -> None:
        """Deliver one subscription's due events (module docstring)."""
        if not await self._claim(subscription_id):
            return
        try:
            sent = 0
            while sent < EVENTS_PER_PASS:
                batch = await self._read(subscription_id)
                if batch is None:
                    return
                cursor, pending, keys, dest = batch
                if not pending:
                    return
                for item in pending:
                    if self._stopping.is_set():
                        return  # stopping: start no new attempt
                    outcome = await self._post(dest, keys, item)
                    sent += 1
                    if not await self._settle(subscription_id, cursor, item, outcome):
                        return
                    cursor = item.event_id
        finally:
            await self._release(subscription_id)

    async def _principal(self, session: AsyncSession, row: WebhookSubscription) -> Principal | None:
        """The app acting for its user under the subscription's grant, if still in force."""
        query = (
            select(OAuthGrant)
            .join(OAuthClient, OAuthGrant.client_id == OAuthClient.id)
            .join(User, OAuthGrant.user_id == User.id)
            .where(
                OAuthGrant.id == row.grant_id,
                OAuthGrant.revoked_at.is_(None),
                OAuthClient.revoked_at.is_(None),
                User.status == "active",
            )
        )
        grant = (await session.execute(query)).scalar_one_or_none()
        if grant is None:
            return None
        integration = integration_of(grant, oauth_scopes.render(grant.scopes))
        return Principal(PrincipalKind.USER, grant.user_id, integration=integration)

    async def _read(
        self, subscription_id: uuid.UUID
    ) -> tuple[int, list[Pending], list[bytes], urls.Destination] | None:
        """The next events to send, or None when this subscription has nothing to do.

        Events the app may not see (or does not want) are settled at once: the cursor
        moves past them.
        """
        now = self.now()
        async with self.sessionmaker() as session, session.begin():
            row = await session.get(WebhookSubscription, subscription_id)
            if row is None or row.state != WebhookState.ACTIVE.value:
                return None
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                return None
            principal = await self._principal(session, row)
            if principal is None:
                return None  # grant, app or user gone: nothing is delivered
            try:
                dest = urls.check(
                    row.url,
                    allow_insecure_loopback=self.settings.webhooks_allow_insecure_loopback,
                )
            except urls.DestinationRefused:
                await self._disable(session, row, "destination-refused", now)
                return None
            cache = VisibilityCache(principal, ttl_s=0.0)

            async def visible(locks: set[uuid.UUID]) -> set[uuid.UUID]:
                return await cache.visible(session, locks, now, 0.0)

            integration = principal.integration
            assert integration is not None

            async def addressed(event: FeedEvent) -> bool:
                assert integration is not None
                return await app_sees_addressed(event, integration, visible)

            flt = feed_filter(row.events)
            rows: list[FeedEvent] = []
            for _ in range(SCANS_PER_READ):
                rows, new_cursor, full = await read_after(
                    session,
                    None,
                    visible,
                    flt,
                    row.cursor,
                    READ_BATCH,
                    app_user=principal.id,
                    addressed=addressed,
                )
                if rows:
                    break
                row.cursor = new_cursor  # nothing for this app up to there
                if not full:
                    break
            if not rows:
                return None
            keys = signing_keys(self.keystore, row, now)
            pending = [Pending(event.id, payload(event, row.id)) for event in rows]
            return row.cursor, pending, keys, dest

    async def _post(self, dest: urls.Destination, keys: list[bytes], item: Pending) -> Outcome:
        """One attempt (module docstring); never raises for the receiver's faults."""
        client = self._client
        if client is None:  # pragma: no cover - stopped mid-pass
            return Outcome(None, "stopped")
        self.attempts += 1
        msg_id = str(item.event_id)
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.signature_header(keys, msg_id, timestamp, item.body),
            "Host": dest.host_header,
        }
        try:
            address = await urls.resolve(dest)
        except urls.DestinationRefused as exc:
            return Outcome(None, str(exc))
        extensions: dict[str, Any] = {}
        if dest.scheme == "https":
            extensions["sni_hostname"] = dest.host
        try:
            async with client.stream(
                "POST",
                dest.target(address),
                content=item.body,
                headers=headers,
                extensions=extensions,
            ) as response:
                return Outcome(response.status_code, None)
        except httpx.TimeoutException:
            return Outcome(None, "timeout")
        except httpx.HTTPError as exc:
            return Outcome(None, f"connection error: {type(exc).__name__}")
        except OSError as exc:
            return Outcome(None, f"connection error: {type(exc).__name__}")

    async def _settle(
        self, subscription_id: uuid.UUID, based_on: int, item: Pending, outcome: Outcome
    ) -> bool:
        """Record an attempt and move the subscription on; True to send the next event."""
        now = self.now()
        notice: notify.Notice | None = None
        go_on = False
        async with self.sessionmaker() as session:
            async with session.begin():
                row = await session.get(WebhookSubscription, subscription_id)
                if row is None or row.state != WebhookState.ACTIVE.value or row.cursor != based_on:
                    return False  # deleted, disabled, re-enabled meanwhile: start over
                failures = row.attempt + 1
                log = WebhookDelivery(
                    subscription_id=row.id,
                    event_id=item.event_id,
                    attempt=failures,
                    status_code=outcome.status_code,
                    error=(outcome.error or None) and outcome.error[:MAX_DELIVERY_ERROR_LEN],
                    created_at=now,
                )
                row.updated_at = now
                row.lease_until = now + self.lease
                if outcome.delivered:
                    row.cursor = item.event_id
                    row.attempt = 0
                    row.next_attempt_at = None
                    row.failing_since = None
                    row.failed_events = 0
                    go_on = True
                else:
                    if row.failing_since is None:
                        row.failing_since = now
                    if self.schedule.exhausted(failures):
                        row.cursor = item.event_id  # given up
                        row.attempt = 0
                        row.failed_events += 1
                        row.next_attempt_at = now + timedelta(
                            seconds=self.schedule.delay(1, self.rand)
                        )
                    else:
                        row.attempt = failures
                        row.next_attempt_at = now + timedelta(
                            seconds=self.schedule.delay(failures, self.rand)
                        )
                    log.next_retry_at = row.next_attempt_at
                    reason = self._disable_reason(row, now)
                    if reason is not None:
                        log.next_retry_at = None
                        notice = await self._disable(session, row, reason, now)
                session.add(log)
                await session.flush()
                await prune_log(session, row.id)
            if notice is not None:
                await notify.mail(session, self.settings, notice)
        if not outcome.delivered:
            logger.info(
                "webhook %s: event %d attempt %d failed (%s)",
                subscription_id,
                item.event_id,
                failures,
                outcome.status_code or outcome.error,
            )
        return go_on

    def _disable_reason(self, row: WebhookSubscription, now: datetime) -> str | None:
        if row.failed_events >= self.settings.webhooks_disable_after_events:
            return "too-many-failed-events"
        if row.failing_since is not None and (now - row.failing_since) >= timedelta(
            seconds=self.settings.webhooks_disable_after_s
        ):
            return "failing-too-long"
        return None

    async def _disable(
        self, session: AsyncSession, row: WebhookSubscription, reason: str, now: datetime
    ) -> notify.Notice | None:
        row.state = WebhookState.DISABLED.value
        row.disabled_at = now
        row.disabled_reason = reason
        row.next_attempt_at = None
        row.updated_at = now
        await audit.record(
            session,
            CONTEXT,
            "webhook.disabled",
            audit.AuditResult.FAILED,
            target=f"webhook:{row.id}",
            client=str(row.client_id),
            reason=reason,
        )
        logger.warning("webhook %s disabled: %s", row.id, reason)
        return await notify.publish_disabled(session, row, reason, now)
