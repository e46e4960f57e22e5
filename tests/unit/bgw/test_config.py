"""The gateway's TOML configuration and its reconnect back-off."""

from __future__ import annotations

from pathlib import Path

import pytest

from heslock.bgw.backoff import Backoff
from heslock.bgw.config import GatewayConfigError, TlsMode, load_config
from heslock.ble.transport import LinkKind
from heslock.protocol.makers import makers

BASE = """
[ras]
host = "127.0.0.1"
ca_file = "ca.pem"
jid = "gw1@localhost"
{secret}
[ble]
link = "hub:127.0.0.1:17000"
{ble}
"""


def write(tmp_path: Path, secret: str = 'secret = "s3cret"', ble: str = "") -> Path:
    (tmp_path / "ca.pem").write_text("not parsed here")
    path = tmp_path / "bgw.toml"
    path.write_text(BASE.format(secret=secret, ble=ble))
    return path


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path))
    assert config.ras.tls is TlsMode.DIRECT
    assert config.ras.port == 5223
    assert config.ras.jid.full == "gw1@localhost/bgw"
    assert config.ble.link.kind is LinkKind.HUB
    assert config.ble.makers == makers()
    assert config.ble.max_links == 10
    assert "s3cret" not in repr(config)


def test_secret_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "gw.secret"
    secret.write_text("from file\n")
    secret.chmod(0o644)
    path = write(tmp_path, secret='secret_file = "gw.secret"')
    with pytest.raises(GatewayConfigError, match="chmod 600"):
        load_config(path)
    secret.chmod(0o600)
    assert load_config(path).ras.secret == "from file"


@pytest.mark.parametrize(
    ("secret", "ble", "why"),
    [
        ("", "", "exactly one"),
        ('secret = "a"\nsecret_file = "b"', "", "exactly one"),
        ('secret = "a"\nprot = 1', "", "unknown key"),
        ('secret = "a"\ntls = "plain"', "", "'direct' or 'starttls'"),
        ('secret = "a"', "max_links = 0", "max_links"),
        ('secret = "a"', 'makers = ["acme", "nobody"]', "unknown maker"),
        ('secret = "a"', 'makers = ["acme", "acme"]', "twice"),
        ('secret = "a"', "scan_interval_s = 5\nlost_after_s = 1", "lost_after_s"),
        ('secret = "a"', 'max_links = "ten"', "must be a int"),
    ],
)
def test_refusals(tmp_path: Path, secret: str, ble: str, why: str) -> None:
    with pytest.raises(GatewayConfigError, match=why):
        load_config(write(tmp_path, secret=secret, ble=ble))


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[ras\n")
    with pytest.raises(GatewayConfigError, match="not valid TOML"):
        load_config(path)


def test_backoff_full_jitter_is_capped_and_resets() -> None:
    bounds: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    backoff = Backoff(0.5, 4.0, uniform)
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(low == 0.0 for low, _ in bounds)  # full jitter: from zero
    backoff.reset()
    assert backoff.next_delay() == 0.5
    real = Backoff(1.0, 8.0)
    assert all(0.0 <= real.next_delay() <= 8.0 for _ in range(50))
