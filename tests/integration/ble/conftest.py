"""Fixtures of the BLE integration tests (real bumble stack on virtual controllers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.ble.air import Air


@pytest.fixture
async def air(tmp_path: Path) -> AsyncIterator[Air]:
    rig = Air(tmp_path)
    try:
        yield rig
    finally:
        await rig.close()
