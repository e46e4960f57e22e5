"""Reading the development outbox (``heslock ras outbox [--follow]``).

The outbox (:class:`~heslock.ras.services.udms.senders.OutboxSender`) is a JSONL file of
the codes the RAS "sent" while no SMTP server or SMS gateway was configured. This module
reads it, once or following new lines as they are appended (like ``tail -f``). A line
that is not a JSON object (a torn write, a hand edit) is reported, never fatal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

#: How often --follow looks for new lines; a person is reading, 1/4 s is immediate.
POLL_INTERVAL_S: Final = 0.25


def parse_line(line: str) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return {"error": "unreadable line"}
    return entry if isinstance(entry, dict) else {"error": "unreadable line"}


def format_entry(entry: dict[str, Any]) -> str:
    if "error" in entry:
        return f"(skipped: {entry['error']})"
    return (
        f"{entry.get('at', '?')}  {entry.get('channel', '?'):<5}  {entry.get('to', '?')}  "
        f"{entry.get('purpose', '?'):<14}  code {entry.get('code', '?')}"
    )


def read_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Every entry now in the outbox (nothing if it does not exist yet)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        if line.strip():
            yield parse_line(line)


def follow_entries(path: Path, poll_s: float = POLL_INTERVAL_S) -> Iterator[dict[str, Any]]:
    """Every entry, then each new one as it arrives; runs until interrupted."""
    position = 0
    pending = b""
    while True:
        try:
            with path.open("rb") as handle:
                if handle.seek(0, 2) < position:  # truncated or replaced: start over
                    position, pending = 0, b""
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
        except FileNotFoundError:
            chunk = b""
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield parse_line(line.decode("utf-8", "replace"))
        if not chunk:
            time.sleep(poll_s)
