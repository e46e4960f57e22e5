"""``heslock ras init`` tells the operator how the admin logs in; ``heslock ras outbox``
shows the development outbox, once or following it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from heslock.cli import main
from heslock.ras.services.udms.senders import OUTBOX_NAME
from heslock.ras.store import create_engine
from heslock.ras.store.models import Contact

HESLOCK = str(Path(sys.executable).parent / "heslock")
CHEAP = {
    "HESLOCK_ARGON2_TIME_COST": "1",
    "HESLOCK_ARGON2_MEMORY_COST": "64",
    "HESLOCK_ARGON2_PARALLELISM": "1",
}


def _entry(code: str, to: str = "admin@localhost") -> str:
    record = {
        "at": "2030-01-01T00:00:00+00:00",
        "channel": "email",
        "to": to,
        "purpose": "login",
        "code": code,
        "text": None,
    }
    return json.dumps(record) + "\n"


def test_init_prints_the_next_step_and_normalises_the_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in CHEAP.items():
        monkeypatch.setenv(name, value)
    data = tmp_path / "data"
    assert main(["ras", "init", "--data-dir", str(data), "--admin-email", "Root@Example.ORG"]) == 0
    out = capsys.readouterr().out
    assert "administrator root@example.org" in out
    assert "POST /v1/session/code" in out
    assert f"heslock ras outbox --data-dir {data}" in out

    async def stored() -> list[str]:
        engine = create_engine(f"sqlite+aiosqlite:///{data / 'ras.db'}")
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(select(Contact.address))).scalars())
        finally:
            await engine.dispose()

    assert asyncio.run(stored()) == ["root@example.org"]


def test_outbox_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ras", "outbox", "--data-dir", str(tmp_path)]) == 0
    assert "empty" in capsys.readouterr().err
    (tmp_path / OUTBOX_NAME).write_text(_entry("111111") + "{torn\n" + _entry("222222", "+4420"))
    assert main(["ras", "outbox", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert "admin@localhost" in lines[0]
    assert lines[0].endswith("code 111111")
    assert "skipped" in lines[1]
    assert lines[2].endswith("code 222222")


async def test_outbox_follow(tmp_path: Path) -> None:
    outbox = tmp_path / OUTBOX_NAME
    outbox.write_text(_entry("333333"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HESLOCK_")}
    proc = await asyncio.create_subprocess_exec(
        HESLOCK,
        "ras",
        "outbox",
        "--follow",
        "--data-dir",
        str(tmp_path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert first.decode().rstrip().endswith("code 333333")
        with outbox.open("a") as handle:
            handle.write(_entry("444444")[:20])  # a line arriving in two writes
            handle.flush()
            handle.write(_entry("444444")[20:])
        second = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        assert second.decode().rstrip().endswith("code 444444")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), timeout=30)
    assert proc.returncode == 0
