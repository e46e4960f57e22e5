"""Admission control: at most ``max_pending_logins`` connections negotiate at once; the rest
wait in the listen backlog with no authentication timer running (the reconnect storm)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from heslock.xmpp import ScramCredentials
from tests.integration.xmpp.conftest import (
    ITERATIONS,
    MemoryStore,
    client_context,
    start_server,
)
from tests.integration.xmpp.pki import Pki
from tests.integration.xmpp.rawclient import RawClient

CAP = 4
CLIENTS = 40
DEADLINE_S = 10.0


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (a look at the server's state) until it holds, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for: {what}")
        await asyncio.sleep(0.005)


class GatedStore(MemoryStore):
    """Lookups wait at a gate: logins pile up mid-SASL until the test opens it."""

    def __init__(self, credentials: dict[str, ScramCredentials]) -> None:
        super().__init__(credentials)
        self.gate = asyncio.Event()
        self.waiting = 0

    async def scram_sha256(self, username: str) -> ScramCredentials | None:
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        return await super().scram_sha256(username)


@pytest.fixture(scope="module")
def storm_credentials() -> dict[str, ScramCredentials]:
    return {
        f"storm{i}": ScramCredentials.from_password(f"password {i}", ITERATIONS)
        for i in range(CLIENTS)
    }


async def test_reconnect_storm_binds_everyone_within_the_cap(
    pki: Pki, storm_credentials: dict[str, ScramCredentials]
) -> None:
    harness = await start_server(pki, storm_credentials, max_pending_logins=CAP)
    server = harness.server
    store = GatedStore(storm_credentials)
    server.credentials = store
    context = client_context(pki.ca_pem)

    async def gateway(i: int) -> str:
        direct = i % 2 == 1  # half on each listener: the cap is shared
        port = harness.direct_port if direct else harness.starttls_port
        client = await RawClient.connect(port, context if direct else None)
        try:
            return await client.login(
                context, f"storm{i}", f"password {i}", resource="bgw", starttls=not direct
            )
        finally:
            await client.close()

    try:
        clients = [asyncio.create_task(gateway(i)) for i in range(CLIENTS)]
        # The first CAP logins stop at the credential store: the server accepts no more.
        await until(lambda: store.waiting == CAP, f"{CAP} logins at the credential store")
        stats = server.stats
        assert stats.pending_logins == CAP
        assert stats.connections == CAP  # the other 36 wait in the kernel's backlog
        store.gate.set()
        jids = await asyncio.gather(*clients)
        assert sorted(jids) == sorted(f"storm{i}@localhost/bgw" for i in range(CLIENTS))
        assert len(store.lookups) == CLIENTS  # each once: nobody timed out and came back
        stats = server.stats
        assert stats.pending_logins_peak == CAP
        assert stats.max_pending_logins == CAP
        assert stats.accept_pauses >= 1
        await until(lambda: server.stats.pending_logins == 0, "no login pending")
    finally:
        await server.stop()


async def test_a_queued_connection_has_no_auth_timer(
    pki: Pki, credentials: dict[str, ScramCredentials]
) -> None:
    # One slot. Two silent connections hold it in turn, each until its own timeout; the
    # third waits behind both, i.e. longer than one timeout, and must still log in.
    timeout = 0.5
    harness = await start_server(pki, credentials, max_pending_logins=1, auth_timeout=timeout)
    server = harness.server
    port = harness.starttls_port
    context = client_context(pki.ca_pem)
    clients: list[RawClient] = []
    try:
        first = await RawClient.connect(port, None)
        clients.append(first)
        await until(lambda: server.stats.connections == 1, "the first connection accepted")
        second = await RawClient.connect(port, None)
        clients.append(second)
        third = await RawClient.connect(port, None)
        clients.append(third)
        # Connected in the kernel's sense only: the server holds one connection.
        stats = server.stats
        assert (stats.connections, stats.pending_logins) == (1, 1)

        assert await first.stream_error() == "connection-timeout"
        assert await second.stream_error() == "connection-timeout"  # its timer ran once admitted
        # The third waited through the second's whole timeout: had its own timer started
        # at connect, it would be closed by now. It was not running; the login succeeds.
        assert await third.login(context, "gw1", "correct horse 1") == "gw1@localhost/bgw"
        stats = server.stats
        assert (stats.sessions, stats.pending_logins, stats.pending_logins_peak) == (1, 0, 1)
    finally:
        for client in clients:
            await client.close()
        await server.stop()
