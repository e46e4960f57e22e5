"""``heslock ras init|migrate|serve`` as real processes, and crash safety.

The crash test: a served RAS acknowledges a request whose audit record it wrote; the
process is then SIGKILLed at once (no shutdown, no flush) and restarted; the record
must be there. This proves commit-before-acknowledge across a process crash; power
loss is what ``synchronous=FULL`` adds on top, which no test here can simulate.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from heslock.ras.store.migrate import head_revision
from heslock.ras.tls import client_context

pytestmark = pytest.mark.slow  # real processes: a few seconds each

HESLOCK = str(Path(sys.executable).parent / "heslock")
START_TIMEOUT_S = 30
CHEAP_ENV = {
    "HESLOCK_ARGON2_TIME_COST": "1",
    "HESLOCK_ARGON2_MEMORY_COST": "64",
    "HESLOCK_ARGON2_PARALLELISM": "1",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HESLOCK_")}
    return {**env, **CHEAP_ENV}


async def _run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        HESLOCK,
        *args,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@asynccontextmanager
async def _serving(data_dir: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        HESLOCK,
        "ras",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        "0",
        "--xmpp-port",
        "0",
        "--xmpp-direct-tls-port",
        "0",
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=START_TIMEOUT_S)
        assert b"listening on https://" in line, line
        yield proc, line.decode().strip().rsplit(" ", 1)[1]
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_init_creates_everything_and_refuses_to_overwrite(tmp_path: Path) -> None:
    data = tmp_path / "ras"
    code, out, err = await _run(
        "ras", "init", "--data-dir", str(data), "--domain", "ras.example.org"
    )
    assert code == 0, err
    assert "administrator admin@ras.example.org" in out
    password = out.split("password", 1)[1].split()[0]
    assert len(password) >= 20
    assert password not in err  # printed once, on stdout, never logged
    for name, mode in [
        ("master.key", 0o600),
        ("ras.db", 0o600),
        ("tls/server.key", 0o600),
        ("tls/ca.key", 0o600),
        ("tls/ca.pem", 0o644),
    ]:
        assert (data / name).stat().st_mode & 0o777 == mode, name
    assert data.stat().st_mode & 0o777 == 0o700
    with sqlite3.connect(data / "ras.db") as db:
        (hash_,) = db.execute("SELECT password_hash FROM credentials").fetchone()
    assert hash_.startswith("$argon2id$")
    assert password not in hash_
    code, out, err = await _run("ras", "init", "--data-dir", str(data))
    assert code == 2
    assert "already initialised" in err
    assert "master.key" in err
    assert "Traceback" not in err
    key_before = (data / "master.key").read_bytes()
    code, out, err = await _run("ras", "init", "--data-dir", str(data), "--force")
    assert code == 0, err
    assert (data / "master.key").read_bytes() != key_before


async def test_bad_config_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "ras.toml"
    config.write_text("[https]\nport = 'eighty'\n")
    code, _, err = await _run("ras", "serve", "--data-dir", str(tmp_path), "--config", str(config))
    assert code == 2
    assert "https.port" in err
    assert "Traceback" not in err


async def test_serve_refuses_an_uninitialised_dir(tmp_path: Path) -> None:
    code, _, err = await _run(
        "ras", "serve", "--data-dir", str(tmp_path / "empty"), "--port", "0", "--xmpp-port", "0"
    )
    assert code == 2
    assert "Traceback" not in err


async def test_serve_refuses_a_loose_master_key(tmp_path: Path) -> None:
    data = tmp_path / "ras"
    assert (await _run("ras", "init", "--data-dir", str(data)))[0] == 0
    (data / "master.key").chmod(0o644)
    code, _, err = await _run(
        "ras", "serve", "--data-dir", str(data), "--port", "0", "--xmpp-port", "0"
    )
    assert code == 2
    assert "chmod 600" in err


async def test_migrate_down_and_up(tmp_path: Path) -> None:
    data = tmp_path / "ras"
    assert (await _run("ras", "init", "--data-dir", str(data)))[0] == 0
    head = head_revision()
    code, out, err = await _run("ras", "migrate", "--data-dir", str(data), "--to", "base")
    assert (code, out.strip()) == (0, f"database schema: {head} -> empty"), err
    code, out, _ = await _run("ras", "migrate", "--data-dir", str(data))
    assert (code, out.strip()) == (0, f"database schema: empty -> {head}")
    code, _, err = await _run("ras", "migrate", "--data-dir", str(data), "--to", "zzzz")
    assert code == 2
    assert "Traceback" not in err


async def test_acknowledged_audit_write_survives_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "ras"
    assert (await _run("ras", "init", "--data-dir", str(data)))[0] == 0
    marker = f"crash-{uuid.uuid4().hex[:12]}"
    verify = client_context(data / "tls" / "ca.pem")
    async with (
        _serving(data) as (proc, url),
        httpx.AsyncClient(base_url=url, verify=verify, timeout=10) as client,
    ):
        response = await client.get(
            "/v1/audit", headers={"Authorization": "Bearer forged", "X-Request-ID": marker}
        )
        assert response.status_code == 401  # acknowledged: its audit record is committed
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == -signal.SIGKILL
    async with (
        _serving(data) as (_proc, url),
        httpx.AsyncClient(base_url=url, verify=verify, timeout=10) as client,
    ):
        assert (await client.get("/readyz")).status_code == 200
    with sqlite3.connect(data / "ras.db") as db:
        rows = db.execute(
            "SELECT action, result FROM audit_log WHERE json_extract(details, '$.request_id') = ?",
            (marker,),
        ).fetchall()
    assert rows == [("auth.bearer", "denied")]
