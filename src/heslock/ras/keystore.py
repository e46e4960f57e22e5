"""Secrets at rest: the RAS master key and envelope encryption of lock and factory keys.

ISO/IEC 14543-5-104 makes the RAS the only party besides the lock that knows a lock key
(DDMS). Those keys, the makers' factory keys and users' TOTP seeds are stored only as
*envelopes* sealed under the master key, so a copy of the database alone reveals none.

Design (our decision; docs/security.md restates it)
---------------------------------------------------
- **Master key**: 32 random bytes in a file of its own (``master.key``), mode 0600, owned
  by the RAS user. It is never in the database, so a database backup is not enough.
  Start-up refuses a file that others can read or write, a symlink, or a file that is
  not exactly 32 bytes.
- **Per-purpose subkeys**: ``K_slot = HKDF-SHA256(master, info="heslock-ras/v1/subkey/" +
  table + "." + column)`` (RFC 5869). Each column that holds a secret has its own
  AES-256-GCM key, so an envelope from one column never opens under another.
- **Associated data** binds an envelope to its row: ``"heslock-ras/v1|" + table + "|" +
  column + "|" + row_id`` plus the envelope header. A ciphertext copied into another row
  (e.g. swapping two locks' keys) fails authentication.
- **Nonces**: 96 random bits per envelope (NIST SP 800-38D 8.2.2). With one subkey per
  column, the 2^32 envelope limit per key is far beyond any deployment.
- **Envelope format** (versioned, for master-key rotation)::

      version (1 byte, 0x01) | key id (4) | nonce (12) | ciphertext || tag (16)

  The key id (HKDF of the master key, not secret) says which master key sealed it.
  Rotation: load the new key as primary and the old ones as ``previous``; envelopes
  sealed under an old key still open, and :meth:`Keystore.needs_rewrap` /
  :meth:`Keystore.rewrap` move them to the new key row by row.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from heslock.errors import LocalError, UsageError

log = logging.getLogger(__name__)

MASTER_KEY_SIZE: Final = 32  # AES-256 / HKDF input: 256 bits of CSPRNG output
ENVELOPE_VERSION: Final = 1
KEY_ID_SIZE: Final = 4  # enough to tell a handful of master keys apart; not a secret
NONCE_SIZE: Final = 12  # GCM's native IV size (SP 800-38D 8.2)
TAG_SIZE: Final = 16  # full GCM tag; truncated tags weaken forgery resistance
HEADER_SIZE: Final = 1 + KEY_ID_SIZE + NONCE_SIZE
#: Permission bits that must be clear on the master key file (group and other: none).
FORBIDDEN_MODE_BITS: Final = 0o077
_LABEL: Final = b"heslock-ras/v1"


class SecretRejected(LocalError):
    """An envelope failed to open: tampered, truncated, moved, or sealed by an unknown key.

    The message names the slot and row, never any key material.
    """


@dataclass(frozen=True)
class Slot:
    """Where a secret lives: the table and column of its envelope."""

    table: str
    column: str

    def __post_init__(self) -> None:
        for part in (self.table, self.column):
            if not part or not part.replace("_", "").isalnum():
                raise ValueError(f"slot names are identifiers, got {part!r}")

    def __str__(self) -> str:
        return f"{self.table}.{self.column}"


FACTORY_KEY: Final = Slot("devices", "factory_key_enc")
LOCK_KEY: Final = Slot("locks", "lock_key_enc")
REGISTRATION_OLD_KEY: Final = Slot("registrations", "old_key_enc")
REGISTRATION_NEW_KEY: Final = Slot("registrations", "new_key_enc")
TOTP_SECRET: Final = Slot("totp_secrets", "secret_enc")


@dataclass(frozen=True)
class Envelope:
    """A sealed secret as stored in a ``*_enc`` column."""

    version: int
    key_id: bytes
    nonce: bytes
    ciphertext: bytes  # includes the 16-byte GCM tag

    def __post_init__(self) -> None:
        if self.version != ENVELOPE_VERSION:
            raise ValueError(f"unknown envelope version {self.version}")
        if len(self.key_id) != KEY_ID_SIZE or len(self.nonce) != NONCE_SIZE:
            raise ValueError("malformed envelope header")
        if len(self.ciphertext) < TAG_SIZE:
            raise ValueError("envelope shorter than its authentication tag")

    @property
    def header(self) -> bytes:
        return bytes([self.version]) + self.key_id + self.nonce

    def __bytes__(self) -> bytes:
        return self.header + self.ciphertext

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        if len(data) < HEADER_SIZE + TAG_SIZE:
            raise ValueError(f"envelope too short ({len(data)} bytes)")
        return cls(
            data[0],
            data[1 : 1 + KEY_ID_SIZE],
            data[1 + KEY_ID_SIZE : HEADER_SIZE],
            data[HEADER_SIZE:],
        )


def _hkdf(master: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


class MasterKey:
    """One master key and the subkeys derived from it. Its repr never shows the key."""

    def __init__(self, material: bytes) -> None:
        if len(material) != MASTER_KEY_SIZE:
            raise ValueError(f"a master key is {MASTER_KEY_SIZE} bytes, got {len(material)}")
        self._material = material
        self.key_id = _hkdf(material, _LABEL + b"/key-id", KEY_ID_SIZE)
        self._subkeys: dict[Slot, AESGCM] = {}

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id.hex()})"

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """A key for ``purpose`` (e.g. a MAC pepper): HKDF-SHA256 of the master key with its
        own info string, independent of every sealing subkey."""
        if not purpose or not purpose.isascii():
            raise ValueError("a derivation purpose is a non-empty ASCII name")
        return _hkdf(self._material, _LABEL + b"/derived/" + purpose.encode(), length)

    def aead(self, slot: Slot) -> AESGCM:
        cached = self._subkeys.get(slot)
        if cached is None:
            info = _LABEL + b"/subkey/" + str(slot).encode()
            cached = self._subkeys[slot] = AESGCM(_hkdf(self._material, info, 32))
        return cached


def _associated_data(slot: Slot, row_id: str, header: bytes) -> bytes:
    if "|" in row_id or not row_id:
        raise ValueError(f"row ids are non-empty and contain no '|', got {row_id!r}")
    return b"|".join([_LABEL, slot.table.encode(), slot.column.encode(), row_id.encode(), header])


class Keystore:
    """Seals and opens secrets bound to a slot and a row id."""

    def __init__(self, primary: MasterKey, previous: Sequence[MasterKey] = ()) -> None:
        self.primary = primary
        self._keys = {key.key_id: key for key in (*previous, primary)}

    @classmethod
    def from_files(cls, primary: Path, previous: Sequence[Path] = ()) -> Keystore:
        return cls(load_master_key(primary), [load_master_key(p) for p in previous])

    def seal(self, slot: Slot, row_id: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        header = bytes([ENVELOPE_VERSION]) + self.primary.key_id + nonce
        aad = _associated_data(slot, row_id, header)
        return header + self.primary.aead(slot).encrypt(nonce, plaintext, aad)

    def derive_key(self, purpose: str, length: int = 32) -> bytes:
        """A key derived from the *primary* master key for ``purpose`` (HKDF-SHA256). It
        changes when the master key is rotated: use it for short-lived secrets only."""
        return self.primary.derive(purpose, length)

    def open(self, slot: Slot, row_id: str, data: bytes) -> bytes:
        where = f"{slot} of row {row_id}"
        try:
            envelope = Envelope.from_bytes(data)
        except ValueError as exc:
            raise SecretRejected(f"envelope in {where} is malformed: {exc}") from None
        key = self._keys.get(envelope.key_id)
        if key is None:
            raise SecretRejected(
                f"envelope in {where} was sealed by an unknown master key "
                f"(key id {envelope.key_id.hex()})"
            )
        aad = _associated_data(slot, row_id, envelope.header)
        try:
            return key.aead(slot).decrypt(envelope.nonce, envelope.ciphertext, aad)
        except InvalidTag:
            log.warning("keystore: envelope in %s failed authentication", where)
            raise SecretRejected(
                f"envelope in {where} failed authentication (tampered, or moved from another row)"
            ) from None

    def needs_rewrap(self, data: bytes) -> bool:
        """True when the envelope was sealed by a master key other than the primary."""
        return data[1 : 1 + KEY_ID_SIZE] != self.primary.key_id

    def rewrap(self, slot: Slot, row_id: str, data: bytes) -> bytes:
        """Open under whichever key sealed it and seal again under the primary key."""
        return self.seal(slot, row_id, self.open(slot, row_id, data))


def create_master_key(path: Path) -> MasterKey:
    """Write a fresh master key to ``path`` (mode 0600, never overwriting) and return it."""
    material = os.urandom(MASTER_KEY_SIZE)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise UsageError(f"master key file {path} already exists; not overwriting it") from None
    try:
        os.fchmod(fd, 0o600)  # the umask must not widen or narrow what we asked for
        os.write(fd, material)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)
    return MasterKey(material)


def load_master_key(path: Path) -> MasterKey:
    """Read and check the master key file; a clear :class:`UsageError` on any problem."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise UsageError(
            f"master key file {path} does not exist (run `heslock ras init`)"
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot open master key file {path}: {exc.strerror or exc} "
            "(it must be a regular file, not a symlink)"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"master key file {path} is not a regular file")
        if info.st_mode & FORBIDDEN_MODE_BITS:
            raise UsageError(
                f"master key file {path} has permissions {stat.S_IMODE(info.st_mode):04o}; "
                f"it must be readable by its owner only (chmod 600 {path})"
            )
        if info.st_uid != os.geteuid():
            raise UsageError(f"master key file {path} is not owned by the user running the RAS")
        material = os.read(fd, MASTER_KEY_SIZE + 1)
    finally:
        os.close(fd)
    if len(material) != MASTER_KEY_SIZE:
        raise UsageError(
            f"master key file {path} is malformed: expected exactly {MASTER_KEY_SIZE} bytes"
        )
    return MasterKey(material)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
