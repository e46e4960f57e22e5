"""The benchmarks, one module each (issue 9 lists where the suite is going).

A new benchmark is a module that decorates its function with
:func:`bench.registry.benchmark` and one line added here; the order here is the order of a
run and of the sections in docs/benchmarks.md.
"""

from typing import Final

MODULES: Final = ("bench.suite.frame_path", "bench.suite.e2e_commands", "bench.suite.xmpp_scale")
