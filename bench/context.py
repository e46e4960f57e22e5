"""What a benchmark receives (:class:`BenchContext`) and returns (:class:`Measurement`).

Methodology of :meth:`BenchContext.measure_rate`, the same for every throughput figure:

1. *Calibrate*: a pilot run of :data:`PILOT_OPS` operations estimates the rate, and each
   repeat is sized to last about ``sizing.repeat_s`` (bounded by :data:`MAX_OPS`).
2. *Warm up* for ``sizing.warmup_s``: caches, the allocator's free lists and OpenSSL's
   lazily built tables are in their steady state before anything is timed.
3. *Repeat* ``sizing.repeats`` times: inputs are prepared untimed, ``gc.collect()`` runs so
   one repeat does not pay for the last one's garbage, then the operations are timed with
   ``time.perf_counter_ns``. The garbage collector stays *enabled* while timing, as it is in
   a server. The figure is the median of the repeats (an odd count, so a real sample);
   every sample is kept in the result record so the spread can be judged.
   The machine is shared, so each repeat also reads the process's CPU time
   (``time.process_time_ns``): a repeat that had the CPU for less than
   :data:`MIN_CPU_SHARE` of its wall time was preempted and is rerun, up to
   :data:`MAX_ATTEMPTS_FACTOR` times the repeats in all; if that bound is reached the
   least-preempted repeats are used and the figure is flagged ``contended``.
   Alongside the wall-clock rate, ``rate_cpu`` counts operations per second of this
   process's CPU time: on a shared core it stays put when the wall-clock rate does not
   (wall rate ~= rate_cpu x CPU share), so it is the figure to compare across busy runs.
   It does not remove cache effects of a neighbour, only its time slices.
4. Each repeat must report that all its operations succeeded, so a benchmark never
   silently measures how fast something is refused.

Pinning (:meth:`BenchContext.pinned`) binds the process to one CPU with
``os.sched_setaffinity`` where the OS has it, and restores the previous set afterwards.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

#: Operations in the calibration run: enough to time reliably, short even if slow.
PILOT_OPS: Final = 2_000
#: Cap on one repeat's operations: prepared inputs must fit in memory comfortably.
MAX_OPS: Final = 2_000_000
#: Smallest repeat worth timing: below this the timer's own cost shows.
MIN_OPS: Final = 1_000
#: A repeat in which this process was on its CPU for less than this share of the wall
#: time was preempted (another process took turns on the same core): it is rerun.
MIN_CPU_SHARE: Final = 0.95
#: Bound on the repeats one figure may take, as a multiple of ``sizing.repeats``.
MAX_ATTEMPTS_FACTOR: Final = 2
#: How long to watch the CPUs before choosing the idlest (a few scheduler ticks).
IDLE_SAMPLE_S: Final = 0.3


class BenchError(Exception):
    """A benchmark could not measure what it claims to (wrong result, bad setup)."""


@dataclass(frozen=True, slots=True)
class Sizing:
    """How much work a benchmark does: quick (``make bench``) or full (``make bench-full``)."""

    name: str
    repeats: int  #: timed repeats per figure; odd, so the median is a real sample
    repeat_s: float  #: target duration of one repeat
    warmup_s: float  #: untimed warm-up before the repeats


QUICK: Final = Sizing("quick", repeats=5, repeat_s=0.15, warmup_s=0.1)
FULL: Final = Sizing("full", repeats=11, repeat_s=1.0, warmup_s=0.5)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One figure. The harness adds the benchmark name, machine facts and time."""

    variant: str
    metric: str
    value: float
    unit: str
    params: dict[str, Any] = field(default_factory=dict)
    samples: tuple[float, ...] = ()


#: Prepares ``n`` operations (untimed) and returns the timed callable, which performs
#: them and returns how many succeeded.
RunFactory = Callable[[int], Callable[[], int]]


class BenchContext:
    """Sizing, CPU pinning and measurement helpers handed to every benchmark."""

    def __init__(
        self,
        sizing: Sizing,
        *,
        cpu: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.sizing = sizing
        self.cpu = cpu
        self._log = log or (lambda text: print(text, file=sys.stdout, flush=True))

    @property
    def quick(self) -> bool:
        return self.sizing is QUICK

    def log(self, text: str) -> None:
        self._log(text)

    @contextmanager
    def pinned(self) -> Iterator[int | None]:
        """Run the block on one CPU; yields its number, or None where pinning is unavailable.

        The CPU is ``--cpu`` when given, else the allowed CPU that was idlest just before
        (the benchmark machine is shared: the other engineers' work is not pinned).
        """
        if not hasattr(os, "sched_setaffinity"):
            yield None
            return
        before = os.sched_getaffinity(0)
        cpu = self.cpu if self.cpu is not None else idlest_cpu(before)
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError as exc:
            raise BenchError(f"cannot pin to CPU {cpu}: {exc.strerror}") from exc
        try:
            yield cpu
        finally:
            os.sched_setaffinity(0, before)

    def measure_rate(
        self,
        variant: str,
        factory: RunFactory,
        *,
        unit: str = "op",
        params: dict[str, Any] | None = None,
    ) -> list[Measurement]:
        """Operations per second (median of repeats) and the matching time per operation.

        ``unit`` names one operation in the singular ("frame"): figures are in
        ``frames/s`` and ``ns/frame``.
        """
        sizing = self.sizing
        pilot_ns = max(_timed(factory, PILOT_OPS, variant)[0], 1)
        ops = int(PILOT_OPS * sizing.repeat_s * 1e9 / pilot_ns)
        ops = max(MIN_OPS, min(MAX_OPS, ops))
        deadline = time.monotonic() + sizing.warmup_s
        while time.monotonic() < deadline:
            _timed(factory, PILOT_OPS, variant)
        # (rate by wall clock, share of the wall time on the CPU, rate per CPU-second)
        samples: list[tuple[float, float, float]] = []
        for _ in range(sizing.repeats * MAX_ATTEMPTS_FACTOR):
            wall_ns, cpu_ns = _timed(factory, ops, variant)
            wall_ns, cpu_ns = max(wall_ns, 1), max(cpu_ns, 1)
            samples.append((ops * 1e9 / wall_ns, cpu_ns / wall_ns, ops * 1e9 / cpu_ns))
            if sum(s[1] >= MIN_CPU_SHARE for s in samples) >= sizing.repeats:
                break
        clean = [s for s in samples if s[1] >= MIN_CPU_SHARE]
        contended = len(clean) < sizing.repeats
        # Not enough clean repeats within the bound: the least preempted ones, flagged.
        used = clean if not contended else sorted(samples, key=lambda s: -s[1])[: sizing.repeats]
        rates = [s[0] for s in used]
        rate = statistics.median(rates)
        cpu_rates = [s[2] for s in used]
        spread = (max(rates) - min(rates)) / rate
        cpu_share = min(s[1] for s in used)
        discarded = len(samples) - len(used)
        self.log(
            f"  {variant:<22} {rate:>13,.0f} {unit}s/s  {1e9 / rate:>8,.0f} ns/{unit}"
            f"  {statistics.median(cpu_rates):>13,.0f} /CPU-s"
            f"  spread {spread:5.1%}  ({len(used)} x {ops:,}, cpu share >= {cpu_share:.0%}"
            f"{f', {discarded} preempted repeats rerun' if discarded else ''}"
            f"{', CONTENDED' if contended else ''})"
        )
        common = {
            **(params or {}),
            "ops_per_repeat": ops,
            "repeats": len(used),
            "discarded_repeats": discarded,
            "cpu_share_min": round(cpu_share, 4),
            "contended": contended,
        }
        return [
            Measurement(variant, "rate", rate, f"{unit}s/s", common, tuple(rates)),
            Measurement(
                variant,
                "time_per_op",
                1e9 / rate,
                f"ns/{unit}",
                common,
                tuple(1e9 / r for r in rates),
            ),
            Measurement(
                variant,
                "rate_cpu",
                statistics.median(cpu_rates),
                f"{unit}s/CPU-s",
                common,
                tuple(cpu_rates),
            ),
        ]


def idlest_cpu(allowed: set[int], sample_s: float = IDLE_SAMPLE_S) -> int:
    """The CPU of ``allowed`` with the most idle time over ``sample_s`` (Linux /proc/stat);
    the highest-numbered one where that cannot be read."""
    first = _idle_ticks()
    time.sleep(sample_s)
    second = _idle_ticks()
    candidates = [cpu for cpu in sorted(allowed) if cpu in first and cpu in second]
    if not candidates:
        return max(allowed)
    return max(candidates, key=lambda cpu: (second[cpu] - first[cpu], cpu))


def _idle_ticks() -> dict[int, int]:
    """Idle + iowait ticks per CPU from /proc/stat (empty where there is none)."""
    ticks: dict[int, int] = {}
    try:
        text = Path("/proc/stat").read_text(encoding="ascii")
    except OSError:
        return ticks
    for line in text.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and len(fields) >= 5:
            ticks[int(name[3:])] = int(fields[3]) + int(fields[4])
    return ticks


def _timed(factory: RunFactory, ops: int, variant: str) -> tuple[int, int]:
    """(wall ns, CPU ns of this process) for ``ops`` operations, inputs prepared untimed."""
    run = factory(ops)
    gc.collect()
    cpu_start = time.process_time_ns()
    start = time.perf_counter_ns()
    done = run()
    elapsed = time.perf_counter_ns() - start
    cpu = time.process_time_ns() - cpu_start
    if done != ops:
        raise BenchError(f"{variant}: only {done} of {ops} operations succeeded")
    return elapsed, cpu
