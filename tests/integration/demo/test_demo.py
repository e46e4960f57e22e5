"""``heslock demo`` as a user runs it: a real subprocess of the console script, fresh HOME.

Both tests run the whole system (RAS, hub, three locks, a gateway: each its own process)
on the embedded defaults, from an empty home directory as a fresh clone would:

- ``--once``: the script runs, its output shows the lock's own answer and its event, the
  exit code is 0, and no process it started is left;
- without ``--once``: the demo prints the tour and keeps running; the tour's own commands
  work from "a second terminal" (this test); SIGINT stops every process, exit code 0, and
  the ``demo`` client profile is gone again.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.demo.support import fresh_home, heslock_process_alive

#: The whole system: ~20 s on 2 cores, more when they are shared; the tour test also
#: runs nine commands of the tour, each a fresh interpreter.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HESLOCK = str(Path(sys.executable).parent / "heslock")
#: The demo's own deadlines are 60 s per start-up phase; the test allows the whole run.
RUN_TIMEOUT_S = 100
PID = re.compile(r"\bpid (\d+)\b")


def started_pids(output: str) -> set[int]:
    return {int(pid) for pid in PID.findall(output)}


def test_demo_once_registers_unlocks_and_sees_the_event(tmp_path: Path) -> None:
    env = fresh_home(tmp_path)
    result = subprocess.run(
        [HESLOCK, "demo", "--once"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        env=env,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in result.stderr + out
    # every part was its own process: RAS, hub, three locks, the gateway
    pids = started_pids(out)
    assert len(pids) == 6, out
    assert not [pid for pid in pids if heslock_process_alive(pid)]
    # three makers discovered by the client's radio, all genuine and unbound
    assert out.count("bound=False") == 3
    assert out.count("genuine, free to bind") == 3
    for maker in ("acme", "keystone", "lumen"):
        assert f" {maker} " in out
    assert "imported 3 of 3 device(s)" in out
    # one lock nearby (the key negotiation's frames shown), two through the gateway
    assert "stage b: commit" in out
    assert out.count("-> committed") == 3
    assert out.count("through the gateway, carried by the RAS -> committed") == 2
    # the lock's own answer, then its own event
    assert "the lock answers: bolt unlocked, door closed, battery 100%" in out
    assert "event manual_operation: bolt locked" in out
    assert "demo complete" in out
    # the demo's data directory: the stable default under XDG_STATE_HOME, ready files gone
    data = Path(env["XDG_STATE_HOME"]) / "heslock" / "demo"
    assert (data / "ras" / "outbox.jsonl").is_file()
    assert list((data / "run").iterdir()) == []
    # --once keeps its session in memory: no profile was written
    assert not (Path(env["XDG_CONFIG_HOME"]) / "heslock" / "profiles.json").exists()


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    env = fresh_home(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = subprocess.run(
        [HESLOCK, "demo", "--once", "--data-dir", str(mine)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        env=env,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("heslock demo failed:")
    assert "refusing to wipe it" in last
    assert "Traceback" not in result.stderr
    assert (mine / "notes.txt").read_text() == "keep me"


async def _read_until(stream: asyncio.StreamReader, marker: str, timeout_s: float) -> str:
    seen: list[str] = []

    async def read() -> str:
        while line := await stream.readline():
            seen.append(line.decode())
            if marker in seen[-1]:
                return "".join(seen)
        raise AssertionError(f"the demo ended before {marker!r}:\n{''.join(seen)}")

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"no {marker!r} within {timeout_s} s:\n{''.join(seen)}") from None


async def _heslock(env: dict[str, str], *argv: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        HESLOCK,
        *argv,
        env={**env, "COLUMNS": "200"},  # tables for people: no wrapped cells in a pipe
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


def _tour_lines(tour: str, prefix: str) -> list[list[str]]:
    return [
        shlex.split(line.strip())[1:]
        for line in tour.splitlines()
        if line.strip().startswith(prefix)
    ]


async def test_demo_runs_the_tour_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = fresh_home(tmp_path)
    demo = await asyncio.create_subprocess_exec(
        HESLOCK, "demo", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert demo.stdout is not None
        assert demo.stderr is not None
        tour = await _read_until(demo.stdout, "Press Ctrl-C", RUN_TIMEOUT_S)
        pids = started_pids(tour)
        assert len(pids) == 6, tour
        assert all(heslock_process_alive(pid) for pid in pids), tour

        # the client profile is written, 0600, and names the running RAS
        profiles = Path(env["XDG_CONFIG_HOME"]) / "heslock" / "profiles.json"
        assert profiles.stat().st_mode & 0o777 == 0o600
        profile = json.loads(profiles.read_text())["profiles"]["demo"]
        assert profile["server"] in tour
        assert profile["tokens"]["access_token"]

        # "a second terminal": the person at the door, exactly as the tour says
        knob = _tour_lines(tour, "heslock bsld press knob-unlock")
        assert len(knob) == 1, tour
        code, out = await _heslock(env, *knob[0])
        assert code == 0, out
        assert json.loads(out)["bolt"] == "unlocked"
        status = _tour_lines(tour, "heslock bsld status")
        code, out = await _heslock(env, *status[0])
        assert code == 0, out
        assert '"bolt": "unlocked"' in out
        # the codes the RAS sent, read as the tour says
        outbox = _tour_lines(tour, "heslock ras outbox")[0]
        code, out = await _heslock(env, *[arg for arg in outbox if arg != "--follow"])
        assert code == 0, out
        assert out.count("demo@example.org") == 2, out

        # the client, through the demo profile, exactly as the tour says (not --follow)
        client = _tour_lines(tour, "heslock --profile demo")
        assert [argv[2:4] for argv in client] == [
            ["lock", "list"],
            ["lock", "status"],
            ["lock", "unlock"],
            ["lock", "events"],
            ["lock", "unlock"],
            ["gateway", "list"],
        ]
        list_locks, lock_status, _unlock, events, nearby, gateways = client
        code, out = await _heslock(env, *list_locks)
        assert code == 0, out
        for name in ("Front door", "Back door", "Garage"):
            assert name in out
        code, out = await _heslock(env, *lock_status)  # the lock answers, via the gateway
        assert code == 0, out
        assert "unlocked" in out  # the knob turned above
        code, out = await _heslock(env, *[arg for arg in events if arg != "--follow"])
        assert code == 0, out
        assert "manual" in out
        code, out = await _heslock(env, *nearby)  # over the client's own radio
        assert code == 0, out
        assert "unlocked" in out
        code, out = await _heslock(env, *gateways)
        assert code == 0, out
        assert "Hallway gateway" in out

        demo.send_signal(signal.SIGINT)
        rest, err = await asyncio.wait_for(demo.communicate(), 60)
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
    assert demo.returncode == 0, rest.decode() + err.decode()
    assert "stopped" in rest.decode()
    assert b"Traceback" not in err
    assert not [pid for pid in pids if heslock_process_alive(pid)]
    assert "demo" not in json.loads(profiles.read_text())["profiles"]
