"""Cryptographic primitives of the lock protocol, all from ``cryptography``.

- AES-128-CBC over exactly one block with a zero IV and no padding (the base profile of
  ISO/IEC 14543-5-104; docs/security.md says why a zero IV is acceptable *only* because
  every plaintext is unique through its timestamp and sequence/counter).
- AES-CMAC (RFC 4493 / NIST SP 800-38B), truncated to 4 bytes for the secure profile.
- Key derivation: NIST SP 800-108 in counter mode with CMAC-AES-128 as PRF, to split one
  lock key into an encryption key and a MAC key (never use one AES key for both).
"""

from __future__ import annotations

import hmac
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

from heslock.protocol.errors import InvalidKey

KEY_SIZE: Final = 16
BLOCK_SIZE: Final = 16
#: The standard's 16-byte frame leaves no room to send an IV (ARCHITECTURE.md).
ZERO_IV: Final = bytes(BLOCK_SIZE)
#: SP 800-108 fixed-input context: binds derived keys to this protocol and version.
KDF_CONTEXT: Final = b"ISO/IEC 14543-5-104 heslock secure profile v1"
KDF_LABEL_ENC: Final = b"heslock frame encryption"
KDF_LABEL_MAC: Final = b"heslock frame authentication"


def check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise InvalidKey(f"an AES-128 key is {KEY_SIZE} bytes")
    return bytes(key)


class BlockCipher:
    """AES-128-CBC over single blocks under one key (zero IV, no padding).

    For exactly one block with a zero IV, CBC is the bare block cipher:
    ``C = E(K, P xor IV) = E(K, P)`` and ``P = D(K, C) xor IV = D(K, C)``. So the
    computation is done with one long-lived block-aligned ``cryptography`` context per
    direction and key, which is byte-for-byte AES-128-CBC with a zero IV (a property
    test checks it against ``modes.CBC``) and ten times faster than a context per frame.
    A context keeps no chaining state between ``update`` calls of whole blocks in this
    mode, so frames stay independent. Not thread-safe: one instance per thread.
    """

    __slots__ = ("decrypt_block", "encrypt_block")

    def __init__(self, key: bytes) -> None:
        cipher = Cipher(algorithms.AES(check_key(key)), modes.ECB())  # noqa: S305 - see docstring
        #: Unchecked single-block operations for callers that guarantee 16 bytes.
        self.encrypt_block = cipher.encryptor().update
        self.decrypt_block = cipher.decryptor().update

    def encrypt(self, block: bytes) -> bytes:
        if len(block) != BLOCK_SIZE:
            raise ValueError("exactly one 16-byte block")
        return self.encrypt_block(block)

    def decrypt(self, block: bytes) -> bytes:
        if len(block) != BLOCK_SIZE:
            raise ValueError("exactly one 16-byte block")
        return self.decrypt_block(block)


class Cmac:
    """AES-CMAC (RFC 4493) under one key; the key schedule is done once and copied."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes) -> None:
        self._base = CMAC(algorithms.AES(check_key(key)))

    def tag(self, data: bytes) -> bytes:
        mac = self._base.copy()
        mac.update(data)
        return mac.finalize()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """Full 16-byte AES-CMAC of ``data`` (RFC 4493)."""
    mac = CMAC(algorithms.AES(check_key(key)))
    mac.update(data)
    return mac.finalize()


def tags_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison for tags and any other secret-dependent bytes."""
    return hmac.compare_digest(a, b)


def kdf_sp800_108(key: bytes, label: bytes, context: bytes, length: int = KEY_SIZE) -> bytes:
    """NIST SP 800-108 KDF in counter mode, PRF = CMAC-AES-128, r = 32, L as 32 bits."""
    return KBKDFCMAC(
        algorithm=algorithms.AES,
        mode=Mode.CounterMode,
        length=length,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=label,
        context=context,
        fixed=None,
    ).derive(check_key(key))


def derive_frame_keys(lock_key: bytes) -> tuple[bytes, bytes]:
    """Split a lock key into (encryption key, MAC key) for the secure profile."""
    return (
        kdf_sp800_108(lock_key, KDF_LABEL_ENC, KDF_CONTEXT),
        kdf_sp800_108(lock_key, KDF_LABEL_MAC, KDF_CONTEXT),
    )
