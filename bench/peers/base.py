"""What every server under test offers the XMPP benchmarks (the RAS, Prosody, ejabberd).

Each runs as its own process pinned to one core (``taskset -c CPU``), on loopback only,
with the RAS's certificate (ECDSA P-256) and TLS 1.3, and is stopped by its PID. The
load generator (this process) runs on another core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from bench.load.xmpp import Account, Target

CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
PAGE_KIB: Final = os.sysconf("SC_PAGE_SIZE") // 1024
STOP_TIMEOUT_S: Final = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (/proc/PID/statm, second field)."""
    fields = Path(f"/proc/{pid}/statm").read_text(encoding="ascii").split()
    return int(fields[1]) * PAGE_KIB


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def client_context(ca_file: Path) -> ssl.SSLContext:
    """TLS 1.3 only, the bench CA only, host name checked: the same for every server."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


async def stop_pid(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S: never leave a server running."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


class Server:
    """A server under test (subclasses: RAS, Prosody, ejabberd)."""

    name: str = "?"
    version: str = "?"
    domain: str = "localhost"
    host: str = "127.0.0.1"
    starttls_port: int = 0
    direct_port: int = 0
    ca_file: Path = Path()
    can_restart: bool = True

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def target(self, *, direct: bool, context: ssl.SSLContext, resource: str = "bgw") -> Target:
        port = self.direct_port if direct else self.starttls_port
        return Target(self.host, port, self.domain, context, direct, resource)

    async def provision(self, accounts: Sequence[Account]) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def online(self) -> int | None:
        """Sessions the server counts as online, where it can tell (else None)."""
        return None

    async def collect(self) -> None:
        """Ask the server to collect garbage before a memory reading, where it can."""
        return
