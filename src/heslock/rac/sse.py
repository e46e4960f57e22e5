"""Reading ``text/event-stream`` (Server-Sent Events, the HTML Living Standard, section
9.2): the RAS's live event feed. Pure: lines in, messages out.

Per line::

    ""                  -> dispatch the message gathered (if it has data), start anew
    ":..."              -> a comment (the RAS's keepalive): ignored
    "field: value"      -> one leading space after the colon is dropped
    "field"             -> the field with an empty value
    data                -> appended to the data buffer (lines joined by "\\n")
    event               -> the message's type
    id                  -> the last event id (kept across messages; ignored if it holds NUL)
    retry               -> the reconnection delay in ms (digits only, else ignored)
    anything else       -> ignored

A message without data is not dispatched (the ``retry`` preamble, for one), but its
``id`` still moves the last event id, as the standard says.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """One dispatched event: its type (``message`` if none was given), data and the
    last event id in force when it was dispatched."""

    event: str
    data: str
    last_event_id: str


class EventStreamParser:
    """Feed it the stream's lines, in order; it answers a :class:`Message` when one ends."""

    def __init__(self, last_event_id: str = "") -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Message | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Message | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return Message(event or "message", "\n".join(data), self.last_event_id)
