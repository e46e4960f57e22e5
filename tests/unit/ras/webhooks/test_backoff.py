"""The retry schedule: exponential, capped, jittered within [50 %, 100 %]."""

from __future__ import annotations

import pytest

from heslock.ras.services.webhooks.backoff import Schedule

DEFAULT = Schedule(base_s=5.0, cap_s=6 * 3600.0, max_attempts=12)


def test_nominal_doubles_until_the_cap() -> None:
    assert [DEFAULT.nominal(n) for n in range(1, 6)] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert DEFAULT.nominal(13) == 20480.0
    assert DEFAULT.nominal(14) == 6 * 3600.0
    assert DEFAULT.nominal(10_000) == 6 * 3600.0  # no overflow


@pytest.mark.parametrize("failures", [1, 2, 5, 12, 40])
def test_jitter_bounds(failures: int) -> None:
    nominal = DEFAULT.nominal(failures)
    assert DEFAULT.delay(failures, lambda: 0.0) == nominal / 2
    assert DEFAULT.delay(failures, lambda: 1.0) == nominal
    assert nominal / 2 <= DEFAULT.delay(failures) <= nominal


def test_jitter_spreads_retries() -> None:
    draws = iter([v / 10 for v in range(10)])
    values = {round(DEFAULT.delay(3, lambda: next(draws)), 6) for _ in range(10)}
    assert len(values) == 10


def test_exhausted_after_max_attempts() -> None:
    assert not DEFAULT.exhausted(11)
    assert DEFAULT.exhausted(12)


@pytest.mark.parametrize(("base", "cap", "attempts"), [(0.0, 1.0, 1), (2.0, 1.0, 1), (1.0, 2.0, 0)])
def test_bad_schedules_refused(base: float, cap: float, attempts: int) -> None:
    with pytest.raises(ValueError, match="retry schedule"):
        Schedule(base, cap, attempts)


def test_no_delay_before_a_failure() -> None:
    with pytest.raises(ValueError, match="first attempt"):
        DEFAULT.nominal(0)
