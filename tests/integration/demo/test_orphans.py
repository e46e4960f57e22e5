"""A demo killed outright (SIGKILL: no clean-up runs) takes its children with it.

The children run in sessions of their own (Ctrl-C reaches only the demo), so only the
kernel can tell them: each asks for SIGTERM when its parent dies (HESLOCK_DIE_WITH_PARENT,
heslock.cli.die_with_parent).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.demo.support import heslock_process_alive

#: A stand-in for the demo: starts one child the demo's way, prints its PID, then waits.
DRIVER = """
import asyncio, os, sys
from pathlib import Path
from heslock.demo.children import spawn

async def main() -> None:
    child = await spawn("hub", ["bsld", "hub", "--port", "0"], log_dir=Path(sys.argv[1]),
                        env=dict(os.environ))
    print(child.process.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
DEADLINE_S = 15.0


def _gone_within(pid: int, deadline_s: float) -> bool:
    """Poll the process table (the child is not ours to wait for) until ``pid`` is gone."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not heslock_process_alive(pid):
            return True
        time.sleep(0.05)
    return not heslock_process_alive(pid)


def test_children_die_with_a_killed_demo(tmp_path: Path) -> None:
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = 0
    try:
        assert driver.stdout is not None
        child = int(driver.stdout.readline())
        assert heslock_process_alive(child)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=DEADLINE_S)
        assert _gone_within(child, DEADLINE_S), "the child outlived its killed parent"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        if child and heslock_process_alive(child):
            os.kill(child, signal.SIGKILL)
        if driver.stdout is not None:
            driver.stdout.close()
