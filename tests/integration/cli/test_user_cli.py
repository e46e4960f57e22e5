"""The ``heslock`` client command line, driven as a person drives it.

Every command is a real ``heslock`` process with a fresh HOME (and XDG_CONFIG_HOME),
against a running system (:class:`heslock.demo.DemoSystem`: the RAS, the radio hub, three
simulated locks and a gateway, each its own process). Passwords go in on stdin, one-time
codes are read from the development outbox the way a person reads their phone, and what
comes out is checked as a person (text) or a script (``--json``, exit codes) sees it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from heslock.demo import DemoSystem

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

HESLOCK = str(Path(sys.executable).parent / "heslock")
#: One command: a fresh interpreter imports typer, httpx (and bumble for --nearby).
COMMAND_S = 90.0
#: Another process (the gateway) must first report what it hears: looked at again until then.
SETTLE_S = 30.0
POLL_S = 0.25
PASSWORD = "plum tart on a windy tuesday"
CHEAP = {
    "HESLOCK_ARGON2_TIME_COST": "1",
    "HESLOCK_ARGON2_MEMORY_COST": "64",
    "HESLOCK_ARGON2_PARALLELISM": "1",
}
_T = TypeVar("_T")


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def one_line_error(self) -> str:
        """An expected failure: one line on stderr, never a traceback."""
        assert "Traceback" not in self.err, self.err
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1, self.err
        assert lines[0].startswith("heslock: error: "), lines
        return lines[0]


class User:
    """A person with a fresh home directory and the ``heslock`` command."""

    def __init__(self, home: Path) -> None:
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HESLOCK_", "XDG_"))}
        self.config = home / ".config"
        self.env = env | {"HOME": str(home), "XDG_CONFIG_HOME": str(self.config)}

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            HESLOCK, *args, env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def run(self, *args: str, stdin: str = "") -> Ran:
        proc = await self.start(*args)
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), COMMAND_S)
        assert proc.returncode is not None
        return Ran(proc.returncode, out.decode(), err.decode())

    async def ok(self, *args: str, stdin: str = "") -> Ran:
        ran = await self.run(*args, stdin=stdin)
        assert ran.code == 0, (args, ran)
        assert "Traceback" not in ran.err
        return ran

    async def login(self, system: DemoSystem, email: str) -> Ran:
        """``account login``: the password on stdin, then the code the prompt asks for."""
        proc = await self.start("account", "login", email, "--password-stdin")
        assert proc.stdin is not None
        assert proc.stderr is not None
        proc.stdin.write(f"{PASSWORD}\n".encode())
        await proc.stdin.drain()
        prompt = await _read_until(proc.stderr, b"Code sent by email")
        assert b"*" in prompt  # the destination, masked
        code = await system.latest_code(email, purpose="login")
        proc.stdin.write(f"{code}\n".encode())
        await proc.stdin.drain()
        proc.stdin.close()
        out, err = await asyncio.wait_for(proc.communicate(), COMMAND_S)
        assert proc.returncode is not None
        return Ran(proc.returncode, out.decode(), (prompt + err).decode())


async def _read_until(stream: asyncio.StreamReader, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        chunk = await asyncio.wait_for(stream.read(1024), COMMAND_S)
        assert chunk, f"ended before {marker!r}: {seen!r}"
        seen += chunk
    return seen


async def until(probe: Callable[[], Awaitable[_T | None]], what: str) -> _T:
    """Ask again until another process has done its part (a deadline, never a guess)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while True:
        found = await probe()
        if found is not None:
            return found
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(POLL_S)


async def test_a_user_registers_adds_locks_operates_them_and_leaves(tmp_path: Path) -> None:
    async with DemoSystem(tmp_path / "demo", env=CHEAP) as system:
        await system.import_devices()
        near, far, spare = system.locks
        alice = User(tmp_path / "alice")
        email = f"alice-{uuid.uuid4().hex[:6]}@example.org"

        # A profile: where the server is, its CA, this computer's radio.
        await alice.ok(
            "profile", "add", "home", "--server", system.https_url,
            "--ca", str(system.ca_file), "--link", system.hub, "--use",
        )  # fmt: skip
        profiles = alice.config / "heslock" / "profiles.json"
        assert stat.S_IMODE(profiles.stat().st_mode) == 0o600
        assert stat.S_IMODE(profiles.parent.stat().st_mode) == 0o700

        # Register, verify (a wrong code first), log in with the code e-mailed.
        made = await alice.ok("account", "register", "--email", email, "--password-stdin",
                              "--json", stdin=f"{PASSWORD}\n")  # fmt: skip
        assert made.json()["contacts"][0]["address"] == email
        assert PASSWORD not in made.out + made.err
        code = await system.latest_code(email, purpose="verify_contact")
        wrong = await alice.run(
            "account", "verify", email, "--code", f"{(int(code) + 1) % 10**6:06d}"
        )
        assert wrong.code == 4
        assert "code-refused" in wrong.one_line_error()
        verified = await alice.ok("account", "verify", email, "--code", code)
        assert "verified" in verified.out
        not_yet = await alice.run("lock", "list")
        assert not_yet.code == 4
        assert "account login" in not_yet.one_line_error()
        logged_in = await alice.login(system, email)
        assert logged_in.code == 0, logged_in
        assert "logged in" in logged_in.out
        saved = profiles.read_text()
        assert "hla_" in saved  # the session lives in the profile...
        assert stat.S_IMODE(profiles.stat().st_mode) == 0o600  # ...which stays private
        me = (await alice.ok("account", "whoami", "--json")).json()
        assert me["contacts"][0]["verified"] is True
        assert "hla_" not in (await alice.ok("account", "sessions")).out

        # Check, scan, add one lock over this computer's radio.
        check = await alice.ok("device", "check", near.device_id)
        assert "free to bind" in check.out
        unknown = await alice.run("device", "check", "00:11:22:33:44:55", "--json")
        assert unknown.code == 4
        assert unknown.json()["reason"] == "unknown"
        seen = (await alice.ok("lock", "scan", "--json")).json()
        by_id = {d["device_id"]: d for d in seen}
        assert by_id[near.device_id]["maker"] == near.maker
        assert by_id[near.device_id]["bound"] is False
        added = await alice.ok("lock", "add", near.device_id, "--name", "Front door", "--nearby")
        assert "lock Front door added" in added.out
        for stage in ("genuine and free", "stage a: key part 1 of 2", "stage b: commit"):
            assert stage in added.err

        # A gateway, and the second lock through it (the RAS carries the frames).
        gateway = (await alice.ok("gateway", "add", "hall", "--json")).json()
        await system.start_gateway(gateway["jid"], gateway["secret"])
        listed = (await alice.ok("gateway", "list", "--json")).json()
        assert [g["name"] for g in listed] == ["hall"]

        async def add_via_gateway() -> Ran | None:
            ran = await alice.run("lock", "add", far.device_id, "--name", "Back door",
                                  "--via", "hall", "--json")  # fmt: skip
            if ran.code == 5 and (
                "gateway-unavailable" in ran.err or "lock-unreachable" in ran.err
            ):
                return None  # the gateway has not reported the lock yet
            return ran

        via = await until(add_via_gateway, "the gateway to see the lock")
        assert via.code == 0, via
        assert via.json()["via"] == "gateway"
        locks = (await alice.ok("lock", "list", "--json")).json()
        assert sorted(lk["name"] for lk in locks) == ["Back door", "Front door"]

        # Unlock through the gateway; follow the lock's events; a person turns the knob.
        unlocked = await alice.ok("lock", "unlock", "Back door")
        assert "Back door: unlocked" in unlocked.out
        follower = await alice.start("lock", "events", "Back door", "--follow", "--json",
                                     "--interval", "0.5")  # fmt: skip
        try:
            assert follower.stdout is not None
            assert follower.stderr is not None
            await _read_until(follower.stderr, b"Ctrl-C to stop")  # following from now on
            before = await system.lock_status(far.device_id)
            await system.press(far.device_id, "knob")
            while True:
                line = await asyncio.wait_for(follower.stdout.readline(), SETTLE_S)
                assert line, "events --follow ended"
                event = json.loads(line)
                if event["kind"] == "manual_operation":
                    break
            assert event["bolt"] != before["bolt"]
            follower.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(follower.wait(), COMMAND_S) == 0
        finally:
            if follower.returncode is None:
                follower.kill()
                await follower.wait()
        history = (await alice.ok("lock", "events", "Back door", "--json")).json()
        assert "manual_operation" in [e["kind"] for e in history]
        status = (await alice.ok("lock", "status", "Back door", "--cached", "--json")).json()
        assert status["bolt"] == event["bolt"]

        # Nearby mode: the RAS seals the frame, this computer's radio carries it.
        near_unlock = await alice.ok("lock", "unlock", "Front door", "--nearby")
        assert "Front door: unlocked" in near_unlock.out
        near_status = (await alice.ok("lock", "status", "front door", "--nearby", "--json")).json()
        assert (near_status["command"], near_status["bolt"]) == ("status", "unlocked")

        # Bad input: one line, the documented exit code, no traceback.
        for args, exit_code, words in (
            (("lock", "unlock", "Shed"), 4, "no lock 'Shed'"),
            (("lock", "unlock", str(uuid.uuid4())), 4, "not-found"),
            (("lock", "add", "zz", "--name", "x", "--nearby"), 2, "not a device id"),
            (("lock", "add", spare.device_id, "--name", "x"), 2, "--nearby or --via"),
            (("lock", "rename", "Front door", "x" * 65), 2, "validation-failed"),
            (("gateway", "remove", "attic", "--yes"), 4, "no gateway named"),
        ):
            bad = await alice.run(*args)
            assert bad.code == exit_code, (args, bad)
            assert words in bad.one_line_error(), (args, bad.err)

        # Remove a lock, log out; afterwards nothing works without logging in again.
        removed = await alice.ok("lock", "remove", "Front door", "--yes")
        assert "removed" in removed.out
        assert "factory-reset" in removed.err
        await alice.ok("account", "logout")
        assert "hla_" not in profiles.read_text()
        after = await alice.run("lock", "list")
        assert after.code == 4
        after.one_line_error()


async def test_a_profiles_file_others_can_read_is_refused(tmp_path: Path) -> None:
    bob = User(tmp_path / "bob")
    await bob.ok("profile", "add", "work", "--server", "https://ras.example:8443")
    profiles = bob.config / "heslock" / "profiles.json"
    listed = (await bob.ok("profile", "list", "--json")).json()
    assert [p["name"] for p in listed] == ["work"]
    profiles.chmod(0o644)
    refused = await bob.run("--profile", "work", "lock", "list")
    assert refused.code == 2
    assert "chmod 600" in refused.one_line_error()
    profiles.chmod(0o600)
    # No server reachable there: unreachable, exit 5 (and no session to use anyway: 4 first).
    nobody = await bob.run("--profile", "work", "lock", "list")
    assert nobody.code == 4
    assert "account login" in nobody.one_line_error()
    password = await bob.run("account", "login", "bob@example.org", "--profile", "work")
    assert password.code == 2  # no terminal to ask: --password-stdin
    assert "--password-stdin" in password.one_line_error()
