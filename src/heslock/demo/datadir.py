"""Where ``heslock demo`` keeps its run, and how it claims the place.

The default is a stable path, ``$XDG_STATE_HOME/heslock/demo`` (``~/.local/state/...``):
the guided tour prints commands that name files in it (the CA, a simulator's directory
for ``heslock bsld press``), and a second terminal should be able to copy them while the
demo runs. Every start wipes it: a demo always begins from nothing (fresh keys, fresh
database), and what a run left behind (its logs) stays readable until the next one.

Wiping a directory is dangerous, so it is done only to a directory a demo made: one
holding the marker file :data:`~heslock.demo.system.MARKER` (or an empty one). Two demos
on the same directory would wipe each other: the first holds an exclusive ``flock`` on
:data:`~heslock.demo.system.LOCK_FILE` for its whole run and the second is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from heslock.demo.children import DemoError
from heslock.demo.system import LOCK_FILE, MARKER


def default_data_dir() -> Path:
    """``$XDG_STATE_HOME/heslock/demo`` or ``~/.local/state/heslock/demo``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "heslock" / "demo"


@contextlib.contextmanager
def claim(path: Path) -> Iterator[Path]:
    """Lock ``path`` for this run and empty it (module docstring); yields it absolute."""
    path = path.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise DemoError(f"cannot use {path} for the demo: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DemoError(f"another heslock demo is running in {path}") from None
        wipe(path)
        yield path
    finally:
        os.close(fd)  # releases the flock


def wipe(path: Path) -> None:
    """Remove everything in a demo directory but its lock file; refuse any other directory."""
    entries = [entry for entry in path.iterdir() if entry.name != LOCK_FILE]
    if entries and not (path / MARKER).is_file():
        raise DemoError(
            f"{path} is not empty and not a demo directory (no {MARKER} in it): "
            "refusing to wipe it; choose another --data-dir"
        )
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
