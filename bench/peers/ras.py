"""The RAS as a server under test: ``heslock ras init`` + ``bench.load.rashost``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any, Final

from bench.context import BenchError
from bench.load import provision
from bench.load.xmpp import Account
from bench.machine import ROOT
from bench.peers.base import Server, free_port, stop_pid
from heslock.ras.settings import load_settings

START_TIMEOUT_S: Final = 60.0


def clean_env(iterations: int) -> dict[str, str]:
    """Production defaults (no inherited HESLOCK_*), the common SCRAM iteration count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HESLOCK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["HESLOCK_SCRAM_ITERATIONS"] = str(iterations)
    # a throw-away uvloop for a side measurement (bench.load.rashost.UVLOOP_ENV)
    if os.environ.get("HESLOCK_BENCH_UVLOOP_PATH"):
        env["PYTHONPATH"] += os.pathsep + os.environ["HESLOCK_BENCH_UVLOOP_PATH"]
        env["HESLOCK_BENCH_UVLOOP"] = "1"
        # session.py asserts asyncio.Transport, which uvloop's transports are not
        env["PYTHONOPTIMIZE"] = "1"
    return env


class RasServer(Server):
    name = "heslock"

    def __init__(self, data_dir: Path, cpu: int, iterations: int) -> None:
        self.data_dir = data_dir
        self.cpu = cpu
        self.iterations = iterations
        self.env = clean_env(iterations)
        self.version = f"heslock {_dist_version('heslock')}"
        self.process: asyncio.subprocess.Process | None = None
        self.settings: Any = None
        self.log = data_dir / "rashost.log"
        self.starttls_port = free_port()
        self.direct_port = free_port()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def init(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "heslock", "ras", "init", "--data-dir", str(self.data_dir),
            env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), START_TIMEOUT_S)
        if process.returncode != 0:
            raise BenchError(f"heslock ras init failed: {output.decode()[-500:]}")
        self.settings = load_settings({"data_dir": self.data_dir}, env=self.env)
        self.domain = self.settings.domain
        self.ca_file = self.settings.tls_ca

    async def provision(self, accounts: Sequence[Account]) -> None:
        await provision.gateways(self.settings, accounts)

    async def start(self) -> None:
        with self.log.open("ab") as errors:
            self.process = await asyncio.create_subprocess_exec(
                "taskset", "-c", str(self.cpu), sys.executable, "-m", "bench.load.rashost",
                "--data-dir", str(self.data_dir), "--xmpp-port", str(self.starttls_port),
                "--direct-tls-port", str(self.direct_port),
                env=self.env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=errors,
            )  # fmt: skip
        ready = await self._read(START_TIMEOUT_S)
        if not ready.get("ready"):
            raise BenchError(f"the RAS host did not start: {ready}")

    async def _read(self, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        assert self.process is not None
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            line = b""
        if not line:
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            raise BenchError("the RAS host stopped answering: " + "\n".join(tail))
        result: dict[str, Any] = json.loads(line)
        return result

    async def call(self, command: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:  # noqa: ASYNC109
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        return await self._read(timeout)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.returncode is None and process.stdin is not None:
            process.stdin.write(b'{"op": "quit"}\n')
            try:
                await process.stdin.drain()
                await asyncio.wait_for(process.wait(), 15.0)
            except (TimeoutError, ConnectionError):
                pass
        await stop_pid(process)

    async def online(self) -> int | None:
        return int((await self.call({"op": "status"}))["online"])

    async def collect(self) -> None:
        await self.call({"op": "gc"})

    async def trim(self) -> bool:
        return bool((await self.call({"op": "trim"}))["trimmed"])
