"""Where a client keeps its session's token pair.

A :class:`TokenStore` holds at most one :class:`~heslock.rac.models.Tokens` pair. The
client reads it before each authenticated call and writes it after a login, after each
refresh (the refresh token is single use: the new pair must be saved *before* it is used)
and after a logout (``None``).

Refreshing twice with one refresh token ends the session (the RAS treats reuse as theft),
so the client serialises refreshes in-process with a lock. A store that other processes
share (the profile file of the command line) can also offer :meth:`SharedTokenStore.exclusive`:
the client then refreshes inside it, re-reading the pair first, so two programs on one
profile never both present the same refresh token.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from heslock.rac.models import Tokens


@runtime_checkable
class TokenStore(Protocol):
    """Load and save the current token pair (``None``: not logged in)."""

    def load(self) -> Tokens | None: ...

    def save(self, tokens: Tokens | None) -> None: ...


@runtime_checkable
class SharedTokenStore(TokenStore, Protocol):
    """A token store several processes use: ``exclusive()`` excludes the others while a
    refresh reads, rotates and saves the pair (it must be re-entrant for ``save``)."""

    def exclusive(self) -> AbstractContextManager[None]: ...


class MemoryTokenStore:
    """Tokens kept in memory only (the default: nothing touches the disk)."""

    def __init__(self, tokens: Tokens | None = None) -> None:
        self._tokens = tokens
        self._guard = threading.Lock()

    def load(self) -> Tokens | None:
        with self._guard:
            return self._tokens

    def save(self, tokens: Tokens | None) -> None:
        with self._guard:
            self._tokens = tokens

    def __repr__(self) -> str:
        return f"MemoryTokenStore(logged_in={self._tokens is not None})"
