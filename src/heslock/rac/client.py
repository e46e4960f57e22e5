"""The RAS clients: :class:`AsyncRasClient` and :class:`RasClient` (synchronous).

Both execute the :class:`~heslock.rac.calls.Call` descriptions of :mod:`heslock.rac.calls`
through one shared core (:class:`_Core`: building requests, reading answers, problems,
transport failures, token effects); only the sending differs (``await`` or not). Each has
its own httpx client: the synchronous one runs no event loop.

Authentication, per call::

    no tokens in the store                  -> NotLoggedIn (nothing sent)
    access token expired by the local clock -> refresh first
    401 from the RAS and not refreshed yet  -> refresh once, send again (never a loop:
                                               a second 401 is the caller's problem);
                                               not for a call carrying the password (its
                                               401 may be a wrong password): refreshed
                                               ahead of time instead
    refresh answered 401                    -> the session is over: the store is cleared,
                                               NotLoggedIn

A 401 means the RAS authenticated nothing and ran nothing, so sending again is safe even for
a command. Refreshing rotates the pair and the old refresh token must never be presented
again (the RAS ends the session on reuse): refreshes are serialised by a lock, the store is
re-read under it (a concurrent caller may already have refreshed: its pair is used), and
the new pair is saved before the call is retried. A store shared by several processes
(:class:`~heslock.rac.tokens.SharedTokenStore`) is held exclusively meanwhile.
"""

from __future__ import annotations

import asyncio
import builtins
import hmac
import ssl
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import httpx

from heslock.protocol.ids import DeviceId
from heslock.rac import calls
from heslock.rac.calls import Call, TokenEffect
from heslock.rac.errors import (
    InvalidArgument,
    NotLoggedIn,
    RasBadAnswer,
    RasProblem,
    RasUnreachable,
)
from heslock.rac.models import (
    Account,
    ArrivalConfirmation,
    ArrivalSuggestion,
    AuditPage,
    CodeSent,
    CommandResult,
    Contact,
    Device,
    FeedEvent,
    Gateway,
    GatewayCredentials,
    Geofence,
    Home,
    ImportResult,
    Invitation,
    Legitimacy,
    LocationAccepted,
    Lock,
    LockEvent,
    LoginChallenge,
    LoginCodeSent,
    NearbyFrame,
    PasswordChanged,
    Registration,
    Schedule,
    Session,
    Share,
    SharePage,
    Tokens,
    TotpEnrolment,
)
from heslock.rac.sse import EventStreamParser
from heslock.rac.tokens import MemoryTokenStore, SharedTokenStore, TokenStore

T = TypeVar("T")

DEFAULT_TIMEOUT_S: Final = 30.0
#: The RAS's default page size of share and event listings.
DEFAULT_PAGE: Final = 50
#: The live feed sends a keepalive every 15 s: a stream silent this long is dead.
STREAM_READ_TIMEOUT_S: Final = 45.0
USER_AGENT: Final = "heslock-rac/0.1"
#: A call carrying the password is not repeated after a 401 (calls.Call.resend_on_401): an
#: access token this close to its end is refreshed before it is sent instead.
PASSWORD_CALL_MARGIN: Final = timedelta(seconds=120)
#: Challenges whose code channel is remembered (second_factor's default method).
_REMEMBERED_CHALLENGES: Final = 8
_SESSION_ENDED: Final = (
    "the session has ended (logged out, revoked, expired or refreshed elsewhere): log in again"
)

ContactRef = uuid.UUID | str | Contact
ChallengeRef = LoginChallenge | str


def tls_context(ca: Path | None) -> ssl.SSLContext:
    """TLS 1.2+ with the system's trust, or with only ``ca`` (the RAS's private CA: trust it
    per client, never system-wide — docs/api.md, "Base URL and TLS")."""
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except FileNotFoundError:
        raise InvalidArgument(f"CA file {ca} does not exist") from None
    except ssl.SSLError:  # before OSError, its base class
        raise InvalidArgument(f"CA file {ca} holds no PEM certificate") from None
    except OSError as exc:
        raise InvalidArgument(f"CA file {ca}: {exc.strerror or exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def check_base_url(url: str) -> str:
    """``https://HOST[:PORT]``: the RAS has no plain-HTTP listener, and a bearer token must
    never cross the network in the clear."""
    text = url.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise InvalidArgument(f"{url!r} is not a URL") from None
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidArgument(f"the RAS URL must be https://HOST[:PORT], not {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidArgument(f"the RAS URL takes no query, fragment or credentials: {url!r}")
    return text


def _same_pair(a: Tokens, b: Tokens) -> bool:
    return hmac.compare_digest(a.access_token.encode(), b.access_token.encode())


def _failure_reason(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"its certificate does not verify ({cause.verify_message}): "
                "is the CA file the RAS's?"
            )
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    text = str(exc).strip()
    return text or type(exc).__name__


class _Core:
    """What both clients share: the store, requests, answers, errors (module docstring)."""

    def __init__(
        self, base_url: str, tokens: TokenStore | None, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.timeout = timeout
        self.store: TokenStore = tokens if tokens is not None else MemoryTokenStore()
        self._channels: OrderedDict[str, str] = OrderedDict()

    # ---------------------------------------------------------------- tokens

    def session(self) -> Tokens:
        tokens = self.store.load()
        if tokens is None:
            raise NotLoggedIn("not logged in")
        return tokens

    @staticmethod
    def refresh_first(call: Call[Any], tokens: Tokens) -> bool:
        """Refresh before sending: the access token has expired by the local clock, or it
        soon will and the call carries the password (it is never sent twice)."""
        margin = PASSWORD_CALL_MARGIN if call.carries_password else timedelta(seconds=10)
        return tokens.access_expired(calls.utcnow(), margin)

    def exclusive(self) -> AbstractContextManager[None]:
        if isinstance(self.store, SharedTokenStore):
            return self.store.exclusive()
        return nullcontext()

    def pick_refresh(self, stale: Tokens | None) -> Tokens | None:
        """Under the refresh lock: the stored pair if someone else already rotated ``stale``
        (use it as is), else None (rotate it now)."""
        current = self.store.load()
        if current is None:
            raise NotLoggedIn(_SESSION_ENDED)
        if stale is not None and not _same_pair(current, stale):
            return current
        if current.refresh_expires_at <= calls.utcnow():
            self.store.save(None)
            raise NotLoggedIn(_SESSION_ENDED)
        return None

    def refreshed(self, call: Call[Tokens], response: httpx.Response) -> Tokens:
        try:
            tokens = self.finish(call, response)
        except RasProblem as problem:
            if problem.status == 401:
                self.store.save(None)
                raise NotLoggedIn(_SESSION_ENDED) from None
            raise
        self.store.save(tokens)
        return tokens

    def remember_channel(self, challenge: str, channel: str) -> None:
        self._channels[challenge] = channel
        while len(self._channels) > _REMEMBERED_CHALLENGES:
            self._channels.popitem(last=False)

    def second_factor(self, challenge: ChallengeRef, code: str, method: str | None) -> Call[Tokens]:
        token = challenge.challenge if isinstance(challenge, LoginChallenge) else challenge
        if method is None:
            methods = challenge.methods if isinstance(challenge, LoginChallenge) else ("totp",)
            method = self._channels.get(token) or ("totp" if "totp" in methods else None)
        if method is None:
            raise InvalidArgument("which second factor? send a code first, or pass method=")
        return calls.second_factor(token, method, code)

    # ---------------------------------------------------------------- HTTP

    def request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call[Any], tokens: Tokens | None
    ) -> httpx.Request:
        headers = dict(call.headers)
        if tokens is not None:
            headers["Authorization"] = f"Bearer {tokens.access_token}"
        if call.content_type is not None:
            headers["Content-Type"] = call.content_type
        # A stream idles between heartbeats: wait for a few of them, whatever the timeout.
        read_s = max(self.timeout, STREAM_READ_TIMEOUT_S) if call.stream else self.timeout
        return http.build_request(
            call.method,
            call.path,
            json=call.json,
            content=call.content,
            params=list(call.params) or None,  # a list: a key may repeat (kind=)
            headers=headers,
            timeout=httpx.Timeout(self.timeout, read=read_s),
        )

    def unreachable(self, exc: httpx.TransportError) -> RasUnreachable:
        not_sent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol)
        return RasUnreachable(
            f"cannot reach the RAS at {self.base_url}: {_failure_reason(exc)}",
            maybe_sent=not isinstance(exc, not_sent),
        )

    def finish(self, call: Call[T], response: httpx.Response) -> T:
        """The parsed answer, with its effect on the store; or the problem, raised."""
        status = response.status_code
        if status not in call.ok:
            raise self.problem(response)
        data = self.json(response) if status != 204 and response.content else None
        result = call.parse(data)
        if call.effect is TokenEffect.SAVE:
            assert isinstance(result, Tokens)
            self.store.save(result)
        elif call.effect is TokenEffect.CLEAR:
            self.store.save(None)
        return result

    @staticmethod
    def json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise RasBadAnswer(
                f"the RAS answered HTTP {response.status_code} with a body that is not JSON"
            ) from None

    @staticmethod
    def problem(response: httpx.Response) -> RasProblem:
        try:
            document = response.json() if response.content else None
        except ValueError:
            document = None
        problem = RasProblem.from_document(response.status_code, document)
        retry = response.headers.get("retry-after", "")
        if "retry_after" not in problem.extensions and retry.isdigit():
            problem.extensions["retry_after"] = int(retry)
        return problem


def _http_options(ca: Path | None, timeout: float) -> dict[str, Any]:
    return {
        "verify": tls_context(ca),
        "timeout": timeout,
        "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
        "follow_redirects": False,
    }


# =========================================================================== async


class AsyncRasClient:
    """The RAS API for asyncio programs. Use as ``async with AsyncRasClient(url, ca=...)``.

    ``tokens`` keeps the session (default: in memory); ``transport`` replaces the network
    (tests: ``httpx.MockTransport``); ``timeout`` bounds each request in seconds.
    """

    def __init__(
        self,
        base_url: str,
        ca: Path | None = None,
        tokens: TokenStore | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._core = _Core(base_url, tokens, timeout)
        self._http = httpx.AsyncClient(
            base_url=self._core.base_url, transport=transport, **_http_options(ca, timeout)
        )
        self._refresh_lock = asyncio.Lock()
        self.account = AsyncAccountApi(self)
        self.sessions = AsyncSessionsApi(self)
        self.devices = AsyncDevicesApi(self)
        self.registrations = AsyncRegistrationsApi(self)
        self.locks = AsyncLocksApi(self)
        self.gateways = AsyncGatewaysApi(self)
        self.admin = AsyncAdminApi(self)
        self.homes = AsyncHomesApi(self)
        self.shares = AsyncSharesApi(self)
        self.invitations = AsyncInvitationsApi(self)
        self.geofences = AsyncGeofencesApi(self)
        self.location = AsyncLocationApi(self)
        self.arrivals = AsyncArrivalsApi(self)
        self.events = AsyncEventsApi(self)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def tokens(self) -> TokenStore:
        return self._core.store

    async def __aenter__(self) -> AsyncRasClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncRasClient({self._core.base_url!r})"

    async def _send(self, call: Call[Any], tokens: Tokens | None) -> httpx.Response:
        request = self._core.request(self._http, call, tokens)
        try:
            return await self._http.send(request, stream=call.stream)
        except httpx.TransportError as exc:
            raise self._core.unreachable(exc) from None

    async def _authorised(self, call: Call[Any]) -> httpx.Response:
        """Send with the session's token (module docstring: authentication and refresh)."""
        if not call.auth:
            return await self._send(call, None)
        tokens = self._core.session()
        refreshed = False
        if self._core.refresh_first(call, tokens):
            tokens, refreshed = await self._refresh(tokens), True
        response = await self._send(call, tokens)
        if response.status_code == 401 and not refreshed and call.resend_on_401:
            await response.aclose()
            tokens = await self._refresh(tokens)
            response = await self._send(call, tokens)
        return response

    async def run(self, call: Call[T]) -> T:
        """Execute one call (module docstring: authentication and refresh)."""
        return self._core.finish(call, await self._authorised(call))

    async def open_stream(self, call: Call[Any]) -> httpx.Response:
        """Open a streamed answer (``call.stream``): the response, its body still to be
        read (the caller closes it); or the problem the RAS answered, raised."""
        response = await self._authorised(call)
        if response.status_code not in call.ok:
            try:
                await response.aread()
            except httpx.TransportError as exc:
                raise self._core.unreachable(exc) from None
            finally:
                await response.aclose()
            raise self._core.problem(response)
        return response

    async def _refresh(self, stale: Tokens | None) -> Tokens:
        async with self._refresh_lock:
            with self._core.exclusive():
                current = self._core.pick_refresh(stale)
                if current is not None:
                    return current
                pair = self._core.session()
                call = calls.refresh(pair.refresh_token)
                return self._core.refreshed(call, await self._send(call, None))


class _AsyncApi:
    def __init__(self, client: AsyncRasClient) -> None:
        self._client = client

    async def _run(self, call: Call[T]) -> T:
        return await self._client.run(call)


class AsyncAccountApi(_AsyncApi):
    """``/v1/account``: register, verify contacts, read, TOTP, password, delete."""

    async def register(
        self,
        email: str | None = None,
        phone: str | None = None,
        *,
        password: str,
        display_name: str | None = None,
    ) -> Account:
        return await self._run(calls.account_register(email, phone, password, display_name))

    async def verify(self, contact: ContactRef, code: str) -> Contact:
        return await self._run(calls.account_verify(_contact_id(contact), code))

    async def resend(self, contact: ContactRef) -> CodeSent:
        return await self._run(calls.account_resend(_contact_id(contact)))

    async def get(self) -> Account:
        return await self._run(calls.account_get())

    async def delete(self, password: str) -> None:
        await self._run(calls.account_delete(password))

    async def change_password(self, current: str, new: str) -> PasswordChanged:
        return await self._run(calls.account_change_password(current, new))

    async def totp_enrol(self, password: str) -> TotpEnrolment:
        return await self._run(calls.totp_enrol(password))

    async def totp_confirm(self, code: str) -> None:
        await self._run(calls.totp_confirm(code))


class AsyncSessionsApi(_AsyncApi):
    """``/v1/session(s)``: the two-step login, refresh, logout, your sessions."""

    async def login(self, identifier: str, password: str) -> LoginChallenge:
        return await self._run(calls.login(identifier, password))

    async def send_code(self, challenge: ChallengeRef, method: str) -> LoginCodeSent:
        token = _challenge(challenge)
        sent = await self._run(calls.send_code(token, method))
        self._client._core.remember_channel(token, method)
        return sent

    async def second_factor(
        self, challenge: ChallengeRef, code: str, method: str | None = None
    ) -> Tokens:
        """The code (``method`` defaults to the channel of the last code sent for this
        challenge, else ``totp``); the new pair is saved in the token store."""
        return await self._run(self._client._core.second_factor(challenge, code, method))

    async def refresh(self) -> Tokens:
        return await self._client._refresh(None)

    async def logout(self) -> None:
        await self._run(calls.logout())

    async def list(self) -> builtins.list[Session]:
        return await self._run(calls.sessions_list())

    async def revoke(self, session_id: uuid.UUID | str) -> None:
        await self._run(calls.session_revoke(session_id))


class AsyncDevicesApi(_AsyncApi):
    async def legitimacy(self, device_id: DeviceId | str) -> Legitimacy:
        return await self._run(calls.legitimacy(device_id))


class AsyncRegistrationsApi(_AsyncApi):
    """``/v1/registrations``: the key negotiation, carried by you or by a gateway."""

    async def start(
        self,
        device_id: DeviceId | str,
        name: str,
        via: str = "relay",
        gateway_id: uuid.UUID | str | None = None,
        time_sync: bool = False,
    ) -> Registration:
        return await self._run(
            calls.registration_start(device_id, name, via, gateway_id, time_sync)
        )

    async def get(self, registration_id: uuid.UUID | str) -> Registration:
        return await self._run(calls.registration_get(registration_id))

    async def answer(self, registration_id: uuid.UUID | str, frame: bytes) -> Registration:
        return await self._run(calls.registration_answer(registration_id, frame))

    async def frames(self, registration_id: uuid.UUID | str) -> Registration:
        return await self._run(calls.registration_frames(registration_id))

    async def relay(
        self, registration_id: uuid.UUID | str, gateway_id: uuid.UUID | str | None = None
    ) -> Registration:
        return await self._run(calls.registration_relay(registration_id, gateway_id))


class AsyncLocksApi(_AsyncApi):
    """``/v1/locks``: your locks, their commands and events."""

    async def list(self) -> builtins.list[Lock]:
        return await self._run(calls.locks_list())

    async def get(self, lock_id: uuid.UUID | str) -> Lock:
        return await self._run(calls.lock_get(lock_id))

    async def rename(self, lock_id: uuid.UUID | str, name: str) -> Lock:
        return await self._run(calls.lock_rename(lock_id, name))

    async def remove(self, lock_id: uuid.UUID | str) -> None:
        await self._run(calls.lock_remove(lock_id))

    async def transfer(self, lock_id: uuid.UUID | str, to: uuid.UUID | str) -> Lock:
        return await self._run(calls.lock_transfer(lock_id, to))

    async def rotate(self, lock_id: uuid.UUID | str) -> Registration:
        return await self._run(calls.lock_rotate(lock_id))

    async def events(
        self, lock_id: uuid.UUID | str, limit: int = 50, before: int | None = None
    ) -> builtins.list[LockEvent]:
        return await self._run(calls.lock_events(lock_id, limit, before))

    async def command(
        self, lock_id: uuid.UUID | str, command: str, idempotency_key: str | None = None
    ) -> CommandResult:
        return await self._run(calls.lock_command(lock_id, command, idempotency_key))

    async def nearby_frame(
        self, lock_id: uuid.UUID | str, command: str, idempotency_key: str | None = None
    ) -> NearbyFrame:
        return await self._run(calls.nearby_frame(lock_id, command, idempotency_key))

    async def nearby_answer(
        self, lock_id: uuid.UUID | str, command_id: uuid.UUID | str, frame: bytes
    ) -> CommandResult:
        return await self._run(calls.nearby_answer(lock_id, command_id, frame))


class AsyncGatewaysApi(_AsyncApi):
    """``/v1/gateways``: your gateways and their XMPP credentials."""

    async def add(self, name: str) -> GatewayCredentials:
        return await self._run(calls.gateway_add(name))

    async def list(self) -> builtins.list[Gateway]:
        return await self._run(calls.gateways_list())

    async def get(self, gateway_id: uuid.UUID | str) -> Gateway:
        return await self._run(calls.gateway_get(gateway_id))

    async def rename(self, gateway_id: uuid.UUID | str, name: str) -> Gateway:
        return await self._run(calls.gateway_rename(gateway_id, name))

    async def remove(self, gateway_id: uuid.UUID | str) -> Gateway:
        return await self._run(calls.gateway_remove(gateway_id))

    async def rotate_secret(self, gateway_id: uuid.UUID | str) -> GatewayCredentials:
        return await self._run(calls.gateway_rotate_secret(gateway_id))


class AsyncAdminApi(_AsyncApi):
    """Administrators only: the makers' device records and the audit log."""

    async def import_devices(
        self, content: bytes, fmt: str = "json", skip_bad: bool = False
    ) -> ImportResult:
        return await self._run(calls.import_devices(content, fmt, skip_bad))

    async def device(self, device_id: DeviceId | str) -> Device:
        return await self._run(calls.device_get(device_id))

    async def revoke_device(self, device_id: DeviceId | str) -> Device:
        return await self._run(calls.device_revoke(device_id))

    async def audit(self, after_id: int = 0, limit: int = 100) -> AuditPage:
        return await self._run(calls.audit(after_id, limit))


class AsyncHomesApi(_AsyncApi):
    """``/v1/homes``: group your locks (and gateways) under a name and a time zone."""

    async def create(self, name: str, time_zone: str) -> Home:
        return await self._run(calls.home_create(name, time_zone))

    async def list(self) -> builtins.list[Home]:
        return await self._run(calls.homes_list())

    async def get(self, home_id: uuid.UUID | str) -> Home:
        return await self._run(calls.home_get(home_id))

    async def update(
        self, home_id: uuid.UUID | str, name: str | None = None, time_zone: str | None = None
    ) -> Home:
        return await self._run(calls.home_update(home_id, name, time_zone))

    async def rename(self, home_id: uuid.UUID | str, name: str) -> Home:
        return await self.update(home_id, name=name)

    async def delete(self, home_id: uuid.UUID | str) -> None:
        await self._run(calls.home_delete(home_id))

    async def add_lock(self, home_id: uuid.UUID | str, lock_id: uuid.UUID | str) -> Home:
        return await self._run(calls.home_add_lock(home_id, lock_id))

    async def remove_lock(self, home_id: uuid.UUID | str, lock_id: uuid.UUID | str) -> None:
        await self._run(calls.home_remove_lock(home_id, lock_id))

    async def members(
        self,
        home_id: uuid.UUID | str,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
        state: str = "active",
    ) -> SharePage:
        return await self._run(calls.home_members(home_id, limit, cursor, state))


class AsyncSharesApi(_AsyncApi):
    """``/v1/shares``: share locks or a home with someone (an invitation until accepted)."""

    async def create(
        self,
        email: str | None = None,
        phone: str | None = None,
        *,
        lock_ids: Sequence[uuid.UUID | str] | None = None,
        home_id: uuid.UUID | str | None = None,
        role: str = "guest",
        permissions: Sequence[str] | None = None,
        paths: Sequence[str] | None = None,
        validity: str = "permanent",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        schedule: Schedule | None = None,
        label: str | None = None,
    ) -> Share:
        call = calls.share_create(
            email=email, phone=phone, lock_ids=lock_ids, home_id=home_id, role=role,
            permissions=permissions, paths=paths, validity=validity,
            not_before=not_before, not_after=not_after, schedule=schedule, label=label,
        )  # fmt: skip
        return await self._run(call)

    async def list(
        self, limit: int = DEFAULT_PAGE, cursor: str | None = None, state: str = "active"
    ) -> SharePage:
        """The shares you gave (of your locks and homes), one page."""
        return await self._run(calls.shares_list(limit, cursor, state))

    async def received(
        self, limit: int = DEFAULT_PAGE, cursor: str | None = None, state: str = "active"
    ) -> SharePage:
        """The shares given to you (accepted invitations), one page."""
        return await self._run(calls.shares_received(limit, cursor, state))

    async def of_lock(
        self,
        lock_id: uuid.UUID | str,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
        state: str = "active",
    ) -> SharePage:
        """Everyone a lock is shared with, one page."""
        return await self._run(calls.lock_shares(lock_id, limit, cursor, state))

    async def get(self, share_id: uuid.UUID | str) -> Share:
        return await self._run(calls.share_get(share_id))

    async def update(
        self,
        share_id: uuid.UUID | str,
        *,
        role: str | None = None,
        permissions: Sequence[str] | None = None,
        paths: Sequence[str] | None = None,
        validity: str | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        schedule: Schedule | None = None,
        clear_schedule: bool = False,
        label: str | None = None,
        clear_label: bool = False,
    ) -> Share:
        call = calls.share_update(
            share_id, role=role, permissions=permissions, paths=paths, validity=validity,
            not_before=not_before, not_after=not_after, schedule=schedule,
            clear_schedule=clear_schedule, label=label, clear_label=clear_label,
        )  # fmt: skip
        return await self._run(call)

    async def revoke(self, share_id: uuid.UUID | str) -> Share:
        return await self._run(calls.share_revoke(share_id))


class AsyncInvitationsApi(_AsyncApi):
    """``/v1/invitations``: what others offered to your verified contacts."""

    async def list(self) -> builtins.list[Invitation]:
        return await self._run(calls.invitations_list())

    async def accept(self, invitation_id: uuid.UUID | str) -> Share:
        return await self._run(calls.invitation_accept(invitation_id))

    async def decline(self, invitation_id: uuid.UUID | str) -> None:
        await self._run(calls.invitation_decline(invitation_id))


class AsyncGeofencesApi(_AsyncApi):
    """A lock's or a home's geofence (give exactly one of ``lock_id`` and ``home_id``)."""

    async def put(
        self,
        lock_id: uuid.UUID | str | None = None,
        home_id: uuid.UUID | str | None = None,
        *,
        latitude: float,
        longitude: float,
        radius_m: float,
        remote_unlock_inside: bool = False,
        arrival: str = "off",
        suppress_after_open_s: int | None = None,
        max_age_s: int | None = None,
        max_accuracy_m: float | None = None,
    ) -> Geofence:
        call = calls.geofence_put(
            lock_id, home_id, latitude=latitude, longitude=longitude, radius_m=radius_m,
            remote_unlock_inside=remote_unlock_inside, arrival=arrival,
            suppress_after_open_s=suppress_after_open_s, max_age_s=max_age_s,
            max_accuracy_m=max_accuracy_m,
        )  # fmt: skip
        return await self._run(call)

    async def get(
        self, lock_id: uuid.UUID | str | None = None, home_id: uuid.UUID | str | None = None
    ) -> Geofence:
        return await self._run(calls.geofence_get(lock_id, home_id))

    async def delete(
        self, lock_id: uuid.UUID | str | None = None, home_id: uuid.UUID | str | None = None
    ) -> None:
        await self._run(calls.geofence_delete(lock_id, home_id))


class AsyncLocationApi(_AsyncApi):
    """``/v1/location``: this device's location reports (throttled by the RAS)."""

    async def report(
        self,
        latitude: float,
        longitude: float,
        accuracy_m: float,
        taken_at: datetime | None = None,
    ) -> LocationAccepted:
        """Report one fix; ``taken_at`` None: now."""
        taken = taken_at if taken_at is not None else calls.utcnow()
        return await self._run(calls.location_report(latitude, longitude, accuracy_m, taken))

    async def forget(self) -> None:
        await self._run(calls.location_forget())


class AsyncArrivalsApi(_AsyncApi):
    """``/v1/arrivals``: arrival suggestions; confirming one names the unlock to send."""

    async def list(self) -> builtins.list[ArrivalSuggestion]:
        return await self._run(calls.arrivals_list())

    async def confirm(self, suggestion_id: uuid.UUID | str) -> ArrivalConfirmation:
        return await self._run(calls.arrival_confirm(suggestion_id))


class AsyncEventsApi(_AsyncApi):
    """``/v1/events``: your feed (your locks' and shares' events, commands, presence)."""

    async def list(
        self,
        lock_id: uuid.UUID | str | None = None,
        kind: str | Sequence[str] | None = None,
        before: int | None = None,
        after: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> builtins.list[FeedEvent]:
        call = calls.events_list(
            lock_id=lock_id, kind=kind, before=before, after=after, since=since,
            until=until, limit=limit,
        )  # fmt: skip
        return await self._run(call)

    async def stream(
        self,
        last_event_id: int | None = None,
        lock_id: uuid.UUID | str | None = None,
        kind: str | Sequence[str] | None = None,
    ) -> AsyncGenerator[FeedEvent, None]:
        """The feed, live: every event after ``last_event_id`` (None: from now on), oldest
        first, then each new one as it happens.

        When the RAS ends the stream (it does after an access token's lifetime) it is
        opened again after the last event, with a fresh token: nothing lost, nothing
        twice. A transport failure is :class:`RasUnreachable`: call again with the last
        event's id to resume. Close the iterator when done (``contextlib.aclosing``): its
        connection is released at once. Asynchronous client only.
        """
        cursor = last_event_id
        while True:
            call = calls.events_stream(cursor, lock_id=lock_id, kind=kind)
            response = await self._client.open_stream(call)
            parser = EventStreamParser()
            heard = False
            try:
                async for line in response.aiter_lines():
                    heard = True
                    message = parser.feed(line)
                    if message is not None:
                        event = call.parse(message.data)
                        cursor = event.id
                        yield event
            except httpx.TransportError as exc:
                raise self._client._core.unreachable(exc) from None
            finally:
                await response.aclose()
            if not heard:  # never a tight loop of empty reconnections
                raise RasBadAnswer("the RAS ended the event stream without sending anything")


# =========================================================================== sync


class RasClient:
    """The RAS API, synchronous (its own ``httpx.Client``; no event loop anywhere).

    Same arguments and methods as :class:`AsyncRasClient`; use as ``with RasClient(...)``.
    """

    def __init__(
        self,
        base_url: str,
        ca: Path | None = None,
        tokens: TokenStore | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._core = _Core(base_url, tokens, timeout)
        self._http = httpx.Client(
            base_url=self._core.base_url, transport=transport, **_http_options(ca, timeout)
        )
        self._refresh_lock = threading.Lock()
        self.account = AccountApi(self)
        self.sessions = SessionsApi(self)
        self.devices = DevicesApi(self)
        self.registrations = RegistrationsApi(self)
        self.locks = LocksApi(self)
        self.gateways = GatewaysApi(self)
        self.admin = AdminApi(self)
        self.homes = HomesApi(self)
        self.shares = SharesApi(self)
        self.invitations = InvitationsApi(self)
        self.geofences = GeofencesApi(self)
        self.location = LocationApi(self)
        self.arrivals = ArrivalsApi(self)
        self.events = EventsApi(self)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def tokens(self) -> TokenStore:
        return self._core.store

    def __enter__(self) -> RasClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"RasClient({self._core.base_url!r})"

    def _send(self, call: Call[Any], tokens: Tokens | None) -> httpx.Response:
        request = self._core.request(self._http, call, tokens)
        try:
            return self._http.send(request)
        except httpx.TransportError as exc:
            raise self._core.unreachable(exc) from None

    def run(self, call: Call[T]) -> T:
        """Execute one call (module docstring: authentication and refresh)."""
        if not call.auth:
            return self._core.finish(call, self._send(call, None))
        tokens = self._core.session()
        refreshed = False
        if self._core.refresh_first(call, tokens):
            tokens, refreshed = self._refresh(tokens), True
        response = self._send(call, tokens)
        if response.status_code == 401 and not refreshed and call.resend_on_401:
            tokens = self._refresh(tokens)
            response = self._send(call, tokens)
        return self._core.finish(call, response)

    def _refresh(self, stale: Tokens | None) -> Tokens:
        with self._refresh_lock, self._core.exclusive():
            current = self._core.pick_refresh(stale)
            if current is not None:
                return current
            pair = self._core.session()
            call = calls.refresh(pair.refresh_token)
            return self._core.refreshed(call, self._send(call, None))


class _Api:
    def __init__(self, client: RasClient) -> None:
        self._client = client

    def _run(self, call: Call[T]) -> T:
        return self._client.run(call)


class AccountApi(_Api):
    """``/v1/account``: register, verify contacts, read, TOTP, password, delete."""

    def register(
        self,
        email: str | None = None,
        phone: str | None = None,
        *,
        password: str,
        display_name: str | None = None,
    ) -> Account:
        return self._run(calls.account_register(email, phone, password, display_name))

    def verify(self, contact: ContactRef, code: str) -> Contact:
        return self._run(calls.account_verify(_contact_id(contact), code))

    def resend(self, contact: ContactRef) -> CodeSent:
        return self._run(calls.account_resend(_contact_id(contact)))

    def get(self) -> Account:
        return self._run(calls.account_get())

    def delete(self, password: str) -> None:
        self._run(calls.account_delete(password))

    def change_password(self, current: str, new: str) -> PasswordChanged:
        return self._run(calls.account_change_password(current, new))

    def totp_enrol(self, password: str) -> TotpEnrolment:
        return self._run(calls.totp_enrol(password))

    def totp_confirm(self, code: str) -> None:
        self._run(calls.totp_confirm(code))


class SessionsApi(_Api):
    """``/v1/session(s)``: the two-step login, refresh, logout, your sessions."""

    def login(self, identifier: str, password: str) -> LoginChallenge:
        return self._run(calls.login(identifier, password))

    def send_code(self, challenge: ChallengeRef, method: str) -> LoginCodeSent:
        token = _challenge(challenge)
        sent = self._run(calls.send_code(token, method))
        self._client._core.remember_channel(token, method)
        return sent

    def second_factor(
        self, challenge: ChallengeRef, code: str, method: str | None = None
    ) -> Tokens:
        return self._run(self._client._core.second_factor(challenge, code, method))

    def refresh(self) -> Tokens:
        return self._client._refresh(None)

    def logout(self) -> None:
        self._run(calls.logout())

    def list(self) -> builtins.list[Session]:
        return self._run(calls.sessions_list())

    def revoke(self, session_id: uuid.UUID | str) -> None:
        self._run(calls.session_revoke(session_id))


class DevicesApi(_Api):
    def legitimacy(self, device_id: DeviceId | str) -> Legitimacy:
        return self._run(calls.legitimacy(device_id))


class RegistrationsApi(_Api):
    """``/v1/registrations``: the key negotiation, carried by you or by a gateway."""

    def start(
        self,
        device_id: DeviceId | str,
        name: str,
        via: str = "relay",
        gateway_id: uuid.UUID | str | None = None,
        time_sync: bool = False,
    ) -> Registration:
        return self._run(calls.registration_start(device_id, name, via, gateway_id, time_sync))

    def get(self, registration_id: uuid.UUID | str) -> Registration:
        return self._run(calls.registration_get(registration_id))

    def answer(self, registration_id: uuid.UUID | str, frame: bytes) -> Registration:
        return self._run(calls.registration_answer(registration_id, frame))

    def frames(self, registration_id: uuid.UUID | str) -> Registration:
        return self._run(calls.registration_frames(registration_id))

    def relay(
        self, registration_id: uuid.UUID | str, gateway_id: uuid.UUID | str | None = None
    ) -> Registration:
        return self._run(calls.registration_relay(registration_id, gateway_id))


class LocksApi(_Api):
    """``/v1/locks``: your locks, their commands and events."""

    def list(self) -> builtins.list[Lock]:
        return self._run(calls.locks_list())

    def get(self, lock_id: uuid.UUID | str) -> Lock:
        return self._run(calls.lock_get(lock_id))

    def rename(self, lock_id: uuid.UUID | str, name: str) -> Lock:
        return self._run(calls.lock_rename(lock_id, name))

    def remove(self, lock_id: uuid.UUID | str) -> None:
        self._run(calls.lock_remove(lock_id))

    def transfer(self, lock_id: uuid.UUID | str, to: uuid.UUID | str) -> Lock:
        return self._run(calls.lock_transfer(lock_id, to))

    def rotate(self, lock_id: uuid.UUID | str) -> Registration:
        return self._run(calls.lock_rotate(lock_id))

    def events(
        self, lock_id: uuid.UUID | str, limit: int = 50, before: int | None = None
    ) -> builtins.list[LockEvent]:
        return self._run(calls.lock_events(lock_id, limit, before))

    def command(
        self, lock_id: uuid.UUID | str, command: str, idempotency_key: str | None = None
    ) -> CommandResult:
        return self._run(calls.lock_command(lock_id, command, idempotency_key))

    def nearby_frame(
        self, lock_id: uuid.UUID | str, command: str, idempotency_key: str | None = None
    ) -> NearbyFrame:
        return self._run(calls.nearby_frame(lock_id, command, idempotency_key))

    def nearby_answer(
        self, lock_id: uuid.UUID | str, command_id: uuid.UUID | str, frame: bytes
    ) -> CommandResult:
        return self._run(calls.nearby_answer(lock_id, command_id, frame))


class GatewaysApi(_Api):
    """``/v1/gateways``: your gateways and their XMPP credentials."""

    def add(self, name: str) -> GatewayCredentials:
        return self._run(calls.gateway_add(name))

    def list(self) -> builtins.list[Gateway]:
        return self._run(calls.gateways_list())

    def get(self, gateway_id: uuid.UUID | str) -> Gateway:
        return self._run(calls.gateway_get(gateway_id))

    def rename(self, gateway_id: uuid.UUID | str, name: str) -> Gateway:
        return self._run(calls.gateway_rename(gateway_id, name))

    def remove(self, gateway_id: uuid.UUID | str) -> Gateway:
        return self._run(calls.gateway_remove(gateway_id))

    def rotate_secret(self, gateway_id: uuid.UUID | str) -> GatewayCredentials:
        return self._run(calls.gateway_rotate_secret(gateway_id))


class AdminApi(_Api):
    """Administrators only: the makers' device records and the audit log."""

    def import_devices(
        self, content: bytes, fmt: str = "json", skip_bad: bool = False
    ) -> ImportResult:
        return self._run(calls.import_devices(content, fmt, skip_bad))

    def device(self, device_id: DeviceId | str) -> Device:
        return self._run(calls.device_get(device_id))

    def revoke_device(self, device_id: DeviceId | str) -> Device:
        return self._run(calls.device_revoke(device_id))

    def audit(self, after_id: int = 0, limit: int = 100) -> AuditPage:
        return self._run(calls.audit(after_id, limit))


class HomesApi(_Api):
    """``/v1/homes``: group your locks (and gateways) under a name and a time zone."""

    def create(self, name: str, time_zone: str) -> Home:
        return self._run(calls.home_create(name, time_zone))

    def list(self) -> builtins.list[Home]:
        return self._run(calls.homes_list())

    def get(self, home_id: uuid.UUID | str) -> Home:
        return self._run(calls.home_get(home_id))

    def update(
        self, home_id: uuid.UUID | str, name: str | None = None, time_zone: str | None = None
    ) -> Home:
        return self._run(calls.home_update(home_id, name, time_zone))

    def rename(self, home_id: uuid.UUID | str, name: str) -> Home:
        return self.update(home_id, name=name)

    def delete(self, home_id: uuid.UUID | str) -> None:
        self._run(calls.home_delete(home_id))

    def add_lock(self, home_id: uuid.UUID | str, lock_id: uuid.UUID | str) -> Home:
        return self._run(calls.home_add_lock(home_id, lock_id))

    def remove_lock(self, home_id: uuid.UUID | str, lock_id: uuid.UUID | str) -> None:
        self._run(calls.home_remove_lock(home_id, lock_id))

    def members(
        self,
        home_id: uuid.UUID | str,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
        state: str = "active",
    ) -> SharePage:
        return self._run(calls.home_members(home_id, limit, cursor, state))


class SharesApi(_Api):
    """``/v1/shares``: share locks or a home with someone (an invitation until accepted)."""

    def create(
        self,
        email: str | None = None,
        phone: str | None = None,
        *,
        lock_ids: Sequence[uuid.UUID | str] | None = None,
        home_id: uuid.UUID | str | None = None,
        role: str = "guest",
        permissions: Sequence[str] | None = None,
        paths: Sequence[str] | None = None,
        validity: str = "permanent",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        schedule: Schedule | None = None,
        label: str | None = None,
    ) -> Share:
        call = calls.share_create(
            email=email, phone=phone, lock_ids=lock_ids, home_id=home_id, role=role,
            permissions=permissions, paths=paths, validity=validity,
            not_before=not_before, not_after=not_after, schedule=schedule, label=label,
        )  # fmt: skip
        return self._run(call)

    def list(
        self, limit: int = DEFAULT_PAGE, cursor: str | None = None, state: str = "active"
    ) -> SharePage:
        """The shares you gave (of your locks and homes), one page."""
        return self._run(calls.shares_list(limit, cursor, state))

    def received(
        self, limit: int = DEFAULT_PAGE, cursor: str | None = None, state: str = "active"
    ) -> SharePage:
        """The shares given to you (accepted invitations), one page."""
        return self._run(calls.shares_received(limit, cursor, state))

    def of_lock(
        self,
        lock_id: uuid.UUID | str,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
        state: str = "active",
    ) -> SharePage:
        """Everyone a lock is shared with, one page."""
        return self._run(calls.lock_shares(lock_id, limit, cursor, state))

    def get(self, share_id: uuid.UUID | str) -> Share:
        return self._run(calls.share_get(share_id))

    def update(
        self,
        share_id: uuid.UUID | str,
        *,
        role: str | None = None,
        permissions: Sequence[str] | None = None,
        paths: Sequence[str] | None = None,
        validity: str | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        schedule: Schedule | None = None,
        clear_schedule: bool = False,
        label: str | None = None,
        clear_label: bool = False,
    ) -> Share:
        call = calls.share_update(
            share_id, role=role, permissions=permissions, paths=paths, validity=validity,
            not_before=not_before, not_after=not_after, schedule=schedule,
            clear_schedule=clear_schedule, label=label, clear_label=clear_label,
        )  # fmt: skip
        return self._run(call)

    def revoke(self, share_id: uuid.UUID | str) -> Share:
        return self._run(calls.share_revoke(share_id))


class InvitationsApi(_Api):
    """``/v1/invitations``: what others offered to your verified contacts."""

    def list(self) -> builtins.list[Invitation]:
        return self._run(calls.invitations_list())

    def accept(self, invitation_id: uuid.UUID | str) -> Share:
        return self._run(calls.invitation_accept(invitation_id))

    def decline(self, invitation_id: uuid.UUID | str) -> None:
        self._run(calls.invitation_decline(invitation_id))


class GeofencesApi(_Api):
    """A lock's or a home's geofence (give exactly one of ``lock_id`` and ``home_id``)."""

    def put(
        self,
        lock_id: uuid.UUID | str | None = None,
        home_id: uuid.UUID | str | None = None,
        *,
        latitude: float,
        longitude: float,
        radius_m: float,
        remote_unlock_inside: bool = False,
        arrival: str = "off",
        suppress_after_open_s: int | None = None,
        max_age_s: int | None = None,
        max_accuracy_m: float | None = None,
    ) -> Geofence:
        call = calls.geofence_put(
            lock_id, home_id, latitude=latitude, longitude=longitude, radius_m=radius_m,
            remote_unlock_inside=remote_unlock_inside, arrival=arrival,
            suppress_after_open_s=suppress_after_open_s, max_age_s=max_age_s,
            max_accuracy_m=max_accuracy_m,
        )  # fmt: skip
        return self._run(call)

    def get(
        self, lock_id: uuid.UUID | str | None = None, home_id: uuid.UUID | str | None = None
    ) -> Geofence:
        return self._run(calls.geofence_get(lock_id, home_id))

    def delete(
        self, lock_id: uuid.UUID | str | None = None, home_id: uuid.UUID | str | None = None
    ) -> None:
        self._run(calls.geofence_delete(lock_id, home_id))


class LocationApi(_Api):
    """``/v1/location``: this device's location reports (throttled by the RAS)."""

    def report(
        self,
        latitude: float,
        longitude: float,
        accuracy_m: float,
        taken_at: datetime | None = None,
    ) -> LocationAccepted:
        """Report one fix; ``taken_at`` None: now."""
        taken = taken_at if taken_at is not None else calls.utcnow()
        return self._run(calls.location_report(latitude, longitude, accuracy_m, taken))

    def forget(self) -> None:
        self._run(calls.location_forget())


class ArrivalsApi(_Api):
    """``/v1/arrivals``: arrival suggestions; confirming one names the unlock to send."""

    def list(self) -> builtins.list[ArrivalSuggestion]:
        return self._run(calls.arrivals_list())

    def confirm(self, suggestion_id: uuid.UUID | str) -> ArrivalConfirmation:
        return self._run(calls.arrival_confirm(suggestion_id))


class EventsApi(_Api):
    """``/v1/events``: your feed (your locks' and shares' events, commands, presence)."""

    def list(
        self,
        lock_id: uuid.UUID | str | None = None,
        kind: str | Sequence[str] | None = None,
        before: int | None = None,
        after: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> builtins.list[FeedEvent]:
        call = calls.events_list(
            lock_id=lock_id, kind=kind, before=before, after=after, since=since,
            until=until, limit=limit,
        )  # fmt: skip
        return self._run(call)


# =========================================================================== helpers


def _contact_id(contact: ContactRef) -> uuid.UUID | str:
    return contact.id if isinstance(contact, Contact) else contact


def _challenge(challenge: ChallengeRef) -> str:
    return challenge.challenge if isinstance(challenge, LoginChallenge) else challenge
