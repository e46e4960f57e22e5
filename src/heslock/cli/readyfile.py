"""``--ready-file PATH``: how a long-running ``heslock`` process says "I am serving, here".

A supervisor (``heslock demo``, a test, a service manager's start script) that starts
``heslock ras serve``, ``heslock bsld hub``, ``heslock bsld sim`` or ``heslock bgw run``
with port 0 needs two facts: *when* the process is ready, and *where* it listens. Parsing
a line of its output couples the supervisor to log wording and to pipe buffering; picking
a free port and passing it in races with every other program on the machine. So each of
those commands takes ``--ready-file PATH`` and, once it is ready, writes one JSON object
there::

    {"format": "heslock-ready", "version": 1, "service": "ras", "pid": 4242, ...}

with the service's own members (bound ports, link string, device ids; docs/operations.md,
"Ready files"). The file appears atomically (a temporary file renamed over it): a reader
that finds it finds it whole. It is removed when the process stops cleanly, so a file
left behind names a process that died; its ``pid`` tells which. A supervisor waits for the
file *and* for the process not to have exited, with a deadline.

Ready files hold addresses and ids, never a secret.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

from heslock.errors import UsageError

FORMAT: Final = "heslock-ready"
VERSION: Final = 1
#: A ready file is a few hundred bytes; anything bigger is not one.
MAX_READY_BYTES: Final = 64 * 1024


class ReadyFileError(UsageError):
    """The ready file cannot be written (exit code 2: a bad ``--ready-file`` path)."""


def write_ready_file(path: Path, service: str, **members: Any) -> None:
    """Write the ready file for ``service`` atomically (mode 0600)."""
    document = {"format": FORMAT, "version": VERSION, "service": service, "pid": os.getpid()}
    document.update(members)
    data = (json.dumps(document, sort_keys=True) + "\n").encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReadyFileError(f"cannot write the ready file {path}: {exc.strerror or exc}") from None


def remove_ready_file(path: Path) -> None:
    """Remove the ready file on a clean stop (only if it is still this process's)."""
    document = read_ready_file(path)
    if document is not None and document.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def read_ready_file(path: Path) -> dict[str, Any] | None:
    """The ready file's object, or ``None`` while there is none (or not a valid one yet)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_READY_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if len(data) > MAX_READY_BYTES:
        return None
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or document.get("version") != VERSION
    ):
        return None
    return document
