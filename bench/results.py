"""Result records: one JSON object per line in ``bench/results/results.jsonl``.

Each line is one measurement::

    {"benchmark": "frame-path", "variant": "base/cycle", "metric": "rate",
     "value": 123456.7, "unit": "frames/s", "params": {...}, "samples": [...],
     "floor": {"op": ">=", "threshold": 100000, "source": "issue 2", "met": true} | null,
     "machine": {...}, "timestamp": "2026-01-01T12:00:00+00:00",
     "run_id": "...", "sizing": "quick", "command": "python -m bench --quick --only frame-path"}

Lines are only ever appended, so the file is the history of every run; the report takes
the latest run of each benchmark. A line that does not parse is skipped with a warning
rather than losing the rest of the history.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from bench.context import Measurement
from bench.machine import ROOT
from bench.registry import Benchmark

DEFAULT_RESULTS: Final = ROOT / "bench" / "results" / "results.jsonl"
#: Keys every record has; a line missing one is not a result of this harness.
REQUIRED_KEYS: Final = frozenset(
    {"benchmark", "variant", "metric", "value", "unit", "params", "machine", "timestamp"}
)


def to_record(
    bench: Benchmark,
    measurement: Measurement,
    *,
    machine: dict[str, Any],
    timestamp: str,
    run_id: str,
    sizing: str,
    command: str,
) -> dict[str, Any]:
    floor = bench.floor_for(measurement.variant, measurement.metric)
    return {
        "benchmark": bench.name,
        "variant": measurement.variant,
        "metric": measurement.metric,
        "value": measurement.value,
        "unit": measurement.unit,
        "params": measurement.params,
        "samples": list(measurement.samples),
        "floor": None
        if floor is None
        else {
            "op": floor.op,
            "threshold": floor.threshold,
            "source": floor.source,
            "met": floor.met(measurement.value),
        },
        "machine": machine,
        "timestamp": timestamp,
        "run_id": run_id,
        "sizing": sizing,
        "command": command,
    }


def append(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Append records as JSON lines (one write, so a run is never half on disk)."""
    lines = [json.dumps(record, sort_keys=True) + "\n" for record in records]
    if not lines:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write("".join(lines))
    return len(lines)


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            print(f"bench: {path}:{number}: skipped, not JSON ({exc.msg})", file=sys.stderr)
            continue
        if not isinstance(record, dict) or not record.keys() >= REQUIRED_KEYS:
            print(f"bench: {path}:{number}: skipped, not a result record", file=sys.stderr)
            continue
        records.append(record)
    return records
