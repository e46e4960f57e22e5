"""``--ready-file`` of ``ras serve``, ``bsld hub``, ``bsld sim`` and ``bgw run`` (real processes).

Each command, started with port 0 where it listens, writes a JSON ready file once it
serves: the format (heslock.cli.readyfile), its own PID, and where it is. The file is
gone again after a clean stop (SIGTERM), so a file left behind means a process died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from heslock.ble.hub import RadioHub
from heslock.bsld import manufacturer
from heslock.cli.readyfile import (
    ReadyFileError,
    read_ready_file,
    remove_ready_file,
    write_ready_file,
)
from heslock.errors import UsageError
from heslock.ras.tls import client_context
from heslock.xmpp import ScramCredentials
from tests.integration.bgw.conftest import GATEWAY, GATEWAY_JID, SECRET, start_ras
from tests.integration.demo.support import CHEAP
from tests.integration.xmpp.pki import make_pki

pytestmark = pytest.mark.slow  # real processes: a few seconds each

HESLOCK = str(Path(sys.executable).parent / "heslock")
START_S = 60.0
STOP_S = 20.0


# --------------------------------------------------------------------------- the format


def test_ready_file_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "svc.json"
    write_ready_file(path, "hub", link="hub:127.0.0.1:1234", port=1234)
    document = read_ready_file(path)
    assert document == {
        "format": "heslock-ready",
        "version": 1,
        "service": "hub",
        "pid": os.getpid(),
        "link": "hub:127.0.0.1:1234",
        "port": 1234,
    }
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["svc.json"]  # no temporary file left
    remove_ready_file(path)
    assert not path.exists()


def test_not_a_ready_file_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "svc.json"
    assert read_ready_file(path) is None  # not there yet
    for content in (b"", b"{trunc", b"[1, 2]", b'{"format": "other", "version": 1}'):
        path.write_bytes(content)
        assert read_ready_file(path) is None
    path.write_text(json.dumps({"format": "heslock-ready", "version": 2}))
    assert read_ready_file(path) is None


def test_someone_elses_ready_file_is_not_removed(tmp_path: Path) -> None:
    path = tmp_path / "svc.json"
    path.write_text(json.dumps({"format": "heslock-ready", "version": 1, "pid": 1}))
    remove_ready_file(path)
    assert path.exists()


def test_unwritable_ready_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ReadyFileError, match="cannot write the ready file") as caught:
        write_ready_file(tmp_path / "missing" / "svc.json", "hub")
    assert isinstance(caught.value, UsageError)  # the command line's exit code 2


# --------------------------------------------------------------------------- the commands


@asynccontextmanager
async def running(
    ready: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, Any]]]:
    """Start ``heslock ARGS --ready-file READY``; yield it and its ready file's content."""
    process = await asyncio.create_subprocess_exec(
        HESLOCK,
        *args,
        "--ready-file",
        str(ready),
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        document = await asyncio.wait_for(_ready(process, ready), START_S)
        assert document["pid"] == process.pid
        yield process, document
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def _ready(process: asyncio.subprocess.Process, ready: Path) -> dict[str, Any]:
    while (document := read_ready_file(ready)) is None:
        if process.returncode is not None:
            assert process.stderr is not None
            raise AssertionError((await process.stderr.read()).decode())
        with contextlib.suppress(TimeoutError):  # wakes at once if it exits
            await asyncio.wait_for(process.wait(), 0.05)
    return document


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), STOP_S)


async def test_hub_ready_file_names_its_port(tmp_path: Path) -> None:
    ready = tmp_path / "hub.json"
    async with running(ready, "bsld", "hub", "--port", "0") as (hub, document):
        assert document["service"] == "hub"
        port = document["port"]
        assert document["link"] == f"hub:127.0.0.1:{port}"
        _, writer = await asyncio.open_connection("127.0.0.1", port)  # it listens there
        writer.close()
        await writer.wait_closed()
        assert await stop(hub) == 0
    assert not ready.exists()


async def test_sim_ready_file_lists_its_locks(tmp_path: Path) -> None:
    radio_hub = RadioHub()
    port = await radio_hub.start_tcp("127.0.0.1", 0)
    data = tmp_path / "sim"
    ready = tmp_path / "sim.json"
    try:
        async with running(
            ready,
            *("bsld", "sim", "--profile", "lumen", "--count", "2", "--data-dir", str(data)),
            *("--link", f"hub:127.0.0.1:{port}"),
        ) as (sim, document):
            records = manufacturer.read_file(data / "manufacturer.json")
            assert document["devices"] == [str(r.device_id) for r in records]
            assert len(document["devices"]) == 2
            assert document["maker"] == "lumen"
            assert document["link"] == f"hub:127.0.0.1:{port}"
            assert stat.S_ISSOCK(os.stat(document["control_socket"]).st_mode)
            assert await stop(sim) == 0
        assert not ready.exists()
    finally:
        await radio_hub.close()


async def test_ras_ready_file_names_its_url_and_ports(tmp_path: Path) -> None:
    data = tmp_path / "ras"
    init = await asyncio.create_subprocess_exec(
        HESLOCK,
        *("ras", "init", "--data-dir", str(data)),
        env={**os.environ, **CHEAP},
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await asyncio.wait_for(init.wait(), START_S) == 0
    ready = tmp_path / "ras.json"
    serve = ("ras", "serve", "--data-dir", str(data), "--port", "0")
    any_xmpp = ("--xmpp-port", "0", "--xmpp-direct-tls-port", "0")
    async with running(ready, *serve, *any_xmpp, env=CHEAP) as (ras, document):
        assert document["service"] == "ras"
        assert document["ca_file"] == str(data / "tls" / "ca.pem")
        async with httpx.AsyncClient(verify=client_context(data / "tls" / "ca.pem")) as http:
            response = await http.get(f"{document['https_url']}/healthz")
        assert response.status_code == 200
        for key in ("xmpp_port", "xmpp_direct_tls_port"):
            _, writer = await asyncio.open_connection(document["xmpp_host"], document[key])
            writer.close()
            await writer.wait_closed()
        # uvicorn re-raises the SIGTERM it shut down on: the exit status is unchanged
        assert await stop(ras) == -signal.SIGTERM
    assert not ready.exists()


async def test_gateway_ready_file_appears_once_online(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    ras = await start_ras(pki, {GATEWAY: ScramCredentials.from_password(SECRET, 4096)})
    radio_hub = RadioHub()
    hub_port = await radio_hub.start_tcp("127.0.0.1", 0)
    try:
        secret = tmp_path / "gw.secret"
        secret.write_text(SECRET)
        secret.chmod(0o600)
        config = tmp_path / "gw.toml"
        config.write_text(
            "[ras]\n"
            f'host = "127.0.0.1"\nport = {ras.port}\nca_file = "{pki.ca_pem}"\n'
            f'jid = "{GATEWAY_JID}"\nsecret_file = "{secret}"\n'
            f'[ble]\nlink = "hub:127.0.0.1:{hub_port}"\n'
        )
        ready = tmp_path / "gw.json"
        async with running(ready, "bgw", "run", "--config", str(config)) as (gateway, document):
            assert document["service"] == "bgw"
            assert document["jid"] == GATEWAY_JID
            assert document["online"] is True
            assert document["ras"] == f"127.0.0.1:{ras.port}"
            # online for real: the RAS side has the gateway's session (its presence)
            assert await ras.presence.next() == (GATEWAY_JID, True)
            assert await stop(gateway) == 0
        assert not ready.exists()
    finally:
        await ras.server.stop()
        await radio_hub.close()


async def test_an_unwritable_ready_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        HESLOCK,
        *("bsld", "hub", "--port", "0", "--ready-file", str(tmp_path / "no" / "hub.json")),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), START_S)
    assert process.returncode == 2
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("heslock: error: cannot write the ready file")
    assert "Traceback" not in err.decode()
