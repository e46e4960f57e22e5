"""Facts about the machine a figure was measured on, printed once and stored with each result.

A figure without its machine is not comparable with anything: cores, CPU model, Python,
OpenSSL (every frame goes through it), the heslock commit (with a flag when the working
tree had uncommitted changes under ``src/``) and the load average when the run started
(the benchmark machine is shared, so a busy neighbour shows here).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any, Final

#: The repository root (bench/ sits directly under it).
ROOT: Final = Path(__file__).resolve().parent.parent
#: ``git`` must answer fast or not at all; a hanging git must not hold up a benchmark.
GIT_TIMEOUT_S: Final = 10


def machine_facts() -> dict[str, Any]:
    from cryptography import __version__ as cryptography_version  # noqa: PLC0415
    from cryptography.hazmat.backends.openssl.backend import backend  # noqa: PLC0415

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cores": os.cpu_count(),
        "cpus_allowed": affinity,
        "cpu_model": _cpu_model(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": _python_build(),
        "openssl": backend.openssl_version_text(),
        "cryptography": cryptography_version,
        "heslock_commit": _git("rev-parse", "--short=12", "HEAD"),
        "heslock_src_dirty": bool(_git("status", "--porcelain", "--", "src")),
        "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def describe(facts: dict[str, Any]) -> list[str]:
    """The facts as short human-readable lines (console and report)."""
    dirty = " + uncommitted changes in src/" if facts.get("heslock_src_dirty") else ""
    return [
        f"CPU: {facts.get('cpu_model')}, {facts.get('cores')} cores "
        f"(allowed: {facts.get('cpus_allowed')})",
        f"OS: {facts.get('os')}",
        f"Python: {facts.get('python')} ({facts.get('python_build')})",
        f"OpenSSL: {facts.get('openssl')} (cryptography {facts.get('cryptography')})",
        f"heslock: {facts.get('heslock_commit')}{dirty}",
        f"load average (1 min) at start: {facts.get('loadavg_1m')}",
    ]


def _python_build() -> str:
    """How the interpreter was built: it moves pure-Python figures by 1.5x or more.

    Measured here: pyenv's default build (libpython as a shared library, no PGO/LTO) runs
    the frame path about 1.6x slower than Debian's optimised /usr/bin/python3 of the same
    minor version. Whether libpython is a shared library is read from the process's own
    memory map; PGO/LTO only from the configure arguments (distributions that run PGO
    through their own build rules do not show it there).
    """
    args = str(sysconfig.get_config_var("CONFIG_ARGS") or "")
    flags = [name for name in ("--enable-optimizations", "--with-lto") if name in args]
    maps = Path("/proc/self/maps")
    shared = (
        ("libpython" in maps.read_text(encoding="utf-8", errors="replace"))
        if maps.exists()
        else None
    )
    linked = {True: "shared libpython", False: "static libpython", None: "libpython: unknown"}
    return f"{sys.executable}; {linked[shared]}; configure: {' '.join(flags) or 'no PGO/LTO flags'}"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _git(*args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell, read-only git commands
            [git, "-C", str(ROOT), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


if __name__ == "__main__":  # pragma: no cover
    print("\n".join(describe(machine_facts())), file=sys.stdout)
