"""The demo's child processes: start, wait until ready, stop — always by PID, always.

Every part of the demo system runs as its own ``heslock`` process, started with the same
interpreter (``sys.executable -m heslock ...``), as a deployment would run them. This
module owns the mechanics, so that :class:`heslock.demo.DemoSystem` reads as the order
of things and nothing else:

- **Start.** A child gets ``stdin`` from ``/dev/null`` and writes stdout and stderr to
  its own log file in the demo's ``logs/`` directory (shown when it fails). It runs in
  a session of its own: a Ctrl-C in the terminal reaches the demo alone, which then
  stops the children in its own order (gateway before the RAS it talks to).
- **Ready.** A long-running child is ready when its ``--ready-file`` (heslock.cli.readyfile)
  exists and names its PID; a one-shot child when it exits 0. Both waits have a deadline
  and end early when the child exits: a child that dies at start-up is reported at once,
  with the last lines of its log, not after the deadline.
- **Stop.** SIGTERM, wait up to a grace period, then SIGKILL (to its whole process group:
  it leads one) and reap it. :func:`stop_all` stops children concurrently and, if it is
  itself cancelled half-way (a second Ctrl-C), kills what is left before it returns, so
  no child outlives the demo however it ends.

State of one child::

    spawned --ready file with its pid--> ready --SIGTERM--> stopping --exit--> stopped
       |                                                        |
       +--exits (any code) / deadline------> failed            +--grace over--> SIGKILL
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from heslock.cli import DIE_WITH_PARENT_ENV
from heslock.cli.readyfile import read_ready_file
from heslock.errors import HeslockError

#: How often a wait looks at a ready file (it also wakes at once when the child exits).
POLL_S: Final = 0.05
#: SIGTERM to SIGKILL: the RAS finishes in-flight requests within 10 s (ras.server).
STOP_GRACE_S: Final = 12.0
#: How long a killed child may take to be reaped (SIGKILL cannot be caught).
KILL_REAP_S: Final = 5.0
#: Lines of a failing child's log shown with the error.
TAIL_LINES: Final = 15
#: Bytes read from the end of a log for the tail (a few screens).
_TAIL_BYTES: Final = 16 * 1024


class DemoError(HeslockError):
    """The demo could not do a step; ``str()`` is one line, ``details`` the evidence."""

    exit_code = 1

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def child_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``HESLOCK_*`` setting, then ``overrides``.

    The demo runs on the embedded defaults: a ``HESLOCK_CONFIG`` or ``HESLOCK_HTTPS_PORT``
    left in the user's shell must not change what it starts. Tests pass cheaper password
    hashing through ``overrides``. Output is unbuffered so a log is complete when read.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("HESLOCK_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides or {})
    return env


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" if there is none)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])


@dataclass(eq=False)
class Child:
    """One ``heslock`` child process (module docstring)."""

    name: str
    process: asyncio.subprocess.Process
    log: Path
    ready_file: Path | None = None
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def failure(self, what: str) -> DemoError:
        evidence = tail(self.log)
        details = f"last lines of {self.log}:\n{evidence}" if evidence else f"{self.log} is empty"
        return DemoError(f"{self.name} {what} (log: {self.log})", details)

    async def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """Wait for the ready file naming this child's PID; its content."""
        assert self.ready_file is not None, "a child without --ready-file is waited by exit"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            document = read_ready_file(self.ready_file)
            if document is not None and document.get("pid") == self.pid:
                self.ready = document
                return document
            if not self.running:
                raise self.failure(f"exited with code {self.process.returncode} before ready")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self.failure(f"was not ready within {timeout_s:.0f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), min(POLL_S, remaining))

    async def wait_exit(self, timeout_s: float) -> str:
        """Wait for a one-shot child to finish successfully; its stdout if piped."""
        try:
            out, _ = await asyncio.wait_for(self.process.communicate(), timeout_s)
        except TimeoutError:
            raise self.failure(f"did not finish within {timeout_s:.0f} s") from None
        if self.process.returncode != 0:
            raise self.failure(f"failed with exit code {self.process.returncode}")
        return (out or b"").decode("utf-8", "replace")

    async def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, then SIGKILL after ``grace_s``; reaps the child; its exit code."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                pass
        self.kill()
        return await self.process.wait()

    def kill(self) -> None:
        """SIGKILL the child's process group (it leads one), now, without waiting."""
        if self.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


async def spawn(
    name: str,
    args: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str],
    ready_file: Path | None = None,
    stdout_pipe: bool = False,
) -> Child:
    """Start ``python -m heslock ARGS`` (``--ready-file`` appended when given)."""
    argv = [sys.executable, "-m", "heslock", *args]
    if ready_file is not None:
        _unlink(ready_file)  # a stale one (same path, earlier child) must not count
        argv += ["--ready-file", str(ready_file)]
    log = log_dir / f"{name}.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else fd,
            stderr=fd,
            # Its own session (Ctrl-C reaches the demo alone), and it dies with the demo
            # even when the demo is killed outright (heslock.cli.die_with_parent).
            env={**env, DIE_WITH_PARENT_ENV: str(os.getpid())},
            start_new_session=True,
        )
    except OSError as exc:
        raise DemoError(f"cannot start {name}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return Child(name, process, log, ready_file)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


async def stop_all(children: Sequence[Child], grace_s: float = STOP_GRACE_S) -> None:
    """Stop ``children`` concurrently; if cancelled, kill the rest before re-raising."""
    try:
        await asyncio.gather(*(child.stop(grace_s) for child in children))
    except BaseException:
        for child in children:
            child.kill()
        # Reap them (a killed child exits at once) unless cancelled yet again.
        reap = asyncio.gather(*(child.process.wait() for child in children))
        with contextlib.suppress(BaseException):
            await asyncio.shield(asyncio.wait_for(reap, KILL_REAP_S))
        raise
