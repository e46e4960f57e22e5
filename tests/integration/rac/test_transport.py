"""What the SDK says when the RAS cannot be reached or cannot be trusted."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from heslock.rac import AsyncRasClient, InvalidArgument, MemoryTokenStore, RasUnreachable
from tests.integration.rac.conftest import PASSWORD, System, new_email


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


async def test_nothing_listening_is_unreachable_and_nothing_was_sent() -> None:
    url = f"https://127.0.0.1:{_closed_port()}"
    async with AsyncRasClient(url, timeout=5.0) as ras:
        with pytest.raises(RasUnreachable) as failed:
            await ras.sessions.login("a@example.org", PASSWORD)
    assert failed.value.exit_code == 5
    assert failed.value.maybe_sent is False
    assert url in str(failed.value)
    assert PASSWORD not in str(failed.value)


async def test_a_certificate_from_another_ca_is_unreachable_with_the_reason(
    system: System,
) -> None:
    # Without the RAS's CA the system trust store is used: the private CA is unknown.
    store = MemoryTokenStore()
    async with AsyncRasClient(system.url, tokens=store, timeout=10.0) as ras:
        with pytest.raises(RasUnreachable) as failed:
            await ras.account.register(email=new_email(), password=PASSWORD)
    assert "certificate" in str(failed.value)
    assert "CA" in str(failed.value)
    assert failed.value.maybe_sent is False
    assert system.outbox() == []  # nothing reached the RAS


def test_plain_http_and_bad_ca_files_are_refused_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="https://"):
        AsyncRasClient("http://127.0.0.1:8443")
    with pytest.raises(InvalidArgument, match="does not exist"):
        AsyncRasClient("https://127.0.0.1:8443", ca=tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(InvalidArgument, match="no PEM certificate"):
        AsyncRasClient("https://127.0.0.1:8443", ca=junk)
