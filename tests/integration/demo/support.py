"""Helpers of the demo tests: a fresh user, and "is that process still ours and alive"."""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Password hashing cheap enough for tests (the demo itself runs the defaults).
CHEAP = {
    "HESLOCK_ARGON2_TIME_COST": "1",
    "HESLOCK_ARGON2_MEMORY_COST": "64",
    "HESLOCK_ARGON2_PARALLELISM": "1",
}


def fresh_home(tmp_path: Path) -> dict[str, str]:
    """A user with nothing: no config, no state, no HESLOCK_* settings."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HESLOCK_", "XDG_"))}
    # Short names: the simulators' unix sockets live under XDG_STATE_HOME (108-byte limit).
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "c")}
    env |= {"XDG_STATE_HOME": str(tmp_path / "s")}
    return env


def heslock_process_alive(pid: int) -> bool:
    """True if ``pid`` is still a running heslock process (not a zombie, not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    zombie = re.search(r"^State:\s+Z", status, re.MULTILINE) is not None
    return b"heslock" in cmdline and not zombie
