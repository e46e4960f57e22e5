"""``heslock ras serve --workers 2`` as real processes: shared ports, every gateway reached.

Two workers share the HTTPS and XMPP ports (SO_REUSEPORT) on PostgreSQL, with a real
NATS server as their bus. A few scripted gateways (slixmpp) log in: the kernel spreads
their connections over the workers, and the HTTPS requests (one connection each) too.
Each gateway gets a registration "via gateway" for a lock only it is asked about; it
answers ``lock-not-in-range``, so an answer carrying that condition proves the frame
reached the gateway, whichever worker held it and whichever answered the request. Then
a worker is killed (the supervisor starts another) and SIGTERM stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from slixmpp import ClientXMPP

from heslock.bsld.manufacturer import dumps, generate
from heslock.cli.readyfile import read_ready_file
from heslock.errors import UsageError
from heslock.protocol.makers import ACME
from heslock.ras.bootstrap import initialise
from heslock.ras.services.udms.senders import outbox_path
from heslock.ras.settings import Settings, load_settings
from heslock.ras.tls import client_context
from heslock.xmpp.lockns import LockCondition, error_element
from tests.conftest import require_service
from tests.integration.ras.conftest import CHEAP_ARGON2, _postgres_database
from tests.integration.ras.relay.test_scripted_gateway import ScriptedGateway, close

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

HESLOCK = str(Path(sys.executable).parent / "heslock")
NATS_URL = "nats://127.0.0.1:4222"
WAIT_S = 60.0
#: Gateways logged in until both workers hold some (the kernel picks: 2**-11 to miss).
MAX_GATEWAYS = 12


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    require_service("NATS", "127.0.0.1", 4222)
    async for url in _postgres_database():
        yield url


async def wait_for(condition: Any, what: str) -> Any:
    """Poll ``condition()`` until it is truthy (its value), with a deadline."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        value = condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT_S:g} s: {what}")
        await asyncio.sleep(0.05)


class Api:
    """HTTPS calls, each on a connection of its own (so the kernel picks a worker)."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.token: str | None = None
        self.workers: list[int] = []

    async def call(
        self, method: str, path: str, body: Any = None, *, keep: bool = False, **kw: Any
    ) -> httpx.Response:
        """Each call on a fresh connection (the kernel picks its worker); with ``keep``
        the answer's ``extensions["worker"]`` says which worker took it."""
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(kw.pop("headers", {}))
        verify = client_context(self.settings.tls_ca)
        async with httpx.AsyncClient(base_url=self.url, verify=verify, timeout=30) as client:
            response = await client.request(method, path, json=body, headers=headers, **kw)
            if keep:  # while the connection is open
                port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
                response.extensions["worker"] = worker_of(port, self.workers)
            return response

    def code(self, to: str, purpose: str) -> str:
        lines = outbox_path(self.settings).read_text(encoding="utf-8").splitlines()
        codes = [
            e["code"]
            for e in map(json.loads, filter(str.strip, lines))
            if e.get("to") == to and e.get("purpose") == purpose
        ]
        assert codes, f"no {purpose} code for {to}"
        return str(codes[-1])

    async def login(self, login: str, password: str) -> None:
        started = await self.call("POST", "/v1/session", {"login": login, "password": password})
        assert started.status_code == 200, started.text
        challenge = started.json()["challenge"]
        sent = await self.call(
            "POST", "/v1/session/code", {"challenge": challenge, "channel": "email"}
        )
        assert sent.status_code == 202, sent.text
        body = {"challenge": challenge, "method": "email", "code": self.code(login, "login")}
        tokens = await self.call("POST", "/v1/session/second-factor", body)
        assert tokens.status_code == 201, tokens.text
        self.token = tokens.json()["access_token"]


def worker_of(peer_port: int, pids: list[int]) -> int | None:
    """The worker holding the server end of our loopback connection from ``peer_port``
    (Linux /proc: the socket whose remote port is ours, then the process with its inode)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].rsplit(":", 1)[1], 16) == peer_port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return pid
    return None


async def login_gateway(jid: str, secret: str, port: int, ca: Path) -> Any:
    client = ClientXMPP(jid, secret)
    client.enable_direct_tls = True
    client.enable_starttls = False
    client.enable_plaintext = False
    client.ca_certs = ca
    started = asyncio.ensure_future(client.wait_until("session_start", WAIT_S))
    client.connect("127.0.0.1", port)
    await started
    client.send_presence()
    return client


async def test_two_workers_reach_every_gateway_and_stop_on_sigterm(
    tmp_path: Path, database_url: str
) -> None:
    flags = {
        "database_url": database_url,
        "scram_iterations": 4096,
        "bus_prefix": f"test.{uuid.uuid4().hex}",  # this test's subjects on the shared NATS
        **CHEAP_ARGON2,
    }
    settings = load_settings({"data_dir": tmp_path / "ras", **flags}, env={})
    admin = await initialise(settings, "admin@localhost")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HESLOCK_")}
    env.update({f"HESLOCK_{k.upper()}": str(v) for k, v in flags.items()})
    ready = tmp_path / "ready.json"
    proc = await asyncio.create_subprocess_exec(
        HESLOCK, "ras", "serve", "--data-dir", str(settings.data_dir), "--port", "0",
        "--xmpp-port", "0", "--xmpp-direct-tls-port", "0", "--workers", "2",
        "--bus", NATS_URL, "--ready-file", str(ready),
        env=env, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    clients: list[Any] = []
    try:
        doc = await wait_for(
            lambda: read_ready_file(ready) or (proc.returncode is not None and {"exited": 1}),
            "the supervisor's ready file",
        )
        assert doc.get("pid") == proc.pid, doc
        assert len(doc["workers"]) == 2
        api = Api(doc["https_url"], settings)
        await api.login(admin.admin_login, admin.admin_password)

        records = generate(MAX_GATEWAYS, ACME.name, ACME.models[0].name, ble_version="5.0")
        imported = await api.call(
            "POST",
            "/v1/admin/devices/import",
            content=dumps(records, "json"),
            headers={"content-type": "application/json"},
        )
        assert imported.status_code == 200, imported.text

        workers = api.workers = list(doc["workers"])
        gateways: list[tuple[str, ScriptedGateway, int | None]] = []
        for index in range(MAX_GATEWAYS):
            created = await api.call("POST", "/v1/gateways", {"name": f"gateway {index}"})
            assert created.status_code == 201, created.text
            body = created.json()
            client = await login_gateway(
                body["jid"], body["secret"], doc["xmpp_direct_tls_port"], settings.tls_ca
            )
            clients.append(client)
            scripted = ScriptedGateway(client)
            scripted.script = lambda _r: (
                "error",
                error_element(LockCondition.LOCK_NOT_IN_RANGE, "not here"),
            )
            holder = worker_of(client.transport.get_extra_info("sockname")[1], workers)
            gateways.append((body["id"], scripted, holder))
            if len(gateways) >= 3 and {g[2] for g in gateways} == set(workers):
                break
        assert {g[2] for g in gateways} == set(workers), "one worker holds every gateway"

        crossed = 0  # requests answered by the worker that does not hold the gateway
        for (gateway_id, scripted, holder), record in zip(gateways, records, strict=False):
            device = record.identity().device_id
            request = {
                "device_id": device.colon,
                "name": "front door",
                "via": "gateway",
                "gateway_id": gateway_id,
            }

            async def attempt(request: dict[str, Any] = request) -> httpx.Response | None:
                answer = await api.call("POST", "/v1/registrations", request, keep=True)
                # Until the gateway's presence has reached the other worker, it may be
                # offline there: nothing was sent, so asking again is safe.
                return None if answer.status_code == 503 else answer

            answer = await poll(attempt, f"gateway {gateway_id} reached")
            assert "lock-not-in-range" in answer.text, answer.text
            https_worker = answer.extensions["worker"]
            assert https_worker in workers
            crossed += https_worker != holder
            frame = await asyncio.wait_for(scripted.requests.get(), WAIT_S)
            assert frame.lock == device
            # The kernel spreads fresh connections over the workers by a hash of their
            # addresses: ask again (each time a new connection) until one lands on the
            # worker that does not hold this gateway -- P(40 misses) = 2**-40.
            for _ in range(CROSSING_TRIES):
                if crossed:
                    break
                answer = await poll(attempt, f"gateway {gateway_id} reached again")
                assert "lock-not-in-range" in answer.text, answer.text
                crossed += answer.extensions["worker"] != holder
                frame = await asyncio.wait_for(scripted.requests.get(), WAIT_S)
                assert frame.lock == device
        assert crossed, "no request was answered by the worker not holding its gateway"

        # A worker that dies is replaced.
        victim = doc["workers"][0]
        os.kill(victim, signal.SIGKILL)
        after = await wait_for(
            lambda: (d := read_ready_file(ready)) and victim not in d["workers"] and d,
            "a new worker",
        )
        assert len(after["workers"]) == 2
        for client in clients:
            await close(client)
        clients.clear()

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), WAIT_S) == -signal.SIGTERM
        assert not ready.exists()
        for pid in after["workers"]:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", doc["xmpp_direct_tls_port"])
    finally:
        for client in clients:
            await close(client)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


#: Fresh connections tried per gateway until one reaches the other worker.
CROSSING_TRIES = 40


async def poll(attempt: Any, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        value = await attempt()
        if value is not None:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT_S:g} s: {what}")
        await asyncio.sleep(0.1)  # a poll with a deadline, not a synchronisation


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({}, "needs bus_url"),
        ({"bus_url": NATS_URL}, "needs PostgreSQL"),
        ({"bus_url": "http://127.0.0.1:4222"}, "nats:// or tls://"),
    ],
    ids=["no-bus", "sqlite", "not-nats"],
)
def test_several_workers_need_a_bus_and_postgresql(
    tmp_path: Path, extra: dict[str, Any], reason: str
) -> None:
    with pytest.raises(UsageError, match=reason):
        load_settings({"data_dir": tmp_path, "workers": 2, **extra}, env={})
