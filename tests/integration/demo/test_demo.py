"""``heslock demo --once`` as a user runs it: a real subprocess of the console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HESLOCK = Path(sys.executable).parent / "heslock"


def test_demo_once_registers_unlocks_and_sees_the_event() -> None:
    result = subprocess.run(
        [str(HESLOCK), "demo", "--once"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count("bound=False") == 3  # three makers discovered, all unbound
    for maker_name in ("ACME-", "KSTN-", "LUMN-"):
        assert maker_name in out
    assert "-> committed" in out
    assert "bolt UNLOCKED" in out
    assert "event MANUAL_OPERATION: bolt LOCKED" in out
    assert "Traceback" not in result.stderr
