"""The clients' shared core against a scripted RAS (httpx.MockTransport): bearer tokens,
one refresh on a refused access token (never a loop, never twice at once), token effects,
problems and transport failures. The real RAS is in tests/integration/rac."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from heslock.rac import (
    AsyncRasClient,
    MemoryTokenStore,
    NotLoggedIn,
    RasBadAnswer,
    RasClient,
    RasProblem,
    RasUnreachable,
    Tokens,
)
from heslock.rac.errors import PROBLEM_BASE

URL = "https://ras.test"
SESSION = uuid.uuid4()
ACCOUNT: dict[str, object] = {
    "id": str(uuid.uuid4()), "created_at": "2026-01-01T00:00:00Z", "display_name": None,
    "is_admin": False, "contacts": [], "totp_active": False,
}  # fmt: skip


def pair(n: int, *, expired: bool = False) -> Tokens:
    now = datetime.now(UTC)
    return Tokens(
        access_token=f"hla_{n}",
        refresh_token=f"hlr_{n}",
        session_id=SESSION,
        access_expires_at=now + timedelta(seconds=-5 if expired else 900),
        refresh_expires_at=now + timedelta(days=30),
    )


def tokens_answer(n: int) -> dict[str, Any]:
    return {
        "token_type": "Bearer", "access_token": f"hla_{n}", "expires_in": 900,
        "refresh_token": f"hlr_{n}", "refresh_expires_in": 86400, "session_id": str(SESSION),
    }  # fmt: skip


def problem(status: int, code: str, **extra: Any) -> httpx.Response:
    body = {"type": PROBLEM_BASE + code, "title": code, "status": status, **extra}
    return httpx.Response(
        status, content=json.dumps(body), headers={"content-type": "application/problem+json"}
    )


class FakeRas:
    """Valid access tokens, single-use refresh tokens (reuse ends the session), and a log."""

    def __init__(self, access: set[str], refresh: set[str]) -> None:
        self.access = access
        self.refresh = refresh
        self.spent: set[str] = set()
        self.issued = 100
        self.requests: list[httpx.Request] = []
        self.session_ended = False
        self.gate: Callable[[], None] = lambda: None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v1/session/refresh":
            self.gate()
            token = json.loads(request.content)["refresh_token"]
            if token in self.spent:
                self.session_ended = True
            if self.session_ended or token not in self.refresh:
                return problem(401, "unauthenticated")
            self.refresh.discard(token)
            self.spent.add(token)
            self.issued += 1
            self.access.add(f"hla_{self.issued}")
            self.refresh.add(f"hlr_{self.issued}")
            return httpx.Response(200, json=tokens_answer(self.issued))
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.session_ended or bearer not in self.access:
            return problem(401, "unauthenticated", detail="the bearer token is not valid")
        if request.url.path == "/v1/session" and request.method == "DELETE":
            return httpx.Response(204)
        if request.url.path == "/v1/account/password":
            return httpx.Response(200, json={"sessions_revoked": 0})
        return httpx.Response(200, json=ACCOUNT)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def test_a_call_sends_the_bearer_token_and_parses_the_answer() -> None:
    ras = FakeRas({"hla_1"}, {"hlr_1"})
    with RasClient(URL, tokens=MemoryTokenStore(pair(1)), transport=httpx.MockTransport(ras)) as c:
        account = c.account.get()
    assert str(account.id) == ACCOUNT["id"]
    assert ras.requests[0].headers["authorization"] == "Bearer hla_1"
    assert ras.requests[0].headers["user-agent"].startswith("heslock-rac/")


def test_without_tokens_nothing_is_sent() -> None:
    ras = FakeRas(set(), set())
    with RasClient(URL, transport=httpx.MockTransport(ras)) as c, pytest.raises(NotLoggedIn):
        c.locks.list()
    assert ras.requests == []


def test_a_refused_access_token_is_refreshed_once_and_the_call_repeated() -> None:
    ras = FakeRas(set(), {"hlr_1"})  # the access token is no longer valid
    store = MemoryTokenStore(pair(1))
    with RasClient(URL, tokens=store, transport=httpx.MockTransport(ras)) as c:
        c.account.get()
    assert ras.paths() == ["/v1/account", "/v1/session/refresh", "/v1/account"]
    saved = store.load()
    assert saved is not None
    assert saved.access_token == "hla_101"  # saved before the call was repeated
    assert ras.requests[2].headers["authorization"] == "Bearer hla_101"


def test_an_access_token_expired_by_the_clock_is_refreshed_first() -> None:
    ras = FakeRas({"hla_1"}, {"hlr_1"})
    with RasClient(
        URL, tokens=MemoryTokenStore(pair(1, expired=True)), transport=httpx.MockTransport(ras)
    ) as c:
        c.account.get()
    assert ras.paths() == ["/v1/session/refresh", "/v1/account"]


def test_a_second_refusal_is_the_callers_never_a_loop() -> None:
    ras = FakeRas(set(), {"hlr_1"})
    ras.access = _Never()  # every access token is refused, even fresh ones
    with (
        RasClient(URL, tokens=MemoryTokenStore(pair(1)), transport=httpx.MockTransport(ras)) as c,
        pytest.raises(RasProblem) as refused,
    ):
        c.account.get()
    assert refused.value.code == "unauthenticated"
    assert ras.paths() == ["/v1/account", "/v1/session/refresh", "/v1/account"]


def test_a_call_with_the_password_is_never_sent_twice() -> None:
    """Its 401 may be a wrong password: no refresh, no second attempt on the lockout budget."""
    wrong_password = FakeRas(set(), {"hlr_1"})  # the RAS refuses: token or password, unknown
    before = pair(1)
    store = MemoryTokenStore(before)
    with (
        RasClient(URL, tokens=store, transport=httpx.MockTransport(wrong_password)) as c,
        pytest.raises(RasProblem) as refused,
    ):
        c.account.totp_enrol("not my password")
    assert refused.value.code == "unauthenticated"
    assert wrong_password.paths() == ["/v1/account/totp"]
    assert store.load() == before


def test_a_call_with_the_password_refreshes_a_token_near_its_end_first() -> None:
    ras = FakeRas({"hla_1"}, {"hlr_1"})
    ending = replace(pair(1), access_expires_at=datetime.now(UTC) + timedelta(seconds=60))
    with RasClient(URL, tokens=MemoryTokenStore(ending), transport=httpx.MockTransport(ras)) as c:
        c.account.get()  # 60 s left is plenty for an ordinary call
        c.account.change_password("old password", "new password")
    assert ras.paths() == ["/v1/account", "/v1/session/refresh", "/v1/account/password"]


class _Never(set[str]):
    def __contains__(self, item: object) -> bool:
        return False


def test_a_refused_refresh_ends_the_session_and_clears_the_store() -> None:
    ras = FakeRas(set(), set())  # neither token is valid any more
    store = MemoryTokenStore(pair(1))
    with RasClient(URL, tokens=store, transport=httpx.MockTransport(ras)) as c:
        with pytest.raises(NotLoggedIn, match="log in again"):
            c.account.get()
        assert store.load() is None
        with pytest.raises(NotLoggedIn):
            c.account.get()
    assert ras.paths() == ["/v1/account", "/v1/session/refresh"]


def test_logout_clears_the_store_and_login_fills_it() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/session/second-factor":
            return httpx.Response(201, json=tokens_answer(7))
        if request.url.path == "/v1/session/code":
            return httpx.Response(
                202, json={"channel": "sms", "destination": "+44***1", "expires_at": "2026-01-01"}
            )
        assert request.headers["authorization"] == "Bearer hla_7"
        return httpx.Response(204)

    store = MemoryTokenStore()
    with RasClient(URL, tokens=store, transport=httpx.MockTransport(handler)) as c:
        c.sessions.send_code("hlc_challenge", "sms")
        tokens = c.sessions.second_factor("hlc_challenge", "123456")  # method: the code's channel
        assert store.load() == tokens
        c.sessions.logout()
        assert store.load() is None


def test_problems_and_bad_answers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/account":
            return problem(429, "rate-limited", detail="too many")
        if request.url.path == "/v1/locks":
            return httpx.Response(200, content=b"<html>proxy</html>")
        return httpx.Response(503, content=b"down", headers={"retry-after": "30"})

    with RasClient(
        URL, tokens=MemoryTokenStore(pair(1)), transport=httpx.MockTransport(handler)
    ) as c:
        with pytest.raises(RasProblem) as limited:
            c.account.get()
        assert (limited.value.code, str(limited.value)) == (
            "rate-limited",
            "too many [rate-limited]",
        )
        with pytest.raises(RasBadAnswer, match="not JSON"):
            c.locks.list()
        with pytest.raises(RasProblem) as down:
            c.gateways.list()
        assert (down.value.status, down.value.code, down.value.retry_after) == (503, None, 30)


@pytest.mark.parametrize(
    ("failure", "maybe_sent"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), False),
        (httpx.ConnectTimeout("timed out"), False),
        (httpx.ReadTimeout("timed out"), True),
        (httpx.RemoteProtocolError("peer closed connection"), True),
    ],
)
def test_transport_failures_are_unreachable(failure: Exception, maybe_sent: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    with (
        RasClient(
            URL, tokens=MemoryTokenStore(pair(1)), transport=httpx.MockTransport(handler)
        ) as c,
        pytest.raises(RasUnreachable) as unreachable,
    ):
        c.locks.command(uuid.uuid4(), "unlock")
    assert unreachable.value.maybe_sent is maybe_sent
    assert str(unreachable.value).startswith(f"cannot reach the RAS at {URL}: ")
    assert "hla_1" not in str(unreachable.value)
    assert unreachable.value.__cause__ is None  # the request (and its header) is dropped


async def test_concurrent_coroutines_refresh_only_once() -> None:
    """Ten calls meet a refused access token at once; one refresh, all succeed. Without
    the lock a second refresh would present a spent token and end the session."""
    ras = FakeRas(set(), {"hlr_1"})
    calls = 10
    all_refused = threading.Event()
    refused = 0
    # The refresh is held (in a thread) until every call has been refused, so that all of
    # them want a refresh while the first one is under way.
    ras.gate = lambda: None if all_refused.wait(10) else pytest.fail("calls not refused")

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal refused
        if request.url.path == "/v1/session/refresh":
            return await asyncio.to_thread(ras, request)
        response = ras(request)
        if response.status_code == 401:
            refused += 1
            if refused == calls:
                all_refused.set()
        return response

    store = MemoryTokenStore(pair(1))
    async with AsyncRasClient(URL, tokens=store, transport=httpx.MockTransport(handler)) as c:
        results = await asyncio.gather(*(c.account.get() for _ in range(calls)))
    assert len(results) == calls
    assert refused == calls
    assert ras.paths().count("/v1/session/refresh") == 1
    assert not ras.session_ended


def test_concurrent_threads_refresh_only_once() -> None:
    ras = FakeRas(set(), {"hlr_1"})
    guard = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        with guard:
            return ras(request)

    store = MemoryTokenStore(pair(1))
    errors: list[BaseException] = []
    with RasClient(URL, tokens=store, transport=httpx.MockTransport(handler)) as c:
        start = threading.Barrier(8)

        def call() -> None:
            start.wait()
            try:
                c.account.get()
            except BaseException as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert errors == []
    assert ras.paths().count("/v1/session/refresh") == 1
    assert not ras.session_ended


class SharedStore(MemoryTokenStore):
    """A store that records when the client holds it exclusively."""

    def __init__(self, tokens: Tokens) -> None:
        super().__init__(tokens)
        self.held = False
        self.saved_while_held: list[bool] = []

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        self.held = True
        try:
            yield
        finally:
            self.held = False

    def save(self, tokens: Tokens | None) -> None:
        self.saved_while_held.append(self.held)
        super().save(tokens)


def test_a_shared_store_is_held_while_refreshing_and_reread_under_it() -> None:
    ras = FakeRas({"hla_9"}, {"hlr_1"})
    store = SharedStore(pair(1))

    def handler(request: httpx.Request) -> httpx.Response:
        return ras(request)

    with RasClient(URL, tokens=store, transport=httpx.MockTransport(handler)) as c:
        c.sessions.refresh()
        assert store.saved_while_held == [True]
        # Another program refreshed meanwhile (the store holds a newer pair than the one
        # refused): the client uses the stored pair instead of rotating again.
        ras.access = {"hla_9"}
        stale = pair(1)
        store.save(pair(9))
        assert c._refresh(stale).access_token == "hla_9"
    assert ras.paths() == ["/v1/session/refresh"]
