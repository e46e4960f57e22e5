"""The benchmark registry: name -> function taking a BenchContext, with its floors.

A benchmark module under :mod:`bench.suite` registers itself with :func:`benchmark`::

    @benchmark(
        "frame-path",
        "frames built, sealed, opened and checked per second on one core",
        floors=(Floor("base/cycle", "rate", ">=", 100_000, "issue 2"),),
    )
    def run(ctx: BenchContext) -> list[Measurement]: ...

and is listed once in :data:`bench.suite.MODULES`. The function bounds its own duration
and load (it sizes itself from ``ctx.quick``) and returns its measurements; the harness
stamps them with the machine facts and writes them out.
"""

from __future__ import annotations

import importlib
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from bench.context import BenchContext, Measurement

#: Benchmark names go into command lines and file names: keep them plain.
NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9-]{1,39}$")

Comparison = Literal[">=", "<="]
_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    ">=": operator.ge,
    "<=": operator.le,
}

BenchFunction = Callable[["BenchContext"], "list[Measurement]"]


@dataclass(frozen=True, slots=True)
class Floor:
    """A figure a measurement must reach: ``value <op> threshold`` (e.g. rate >= 100,000)."""

    variant: str
    metric: str
    op: Comparison
    threshold: float
    source: str  #: where the floor is set (an issue, a spec), shown in the report

    def met(self, value: float) -> bool:
        return _COMPARE[self.op](value, self.threshold)

    def describe(self, unit: str) -> str:
        return f"{self.op} {self.threshold:,.0f} {unit} ({self.source})"


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    description: str
    function: BenchFunction
    floors: tuple[Floor, ...] = ()
    in_quick: bool = True  #: part of the quick subset (``make bench``)

    def floor_for(self, variant: str, metric: str) -> Floor | None:
        for floor in self.floors:
            if floor.variant == variant and floor.metric == metric:
                return floor
        return None


REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    name: str, description: str, *, floors: Sequence[Floor] = (), in_quick: bool = True
) -> Callable[[BenchFunction], BenchFunction]:
    """Register the decorated function as benchmark ``name``.

    ``in_quick=False`` keeps a benchmark out of ``--quick`` runs unless it is named with
    ``--only`` (for the long ones: thousands of sessions, peer servers).
    """
    if not NAME_PATTERN.match(name):
        raise ValueError(f"benchmark name {name!r} must match {NAME_PATTERN.pattern}")

    def register(function: BenchFunction) -> BenchFunction:
        if name in REGISTRY and REGISTRY[name].function is not function:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(name, description, function, tuple(floors), in_quick)
        return function

    return register


def load_suite() -> dict[str, Benchmark]:
    """Import every module of :data:`bench.suite.MODULES` and return the registry."""
    from bench.suite import MODULES  # noqa: PLC0415 - the suite imports this module

    for module in MODULES:
        importlib.import_module(module)
    return REGISTRY
