"""heslock's XMPP endpoint alone as a server under test (bench.load.endpointhost).

Not a peer: its figures are not ratios but the split of the RAS's own costs, endpoint
(TLS, XML, SCRAM, routing) versus the RAS services behind it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from bench.context import BenchError
from bench.load.xmpp import Account
from bench.peers.base import Server, free_port, stop_pid

START_TIMEOUT_S: Final = 60.0


class EndpointServer(Server):
    name = "heslock-xmpp"
    version = "heslock XmppServer alone"

    def __init__(
        self, work: Path, cpu: int, cert: Path, key: Path, domain: str, env: dict[str, str]
    ) -> None:
        self.work = work
        self.cpu = cpu
        self.cert = cert
        self.key = key
        self.domain = domain
        self.env = env
        self.accounts = work / "accounts.txt"
        self.log = work / "endpoint.log"
        self.starttls_port = free_port()
        self.direct_port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def provision(self, accounts: Sequence[Account]) -> None:
        lines = []
        for account in accounts:
            keys = account.keys
            assert keys is not None
            lines.append(
                f"{account.username} {keys.salt.hex()} {keys.stored_key.hex()} "
                f"{keys.server_key.hex()} {keys.iterations}\n"
            )
        await asyncio.to_thread(self.accounts.write_text, "".join(lines), "ascii")

    async def start(self) -> None:
        with self.log.open("ab") as errors:
            self.process = await asyncio.create_subprocess_exec(
                "taskset", "-c", str(self.cpu), sys.executable, "-m", "bench.load.endpointhost",
                str(self.cert), str(self.key), self.domain, str(self.starttls_port),
                str(self.direct_port), str(self.accounts),
                env=self.env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=errors,
            )  # fmt: skip
        if not (await self._call(None)).get("ready"):
            raise BenchError("the XMPP endpoint host did not start")

    async def _call(self, line: bytes | None) -> dict[str, int]:
        assert self.process is not None
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if line is not None:
            self.process.stdin.write(line)
            await self.process.stdin.drain()
        try:
            answer = await asyncio.wait_for(self.process.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            answer = b""
        if not answer:
            raise BenchError("the XMPP endpoint host stopped answering (see endpoint.log)")
        result: dict[str, int] = json.loads(answer)
        return result

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        await stop_pid(process)

    async def online(self) -> int | None:
        return int((await self._call(b"status\n"))["online"])

    async def collect(self) -> None:
        await self._call(b"gc\n")
