"""heslock benchmarks: ``python -m bench`` (``make bench``), figures in docs/benchmarks.md.

Performance is measured here, never by timed assertions in tests (issue 2, issue 9).
The harness is small and has four parts, one module each:

- :mod:`bench.registry` — benchmarks register by name with the floors they must meet;
- :mod:`bench.context` — what a benchmark receives: quick/full sizing, CPU pinning and
  :meth:`~bench.context.BenchContext.measure_rate` (warm-up, median of repeats);
- :mod:`bench.results` — one JSON object per measurement, appended to
  ``bench/results/results.jsonl`` with the machine facts (:mod:`bench.machine`);
- :mod:`bench.report` — regenerates the tables of docs/benchmarks.md from those lines.

The benchmarks themselves live in :mod:`bench.suite`, one module each.
"""
