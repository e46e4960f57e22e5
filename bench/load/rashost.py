"""``python -m bench.load.rashost --data-dir D``: the RAS under test, with a relay driver.

It runs exactly what ``heslock ras serve`` runs -- :class:`heslock.ras.server.RasServer`
with ``relay=True`` (HTTPS API, XMPP endpoint, event ingest, reconciler, feed monitor) on
the settings of the data directory -- plus a control channel on stdin/stdout (JSON lines)
through which the benchmark asks it to relay frames. The frames go through the same call
a remote command makes, :meth:`heslock.ras.relay.RelayEndpoint.send_frame` (FrameRequest
built, IQ sent, FrameResult parsed and checked), so the figure is the RAS's relay path,
not a shortcut.

Commands (one JSON object per line; each answered with one line):

- ``{"op": "status"}`` -> ``{"online": gateways online, "pid": ...}``
- ``{"op": "gc"}`` -> a full collection (before reading the resident memory from outside)
- ``{"op": "trim"}`` -> a collection and glibc's ``malloc_trim(0)``: a diagnostic of how
  much of the resident memory is free heap the allocator kept (not done by the RAS)
- ``{"op": "relay", "gateways": [bare JIDs], "seconds": s, "inflight": k, "warmup": w}``
  -> ``k`` closed-loop workers spread over the gateways for ``s`` seconds (after ``w``
  untimed): ``{"count", "elapsed", "p50_ms", "p99_ms", "max_ms", "cpu_s",
  "loop_max_lag_ms", "errors"}``
- ``{"op": "quit"}`` -> stops the server (``system-shutdown`` to every session) and exits.

The first line written is ``{"ready": true, "ports": {...}, "pid": ...}`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Final

from heslock.protocol.ids import DeviceId
from heslock.ras.relay import RelayEndpoint
from heslock.ras.server import RasServer
from heslock.ras.settings import load_settings

#: The lock every benchmark frame names (the gateways answer for any lock).
LOCK: Final = DeviceId.parse("F01122334455")
FRAME: Final = bytes(range(16))
#: The gateway's budget for each frame (what a command gives it).
FRAME_TIMEOUT_S: Final = 8.0
#: Set (with uvloop importable, e.g. from a throw-away ``pip install --target`` on
#: PYTHONPATH) to run the RAS host on uvloop's event loop instead of asyncio's.
UVLOOP_ENV: Final = "HESLOCK_BENCH_UVLOOP"
#: Event-loop lag probe period.
PROBE_S: Final = 0.005


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


async def relay(endpoint: RelayEndpoint, command: dict[str, Any]) -> dict[str, Any]:
    gateways: list[str] = command["gateways"]
    inflight = int(command.get("inflight", len(gateways)))
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    timing = False
    stop_at = loop.time() + float(command.get("warmup", 0.5)) + float(command["seconds"])
    perf = time.perf_counter

    async def worker(index: int) -> None:
        gateway = gateways[index % len(gateways)]
        send = endpoint.send_frame
        while loop.time() < stop_at:
            started = perf()
            try:
                await send(gateway, LOCK, FRAME, FRAME_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                name = type(exc).__name__
                errors[name] = errors.get(name, 0) + 1
                continue
            if timing:
                latencies.append(perf() - started)

    lag = 0.0

    async def probe() -> None:
        nonlocal lag
        while loop.time() < stop_at:
            before = perf()
            await asyncio.sleep(PROBE_S)
            if timing:
                lag = max(lag, perf() - before - PROBE_S)

    tasks = [loop.create_task(worker(i)) for i in range(inflight)]
    tasks.append(loop.create_task(probe()))
    await asyncio.sleep(float(command.get("warmup", 0.5)))
    timing = True
    cpu0, wall0 = time.process_time(), perf()
    await asyncio.gather(*tasks)
    elapsed, cpu = perf() - wall0, time.process_time() - cpu0
    latencies.sort()
    return {
        "count": len(latencies),
        "elapsed": elapsed,
        "cpu_s": cpu,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1e3,
        "loop_max_lag_ms": lag * 1e3,
        "errors": errors,
    }


def _malloc_trim() -> bool:
    """glibc's ``malloc_trim(0)``: return free heap pages to the OS (False if no glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.malloc_trim(0))


async def serve(data_dir: Path, xmpp_port: int, direct_port: int) -> None:
    settings = load_settings(
        {
            "data_dir": data_dir,
            "https_port": 0,
            "xmpp_port": xmpp_port,
            "xmpp_direct_tls_port": direct_port,
        }
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    server = RasServer(settings, relay=True)
    await server.start()
    assert server.relay is not None
    endpoint = server.relay.endpoint
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    answer({"ready": True, "ports": endpoint.ports, "pid": os.getpid()})
    try:
        while line := await reader.readline():
            command = json.loads(line)
            op = command.get("op")
            if op == "status":
                answer({"online": len(endpoint.registry.online()), "pid": os.getpid()})
            elif op == "gc":
                gc.collect()
                answer({"ok": True})
            elif op == "trim":  # a diagnostic: what the allocator could give back
                gc.collect()
                answer({"trimmed": _malloc_trim()})
            elif op == "relay":
                answer(await relay(endpoint, command))
            elif op == "quit":
                break
            else:
                answer({"error": f"unknown op {op!r}"})
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load.rashost")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--xmpp-port", type=int, default=0)
    parser.add_argument("--direct-tls-port", type=int, default=0)
    args = parser.parse_args()
    if os.environ.get(UVLOOP_ENV):  # a measurement aid: uvloop is not a dependency
        import uvloop  # type: ignore[import-not-found]  # noqa: PLC0415

        uvloop.install()
    asyncio.run(serve(args.data_dir, args.xmpp_port, args.direct_tls_port))


if __name__ == "__main__":
    main()
