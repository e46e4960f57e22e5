"""Benchmark "e2e-commands": remote command latency end to end (issue 5; issue 9 item 5).

One command is what a person's app does: ``POST /v1/locks/{id}/commands`` over HTTPS with
a real UDMS access token and an ``Idempotency-Key`` -> the RAS (token lookup, intent row
and audit record committed, frame sealed) -> XMPP to the gateway (STARTTLS, SCRAM) -> BLE
on a bumble virtual link -> the simulated lock (checks the frame, moves the bolt, seals
its answer) -> back the same way -> the RAS verifies the answer and commits the outcome
-> HTTP 200. Nothing is stubbed and no security setting is relaxed: production argon2,
SQLite with ``synchronous=FULL``, TLS on both hops, secure-profile frames.

Three processes, so that no party shares the load generator's event loop:

- the RAS: ``heslock ras init`` + ``heslock ras devices import`` + ``heslock ras serve``
  on a fresh data directory (free ports);
- the site: ``python -m bench.lockfarm`` -- one BGW and one lock per user, three makers
  in turn, on one in-process virtual link (bench/lockfarm.py);
- this process: the users. Each user has an account made through the API (register, the
  e-mail code from the development outbox, login with the e-mail second factor), its own
  HTTPS connection and its own lock, registered with ``"via": "gateway"`` (the RAS drives
  the key negotiation through the gateway).

Points: 1, 10 and 50 concurrent users, each

- ``closed``: every user sends its next command as soon as the previous one answered
  (unlock, lock, unlock ...): the system's capacity, latency = users / throughput;
- ``paced``: every user sends one command per second, like a person (the users' phases
  spread over the second). Latency is counted from the *scheduled* send time, so a
  stalled system cannot hide its queue (no coordinated omission).

Before each point every user sends one untimed ``status`` (TLS and BLE links warm, as a
person's phone and gateway would be). Only a 200 with state ``ok`` is a success. Anything
else (a problem answer, a client timeout of REQUEST_TIMEOUT_S) is counted in ``failed``
with its kind in the record, and enters the percentiles as REQUEST_TIMEOUT_S: a fast
refusal can never make a point look fast, and a RAS that fails at 50 users still gets its
1- and 10-user figures recorded. Set-up failures (accounts, registrations, processes)
raise :class:`BenchError`.

Figures per point: p50, p95, p99 and max latency (ms), answered commands/s, failed
commands, and the CPU time each process spent per command (``/proc/<pid>/stat``: RAS,
site, load generator; ``site_cpu`` includes the radio simulation's idle cost, whose share
is measured once before the first point and kept in every record). Where the
time goes (the ``split`` rows, p50/p95/p99/max in ms): from the audit trail -- the intent
record is written just before the intent commits, the outcome record just before the
outcome commits -- and from the site's own timers (bench/lockfarm.py):

- ``client->intent``  client send -> the intent record: HTTPS, token lookup, lock row,
  counter, seal, intent row + audit record (the commit is in the next segment);
- ``intent->outcome`` intent commit, gateway choice, XMPP to the gateway and back, the
  answer verified, the outcome transaction's row locks;
- ``outcome->client`` outcome commit, response, HTTPS back to the client;
- ``gateway``         the gateway's share: IQ payload in -> answer payload out;
- ``ble``             one GATT write -> the lock's notification (inside ``gateway``);
- ``lock``            the lock's own frame work (inside ``ble``).

All timestamps are taken on one host clock (wall clock across processes). The medians of
the segments do not add up exactly to the median of the total.

``HESLOCK_BENCH_PROFILE_DIR=DIR`` runs the RAS under cProfile (``DIR/ras.prof``; the
figures of such a run are marked ``profiled`` and are slower than unprofiled ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
from sqlalchemy import select

from bench.context import BenchContext, BenchError, Measurement
from bench.machine import ROOT
from bench.registry import Floor, benchmark
from heslock.bsld.manufacturer import FactoryRecord, dumps, generate
from heslock.protocol.makers import ACME, KEYSTONE, LUMEN
from heslock.ras.services.udms.senders import outbox_path
from heslock.ras.settings import load_settings
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.models import AuditRecord
from heslock.ras.tls import client_context

NAME: Final = "e2e-commands"
#: Concurrent users per point; one lock (and one account) per user.
USERS: Final = (1, 10, 50)
MODES: Final = ("closed", "paced")
#: The split rows are kept for these user counts (all points print them to the console).
SPLIT_USERS: Final = frozenset({1, 50})
#: Three makers in turn: three BLE versions, MTUs and advertising formats.
MAKERS: Final = (ACME, KEYSTONE, LUMEN)
#: The gateway's radio on the virtual link.
RADIO: Final = "C0:00:00:00:00:01"
#: Locks advertise every 100 ms (the simulator's default; real locks: 100 ms .. 1 s).
ADVERTISING_INTERVAL_MS: Final = 100.0
#: Accounts made at once: the RAS hashes each password with production argon2 (~0.3 s).
ACCOUNT_CONCURRENCY: Final = 4
#: Registrations driven at once (the RAS carries each through the gateway).
REGISTRATION_CONCURRENCY: Final = 10
#: Deadlines of the set-up steps; the benchmark fails (never hangs) past them.
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 20.0
#: A command's own budget is 8 s at the gateway plus 2 s of relay margin: an answer
#: later than this is not coming. A failed command counts as this latency.
REQUEST_TIMEOUT_S: Final = 15.0
#: A paced user sends one command per this many seconds.
PACE_S: Final = 1.0
#: Between two tries of a set-up step that waits for the gateway's scan report.
RETRY_S: Final = 0.2
#: How long the idle CPU of the RAS and the site is sampled before the first point.
IDLE_SAMPLE_S: Final = 1.0
PROFILE_ENV: Final = "HESLOCK_BENCH_PROFILE_DIR"
PASSWORD_BYTES: Final = 18
CLK_TCK: Final = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Plan:
    closed_s: float  #: timed seconds of a closed-loop point
    paced_s: float  #: timed seconds of a paced point


QUICK_PLAN: Final = Plan(closed_s=3.0, paced_s=5.0)
FULL_PLAN: Final = Plan(closed_s=15.0, paced_s=30.0)


@benchmark(
    NAME,
    "Remote commands end to end: HTTPS (real login token) -> RAS -> XMPP -> gateway -> "
    "virtual BLE -> simulated lock -> back, at 1/10/50 concurrent users, closed loop and "
    "paced at one command per user per second; latency percentiles in ms, commands/s, CPU "
    "ms per command of each process, and where the time goes (`split` rows).",
    floors=(
        Floor("closed/1", "p99", "<=", 25, "issue 5"),
        Floor("paced/50", "p99", "<=", 25, "issue 5"),
        Floor("paced/10", "p99", "<=", 25, "issue 9"),
    ),
)
def run(ctx: BenchContext) -> list[Measurement]:
    plan = QUICK_PLAN if ctx.quick else FULL_PLAN
    profile_dir = os.environ.get(PROFILE_ENV)
    profile = None
    if profile_dir:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        profile = Path(profile_dir).resolve() / "ras.prof"
    with tempfile.TemporaryDirectory(prefix="heslock-e2e-") as tmp:
        return asyncio.run(_bench(ctx, plan, Path(tmp), profile))


# ---------------------------------------------------------------------- the measurements


@dataclass(frozen=True, slots=True)
class Sample:
    command_id: str | None  #: None when the command failed
    scheduled: float  #: wall clock: when the command was due (closed loop: when sent)
    sent: float  #: wall clock: when the client started the request
    latency_s: float  #: answer received - scheduled; a failure counts as REQUEST_TIMEOUT_S
    outcome: str  #: "ok", or what went wrong ("503 gateway-unavailable", "timeout" ...)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ladder(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max, rounded to the microsecond (in the values' unit, ms here)."""
    return {
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
    }


def latency_measurements(
    variant: str, values_ms: Sequence[float], params: dict[str, Any]
) -> list[Measurement]:
    return [
        Measurement(variant, metric, value, "ms", params)
        for metric, value in ladder(values_ms).items()
    ]


@dataclass(frozen=True)
class Point:
    mode: str  #: closed | paced
    users: int
    profiled: bool  #: the RAS ran under cProfile (slower: not comparable)

    @property
    def variant(self) -> str:
        return f"{self.mode}/{self.users}"


async def _bench(
    ctx: BenchContext, plan: Plan, work: Path, profile: Path | None
) -> list[Measurement]:
    out: list[Measurement] = []
    records = _records(max(USERS))
    records_file = work / "factory.json"
    _write_private(records_file, dumps(records, "json"))
    started = time.monotonic()
    async with (
        RasProcess.running(work / "ras", records_file, profile) as ras,
        Users(ras) as users,
    ):
        await users.create(max(USERS))
        ctx.log(f"  {len(users.users)} accounts made and logged in ({_since(started)})")
        gateway = await users.users[0].post("/v1/gateways", {"name": "bench site"}, 201)
        async with LockFarm.running(work, ras, gateway, records_file) as farm:
            await users.register_locks(records)
            ctx.log(f"  {len(records)} locks registered via the gateway ({_since(started)})")
            idle = await _idle_cpu(ras, farm)
            ctx.log(
                f"  idle CPU share: RAS {idle['ras']:.0%}, site {idle['site']:.0%} "
                f"({max(USERS)} locks advertising every {ADVERTISING_INTERVAL_MS:.0f} ms)"
            )
            for mode in MODES:
                for count in USERS:
                    point = Point(mode, count, profiled=profile is not None)
                    out += await _point(ctx, plan, ras, farm, users, point, idle)
    return out


async def _idle_cpu(ras: RasProcess, farm: LockFarm) -> dict[str, float]:
    """Each process's CPU share while no command runs: the site's is the virtual radio
    (every advertisement of every lock reaches every simulated controller, in Python)."""
    before = (_cpu_s(ras.pid), _cpu_s(farm.pid), time.monotonic())
    await asyncio.sleep(IDLE_SAMPLE_S)  # measuring an idle interval, not synchronising
    after = (_cpu_s(ras.pid), _cpu_s(farm.pid), time.monotonic())
    wall = after[2] - before[2]
    return {
        "ras": round((after[0] - before[0]) / wall, 3),
        "site": round((after[1] - before[1]) / wall, 3),
    }


async def _point(
    ctx: BenchContext,
    plan: Plan,
    ras: RasProcess,
    farm: LockFarm,
    users: Users,
    point: Point,
    idle: dict[str, float],
) -> list[Measurement]:
    mode, count, variant = point.mode, point.users, point.variant
    active = users.users[:count]
    warm = await asyncio.gather(*(u.command("status") for u in active))  # untimed
    cold = [outcome for _, outcome in warm if outcome != "ok"]
    await farm.stats()  # drop the warm-up's timings
    duration = plan.closed_s if mode == "closed" else plan.paced_s
    load = os.getloadavg()[0]
    cpu_before = (_cpu_s(ras.pid), _cpu_s(farm.pid), time.process_time())
    start = time.perf_counter()
    if mode == "closed":
        stop_at = start + duration
        batches = await asyncio.gather(*(_closed(u, stop_at) for u in active))
    else:
        batches = await asyncio.gather(
            *(_paced(u, start + i * PACE_S / count, start + duration) for i, u in enumerate(active))
        )
    elapsed = time.perf_counter() - start
    cpu_after = (_cpu_s(ras.pid), _cpu_s(farm.pid), time.process_time())
    samples = [s for batch in batches for s in batch]
    if not samples:
        raise BenchError(f"{variant}: no command was sent in {duration} s")
    gateway = await farm.stats()
    done = [s for s in samples if s.command_id is not None]
    split = await ras.split([s.command_id for s in done if s.command_id is not None])
    n = len(samples)
    failures: dict[str, int] = {}
    for sample in samples:
        if sample.command_id is None:
            failures[sample.outcome] = failures.get(sample.outcome, 0) + 1
    cpu_ms = [round((b - a) * 1000 / n, 3) for a, b in zip(cpu_before, cpu_after, strict=True)]
    params: dict[str, Any] = {
        "mode": mode,
        "users": count,
        "commands": n,
        "failed": failures,
        "warm_up_failed": len(cold),
        "duration_s": round(elapsed, 3),
        "repeats": 1,
        "ops_per_repeat": n,
        "loadavg_1m": round(load, 2),
        "cpu_ms_per_command": {"ras": cpu_ms[0], "site": cpu_ms[1], "client": cpu_ms[2]},
        "idle_cpu_share": idle,
        "advertising_interval_ms": ADVERTISING_INTERVAL_MS,
        "profiled": point.profiled,
    }
    latencies = [s.latency_s * 1000 for s in samples]
    rate = len(done) / elapsed
    out = latency_measurements(variant, latencies, params)
    out.append(Measurement(variant, "rate", rate, "commands/s", params))
    out.append(Measurement(variant, "failed", n - len(done), "commands", params))
    for who, value in zip(("ras_cpu", "site_cpu", "client_cpu"), cpu_ms, strict=True):
        out.append(Measurement(variant, who, value, "ms CPU/command", params))
    lad = ladder(latencies)
    ctx.log(
        f"  {variant:<10} {n:>6} commands {rate:>8,.1f}/s  p50 {lad['p50']:7.2f}  "
        f"p95 {lad['p95']:7.2f}  p99 {lad['p99']:7.2f}  max {lad['max']:8.2f} ms  "
        f"CPU ms/command ras {cpu_ms[0]:.2f} site {cpu_ms[1]:.2f} client {cpu_ms[2]:.2f}  "
        f"(load {load:.2f})"
        + (f"  FAILED {failures}" if failures else "")
        + (f"  warm-up failed {len(cold)}" if cold else "")
    )
    if done:  # with nothing answered the site's timings are of stragglers only
        out += _split(ctx, point, done, split, gateway)
    return out


def _split(
    ctx: BenchContext,
    point: Point,
    done: Sequence[Sample],
    split: dict[str, tuple[float, float]],
    gateway: dict[str, list[int]],
) -> list[Measurement]:
    """Where the time went (module docstring): printed always, recorded for SPLIT_USERS."""
    if len(split) != len(done):
        raise BenchError(f"{point.variant}: audit trail for {len(split)} of {len(done)} commands")
    by_id = {s.command_id: s for s in done}
    segments: dict[str, list[float]] = {
        "client->intent": [],
        "intent->outcome": [],
        "outcome->client": [],
    }
    for command_id, (intent_at, outcome_at) in split.items():
        sample = by_id[command_id]
        received = sample.scheduled + sample.latency_s
        segments["client->intent"].append((intent_at - sample.sent) * 1000)
        segments["intent->outcome"].append((outcome_at - intent_at) * 1000)
        segments["outcome->client"].append((received - outcome_at) * 1000)
    for name, key in (("gateway", "handle_us"), ("ble", "ble_us"), ("lock", "lock_us")):
        segments[name] = [v / 1000 for v in gateway.get(key, [])]
    out: list[Measurement] = []
    for name, values in segments.items():
        if not values:
            continue
        row = ladder(values)
        ctx.log(
            f"    {name:<16} p50 {row['p50']:7.2f}  p95 {row['p95']:7.2f}  "
            f"p99 {row['p99']:7.2f}  max {row['max']:8.2f} ms  ({len(values)})"
        )
        if point.users in SPLIT_USERS:
            params = {
                "mode": point.mode,
                "users": point.users,
                "segment": name,
                "repeats": 1,
                "ops_per_repeat": len(values),
                "profiled": point.profiled,
            }
            out += latency_measurements(f"{point.variant} split {name}", values, params)
    return out


async def _closed(user: User, stop_at: float) -> list[Sample]:
    samples: list[Sample] = []
    while time.perf_counter() < stop_at:
        sent, began = time.time(), time.perf_counter()
        command_id, outcome = await user.command(user.next_command())
        latency = time.perf_counter() - began if command_id else REQUEST_TIMEOUT_S
        samples.append(Sample(command_id, sent, sent, latency, outcome))
    return samples


async def _paced(user: User, first: float, stop_at: float) -> list[Sample]:
    """One command per PACE_S from ``first`` (perf_counter); late ones are not bunched."""
    samples: list[Sample] = []
    due = first
    while due < stop_at:
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)  # pacing the load, not synchronising a test
        scheduled = time.time() - (time.perf_counter() - due)
        sent = time.time()
        command_id, outcome = await user.command(user.next_command())
        latency = time.perf_counter() - due if command_id else REQUEST_TIMEOUT_S
        samples.append(Sample(command_id, scheduled, sent, latency, outcome))
        due += PACE_S
        now = time.perf_counter()
        while due < now:  # a send slot missed entirely is skipped, not sent in a burst
            due += PACE_S
    return samples


# ---------------------------------------------------------------------- the RAS


class RasProcess:
    """``heslock ras serve`` on a fresh data directory (module docstring)."""

    def __init__(self, data_dir: Path, process: asyncio.subprocess.Process, log: Path) -> None:
        self.data_dir = data_dir
        self.process = process
        self.log = log
        self.settings = load_settings({"data_dir": data_dir}, env={})
        self.url = ""
        self.xmpp_port = 0
        self._engine = create_engine(self.settings.database_url)
        self._sessions = create_sessionmaker(self._engine)
        self._audit_seen = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ca_file(self) -> Path:
        return self.settings.tls_ca

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, data_dir: Path, records_file: Path, profile: Path | None
    ) -> AsyncIterator[RasProcess]:
        env = _clean_env()
        where = ["--data-dir", str(data_dir)]
        await _run_cli(["ras", "init", *where], env, "heslock ras init")
        await _run_cli(
            ["ras", "devices", "import", str(records_file), *where], env, "device import"
        )
        log = data_dir / "serve.log"
        prefix = [sys.executable]
        if profile is not None:
            prefix += ["-m", "cProfile", "-o", str(profile)]
        with log.open("wb") as errors:
            process = await asyncio.create_subprocess_exec(
                *prefix, "-m", "heslock", "ras", "serve", *where, "--port", "0",
                "--xmpp-port", "0", "--xmpp-direct-tls-port", "0",
                env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=errors,
            )  # fmt: skip
        ras = cls(data_dir, process, log)
        try:
            await ras._read_addresses()
            yield ras
        finally:
            await ras._engine.dispose()
            # cProfile writes its file only when the interpreter unwinds: SIGINT (uvicorn
            # re-raises it as KeyboardInterrupt); SIGTERM otherwise, as a supervisor does.
            await _stop(process, signal.SIGINT if profile is not None else signal.SIGTERM)

    async def _read_addresses(self) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self.url and self.xmpp_port):
            remaining = deadline - time.monotonic()
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), max(remaining, 0))
            except TimeoutError:
                line = b""
            if not line:
                raise BenchError(f"heslock ras serve did not start: {_tail(self.log)}")
            text = line.decode(errors="replace").strip()
            if "listening on " in text:
                self.url = text.rsplit("listening on ", 1)[1]
            elif "gateways (XMPP, STARTTLS) on " in text:
                self.xmpp_port = int(text.rsplit(":", 1)[1])

    async def split(self, command_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """command id -> (intent record time, outcome record time), wall-clock seconds."""
        wanted = set(command_ids)
        found: dict[str, dict[str, datetime]] = {}
        query = (
            select(AuditRecord.id, AuditRecord.action, AuditRecord.at, AuditRecord.details)
            .where(
                AuditRecord.id > self._audit_seen,
                AuditRecord.action.in_(("lock.command.intent", "lock.command")),
            )
            .order_by(AuditRecord.id)
        )
        async with self._sessions() as session:
            for record_id, action, at, details in await session.execute(query):
                self._audit_seen = max(self._audit_seen, record_id)
                command_id = (details or {}).get("command_id")
                if command_id in wanted:
                    found.setdefault(command_id, {})[action] = at
        return {
            command_id: (
                times["lock.command.intent"].timestamp(),
                times["lock.command"].timestamp(),
            )
            for command_id, times in found.items()
            if len(times) == 2
        }


# ---------------------------------------------------------------------- users


@dataclass
class User:
    index: int
    email: str
    password: str
    client: httpx.AsyncClient
    token: str = ""
    lock_id: str = ""
    _next: list[str] = field(default_factory=lambda: ["unlock", "lock"])

    def next_command(self) -> str:
        self._next.reverse()
        return self._next[0]

    async def post(self, path: str, body: dict[str, Any], expect: int) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.client.post(path, json=body, headers=headers)
        if response.status_code != expect:
            raise BenchError(f"POST {path}: {response.status_code} {response.text[:300]}")
        answer: dict[str, Any] = response.json() if response.content else {}
        return answer

    async def command(self, command: str) -> tuple[str | None, str]:
        """Run one command on the user's lock: (its id, "ok"), or (None, what went wrong).

        Only a 200 with state ``ok`` is a success; the benchmark records every failure
        (module docstring) instead of measuring how fast something is refused.
        """
        try:
            response = await self.client.post(
                f"/v1/locks/{self.lock_id}/commands",
                json={"command": command},
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Idempotency-Key": uuid.uuid4().hex,
                },
            )
        except httpx.TimeoutException:
            return None, "timeout"
        except httpx.TransportError as exc:
            return None, type(exc).__name__
        if response.status_code != 200:
            return None, f"{response.status_code} {_problem_code(response)}".strip()
        body = response.json()
        if body.get("state") != "ok":
            return None, f"state {body.get('state')}"
        return str(body["command_id"]), "ok"


class Users:
    """The benchmark's people: accounts made and logged in through the API."""

    def __init__(self, ras: RasProcess) -> None:
        self.ras = ras
        self.users: list[User] = []
        self._tls = client_context(ras.ca_file)

    async def __aenter__(self) -> Users:
        return self

    async def __aexit__(self, *_: object) -> None:
        for user in self.users:
            await user.client.aclose()

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.ras.url, verify=self._tls, timeout=REQUEST_TIMEOUT_S)

    async def create(self, count: int) -> None:
        gate = asyncio.Semaphore(ACCOUNT_CONCURRENCY)

        async def one(index: int) -> None:
            async with gate:
                await self._account(index)

        await asyncio.gather(*(one(i) for i in range(count)))
        self.users.sort(key=lambda u: u.index)

    async def _account(self, index: int) -> None:
        email = f"user{index}-{secrets.token_hex(4)}@bench.example"
        user = User(index, email, secrets.token_urlsafe(PASSWORD_BYTES), self._client())
        self.users.append(user)  # closed on exit whatever happens next
        account = await user.post("/v1/account", {"email": email, "password": user.password}, 201)
        for contact in account["contacts"]:
            code = self._code(contact["address"], "verify_contact")
            await user.post("/v1/account/verify", {"contact_id": contact["id"], "code": code}, 200)
        login = await user.post("/v1/session", {"login": email, "password": user.password}, 200)
        await user.post(
            "/v1/session/code", {"challenge": login["challenge"], "channel": "email"}, 202
        )
        tokens = await user.post(
            "/v1/session/second-factor",
            {
                "challenge": login["challenge"],
                "method": "email",
                "code": self._code(email, "login"),
            },
            201,
        )
        user.token = tokens["access_token"]

    def _code(self, to: str, purpose: str) -> str:
        """The newest code for ``to`` in the development outbox (written before the
        RAS answers the request that sent it)."""
        path = outbox_path(self.ras.settings)
        codes = [
            entry["code"]
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
            for entry in [json.loads(line)]
            if entry.get("to") == to and entry.get("purpose") == purpose
        ]
        if not codes:
            raise BenchError(f"no {purpose} code for {to} in {path}")
        return str(codes[-1])

    async def register_locks(self, records: Sequence[FactoryRecord]) -> None:
        """User i registers lock i; the RAS carries the frames through the gateway."""
        gate = asyncio.Semaphore(REGISTRATION_CONCURRENCY)

        async def one(user: User, record: FactoryRecord) -> None:
            async with gate:
                user.lock_id = await self._register(user, record)

        await asyncio.gather(*(one(u, r) for u, r in zip(self.users, records, strict=True)))

    async def _register(self, user: User, record: FactoryRecord) -> str:
        """One registration driven by the RAS. The site is ready when its gateway sees
        every lock, but its scan report may reach the RAS a moment later: a 503 (no
        gateway sees the lock yet) is resumed until the start-up deadline."""
        headers = {"Authorization": f"Bearer {user.token}"}
        body = {"device_id": record.device_id.colon, "name": "front door", "via": "gateway"}
        response = await user.client.post("/v1/registrations", json=body, headers=headers)
        deadline = time.monotonic() + START_TIMEOUT_S
        while response.status_code == 503 and time.monotonic() < deadline:
            registration = response.json()["registration_id"]
            await asyncio.sleep(RETRY_S)  # readiness poll of a set-up step, with a deadline
            response = await user.client.post(
                f"/v1/registrations/{registration}/relay", json={}, headers=headers
            )
        if response.status_code not in (200, 201):
            raise BenchError(f"registration of {record.device_id}: {response.text[:300]}")
        view: dict[str, Any] = response.json()
        if view.get("phase") != "committed" or not view.get("lock_id"):
            raise BenchError(f"registration of {record.device_id} ended {view}")
        return str(view["lock_id"])


# ---------------------------------------------------------------------- the site


class LockFarm:
    """``python -m bench.lockfarm``: the gateway and the locks (bench/lockfarm.py)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, work: Path, ras: RasProcess, gateway: dict[str, Any], records_file: Path
    ) -> AsyncIterator[LockFarm]:
        secret_file = work / "gateway.secret"
        _write_private(secret_file, gateway["secret"].encode())
        config = {
            "ras_host": ras.settings.xmpp_host,
            "ras_port": ras.xmpp_port,
            "ca_file": str(ras.ca_file),
            "jid": gateway["jid"],
            "secret_file": str(secret_file),
            "records": str(records_file),
            "radio": RADIO,
            "advertising_interval_ms": ADVERTISING_INTERVAL_MS,
            "max_links": max(USERS),
            "ready_timeout_s": START_TIMEOUT_S,
        }
        config_file = work / "lockfarm.json"
        config_file.write_text(json.dumps(config), encoding="utf-8")
        log = work / "lockfarm.log"
        with log.open("wb") as errors:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.lockfarm", str(config_file),
                env=_clean_env(), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=errors,
            )  # fmt: skip
        farm = cls(process)
        try:
            ready = await farm._line(START_TIMEOUT_S)
            if not ready.get("ready"):
                raise BenchError(f"the site did not start: {ready} {_tail(log)}")
            yield farm
        finally:
            if process.stdin is not None:
                process.stdin.close()
            await _stop(process, None)

    async def _line(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        except TimeoutError:
            raise BenchError("the site did not answer in time") from None
        if not line:
            raise BenchError("the site exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stats(self) -> dict[str, list[int]]:
        assert self.process.stdin is not None
        self.process.stdin.write(b'{"op": "stats"}\n')
        await self.process.stdin.drain()
        return await self._line(STOP_TIMEOUT_S)


# ---------------------------------------------------------------------- plumbing


def _records(count: int) -> list[FactoryRecord]:
    records: list[FactoryRecord] = []
    for index in range(count):
        maker = MAKERS[index % len(MAKERS)]
        records += generate(
            1,
            maker.name,
            maker.models[0].name,
            ble_version=maker.ble_version.value,
            avoid=[r.device_id for r in records],
        )
    return records


def _write_private(path: Path, data: bytes) -> None:
    """A file only this user reads (factory keys, the gateway secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _clean_env() -> dict[str, str]:
    """The environment without HESLOCK_* settings: production defaults, a known run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HESLOCK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def _run_cli(args: list[str], env: dict[str, str], what: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "heslock", *args, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), START_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise BenchError(f"{what} did not finish in {START_TIMEOUT_S:.0f} s") from None
    if process.returncode != 0:
        raise BenchError(f"{what} failed ({process.returncode}): {output.decode()[-500:]}")


async def _stop(process: asyncio.subprocess.Process, sig: signal.Signals | None) -> None:
    """Ask (``sig``, or end of input), then kill after STOP_TIMEOUT_S."""
    if process.returncode is None and sig is not None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _problem_code(response: httpx.Response) -> str:
    """The problem type's last path segment (``gateway-unavailable``), or ""."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("type", "")).rsplit("/", 1)[-1] if isinstance(body, dict) else ""


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"
