"""The demo tests' ``tmp_path`` is short.

The simulators' control sockets are unix sockets under the demo's data directory, and a
unix socket path has 108 bytes at most. pytest's own ``tmp_path`` under a pytest-xdist
worker (``/tmp/pytest-of-USER/pytest-N/popen-gwK/test_long_name0/...``) leaves too little
room, so these tests get a short directory of their own, removed afterwards.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hsd-", ignore_cleanup_errors=True) as short:
        yield Path(short)
