"""A hardware transport that cannot be opened is one line and exit 5, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HESLOCK = Path(sys.executable).parent / "heslock"


def test_an_unopenable_usb_transport_is_one_line_and_unreachable(tmp_path: Path) -> None:
    # FFFF:FFF0 is no vendor's product: this fails on every machine, dongle or not.
    result = subprocess.run(
        [str(HESLOCK), "bsld", "sim", "--count", "1", "--profile", "acme",
         "--data-dir", str(tmp_path / "d"), "--link", "usb:FFFF:FFF0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 5, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("heslock: error:")]
    assert errors == [errors[0]]
    assert "cannot open usb:FFFF:FFF0" in errors[0]
    assert "Traceback" not in result.stderr
