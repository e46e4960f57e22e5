"""``heslock ras serve --workers N``: one RAS node as N worker processes on shared ports.

One Python process holds one core. A node with more cores runs N workers of
``heslock ras serve``, each a full RAS (HTTPS API and XMPP endpoint for gateways), all
listening on the *same* HTTPS, XMPP STARTTLS and XMPP direct-TLS ports with
``SO_REUSEPORT`` (Linux): the kernel spreads new connections over the workers. A gateway
is held by whichever worker accepted it; the others reach it over the cluster bus
(:class:`heslock.ras.relay.natsbus.NatsBus`, ``bus_url``), so an HTTPS command reaches
any gateway whichever worker answers it. Workers share the PostgreSQL database
(SQLite is refused: one file, one process).

The :class:`Supervisor` (this process):

- resolves each port once: it binds a placeholder socket with ``SO_REUSEPORT`` (port 0
  becomes a real number) and keeps it, unlistened, while it runs, so a restarted worker
  binds the same port and nothing else can take it meanwhile;
- starts the workers (``python -m heslock ras serve --workers 1 ...`` with those ports,
  ``reuse_port`` set, and ``HESLOCK_DIE_WITH_PARENT`` so they end if it is killed) and
  waits for each one's ready file; a worker that exits before it is ready stops the
  start (a configuration error would only repeat), with its exit status;
- restarts a worker that exits later, after a back-off (:data:`RESTART_MIN_S` doubling
  to :data:`RESTART_MAX_S`, reset once a worker has run :data:`STABLE_S`);
- on SIGTERM or SIGINT, sends SIGTERM to every worker (each closes its gateways' streams
  and finishes its HTTPS requests), waits up to :data:`STOP_TIMEOUT_S`, then kills what
  is left.

Its ``--ready-file`` (heslock.cli.readyfile) appears once every worker is ready and names
the shared ports and the workers' PIDs (rewritten when one is restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from heslock.cli import DIE_WITH_PARENT_ENV
from heslock.cli.readyfile import read_ready_file, remove_ready_file, write_ready_file
from heslock.errors import UsageError
from heslock.ras.settings import Settings

log = logging.getLogger(__name__)

#: How long a worker may take to become ready (migrations checked, ports bound).
READY_TIMEOUT_S: Final = 60.0
#: How often the ready files are looked at while waiting.
READY_POLL_S: Final = 0.05
#: A worker that exits is started again after this, doubling up to RESTART_MAX_S.
RESTART_MIN_S: Final = 0.5
RESTART_MAX_S: Final = 30.0
#: A worker that ran this long resets the back-off.
STABLE_S: Final = 60.0
#: SIGTERM -> exit: the workers' graceful HTTPS shutdown (10 s) plus the relay's.
STOP_TIMEOUT_S: Final = 30.0


@dataclass
class _Worker:
    index: int
    ready_file: Path
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0


@dataclass
class Ports:
    https: int
    xmpp: int
    xmpp_direct_tls: int
    _sockets: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()


def reserve_ports(settings: Settings) -> Ports:
    """Bind a SO_REUSEPORT placeholder on each port (module docstring)."""
    sockets: list[socket.socket] = []

    def reserve(host: str, port: int) -> int:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        sockets.append(sock)
        return int(sock.getsockname()[1])

    if not hasattr(socket, "SO_REUSEPORT"):
        raise UsageError("--workers needs SO_REUSEPORT (Linux)")
    try:
        ports = Ports(
            reserve(settings.https_host, settings.https_port),
            reserve(settings.xmpp_host, settings.xmpp_port),
            reserve(settings.xmpp_host, settings.xmpp_direct_tls_port),
        )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    ports._sockets = sockets
    return ports


class Supervisor:
    """N ``ras serve`` workers on shared ports (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        worker_args: list[str],
        ready_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.worker_args = worker_args
        self.ready_file = ready_file
        self.ports: Ports | None = None
        self.workers: list[_Worker] = []
        self._stopping = asyncio.Event()
        self._directory: Path | None = None
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        assert self.ports is not None
        return f"https://{self.settings.https_host}:{self.ports.https}"

    def stop(self) -> None:
        """Ask :meth:`run` to stop every worker and return (signal-safe)."""
        self._stopping.set()

    async def run(self) -> None:
        """Start the workers, keep them running until :meth:`stop`, stop them."""
        self.ports = reserve_ports(self.settings)
        self._directory = Path(tempfile.mkdtemp(prefix="heslock-workers-"))
        try:
            self.workers = [
                _Worker(i, self._directory / f"worker-{i}.json")
                for i in range(self.settings.workers)
            ]
            for worker in self.workers:
                await self._spawn(worker)
            for worker in self.workers:
                await self._ready(worker)
            self._write_ready()
            print(  # the CLI's own output, as the single-process serve prints it
                f"heslock ras: {len(self.workers)} workers listening on {self.url}",
                flush=True,
            )
            self._watchers = [
                asyncio.create_task(self._watch(w), name=f"ras-worker-{w.index}")
                for w in self.workers
            ]
            await self._stopping.wait()
        finally:
            self._stopping.set()
            await self._stop_all()
            if self.ready_file is not None:
                remove_ready_file(self.ready_file)
            shutil.rmtree(self._directory, ignore_errors=True)
            self.ports.close()

    # ------------------------------------------------------------------ workers

    def command(self, worker: _Worker) -> list[str]:
        assert self.ports is not None
        return [
            sys.executable,
            "-m",
            "heslock",
            "ras",
            "serve",
            *self.worker_args,
            "--workers",
            "1",
            "--port",
            str(self.ports.https),
            "--xmpp-port",
            str(self.ports.xmpp),
            "--xmpp-direct-tls-port",
            str(self.ports.xmpp_direct_tls),
            "--ready-file",
            str(worker.ready_file),
        ]

    async def _spawn(self, worker: _Worker) -> None:
        env = {
            **os.environ,
            "HESLOCK_REUSE_PORT": "true",
            DIE_WITH_PARENT_ENV: str(os.getpid()),
        }
        worker.ready_file.unlink(missing_ok=True)
        worker.process = await asyncio.create_subprocess_exec(
            *self.command(worker), env=env, stdin=asyncio.subprocess.DEVNULL
        )
        worker.started_at = asyncio.get_running_loop().time()
        log.info("worker %d started (pid %d)", worker.index, worker.process.pid)

    async def _ready(self, worker: _Worker) -> None:
        """Until the worker's ready file names it; UsageError if it exits first."""
        process = worker.process
        assert process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        while True:
            document = read_ready_file(worker.ready_file)
            if document is not None and document.get("pid") == process.pid:
                return
            if process.returncode is not None:
                raise UsageError(
                    f"worker {worker.index} exited with status {process.returncode} "
                    "before it was ready (its log says why)"
                )
            if loop.time() > deadline or self._stopping.is_set():
                raise UsageError(f"worker {worker.index} was not ready in {READY_TIMEOUT_S:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), READY_POLL_S)

    async def _watch(self, worker: _Worker) -> None:
        """Restart ``worker`` whenever it exits, until the supervisor stops."""
        delay = RESTART_MIN_S
        loop = asyncio.get_running_loop()
        while True:
            process = worker.process
            assert process is not None
            status = await process.wait()
            if self._stopping.is_set():
                return
            if loop.time() - worker.started_at >= STABLE_S:
                delay = RESTART_MIN_S
            log.warning(
                "worker %d (pid %d) exited with status %s; restarting in %.1f s",
                worker.index,
                process.pid,
                status,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            delay = min(delay * 2, RESTART_MAX_S)
            worker.restarts += 1
            try:
                await self._spawn(worker)
                await self._ready(worker)
            except (UsageError, OSError) as exc:
                log.warning("worker %d: %s", worker.index, exc)
                continue
            self._write_ready()

    async def _stop_all(self) -> None:
        running = [
            w.process
            for w in self.workers
            if w.process is not None and w.process.returncode is None
        ]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = [asyncio.ensure_future(p.wait()) for p in running]
        if waits:
            _, late = await asyncio.wait(waits, timeout=STOP_TIMEOUT_S)
            for process in running:
                if process.returncode is None:
                    log.warning("worker pid %d did not stop in time: killed", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if late:
                await asyncio.wait(late)
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watchers = []

    def _write_ready(self) -> None:
        if self.ready_file is None or self.ports is None:
            return
        write_ready_file(
            self.ready_file,
            "ras",
            https_url=self.url,
            data_dir=str(self.settings.data_dir),
            ca_file=str(self.settings.tls_ca),
            domain=self.settings.domain,
            xmpp_host=self.settings.xmpp_host,
            xmpp_port=self.ports.xmpp,
            xmpp_direct_tls_port=self.ports.xmpp_direct_tls,
            workers=[w.process.pid for w in self.workers if w.process is not None],
        )


def serve_workers(settings: Settings, worker_args: list[str], ready_file: Path | None) -> None:
    """Run the supervisor until SIGTERM/SIGINT; re-raise SIGTERM after a clean stop (the
    exit status a service manager expects, as the single-process ``ras serve``)."""
    held: list[int] = []

    async def main() -> None:
        supervisor = Supervisor(settings, worker_args, ready_file)
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            held.append(signum)
            supervisor.stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await supervisor.run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    asyncio.run(main())
    if signal.SIGTERM in held:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


__all__ = ["Ports", "Supervisor", "reserve_ports", "serve_workers"]
