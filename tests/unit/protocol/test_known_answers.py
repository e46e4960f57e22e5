"""Known answers from published sources for the primitives of heslock.protocol.crypto.

- NIST SP 800-38A F.2.1/F.2.2 (CBC-AES128): our :class:`BlockCipher` does one block with a
  zero IV, so the first CBC block ``C1 = E(K, P1 xor IV)`` is checked as
  ``BlockCipher.encrypt(P1 xor IV)``; a property test checks it against ``modes.CBC``.
- RFC 4493 section 4 (AES-CMAC): subkeys and all four examples, through ``aes_cmac`` and
  ``Cmac``.
- NIST CAVP SP 800-108 KBKDF, counter mode, CMAC-AES128, r = 32, counter before the fixed
  data: the CAVP vectors check a counter-mode reference built on the RFC 4493-verified
  ``aes_cmac``; ``kdf_sp800_108`` is then checked against that reference with its own
  fixed-input encoding ``label || 0x00 || context || [L]_32`` (CAVP fixed data is opaque, so
  it cannot be fed through a label/context API directly).

The vector data lives in tests/vectors/*.json with its source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode
from hypothesis import given, settings
from hypothesis import strategies as st

from heslock.protocol.crypto import (
    KDF_CONTEXT,
    KDF_LABEL_ENC,
    KDF_LABEL_MAC,
    BlockCipher,
    Cmac,
    aes_cmac,
    check_key,
    derive_frame_keys,
    kdf_sp800_108,
    tags_equal,
)
from heslock.protocol.errors import InvalidKey

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    assert data["source"], f"{name} must say where its vectors come from"
    return data


CBC = load("nist_sp800_38a_cbc_aes128.json")
CMAC_VECTORS = load("rfc4493_aes_cmac.json")
KBKDF = load("nist_sp800_108_kbkdf_ctr_cmac_aes128.json")


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# ----------------------------------------------------------------- SP 800-38A CBC-AES128


def test_cbc_f21_first_block_through_cryptography_cbc() -> None:
    key, iv = bytes.fromhex(CBC["key"]), bytes.fromhex(CBC["iv"])
    first = CBC["blocks"][0]
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    assert enc.update(bytes.fromhex(first["plaintext"])) + enc.finalize() == bytes.fromhex(
        first["ciphertext"]
    )


def test_cbc_f21_all_blocks_through_cryptography_cbc() -> None:
    key, iv = bytes.fromhex(CBC["key"]), bytes.fromhex(CBC["iv"])
    plain = b"".join(bytes.fromhex(b["plaintext"]) for b in CBC["blocks"])
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    assert enc.update(plain) + enc.finalize() == b"".join(
        bytes.fromhex(b["ciphertext"]) for b in CBC["blocks"]
    )


def test_cbc_f21_first_block_through_block_cipher() -> None:
    """CBC's first block is E(K, P1 xor IV): our zero-IV one-block cipher must give C1."""
    key, iv = bytes.fromhex(CBC["key"]), bytes.fromhex(CBC["iv"])
    first = CBC["blocks"][0]
    cipher = BlockCipher(key)
    assert cipher.encrypt(xor(bytes.fromhex(first["plaintext"]), iv)) == bytes.fromhex(
        first["ciphertext"]
    )


def test_cbc_f21_every_block_chained_through_block_cipher() -> None:
    """Chaining by hand (C_i = E(K, P_i xor C_{i-1})) reproduces all of F.2.1."""
    key, previous = bytes.fromhex(CBC["key"]), bytes.fromhex(CBC["iv"])
    cipher = BlockCipher(key)
    for block in CBC["blocks"]:
        out = cipher.encrypt(xor(bytes.fromhex(block["plaintext"]), previous))
        assert out == bytes.fromhex(block["ciphertext"])
        previous = out


def test_cbc_f22_decrypt_through_block_cipher() -> None:
    """F.2.2: P_i = D(K, C_i) xor C_{i-1}, with C_0 = IV."""
    key, previous = bytes.fromhex(CBC["key"]), bytes.fromhex(CBC["iv"])
    cipher = BlockCipher(key)
    for block in CBC["blocks"]:
        ciphertext = bytes.fromhex(block["ciphertext"])
        assert xor(cipher.decrypt(ciphertext), previous) == bytes.fromhex(block["plaintext"])
        previous = ciphertext


def test_cbc_f22_decrypt_through_cryptography_cbc() -> None:
    key, iv = bytes.fromhex(CBC["key"]), bytes.fromhex(CBC["iv"])
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    first = CBC["blocks"][0]
    assert dec.update(bytes.fromhex(first["ciphertext"])) + dec.finalize() == bytes.fromhex(
        first["plaintext"]
    )


def test_rfc4493_aes_of_zero_block_through_block_cipher() -> None:
    """RFC 4493 section 4 lists L = AES-128(K, 0^128): another single-block known answer."""
    cipher = BlockCipher(bytes.fromhex(CMAC_VECTORS["key"]))
    assert cipher.encrypt(bytes(16)) == bytes.fromhex(CMAC_VECTORS["subkeys"]["aes_128_of_zero"])


@settings(max_examples=300, deadline=None)
@given(
    key=st.binary(min_size=16, max_size=16),
    blocks=st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=8),
)
def test_block_cipher_is_cbc_with_zero_iv(key: bytes, blocks: list[bytes]) -> None:
    """One long-lived BlockCipher gives, block after block, what a fresh zero-IV CBC gives
    for each block alone (no chaining state leaks between frames)."""
    cipher = BlockCipher(key)
    for block in blocks:
        enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
        expected = enc.update(block) + enc.finalize()
        assert cipher.encrypt(block) == expected
        dec = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
        assert cipher.decrypt(expected) == dec.update(expected) + dec.finalize() == block


@pytest.mark.parametrize("size", [0, 15, 17, 32])
def test_block_cipher_takes_exactly_one_block(size: int) -> None:
    cipher = BlockCipher(bytes(16))
    with pytest.raises(ValueError, match="16-byte block"):
        cipher.encrypt(bytes(size))
    with pytest.raises(ValueError, match="16-byte block"):
        cipher.decrypt(bytes(size))


# ------------------------------------------------------------------------ RFC 4493 CMAC


@pytest.mark.parametrize("example", CMAC_VECTORS["examples"], ids=lambda e: e["name"])
def test_rfc4493_aes_cmac(example: dict[str, str]) -> None:
    key = bytes.fromhex(CMAC_VECTORS["key"])
    message, tag = bytes.fromhex(example["message"]), bytes.fromhex(example["tag"])
    assert aes_cmac(key, message) == tag


@pytest.mark.parametrize("example", CMAC_VECTORS["examples"], ids=lambda e: e["name"])
def test_rfc4493_cmac_class_reusable(example: dict[str, str]) -> None:
    """The Cmac object copies its keyed state: the same answer twice, and after others."""
    mac = Cmac(bytes.fromhex(CMAC_VECTORS["key"]))
    message, tag = bytes.fromhex(example["message"]), bytes.fromhex(example["tag"])
    assert mac.tag(message) == tag
    mac.tag(b"something else in between")
    assert mac.tag(message) == tag


def test_rfc4493_subkeys_from_block_cipher() -> None:
    """K1, K2 = doublings of L = E(K, 0) in GF(2^128) (RFC 4493 section 2.3)."""

    def double(block: bytes) -> bytes:
        n = int.from_bytes(block, "big") << 1
        if n >> 128:
            n = (n & ((1 << 128) - 1)) ^ 0x87
        return n.to_bytes(16, "big")

    sub = CMAC_VECTORS["subkeys"]
    ell = BlockCipher(bytes.fromhex(CMAC_VECTORS["key"])).encrypt(bytes(16))
    assert double(ell) == bytes.fromhex(sub["k1"])
    assert double(double(ell)) == bytes.fromhex(sub["k2"])


def test_tags_equal() -> None:
    assert tags_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x04")
    assert not tags_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x05")
    assert not tags_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03")


# -------------------------------------------------------------------- SP 800-108 KBKDF


def kbkdf_counter_reference(key: bytes, fixed: bytes, length: int) -> bytes:
    """SP 800-108 section 4.1 by hand: K(i) = PRF(KI, [i]_32 || fixed), i = 1..n."""
    blocks = -(-length // 16)
    out = b"".join(aes_cmac(key, i.to_bytes(4, "big") + fixed) for i in range(1, blocks + 1))
    return out[:length]


@pytest.mark.parametrize("vector", KBKDF["vectors"], ids=lambda v: f"COUNT={v['count']}")
def test_cavp_kbkdf_counter_reference(vector: dict[str, Any]) -> None:
    assert KBKDF["rlen_bits"] == 32
    assert KBKDF["counter_location"] == "before_fixed"
    out = kbkdf_counter_reference(
        bytes.fromhex(vector["ki"]), bytes.fromhex(vector["fixed_input"]), vector["l_bits"] // 8
    )
    assert out == bytes.fromhex(vector["ko"])


@pytest.mark.parametrize("vector", KBKDF["vectors"], ids=lambda v: f"COUNT={v['count']}")
def test_cavp_kbkdf_through_cryptography(vector: dict[str, Any]) -> None:
    """The library kdf_sp800_108 is built on, fed the opaque fixed data as CAVP does."""
    kdf = KBKDFCMAC(
        algorithm=algorithms.AES,
        mode=Mode.CounterMode,
        length=vector["l_bits"] // 8,
        rlen=4,
        llen=None,
        location=CounterLocation.BeforeFixed,
        label=None,
        context=None,
        fixed=bytes.fromhex(vector["fixed_input"]),
    )
    assert kdf.derive(bytes.fromhex(vector["ki"])) == bytes.fromhex(vector["ko"])


@pytest.mark.parametrize("length", [16, 20, 32, 40])
@pytest.mark.parametrize(
    ("label", "context"),
    [(KDF_LABEL_ENC, KDF_CONTEXT), (KDF_LABEL_MAC, KDF_CONTEXT), (b"", b""), (b"L", b"C")],
)
def test_kdf_sp800_108_fixed_input_encoding(label: bytes, context: bytes, length: int) -> None:
    """kdf_sp800_108 = counter mode with fixed = label || 0x00 || context || [L]_32."""
    key = bytes.fromhex(KBKDF["vectors"][0]["ki"])
    fixed = label + b"\x00" + context + (length * 8).to_bytes(4, "big")
    assert kdf_sp800_108(key, label, context, length) == kbkdf_counter_reference(key, fixed, length)


def test_derive_frame_keys_distinct_and_pinned_to_the_kdf() -> None:
    key = bytes(range(16))
    enc, mac = derive_frame_keys(key)
    assert enc == kdf_sp800_108(key, KDF_LABEL_ENC, KDF_CONTEXT)
    assert mac == kdf_sp800_108(key, KDF_LABEL_MAC, KDF_CONTEXT)
    assert len({enc, mac, key}) == 3
    assert len(enc) == len(mac) == 16


@pytest.mark.parametrize("bad", [b"", bytes(15), bytes(17), bytes(32), "00" * 16, None])
def test_keys_must_be_16_bytes(bad: object) -> None:
    with pytest.raises(InvalidKey):
        check_key(bad)  # type: ignore[arg-type]  # deliberately the wrong type
    with pytest.raises(InvalidKey):
        BlockCipher(bad)  # type: ignore[arg-type]  # deliberately the wrong type
    with pytest.raises(InvalidKey):
        Cmac(bad)  # type: ignore[arg-type]  # deliberately the wrong type
    with pytest.raises(InvalidKey):
        aes_cmac(bad, b"")  # type: ignore[arg-type]  # deliberately the wrong type
    with pytest.raises(InvalidKey):
        kdf_sp800_108(bad, b"l", b"c")  # type: ignore[arg-type]  # deliberately the wrong type


def test_bytearray_key_accepted() -> None:
    assert check_key(bytearray(16)) == bytes(16)  # type: ignore[arg-type]  # checked at run time
