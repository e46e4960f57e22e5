"""The pending-logins counter behind the XMPP endpoint's admission control, and the
memory release the keepalive sweep calls."""

from __future__ import annotations

import platform

import pytest

from heslock.xmpp.limits import PendingLogins
from heslock.xmpp.server import _malloc_trim, release_free_memory


def test_pending_logins_counts_up_to_the_cap_and_releases_once() -> None:
    pending: PendingLogins[str] = PendingLogins(2)
    fullness = []
    for member in ("a", "b"):
        pending.admit(member)
        fullness.append(pending.full)
    assert fullness == [False, True]
    assert (len(pending), pending.peak) == (2, 2)
    assert pending.release("a")
    assert not pending.release("a")  # bound, then closed: counted once
    assert not pending.release("never admitted")
    assert (len(pending), pending.peak, pending.full) == (1, 2, False)


def test_pending_logins_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PendingLogins[str](0)


def test_release_free_memory_is_glibc_only_and_never_fails() -> None:
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert (_malloc_trim() is not None) == glibc
    release_free_memory()  # a no-op elsewhere; must not raise anywhere
