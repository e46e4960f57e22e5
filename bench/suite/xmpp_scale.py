"""Benchmarks 2 and 4 of issue 9, side by side with Prosody and ejabberd (item 7).

Every server runs as its own process pinned to CPU 0 (``taskset -c 0``); this process is
the load generator (:mod:`bench.load.xmpp`), pinned to CPU 1, and measures its own CPU
share so a saturated client is visible (``loadgen_cpu_share`` close to 1.0 means the
figure is the client's, not the server's). Every server gets the same terms: loopback,
TLS 1.3 with the RAS's ECDSA P-256 certificate (verified by the client), SASL
SCRAM-SHA-256 at one iteration count (:data:`ITERATIONS`: ejabberd 23.01 fixes 4096; the
server never runs PBKDF2 at login, so the count does not change server figures), TCP
Nagle off on the client (asyncio) and in every server where it is configurable.

``xmpp-sessions`` (benchmark 2): for N sessions (quick: 1,000; full: 1,000, 10,000 and
19,500), on a fresh server process each time: half log in over STARTTLS and half over
direct TLS (XEP-0368) with :data:`LOGIN_CONCURRENCY` logins in flight; the
establishment rate of each half (sessions/s, TLS + SCRAM + bind + presence); the
server's resident memory per held session ((RSS with N held - RSS before) / N, after a
garbage collection where the server offers one); for the RAS, the time until all N are
back after a restart (the RAS process stops with ``system-shutdown``, a new one starts
on the same ports; clients reconnect after a jittered 0.05..1 s, as BGWs back off).

``xmpp-relay`` (benchmark 4): RAS -> gateway -> RAS frame round trips driven inside the
RAS process through ``RelayEndpoint.send_frame`` (bench.load.rashost), one frame in
flight per gateway, with 1, 10, 100 (quick) and 1,000 (full) gateways answering at once,
with no other session and with :data:`IDLE_QUICK`/:data:`IDLE_FULL` idle sessions held;
and for every server the client <-> client IQ round trip (XEP-0199 ping to a full JID,
answered at once) with 10 pairs, one IQ in flight per pair.

Ratios: for each shared figure, ``ratio/<peer>`` rows give heslock's figure over the
peer's for a higher-is-better figure and the peer's over heslock's for a lower-is-better
one, so >= 1.0 is always in heslock's favour.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

from bench.context import BenchContext, BenchError, Measurement
from bench.load import provision
from bench.load.xmpp import Account, Pool, XmppFailure
from bench.peers.base import Server, client_context, cpu_s, rss_kib
from bench.peers.endpoint import EndpointServer
from bench.peers.ras import RasServer, clean_env
from bench.registry import Floor, benchmark
from heslock.ras.settings import load_settings
from heslock.xmpp.server import PING_INTERVAL_S, SWEEPS_PER_PING

#: Common SCRAM iteration count of all servers (see the module docstring).
ITERATIONS: Final = 4096
SERVER_CPU: Final = 0
LOADGEN_CPU: Final = 1
LOGIN_CONCURRENCY: Final = 200
SESSIONS_QUICK: Final = (1000,)
SESSIONS_FULL: Final = (1000, 10_000, 19_500)
GATEWAYS_QUICK: Final = (1, 10, 100)
GATEWAYS_FULL: Final = (1, 10, 100, 1000)
IDLE_QUICK: Final = 1000
IDLE_FULL: Final = 19_500 - 1000
PAIRS: Final = 10
RELAY_S_QUICK: Final = 2.0
RELAY_S_FULL: Final = 10.0
RESTART_TIMEOUT_S: Final = 180.0
#: Logins before the baseline memory reading (see _warm_up), and the pause after them.
WARMUP_LOGINS: Final = 100
WARMUP_SETTLE_S: Final = 2.0
#: Sessions are held this long before the memory reading: one keepalive sweep period of
#: the RAS (an idle session sheds its XML parser after one sweep), the same for every
#: server, so "held" means idle as a gateway is between frames.
HOLD_S: Final = PING_INTERVAL_S / SWEEPS_PER_PING + 2.0
PEERS_ENV: Final = "HESLOCK_BENCH_PEERS"  # e.g. "prosody,ejabberd"; "" for none


def _peers(quick: bool) -> list[str]:
    """The peers to run: HESLOCK_BENCH_PEERS when set, else Prosody in quick runs (it
    starts in a fraction of a second) and both in full runs (ejabberd's start-up and
    account registration take a minute, too long for ``make bench``)."""
    names = os.environ.get(PEERS_ENV)
    if names is None:
        names = "prosody" if quick else "prosody,ejabberd"
    return [n.strip() for n in names.split(",") if n.strip()]


def _uptime() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/loadavg").read_text(encoding="ascii").strip()
    return "?"


@contextlib.contextmanager
def _pinned(cpu: int) -> Any:
    before = os.sched_getaffinity(0)
    allowed = before if len(before) > 1 else set(range(os.cpu_count() or 1))
    if cpu not in allowed:
        raise BenchError(f"CPU {cpu} is not available (allowed: {sorted(allowed)})")
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def _server(name: str, work: Path) -> Server:
    if name == "heslock":
        ras = RasServer(work / "ras", SERVER_CPU, ITERATIONS)
        ras.data_dir.mkdir()
        await ras.init()
        return ras
    from bench.peers import peer  # noqa: PLC0415 - only when peers run

    if name == EndpointServer.name:  # the endpoint alone, same certificate and domain
        settings = load_settings({"data_dir": work / "ras"}, env=clean_env(ITERATIONS))
        folder = work / name
        folder.mkdir()
        endpoint = EndpointServer(
            folder, SERVER_CPU, settings.tls_cert, settings.tls_key, settings.domain,
            clean_env(ITERATIONS),
        )  # fmt: skip
        endpoint.ca_file = settings.tls_ca
        endpoint.can_restart = False
        return endpoint
    ras_dir = work / "ras"  # the RAS's certificate and domain, made by its own init
    if not ras_dir.exists():
        ras = RasServer(ras_dir, SERVER_CPU, ITERATIONS)
        ras_dir.mkdir()
        await ras.init()
    settings = load_settings({"data_dir": ras_dir}, env=clean_env(ITERATIONS))
    server = await peer.make(
        name, work / name, SERVER_CPU, settings.tls_cert, settings.tls_key, settings.domain
    )
    server.ca_file = settings.tls_ca
    return server


@contextlib.asynccontextmanager
async def _running(server: Server) -> AsyncIterator[Server]:
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


Measure = Callable[[Server, list[Account], ssl.SSLContext], Awaitable[None]]


async def _each_server(
    ctx: BenchContext, work: Path, accounts: Sequence[Account], measure: Measure
) -> None:
    """Run ``measure`` on the RAS, then on each peer; a peer that fails is reported and
    skipped (the RAS's figures and the other peer's are kept), the RAS failing fails."""
    for name in ["heslock", EndpointServer.name, *_peers(ctx.quick)]:
        server: Server | None = None
        try:
            server = await _server(name, work)
            mine = [Account(a.username, a.password, a.keys) for a in accounts]
            started = time.perf_counter()
            await server.provision(mine)
            ctx.log(
                f"  {server.version}: {len(mine):,} accounts in "
                f"{time.perf_counter() - started:.1f} s"
            )
            await measure(server, mine, client_context(server.ca_file))
        except (BenchError, XmppFailure, OSError, TimeoutError) as exc:
            if name == "heslock":
                raise BenchError(f"heslock: {exc}") from exc
            ctx.log(f"  {name}: FAILED, skipped ({type(exc).__name__}: {exc})")
        finally:
            if server is not None:
                await server.stop()


class _Cpu:
    """This process's CPU time over a phase, as a share of the wall time."""

    def __init__(self) -> None:
        self.cpu = time.process_time()
        self.wall = time.perf_counter()

    def share(self) -> float:
        wall = time.perf_counter() - self.wall
        return round((time.process_time() - self.cpu) / wall, 3) if wall > 0 else 0.0


#: Variants that are not compared with heslock: its own, the ratios, and its endpoint alone.
SPLIT: Final = ("heslock/", "ratio/", "heslock-xmpp/")


def _ratio_rows(out: list[Measurement], higher_better: dict[str, bool]) -> None:
    """Append ratio/<peer> rows: >= 1.0 is in heslock's favour."""
    ours = {(m.variant, m.metric): m for m in out if m.variant.startswith("heslock/")}
    rows = []
    for m in out:
        if m.variant.startswith(SPLIT) or m.metric not in higher_better:
            continue
        peer, _, rest = m.variant.partition("/")
        mine = ours.get((f"heslock/{rest}", m.metric))
        if mine is None or not mine.value or not m.value:
            continue
        ratio = mine.value / m.value if higher_better[m.metric] else m.value / mine.value
        rows.append(
            Measurement(f"ratio/{peer}/{rest}", m.metric, round(ratio, 3), "x", {"peer": peer})
        )
    out += rows


# ---------------------------------------------------------------------- benchmark 2


@benchmark(
    "xmpp-sessions",
    "Gateway sessions held by one server process pinned to one core: resident memory per "
    "session (KiB), establishment rate (TLS 1.3 + SCRAM-SHA-256 + bind + presence, "
    "sessions/s) over STARTTLS and direct TLS, and for the RAS the time for all sessions "
    "to come back after a restart; the same for Prosody and ejabberd, with ratios "
    "(>= 1.0 favours heslock).",
    floors=(
        Floor("heslock/1000", "rss_per_session", "<=", 24, "issue 9"),
        Floor("heslock/1000", "rate_starttls", ">=", 900, "issue 9"),
        Floor("heslock/1000", "rate_direct_tls", ">=", 900, "issue 9"),
    ),
)
def run_sessions(ctx: BenchContext) -> list[Measurement]:
    sizes = SESSIONS_QUICK if ctx.quick else SESSIONS_FULL
    with (
        _pinned(LOADGEN_CPU),
        tempfile.TemporaryDirectory(prefix="heslock-xmpp-", ignore_cleanup_errors=True) as tmp,
    ):
        Path(tmp).chmod(0o755)  # ejabberd runs as its own user under it
        return asyncio.run(_sessions(ctx, sizes, Path(tmp)))


async def _sessions(ctx: BenchContext, sizes: Sequence[int], work: Path) -> list[Measurement]:
    out: list[Measurement] = []
    biggest = max(sizes)
    started = time.perf_counter()
    accounts = provision.accounts(biggest, ITERATIONS, salt_text=True)
    ctx.log(f"  {biggest:,} accounts derived in {time.perf_counter() - started:.1f} s")

    async def measure(server: Server, mine: list[Account], context: ssl.SSLContext) -> None:
        for size in sizes:
            params = {
                "server": server.version,
                "sessions": size,
                "cpu": SERVER_CPU,
                "loadgen_cpu": LOADGEN_CPU,
                "login_concurrency": LOGIN_CONCURRENCY,
                "scram_iterations": ITERATIONS,
                "held_s_before_rss": HOLD_S,
                "warmup_logins": WARMUP_LOGINS,
                "loadavg": _uptime(),
            }
            out.extend(await _sessions_point(ctx, server, mine[:size], context, params))

    await _each_server(ctx, work, accounts, measure)
    _ratio_rows(
        out,
        {
            "rss_per_session": False,
            "rate_starttls": True,
            "rate_direct_tls": True,
            "rate_cpu_starttls": True,
            "rate_cpu_direct_tls": True,
            "restart_all_back": False,
        },
    )
    return out


async def _sessions_point(
    ctx: BenchContext,
    server: Server,
    accounts: Sequence[Account],
    context: ssl.SSLContext,
    params: dict[str, Any],
) -> list[Measurement]:
    size = len(accounts)
    variant = f"{server.name}/{size}"
    half = size // 2
    out: list[Measurement] = []
    async with _running(server):
        await _warm_up(server, accounts[:WARMUP_LOGINS], context)
        await server.collect()
        before = rss_kib(server.pid)
        tls = Pool(
            accounts[:half],
            server.target(direct=False, context=context),
            concurrency=LOGIN_CONCURRENCY,
            reconnect=True,
        )
        direct = Pool(
            accounts[half:],
            server.target(direct=True, context=context),
            concurrency=LOGIN_CONCURRENCY,
            reconnect=True,
        )
        try:
            cpu, server0 = _Cpu(), cpu_s(server.pid)
            elapsed_tls = await tls.open()
            share_tls, server_tls = cpu.share(), cpu_s(server.pid) - server0
            cpu, server0 = _Cpu(), cpu_s(server.pid)
            elapsed_direct = await direct.open()
            share_direct, server_direct = cpu.share(), cpu_s(server.pid) - server0
            online = await server.online()
            if online is not None and online != size:
                await asyncio.sleep(0.5)  # presence of the last logins still in flight
                online = await server.online()
            await asyncio.sleep(HOLD_S)
            await server.collect()
            held = rss_kib(server.pid)
            per = (held - before) / size
            ctx.log(
                f"  {variant:<16} STARTTLS {half / elapsed_tls:7,.0f}/s "
                f"({half / max(server_tls, 0.01):,.0f}/server CPU-s, server CPU "
                f"{server_tls / elapsed_tls:.0%}, loadgen {share_tls:.0%})  direct TLS "
                f"{(size - half) / elapsed_direct:7,.0f}/s "
                f"({(size - half) / max(server_direct, 0.01):,.0f}/server CPU-s, server CPU "
                f"{server_direct / elapsed_direct:.0%}, loadgen {share_direct:.0%})  RSS "
                f"{before / 1024:,.1f} -> {held / 1024:,.1f} MiB = {per:.1f} KiB/session  "
                f"[load {params['loadavg']}]"
            )
            common = {**params, "online": online, "rss_before_kib": before, "rss_held_kib": held}
            tls_params = {
                **common,
                "loadgen_cpu_share": share_tls,
                "server_cpu_share": round(server_tls / elapsed_tls, 3),
            }
            direct_params = {
                **common,
                "loadgen_cpu_share": share_direct,
                "server_cpu_share": round(server_direct / elapsed_direct, 3),
            }
            out += [
                Measurement(variant, "rss_per_session", round(per, 2), "KiB", common),
                Measurement(variant, "rate_starttls", half / elapsed_tls, "sessions/s", tls_params),
                Measurement(
                    variant,
                    "rate_direct_tls",
                    (size - half) / elapsed_direct,
                    "sessions/s",
                    direct_params,
                ),
                Measurement(
                    variant,
                    "rate_cpu_starttls",
                    half / max(server_tls, 0.01),
                    "sessions/server CPU-s",
                    tls_params,
                ),
                Measurement(
                    variant,
                    "rate_cpu_direct_tls",
                    (size - half) / max(server_direct, 0.01),
                    "sessions/server CPU-s",
                    direct_params,
                ),
            ]
            if isinstance(server, RasServer):  # diagnostic: free heap kept by the allocator
                await server.trim()
                trimmed = (rss_kib(server.pid) - before) / size
                ctx.log(f"  {variant:<16} after malloc_trim(0): {trimmed:.1f} KiB/session")
                out.append(
                    Measurement(
                        variant, "rss_per_session_trimmed", round(trimmed, 2), "KiB", common
                    )
                )
            if server.can_restart:
                out.append(await _restart(ctx, server, (tls, direct), variant, common))
        finally:
            await tls.close()
            await direct.close()
    return out


async def _warm_up(server: Server, accounts: Sequence[Account], context: ssl.SSLContext) -> None:
    """Log a few sessions in and out over both ports: a server that has never seen a login
    still owes one-time costs (lazy imports, caches, database connections, allocator
    arenas) that are not per session; they are paid before the baseline reading."""
    half = len(accounts) // 2
    for direct, batch in ((False, accounts[:half]), (True, accounts[half:])):
        pool = Pool(batch, server.target(direct=direct, context=context), concurrency=50)
        await pool.open(retries=2)
        await pool.close()
    await asyncio.sleep(WARMUP_SETTLE_S)


async def _restart(
    ctx: BenchContext,
    server: Server,
    pools: Sequence[Pool],
    variant: str,
    params: dict[str, Any],
) -> Measurement:
    stop_began = time.perf_counter()
    await server.stop()
    stopped = time.perf_counter()
    await server.start()
    ready = time.perf_counter()
    cpu = _Cpu()
    timed_out = False
    try:
        await asyncio.gather(*(p.all_up(RESTART_TIMEOUT_S) for p in pools))
    except TimeoutError:  # recorded, not raised: a storm that does not converge is a finding
        timed_out = True
        ctx.log(
            f"  {variant:<16} restart: only {sum(p.up for p in pools):,} sessions back "
            f"after {RESTART_TIMEOUT_S:.0f} s"
        )
    back = time.perf_counter()
    ctx.log(
        f"  {variant:<16} restart: stop {stopped - stop_began:.2f} s, start "
        f"{ready - stopped:.2f} s, all back {back - ready:.2f} s after the new process "
        f"listened (loadgen CPU {cpu.share():.0%})"
    )
    return Measurement(
        variant,
        "restart_all_back",
        back - ready,
        "s",
        {
            **params,
            "stop_s": round(stopped - stop_began, 3),
            "start_s": round(ready - stopped, 3),
            "total_s": round(back - stop_began, 3),
            "reconnect_backoff": "full jitter, base 1 s, cap 60 s (the BGW's)",
            "timed_out": timed_out,
            "sessions_back": sum(p.up for p in pools),
            "loadgen_cpu_share": cpu.share(),
        },
    )


# ---------------------------------------------------------------------- benchmark 4


@benchmark(
    "xmpp-relay",
    "Frame relay RAS -> gateway -> RAS through RelayEndpoint.send_frame, one frame in flight "
    "per gateway, gateways answering at once: round trips/s, p50/p99/max (ms) and the "
    "longest event-loop stall, with and without idle sessions held; and client <-> client "
    "IQ round trips with 10 pairs on the RAS, Prosody and ejabberd, with ratios.",
    floors=(
        Floor("heslock/relay/10", "rate", ">=", 13_000, "issue 9"),
        Floor("heslock/relay/10", "p99", "<=", 3, "issue 9"),
    ),
)
def run_relay(ctx: BenchContext) -> list[Measurement]:
    with (
        _pinned(LOADGEN_CPU),
        tempfile.TemporaryDirectory(prefix="heslock-xmpp-", ignore_cleanup_errors=True) as tmp,
    ):
        Path(tmp).chmod(0o755)  # ejabberd runs as its own user under it
        return asyncio.run(_relay(ctx, Path(tmp)))


async def _relay(ctx: BenchContext, work: Path) -> list[Measurement]:
    gateways = GATEWAYS_QUICK if ctx.quick else GATEWAYS_FULL
    idle = IDLE_QUICK if ctx.quick else IDLE_FULL
    seconds = RELAY_S_QUICK if ctx.quick else RELAY_S_FULL
    active = max(*gateways, 2 * PAIRS)
    accounts = provision.accounts(active + idle, ITERATIONS, salt_text=True)
    out: list[Measurement] = []

    async def measure(server: Server, mine: list[Account], context: ssl.SSLContext) -> None:
        base = {
            "server": server.version,
            "cpu": SERVER_CPU,
            "loadgen_cpu": LOADGEN_CPU,
            "seconds": seconds,
        }
        async with _running(server):
            for held in (0, idle):
                idle_pool = Pool(
                    mine[active : active + held],
                    server.target(direct=True, context=context),
                    concurrency=LOGIN_CONCURRENCY,
                )
                try:
                    if held:
                        await idle_pool.open()
                    suffix = f"+idle{held}" if held else ""
                    params = {**base, "idle_sessions": held, "loadavg": _uptime()}
                    out.extend(
                        await _c2c(
                            ctx,
                            server,
                            mine[: 2 * PAIRS],
                            context,
                            seconds,
                            f"{server.name}/c2c/{PAIRS}{suffix}",
                            params,
                        )
                    )
                    if isinstance(server, RasServer):
                        for count in gateways:
                            out.extend(
                                await _frames(
                                    ctx,
                                    server,
                                    mine[:count],
                                    context,
                                    seconds,
                                    f"heslock/relay/{count}{suffix}",
                                    params,
                                )
                            )
                finally:
                    await idle_pool.close()

    await _each_server(ctx, work, accounts, measure)
    _ratio_rows(out, {"rate": True, "rate_cpu": True, "p50": False, "p99": False})
    return out


def _latency_rows(
    variant: str, rate: float, p50: float, p99: float, worst: float, params: dict[str, Any]
) -> list[Measurement]:
    return [
        Measurement(variant, "rate", rate, "round trips/s", params),
        Measurement(variant, "p50", round(p50, 3), "ms", params),
        Measurement(variant, "p99", round(p99, 3), "ms", params),
        Measurement(variant, "max", round(worst, 3), "ms", params),
    ]


async def _frames(
    ctx: BenchContext,
    server: RasServer,
    accounts: Sequence[Account],
    context: ssl.SSLContext,
    seconds: float,
    variant: str,
    params: dict[str, Any],
) -> list[Measurement]:
    pool = Pool(
        accounts, server.target(direct=True, context=context), concurrency=LOGIN_CONCURRENCY
    )
    try:
        await pool.open()
        jids = [f"{a.username}@{server.domain}" for a in accounts]
        for _ in range(50):  # presence is processed after the bind result
            if (await server.online() or 0) >= len(jids):
                break
            await asyncio.sleep(0.05)
        cpu = _Cpu()
        result = await server.call(
            {
                "op": "relay",
                "gateways": jids,
                "seconds": seconds,
                "inflight": len(jids),
                "warmup": 0.5,
            },
            timeout=seconds + 60,
        )
        share = cpu.share()
    finally:
        await pool.close()
    if result.get("errors"):
        raise BenchError(f"{variant}: relay errors {result['errors']}")
    rate = result["count"] / result["elapsed"]
    ctx.log(
        f"  {variant:<26} {rate:9,.0f}/s  p50 {result['p50_ms']:.3f}  p99 "
        f"{result['p99_ms']:.3f}  max {result['max_ms']:.1f} ms  loop stall "
        f"{result['loop_max_lag_ms']:.1f} ms  RAS CPU {result['cpu_s'] / result['elapsed']:.0%}"
        f"  loadgen CPU {share:.0%}"
    )
    full = {
        **params,
        "gateways": len(jids),
        "inflight": len(jids),
        "loadgen_cpu_share": share,
        "ras_cpu_share": round(result["cpu_s"] / result["elapsed"], 3),
        "loop_max_lag_ms": round(result["loop_max_lag_ms"], 3),
    }
    rows = _latency_rows(variant, rate, result["p50_ms"], result["p99_ms"], result["max_ms"], full)
    rows.append(Measurement(variant, "loop_stall", round(result["loop_max_lag_ms"], 3), "ms", full))
    rate_cpu = result["count"] / result["cpu_s"] if result["cpu_s"] else 0.0
    rows.append(Measurement(variant, "rate_cpu", rate_cpu, "round trips/server CPU-s", full))
    return rows


async def _c2c(
    ctx: BenchContext,
    server: Server,
    accounts: Sequence[Account],
    context: ssl.SSLContext,
    seconds: float,
    variant: str,
    params: dict[str, Any],
) -> list[Measurement]:
    pool = Pool(
        accounts,
        server.target(direct=True, context=context, resource="c2c"),
        concurrency=LOGIN_CONCURRENCY,
    )
    try:
        await pool.open()
        clients = pool.clients
        pairs = [(clients[i], clients[i + len(clients) // 2]) for i in range(len(clients) // 2)]
        latencies: list[float] = []
        loop = asyncio.get_running_loop()
        warm_until = loop.time() + 0.5
        stop_at = warm_until + seconds

        async def pair(sender: Any, receiver: Any) -> None:
            request: Callable[[str], asyncio.Future[float]] = sender.request
            to = receiver.jid
            while loop.time() < stop_at:
                rtt = await request(to)
                if loop.time() > warm_until:
                    latencies.append(rtt)

        cpu, server0 = _Cpu(), cpu_s(server.pid)
        await asyncio.gather(*(pair(a, b) for a, b in pairs))
        share, server_used = cpu.share(), cpu_s(server.pid) - server0
    except XmppFailure as exc:
        raise BenchError(f"{variant}: {exc}") from None
    finally:
        await pool.close()
    latencies.sort()
    rate = len(latencies) / seconds
    p50 = latencies[len(latencies) // 2] * 1e3
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1e3
    worst = latencies[-1] * 1e3
    # the server's CPU covers the warm-up too: per CPU-second over the whole loop
    server_share = server_used / (seconds + 0.5)
    rate_cpu = rate / server_share if server_share else 0.0
    ctx.log(
        f"  {variant:<26} {rate:9,.0f}/s  p50 {p50:.3f}  p99 {p99:.3f}  max {worst:.1f} ms"
        f"  ({rate_cpu:,.0f}/server CPU-s, server CPU {server_share:.0%}, loadgen {share:.0%})"
    )
    full = {
        **params,
        "pairs": len(pairs),
        "loadgen_cpu_share": share,
        "server_cpu_share": round(server_share, 3),
    }
    rows = _latency_rows(variant, rate, p50, p99, worst, full)
    rows.append(Measurement(variant, "rate_cpu", rate_cpu, "round trips/server CPU-s", full))
    return rows
