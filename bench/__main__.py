"""``python -m bench [--quick] [--only NAME ...] [--results PATH]``: run the benchmarks.

Prints the machine facts once, runs each selected benchmark (each bounds its own
duration and load), appends one JSON line per measurement to the results file and
regenerates docs/benchmarks.md from it. Exit status: 0 when every benchmark ran (a
missed floor is reported, and fails the run only with ``--strict``), 1 when a benchmark
failed or, with ``--strict``, missed a floor, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, results
from bench.context import FULL, QUICK, BenchContext, BenchError
from bench.machine import describe, machine_facts
from bench.registry import Benchmark, load_suite


def parse_args(argv: Sequence[str] | None, names: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run heslock benchmarks; see docs/benchmarks.md."
    )
    parser.add_argument(
        "--quick", action="store_true", help="the quick subset and sizing (make bench)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        action="extend",
        metavar="NAME",
        choices=list(names),
        help=f"run only these benchmarks: {', '.join(names)}",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=results.DEFAULT_RESULTS,
        help="JSON lines file to append to (default: %(default)s)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=report.DEFAULT_DOCS,
        help="results page to regenerate (default: %(default)s)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not regenerate the page")
    parser.add_argument(
        "--report", action="store_true", help="only regenerate the page, run nothing"
    )
    parser.add_argument("--cpu", type=int, help="CPU to pin to (default: the idlest allowed)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a floor is missed")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser.parse_args(argv)


def run_benchmark(
    bench: Benchmark, ctx: BenchContext, facts: dict[str, Any], run_id: str
) -> list[dict[str, Any]] | None:
    """Run one benchmark; its records, or None when it failed (the others still run)."""
    print(f"\n{bench.name}: {bench.description}", flush=True)
    started = time.monotonic()
    try:
        measurements = bench.function(ctx)
    except BenchError as exc:
        print(f"bench: {bench.name} failed: {exc}", file=sys.stderr)
        return None
    except Exception:  # noqa: BLE001 - a broken benchmark must not stop the others
        traceback.print_exc()
        return None
    command = shlex.join(["python", "-m", "bench", *(["--quick"] if ctx.quick else [])])
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    records = [
        results.to_record(
            bench,
            m,
            machine=facts,
            timestamp=stamp,
            run_id=run_id,
            sizing=ctx.sizing.name,
            command=f"{command} --only {bench.name}",
        )
        for m in measurements
    ]
    print(f"  ({time.monotonic() - started:.1f} s)", flush=True)
    return records


def missed_floors(records: list[dict[str, Any]]) -> list[str]:
    """Print each floor's verdict; return the figures that missed theirs."""
    missed: list[str] = []
    for record in records:
        floor = record["floor"]
        if floor is None:
            continue
        verdict = "met" if floor["met"] else "MISSED"
        print(
            f"  floor {record['variant']} {record['metric']} {floor['op']} "
            f"{floor['threshold']:,.0f}: {verdict} ({record['value']:,.0f} {record['unit']})",
            flush=True,
        )
        if not floor["met"]:
            missed.append(f"{record['benchmark']} {record['variant']}")
    return missed


def main(argv: Sequence[str] | None = None) -> int:
    registry = load_suite()
    args = parse_args(argv, sorted(registry))
    if args.list:
        for bench in registry.values():
            print(f"{bench.name:<16} {bench.description}")
        return 0
    if args.report:
        return report.main(["--results", str(args.results), "--docs", str(args.docs)])
    sizing = QUICK if args.quick else FULL
    if args.only:
        selected = [registry[name] for name in dict.fromkeys(args.only)]
    else:
        selected = [b for b in registry.values() if b.in_quick or not args.quick]
    facts = machine_facts()
    print(f"heslock benchmarks, {sizing.name} sizing", flush=True)
    for line in describe(facts):
        print("  " + line, flush=True)
    ctx = BenchContext(sizing, cpu=args.cpu)
    run_id = uuid.uuid4().hex
    failed: list[str] = []
    missed: list[str] = []
    written = 0
    for bench in selected:
        records = run_benchmark(bench, ctx, facts, run_id)
        if records is None:
            failed.append(bench.name)
            continue
        written += results.append(args.results, records)
        missed += missed_floors(records)
    print(f"\nbench: {written} measurements appended to {args.results}", flush=True)
    if written and not args.no_report:
        report.main(["--results", str(args.results), "--docs", str(args.docs)])
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if missed:
        print(f"bench: floors missed: {', '.join(missed)}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
