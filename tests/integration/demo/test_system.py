"""DemoSystem (contract C4): real processes up, their addresses, and none left behind.

Whatever happens — a clean stop, a child that dies at start-up, a deadline, a cancelled
start — every process the demo started is gone afterwards. Checked by PID (and by
``/proc``'s command line, so a reused PID cannot fake it).
"""

from __future__ import annotations

import asyncio
import io
import signal
from pathlib import Path
from typing import cast

import httpx
import pytest
from rich.console import Console

from heslock.bsld import manufacturer
from heslock.demo import DemoError, DemoSystem
from heslock.demo.children import Child
from heslock.demo.datadir import claim
from heslock.demo.script import Narrator, run_script
from heslock.demo.system import LOCK_FILE, MARKER
from heslock.rac import MemoryTokenStore
from heslock.ras.tls import client_context
from tests.integration.demo.support import CHEAP, heslock_process_alive

pytestmark = pytest.mark.slow  # real processes: a few seconds each

WAIT_S = 30.0


def assert_all_gone(children: list[Child]) -> None:
    assert children, "the test meant to start something"
    assert [c.name for c in children if c.process.returncode is None] == []
    assert [c.name for c in children if heslock_process_alive(c.pid)] == []


async def test_start_use_and_stop_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    async with DemoSystem(data, env=CHEAP) as system:
        children = list(system.children)
        assert sorted(c.name for c in children if c.running) == [
            "hub",
            "lock-acme",
            "lock-keystone",
            "lock-lumen",
            "ras",
        ]
        assert [c.name for c in children if not c.running] == ["ras-init"]
        # addresses: every port was bound by its child and reported in its ready file
        assert system.https_url.startswith("https://127.0.0.1:")
        assert system.hub.startswith("hub:127.0.0.1:")
        assert system.xmpp[0] == "127.0.0.1"
        assert system.xmpp[1] > 0
        assert system.ca_file == data / "ras" / "tls" / "ca.pem"
        async with httpx.AsyncClient(verify=client_context(system.ca_file)) as http:
            assert (await http.get(f"{system.https_url}/readyz")).status_code == 200
        assert system.admin_login == "admin@localhost"
        assert len(system.admin_password) >= 12
        # three makers, their factory records in one file the RAS imports
        assert [lock.maker for lock in system.locks] == ["acme", "keystone", "lumen"]
        records = manufacturer.read_file(system.factory_records)
        assert [str(r.device_id) for r in records] == [lock.device_id for lock in system.locks]
        assert system.factory_records.stat().st_mode & 0o777 == 0o600
        assert await system.import_devices() == "imported 3 of 3 device(s)"
        # the locks: registration windows open, a person can turn a knob (bsld press)
        lock = system.locks[1]
        before = await system.lock_status(lock.device_id)
        assert before["registration_open"] is True
        assert before["bolt"] == "locked"
        after = await system.press(lock.device_id, "knob")
        assert after["bolt"] == "unlocked"
        assert (await system.lock_status(lock.device_id))["bolt"] == "unlocked"
        with pytest.raises(DemoError, match="unknown action"):
            await system.press(lock.device_id, "kick")
        with pytest.raises(DemoError, match="no demo lock"):
            await system.lock_status("02:00:00:00:00:01")
        with pytest.raises(DemoError, match="no code"):
            await system.latest_code("nobody@example.org")
        assert system.children == children  # one-shot helpers are reaped and forgotten
    assert_all_gone(children)
    # a clean stop: SIGTERM was enough for every child, and each removed its ready file
    codes = {c.name: c.process.returncode for c in children}
    assert codes == {
        "ras-init": 0,
        "hub": 0,
        "lock-acme": 0,
        "lock-keystone": 0,
        "lock-lumen": 0,
        "ras": -signal.SIGTERM,  # uvicorn re-raises the signal it shut down on
    }
    assert list((data / "run").iterdir()) == []
    assert {p.name for p in (data / "logs").iterdir()} >= {"ras.log", "hub.log", "press.log"}


async def test_a_child_dying_at_start_up_stops_everything(tmp_path: Path) -> None:
    # The RAS cannot listen on an address this machine does not have: it exits with 2.
    system = DemoSystem(tmp_path / "d", env={**CHEAP, "HESLOCK_HTTPS_HOST": "192.0.2.1"})
    with pytest.raises(DemoError) as caught:
        await system.start()
    assert "ras exited with code 2 before ready" in str(caught.value)
    assert "cannot listen on 192.0.2.1" in caught.value.details  # the end of its log
    assert "\n" not in str(caught.value)  # the reason is one line; the log is the details
    assert {c.name for c in system.children} >= {"hub", "ras", "lock-acme"}
    assert_all_gone(system.children)


async def test_a_start_up_deadline_stops_everything(tmp_path: Path) -> None:
    system = DemoSystem(tmp_path / "d", env=CHEAP, timeout_s=0.2)
    with pytest.raises(DemoError, match=r"within 0 s"):
        await system.start()
    assert_all_gone(system.children)


async def test_a_cancelled_start_stops_everything(tmp_path: Path) -> None:
    data = tmp_path / "d"
    system = DemoSystem(data, env=CHEAP)
    start = asyncio.create_task(system.start())
    hub_ready = data / "run" / "hub.json"

    async def hub_up() -> None:
        while not hub_ready.exists():
            await asyncio.wait({start}, timeout=0.05)
            assert not start.done(), "started (or failed) before it could be cancelled"

    await asyncio.wait_for(hub_up(), WAIT_S)
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    assert_all_gone(system.children)


async def test_refuses_a_directory_in_use(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DemoError, match="not empty"):
        await DemoSystem(tmp_path, env=CHEAP).start()
    assert (tmp_path / "notes.txt").read_text() == "mine"


async def test_refuses_a_path_too_long_for_unix_sockets(tmp_path: Path) -> None:
    system = DemoSystem(tmp_path / ("x" * 100), env=CHEAP)
    with pytest.raises(DemoError, match="too long a path"):
        await system.start()
    assert system.children == []


def test_claim_wipes_only_a_demo_directory_and_only_once_at_a_time(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    with claim(data) as claimed:
        assert claimed == data
        assert {p.name for p in data.iterdir()} == {LOCK_FILE}
        (data / MARKER).touch()
        (data / "logs").mkdir()
        (data / "logs" / "ras.log").write_text("old run")
        with pytest.raises(DemoError, match="another heslock demo is running"), claim(data):
            pass
    with claim(data):  # a demo directory from an earlier run: emptied
        assert {p.name for p in data.iterdir()} == {LOCK_FILE}
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    with pytest.raises(DemoError, match="refusing to wipe"), claim(other):
        pass
    assert (other / "thesis.tex").read_text() == "years of work"


class _FailingImport:
    """Just enough of a DemoSystem for the script's first step, which fails."""

    factory_records = Path("factory-records.json")

    async def import_devices(self) -> str:
        raise DemoError("devices-import failed with exit code 2", "line 1: bad-device-id")


async def test_a_failing_step_is_named_in_the_one_line_reason() -> None:
    console = Console(file=io.StringIO(), emoji=False, highlight=False)
    with pytest.raises(DemoError) as caught:
        await run_script(cast(DemoSystem, _FailingImport()), Narrator(console), MemoryTokenStore())
    assert str(caught.value) == "step 1 (Factory records): devices-import failed with exit code 2"
    assert caught.value.details == "line 1: bad-device-id"
