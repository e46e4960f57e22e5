"""Regenerate the tables of docs/benchmarks.md from the JSON lines: ``python -m bench.report``.

The page has hand-written prose (how to run, what each benchmark measures, methodology)
and one generated block between :data:`BEGIN` and :data:`END`. Only the block is
rewritten, so the prose survives every regeneration; a page without the markers gets the
block appended. For each benchmark the block shows the latest run: a table of its
figures, the floor where one is set and whether it is met, the machine facts, and the
exact command to rerun it. ``--check`` exits 1 when the page is out of date (for CI).

Plots (latency distributions, memory vs sessions) come later: matplotlib is not in the
lock file, and tables are enough for the throughput figures measured so far.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from bench import results
from bench.machine import ROOT, describe
from bench.registry import Benchmark, load_suite

DEFAULT_DOCS: Final = ROOT / "docs" / "benchmarks.md"
BEGIN: Final = (
    "<!-- BEGIN GENERATED: `python -m bench.report` rewrites everything up to the END marker;"
    " edit the prose outside it -->"
)
END: Final = "<!-- END GENERATED -->"
_BEGIN_PREFIX: Final = "<!-- BEGIN GENERATED"
DEFAULT_INTRO: Final = "# Benchmarks\n\nRun `make bench`; the tables below are generated.\n\n"


def rerun_command(name: str, sizing: str) -> str:
    quick = " --quick" if sizing == "quick" else ""
    return f".venv/bin/python -m bench{quick} --only {name}"


def fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:.3g}"


def latest_runs(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """For each benchmark, the records of its most recent run (file order is time order)."""
    last_run: dict[str, str] = {}
    for record in records:
        last_run[record["benchmark"]] = str(record.get("run_id", record["timestamp"]))
    latest: dict[str, list[dict[str, Any]]] = {name: [] for name in last_run}
    for record in records:
        name = record["benchmark"]
        if str(record.get("run_id", record["timestamp"])) == last_run[name]:
            latest[name].append(record)
    return latest


def render_block(records: Sequence[dict[str, Any]], registry: dict[str, Benchmark]) -> str:
    latest = latest_runs(records)
    names = list(registry) + [name for name in latest if name not in registry]
    lines = [BEGIN, "", "### Floors", ""]
    lines += _floor_summary(names, latest, registry)
    for name in names:
        lines += ["", f"### {name}", ""]
        if name in registry:
            lines += [registry[name].description, ""]
        run = latest.get(name)
        if not run:
            cmd = rerun_command(name, "quick")
            lines.append(f"Not measured yet. Run: `{cmd}`")
            continue
        lines += _run_section(name, run)
    lines += ["", END]
    return "\n".join(lines) + "\n"


def _floor_summary(
    names: Sequence[str], latest: dict[str, list[dict[str, Any]]], registry: dict[str, Benchmark]
) -> list[str]:
    rows = ["| benchmark | figure | floor | latest | met |", "|---|---|---|---:|---|"]
    for name in names:
        run = latest.get(name, [])
        floors = registry[name].floors if name in registry else ()
        for floor in floors:
            hit = next(
                (r for r in run if r["variant"] == floor.variant and r["metric"] == floor.metric),
                None,
            )
            unit = hit["unit"] if hit else ""
            value = f"{fmt(hit['value'])} {unit}" if hit else "not measured"
            if hit and hit["params"].get("contended"):
                value += " (contended)"
            met = ("yes" if floor.met(hit["value"]) else "**NO**") if hit else "-"
            rows.append(
                f"| {name} | {floor.variant} {floor.metric} | {floor.describe(unit)} "
                f"| {value} | {met} |"
            )
    return rows if len(rows) > 2 else ["No floors set yet."]


def _run_section(name: str, run: list[dict[str, Any]]) -> list[str]:
    first = run[0]
    metrics: list[str] = []
    variants: dict[str, dict[str, dict[str, Any]]] = {}
    for record in run:
        if record["metric"] not in metrics:
            metrics.append(record["metric"])
        variants.setdefault(record["variant"], {})[record["metric"]] = record
    cpu = first["params"].get("cpu")
    pinned = f", pinned to CPU {cpu}" if cpu is not None else ", not pinned"
    lines = [
        f"Latest run: {first['timestamp']} ({first.get('sizing', '?')} sizing{pinned}).",
        "",
        "| variant | " + " | ".join(metrics) + " | spread | repeats | CPU share | floor | met |",
        "|---|" + "---:|" * len(metrics) + "---:|---:|---:|---|---|",
    ]
    for variant, by_metric in variants.items():
        cells = [
            f"{fmt(by_metric[m]['value'])} {by_metric[m]['unit']}" if m in by_metric else ""
            for m in metrics
        ]
        main = by_metric[metrics[0]] if metrics[0] in by_metric else next(iter(by_metric.values()))
        samples = main.get("samples") or []
        spread = (
            f"{(max(samples) - min(samples)) / main['value']:.1%}"
            if samples and main["value"]
            else ""
        )
        params = main["params"]
        repeats = f"{params.get('repeats', '')} x {params.get('ops_per_repeat', 0):,}"
        share = params.get("cpu_share_min")
        share_text = "" if share is None else f">= {share:.0%}"
        if params.get("contended"):
            share_text += " (contended)"
        floors = [r["floor"] for r in by_metric.values() if r.get("floor")]
        floor_text = "; ".join(f"{f['op']} {fmt(f['threshold'])} ({f['source']})" for f in floors)
        met = ", ".join("yes" if f["met"] else "**NO**" for f in floors)
        lines.append(
            f"| {variant} | {' | '.join(cells)} | {spread} | {repeats} | {share_text} "
            f"| {floor_text} | {met} |"
        )
    lines += [
        "",
        "rate: by the wall clock (the floors apply to it); rate_cpu: per second of the "
        "process's own CPU time, which does not drop when a neighbour takes time slices. "
        "CPU share: the least share of wall time any used repeat had on its CPU; repeats "
        "below 95 % were preempted and rerun, and *contended* marks a figure that could not "
        "get enough clean repeats within its bound (its wall-clock rate is low by about that "
        "share; compare rate_cpu instead).",
        "",
        "Machine:",
        "",
    ]
    lines += [f"- {fact}" for fact in describe(first["machine"])]
    lines += ["", f"Rerun: `{rerun_command(name, first.get('sizing', 'full'))}`"]
    return lines


def splice(page: str, block: str) -> str:
    """Replace the generated block of ``page`` (or append one), keeping the prose."""
    start = page.find(_BEGIN_PREFIX)
    end = page.find(END, start) if start >= 0 else -1
    if start < 0 or end < 0:
        return page.rstrip("\n") + "\n\n" + block
    rest = page[end + len(END) :]
    return page[:start] + block.rstrip("\n") + (rest if rest.strip() else "\n")


def regenerate(results_path: Path, docs_path: Path) -> tuple[str, str]:
    """Return (current page, regenerated page)."""
    page = docs_path.read_text(encoding="utf-8") if docs_path.exists() else DEFAULT_INTRO
    block = render_block(results.read(results_path), load_suite())
    return page, splice(page, block)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--results", type=Path, default=results.DEFAULT_RESULTS)
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    current, fresh = regenerate(args.results, args.docs)
    if args.check:
        if current != fresh:
            print(f"bench: {args.docs} is out of date: run python -m bench.report", file=sys.stderr)
            return 1
        return 0
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    args.docs.write_text(fresh, encoding="utf-8")
    print(f"bench: wrote {args.docs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
