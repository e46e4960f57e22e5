"""The cluster bus never names a NATS URL's credentials in logs or errors."""

from __future__ import annotations

import pytest

from heslock.ras.relay.natsbus import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://user:s3cret@bus.example:4222", "nats://***@bus.example:4222"),
        ("tls://tok3n@bus.example:4222", "tls://***@bus.example:4222"),
        ("nats://u:p@ss@bus.example:4222", "nats://***@bus.example:4222"),
        ("user:s3cret@bus.example:4222", "***"),
        ("bus.example:4222", "bus.example:4222"),
    ],
)
def test_credentials_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url)
    assert "tok3n" not in redact_url(url)
