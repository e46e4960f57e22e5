"""The sharing suite's real-app rig (SQLite and PostgreSQL), reused, with geofence helpers.

Locations are sent through ``POST /v1/location``; the clock is the rig's (never sleeps).
Points are placed due north of the fence's centre, where the distance is exact.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from heslock.ras.services.geofence.policy import EARTH_RADIUS_M
from tests.integration.ras.sharing.conftest import Rig, rig

__all__ = ["CENTRE", "Rig", "fence_body", "north", "report", "rig"]

CENTRE = (52.52, 13.405)


def north(metres: float) -> tuple[float, float]:
    return CENTRE[0] + math.degrees(metres / EARTH_RADIUS_M), CENTRE[1]


def fence_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"latitude": CENTRE[0], "longitude": CENTRE[1], "radius_m": 100.0}
    body.update(overrides)
    return body


async def report(
    r: Rig,
    who: str,
    metres: float,
    *,
    accuracy: float = 10.0,
    age_s: float = 5.0,
    expect: int = 201,
) -> Any:
    """POST /v1/location for ``who``, ``metres`` north of the centre, taken ``age_s`` ago."""
    lat, lon = north(metres)
    taken = r.clock.at - timedelta(seconds=age_s)
    body = {
        "latitude": lat,
        "longitude": lon,
        "accuracy_m": accuracy,
        "taken_at": taken.isoformat(),
    }
    return await r.call("POST", "/v1/location", who, expect, json=body)
