"""Prosody and ejabberd from Debian's packages, configured as the RAS's equals (issue 9).

:func:`ensure_installed` installs them with ``apt-get install -y prosody ejabberd`` when
absent, under a ``policy-rc.d`` that forbids starting services (Debian's packages would
start and enable their system daemons otherwise); afterwards any daemon the packages did
start is stopped and disabled. The benchmark never uses the system daemons: each run
writes its own configuration, data and logs into a temporary directory and starts its own
process pinned to one core (``taskset -c CPU``), on loopback only, on ports of our choice,
and stops it by PID (SIGTERM, then SIGKILL).

Equal terms with the RAS: the RAS's own certificate and key (ECDSA P-256) for the domain
the RAS serves, TLS 1.3 only, SASL SCRAM-SHA-256 with verifiers at the common iteration
count, STARTTLS required on one port and direct TLS (XEP-0368) on another, no rate
limits or traffic shapers, no offline storage, no server-to-server, and the modules a
client session needs (roster, presence, ping). Prosody gets ``tcp_nodelay`` and Lua's
generational GC (the "tuned" column of issue 9).

Accounts: Prosody's data files are written directly (bench.load.provision: the same
format ``prosodyctl register`` writes, SCRAM-SHA-256 keys at the common count).
ejabberd registers each account through its own ``register`` command over its HTTP API
(loopback, one request per account, the server derives the SCRAM keys itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from bench.context import BenchError
from bench.load.provision import prosody_accounts
from bench.load.xmpp import Account
from bench.peers.base import STOP_TIMEOUT_S, Server, free_port, stop_pid

PACKAGES: Final = ("prosody", "ejabberd")
POLICY_RC: Final = Path("/usr/sbin/policy-rc.d")
START_TIMEOUT_S: Final = 60.0
#: The common SCRAM iteration count (ejabberd 23.01 has 4096 built in).
ITERATIONS: Final = 4096


def _installed(package: str) -> bool:
    done = subprocess.run(  # noqa: S603 - fixed argv
        ["dpkg-query", "-W", "-f=${Status}", package],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() == "install ok installed"


def ensure_installed() -> None:
    """Install the Debian packages if absent; never leave their daemons running."""
    missing = [p for p in PACKAGES if not _installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise BenchError(f"{' '.join(missing)} not installed and not root: apt-get install them")
    own_policy = not POLICY_RC.exists()
    if own_policy:
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n", encoding="ascii")
        POLICY_RC.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-q", *missing]):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)  # noqa: S603
            if done.returncode != 0:
                raise BenchError(f"{' '.join(argv)} failed: {done.stderr[-500:]}")
    finally:
        if own_policy:
            POLICY_RC.unlink()
    for service in PACKAGES:  # in case a daemon started anyway
        for argv in (["service", service, "stop"], ["update-rc.d", service, "disable"]):
            with contextlib.suppress(OSError):
                subprocess.run(argv, capture_output=True, check=False)  # noqa: S603


def _version(argv: list[str], pattern: str) -> str:
    with contextlib.suppress(OSError):
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)  # noqa: S603
        match = re.search(pattern, done.stdout + done.stderr)
        if match:
            return match.group(1)
    return "?"


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _dpkg_version(package: str) -> str:
    return _version(["dpkg-query", "-W", "-f=${Version}", package], r"(\S+)")


async def make(name: str, work: Path, cpu: int, cert: Path, key: Path, domain: str) -> Server:
    """A configured (not yet started) peer server."""
    await asyncio.to_thread(ensure_installed)
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    if name == "prosody":
        return ProsodyServer(work, cpu, cert, key, domain)
    if name == "ejabberd":
        return EjabberdServer(work, cpu, cert, key, domain)
    raise BenchError(f"unknown peer {name!r}")


class _Process(Server):
    def __init__(self, work: Path, cpu: int, cert: Path, key: Path, domain: str) -> None:
        self.work = work
        self.cpu = cpu
        self.domain = domain
        self.starttls_port = free_port()
        self.direct_port = free_port()
        self.cert = work / "cert.pem"
        self.key = work / "key.pem"
        shutil.copyfile(cert, self.cert)
        shutil.copyfile(key, self.key)
        self.key.chmod(0o600)
        self.log = work / "server.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _wait_listening(self) -> None:
        """Until both XMPP ports accept connections (or the process dies)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        for port in (self.starttls_port, self.direct_port):
            while True:
                if self.process is not None and self.process.returncode is not None:
                    raise BenchError(f"{self.name} exited: {self._tail()}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    if loop.time() > deadline:
                        raise BenchError(f"{self.name} did not listen: {self._tail()}") from None
                    await asyncio.sleep(0.1)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                break

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        return ""

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            await stop_pid(process)


class ProsodyServer(_Process):
    name = "prosody"

    def __init__(self, work: Path, cpu: int, cert: Path, key: Path, domain: str) -> None:
        super().__init__(work, cpu, cert, key, domain)
        self.version = f"Prosody {_dpkg_version('prosody')}"
        self.data = work / "data"
        self.config = work / "prosody.cfg.lua"
        self.config.write_text(self._config(), encoding="utf-8")

    def _config(self) -> str:
        return f"""
run_as_root = true
pidfile = "{self.work}/prosody.pid"
data_path = "{self.data}"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.starttls_port} }}
c2s_direct_tls_ports = {{ {self.direct_port} }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
admin_socket = "{self.work}/admin.sock"
certificates = "{self.work}"
log = {{ warn = "{self.log}", error = "{self.log}" }}
network_settings = {{ tcp_nodelay = true, tcp_backlog = 4096 }}
gc = {{ mode = "generational" }}
modules_enabled = {{ "roster", "saslauth", "tls", "ping", "disco" }}
modules_disabled = {{ "s2s", "offline", "c2s_limits", "limits", "admin_shell" }}
c2s_require_encryption = true
allow_registration = false
authentication = "internal_hashed"
password_hash = "SHA-256"
default_iteration_count = {ITERATIONS}
storage = "internal"
ssl = {{
  certificate = "{self.cert}";
  key = "{self.key}";
  protocol = "tlsv1_3";
}}
VirtualHost "{self.domain}"
  ssl = {{ certificate = "{self.cert}"; key = "{self.key}"; protocol = "tlsv1_3" }}
"""

    async def provision(self, accounts: Sequence[Account]) -> None:
        await asyncio.to_thread(prosody_accounts, self.data, self.domain, accounts)

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                "taskset", "-c", str(self.cpu), "prosody", "-F", "--config", str(self.config),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
        await self._wait_listening()


class EjabberdServer(_Process):
    name = "ejabberd"
    #: Accounts registered at once over the HTTP API.
    REGISTER_CONCURRENCY: Final = 8

    def __init__(self, work: Path, cpu: int, cert: Path, key: Path, domain: str) -> None:
        super().__init__(work, cpu, cert, key, domain)
        self.version = f"ejabberd {_dpkg_version('ejabberd')}"
        self.api_port = free_port()
        self.node = f"ejabberd-bench-{self.api_port}@localhost"
        self.pidfile = work / "ejabberd.pid"
        self.config = work / "ejabberd.yml"
        self.ctl_config = work / "ejabberdctl.cfg"
        (work / "spool").mkdir(exist_ok=True)
        (work / "logs").mkdir(exist_ok=True)
        self.config.write_text(self._config(), encoding="utf-8")
        self.ctl_config.write_text(
            f"ERLANG_NODE={self.node}\nINET_DIST_INTERFACE=127.0.0.1\n"
            f'ERL_OPTIONS="+S 1:1 +A 1"\nEJABBERD_PID_PATH={self.pidfile}\n',
            encoding="utf-8",
        )
        self.log = work / "logs" / "ejabberd.log"
        shutil.chown(work, "ejabberd", "ejabberd")
        for path in work.rglob("*"):
            shutil.chown(path, "ejabberd", "ejabberd")
        self._beam: int | None = None

    def _config(self) -> str:
        return f"""
hosts: ["{self.domain}"]
loglevel: warning
certfiles: ["{self.cert}", "{self.key}"]
listen:
  - port: {self.starttls_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    backlog: 4096
    starttls_required: true
  - port: {self.direct_port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    backlog: 4096
    tls: true
  - port: {self.api_port}
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /api: mod_http_api
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha256
acl:
  loopback:
    ip: ["127.0.0.0/8"]
api_permissions:
  "bench register":
    from: [mod_http_api]
    who:
      acl: loopback
    what: ["register"]
shaper: {{}}
shaper_rules: {{}}
modules:
  mod_roster: {{}}
  mod_ping: {{}}
  mod_disco: {{}}
  mod_http_api: {{}}
"""

    @property
    def pid(self) -> int:
        """The Erlang VM's PID (ejabberd writes it to its pid file)."""
        if self._beam is None:
            self._beam = int(self.pidfile.read_text(encoding="ascii").strip())
        return self._beam

    async def start(self) -> None:
        self._beam = None
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()
        with (self.work / "console.log").open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                # setpriv, not ejabberdctl's own su: su's PAM session would cut the open
                # file limit to 1024; setpriv keeps this process's (20,000 here)
                "taskset", "-c", str(self.cpu), "setpriv", "--reuid=ejabberd",
                "--regid=ejabberd", "--init-groups", "ejabberdctl", "--config", str(self.config),
                "--ctl-config", str(self.ctl_config), "--spool", str(self.work / "spool"),
                "--logs", str(self.work / "logs"), "foreground",
                env={**os.environ, "HOME": str(self.work / "spool"), "USER": "ejabberd",
                     "LOGNAME": "ejabberd"},
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
        await self._wait_listening()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while not self.pidfile.exists():
            if loop.time() > deadline:
                raise BenchError("ejabberd wrote no pid file")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """SIGTERM to the Erlang VM by its PID (the wrapper's su exits with it)."""
        process, self.process = self.process, None
        if process is None:
            return
        beam: int | None = None
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            beam = self.pid
            os.kill(beam, 15)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT_S
        while beam is not None and _alive(beam) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # mnesia is written out on a clean stop
        await stop_pid(process)
        if beam is not None and _alive(beam):
            with contextlib.suppress(ProcessLookupError):
                os.kill(beam, 9)
        self._beam = None

    async def provision(self, accounts: Sequence[Account]) -> None:
        """Register through ejabberd's own command; then one login each, which lets the
        clients cache the keys ejabberd derived (its salt), as the other servers' are."""
        import httpx  # noqa: PLC0415

        from bench.load.xmpp import Pool  # noqa: PLC0415
        from bench.peers.base import client_context  # noqa: PLC0415

        await self.start()
        try:
            semaphore = asyncio.Semaphore(self.REGISTER_CONCURRENCY)
            url = f"http://127.0.0.1:{self.api_port}/api/register"
            async with httpx.AsyncClient(timeout=30) as http:

                async def one(account: Account) -> None:
                    async with semaphore:
                        response = await http.post(
                            url,
                            json={"user": account.username, "host": self.domain,
                                  "password": account.password},
                        )  # fmt: skip
                    if response.status_code != 200:
                        raise BenchError(f"ejabberd register: {response.text[:200]}")

                await asyncio.gather(*(one(a) for a in accounts))
            for account in accounts:
                account.keys = None  # ejabberd drew its own salt
            pool = Pool(accounts, self.target(direct=True, context=client_context(self.ca_file)),
                        concurrency=50, login_timeout=60.0)  # fmt: skip
            await pool.open(retries=3)
            await pool.close()
            seen = {a.keys.iterations for a in accounts if a.keys is not None}
            if seen != {ITERATIONS}:
                raise BenchError(f"ejabberd used SCRAM iteration counts {seen}, not {ITERATIONS}")
        finally:
            await self.stop()
