"""RFC 7677 section 3: the SCRAM-SHA-256 exchange, byte for byte, through scramp with the
verifiers the SCS stores (salt, StoredKey, ServerKey, iteration count)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from scramp import ScramClient, ScramException, ScramMechanism

from heslock.xmpp.sasl import ScramCredentials

VECTOR = json.loads(
    (Path(__file__).parents[3] / "vectors" / "rfc7677_scram_sha256.json").read_text()
)


def _stored() -> ScramCredentials:
    info = ScramMechanism("SCRAM-SHA-256").make_auth_info(
        VECTOR["password"],
        iteration_count=VECTOR["iterations"],
        salt=base64.b64decode(VECTOR["salt_b64"]),
    )
    return ScramCredentials.from_auth_info(info)


def test_rfc7677_exchange_with_stored_verifiers() -> None:
    stored = _stored()
    client = ScramClient(
        ["SCRAM-SHA-256"], VECTOR["username"], VECTOR["password"], c_nonce=VECTOR["client_nonce"]
    )
    server = ScramMechanism("SCRAM-SHA-256").make_server(
        lambda _user: stored.auth_info(), s_nonce=VECTOR["server_nonce_suffix"]
    )
    client_first = client.get_client_first()
    assert client_first == VECTOR["client_first"]
    server.set_client_first(client_first)
    server_first = server.get_server_first()
    assert server_first == VECTOR["server_first"]
    client.set_server_first(server_first)
    client_final = client.get_client_final()
    assert client_final == VECTOR["client_final"]  # the client proof
    server.set_client_final(client_final)
    server_final = server.get_server_final()
    assert server_final == VECTOR["server_final"]  # the server signature
    client.set_server_final(server_final)


def test_a_wrong_proof_is_refused() -> None:
    stored = _stored()
    server = ScramMechanism("SCRAM-SHA-256").make_server(
        lambda _user: stored.auth_info(), s_nonce=VECTOR["server_nonce_suffix"]
    )
    server.set_client_first(VECTOR["client_first"])
    server.get_server_first()
    forged = VECTOR["client_final"].replace("p=dHzb", "p=dHzc")
    with pytest.raises(ScramException):
        server.set_client_final(forged)
