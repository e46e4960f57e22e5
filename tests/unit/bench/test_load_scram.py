"""The load generator's SCRAM client (bench.load.scram) against the RAS's own SCRAM server.

The client keeps derived keys instead of running PBKDF2 at every login; these tests pin
that the keys are exactly what scramp derives, that the cached path authenticates against
heslock.xmpp.sasl.ScramExchange (the server the RAS runs), and that it refuses a server
that does not prove it knows the verifier.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from bench.context import Measurement
from bench.load.provision import accounts, prosody_accounts
from bench.load.scram import ScramClient, ScramFailure, derive
from bench.suite.xmpp_scale import _ratio_rows
from scramp import ScramMechanism

from heslock.xmpp.sasl import MECH_SCRAM, SaslError, ScramCredentials, ScramExchange

PASSWORD = "correct horse battery staple"
SALT = bytes(range(16))
ITERATIONS = 4096


def _server(password: str = PASSWORD, salt: bytes = SALT) -> ScramExchange:
    info = ScramMechanism(MECH_SCRAM).make_auth_info(
        password, iteration_count=ITERATIONS, salt=salt
    )
    return ScramExchange(MECH_SCRAM, ScramCredentials.from_auth_info(info), "gw", None)


def test_derive_matches_scramp_verifiers() -> None:
    salt, stored, server, count = ScramMechanism(MECH_SCRAM).make_auth_info(
        PASSWORD, iteration_count=ITERATIONS, salt=SALT
    )
    keys = derive(PASSWORD, SALT, ITERATIONS)
    assert (keys.salt, keys.stored_key, keys.server_key, keys.iterations) == (
        salt,
        stored,
        server,
        count,
    )


@pytest.mark.parametrize("cached", [True, False], ids=["cached-keys", "password-only"])
def test_client_authenticates_against_the_ras_server(cached: bool) -> None:
    keys = derive(PASSWORD, SALT, ITERATIONS) if cached else None
    client = ScramClient("gw", PASSWORD, keys)
    server = _server()
    server_first = server.first(client.first())
    server_final = server.final(client.final(server_first))
    client.verify(server_final)  # raises if the server's signature were wrong
    assert client.keys == derive(PASSWORD, SALT, ITERATIONS)


def test_stale_cache_is_rederived() -> None:
    stale = derive(PASSWORD, b"another salt....", ITERATIONS)
    client = ScramClient("gw", PASSWORD, stale)
    server = _server()
    client.verify(server.final(client.final(server.first(client.first()))))
    assert client.keys is not None
    assert client.keys.salt == SALT


def test_wrong_password_is_refused_by_the_server() -> None:
    client = ScramClient("gw", "wrong", None)
    server = _server()
    final = client.final(server.first(client.first()))
    with pytest.raises(SaslError):
        server.final(final)


def test_forged_server_signature_is_refused() -> None:
    client = ScramClient("gw", PASSWORD, derive(PASSWORD, SALT, ITERATIONS))
    server = _server()
    client.final(server.first(client.first()))
    forged = base64.b64encode(bytes(32)).decode()
    with pytest.raises(ScramFailure, match="signature"):
        client.verify(f"v={forged}")
    with pytest.raises(ScramFailure, match="server error"):
        client.verify("e=other-error")


@pytest.mark.parametrize(
    "server_first",
    ["r=someoneelse,s=AAAA,i=4096", "s=AAAA,i=4096", "garbage"],
    ids=["foreign-nonce", "no-nonce", "malformed"],
)
def test_bad_server_first_is_refused(server_first: str) -> None:
    client = ScramClient("gw", PASSWORD, None)
    client.first()
    with pytest.raises(ScramFailure):
        client.final(server_first)


def test_low_iteration_count_is_refused() -> None:
    client = ScramClient("gw", PASSWORD, None)
    nonce = client.first().split("r=", 1)[1]
    with pytest.raises(ScramFailure, match="iteration"):
        client.final(f"r={nonce}xyz,s={base64.b64encode(SALT).decode()},i=1000")


def test_username_is_escaped() -> None:
    assert ScramClient("a,b=c", PASSWORD).first().startswith("n,,n=a=2Cb=3Dc,r=")


def test_accounts_and_prosody_files(tmp_path: Path) -> None:
    made = accounts(2, ITERATIONS, salt_text=True)
    assert len({a.username for a in made}) == 2
    for account in made:
        assert account.keys is not None
        assert account.keys == derive(account.password, account.keys.salt, ITERATIONS)
    prosody_accounts(tmp_path, "ras.example", made)
    folder = tmp_path / "ras%2eexample" / "accounts"
    for account in made:
        assert account.keys is not None
        text = (folder / f"{account.username.replace('-', '%2d')}.dat").read_text()
        assert f'["stored_key"] = "{account.keys.stored_key.hex()}";' in text
        assert f'["server_key"] = "{account.keys.server_key.hex()}";' in text
        assert f'["salt"] = "{account.keys.salt.decode()}";' in text
        assert f'["iteration_count"] = {ITERATIONS};' in text


def test_ratios_favour_heslock_when_at_least_one() -> None:
    out = [
        Measurement("heslock/1000", "rate_starttls", 900.0, "sessions/s"),
        Measurement("prosody/1000", "rate_starttls", 300.0, "sessions/s"),
        Measurement("heslock/1000", "rss_per_session", 20.0, "KiB"),
        Measurement("prosody/1000", "rss_per_session", 60.0, "KiB"),
    ]
    _ratio_rows(out, {"rate_starttls": True, "rss_per_session": False})
    ratios = {(m.variant, m.metric): m.value for m in out if m.variant.startswith("ratio/")}
    assert ratios == {
        ("ratio/prosody/1000", "rate_starttls"): 3.0,
        ("ratio/prosody/1000", "rss_per_session"): 3.0,
    }
