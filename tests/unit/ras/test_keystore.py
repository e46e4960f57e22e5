"""Keystore: master key file checks, envelope round trips, tamper and swap refusal."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from heslock.errors import UsageError
from heslock.ras.keystore import (
    FACTORY_KEY,
    HEADER_SIZE,
    LOCK_KEY,
    MASTER_KEY_SIZE,
    TAG_SIZE,
    TOTP_SECRET,
    Envelope,
    Keystore,
    MasterKey,
    SecretRejected,
    create_master_key,
    load_master_key,
)

SECRET = bytes(range(16))


@pytest.fixture
def keystore() -> Keystore:
    return Keystore(MasterKey(os.urandom(MASTER_KEY_SIZE)))


def test_round_trip_and_format(keystore: Keystore) -> None:
    sealed = keystore.seal(LOCK_KEY, "row-1", SECRET)
    assert len(sealed) == HEADER_SIZE + len(SECRET) + TAG_SIZE
    assert SECRET not in sealed
    envelope = Envelope.from_bytes(sealed)
    assert envelope.version == 1
    assert envelope.key_id == keystore.primary.key_id
    assert bytes(envelope) == sealed
    assert keystore.open(LOCK_KEY, "row-1", sealed) == SECRET


def test_each_seal_uses_a_fresh_nonce(keystore: Keystore) -> None:
    a = keystore.seal(LOCK_KEY, "row-1", SECRET)
    b = keystore.seal(LOCK_KEY, "row-1", SECRET)
    assert Envelope.from_bytes(a).nonce != Envelope.from_bytes(b).nonce
    assert a != b


@pytest.mark.parametrize("position", [0, 1, 5, HEADER_SIZE, HEADER_SIZE + 3, -1])
def test_any_flipped_bit_is_detected(keystore: Keystore, position: int) -> None:
    sealed = bytearray(keystore.seal(LOCK_KEY, "row-1", SECRET))
    sealed[position] ^= 0x01
    with pytest.raises(SecretRejected):
        keystore.open(LOCK_KEY, "row-1", bytes(sealed))


def test_truncated_envelope_is_rejected(keystore: Keystore) -> None:
    sealed = keystore.seal(LOCK_KEY, "row-1", SECRET)
    with pytest.raises(SecretRejected, match="malformed"):
        keystore.open(LOCK_KEY, "row-1", sealed[: HEADER_SIZE + TAG_SIZE - 1])


def test_envelope_moved_to_another_row_is_refused(keystore: Keystore) -> None:
    a = keystore.seal(LOCK_KEY, "lock-a", SECRET)
    with pytest.raises(SecretRejected, match="moved from another row"):
        keystore.open(LOCK_KEY, "lock-b", a)


def test_envelope_moved_to_another_column_is_refused(keystore: Keystore) -> None:
    sealed = keystore.seal(FACTORY_KEY, "AABBCCDDEEFF", SECRET)
    with pytest.raises(SecretRejected):
        keystore.open(LOCK_KEY, "AABBCCDDEEFF", sealed)
    with pytest.raises(SecretRejected):
        keystore.open(TOTP_SECRET, "AABBCCDDEEFF", sealed)


def test_errors_never_contain_key_material(keystore: Keystore) -> None:
    sealed = bytearray(keystore.seal(LOCK_KEY, "row-1", SECRET))
    sealed[-1] ^= 1
    with pytest.raises(SecretRejected) as info:
        keystore.open(LOCK_KEY, "row-1", bytes(sealed))
    assert SECRET.hex() not in str(info.value)
    assert "row-1" in str(info.value)
    assert "locks.lock_key_enc" in str(info.value)


def test_other_master_key_cannot_open(keystore: Keystore) -> None:
    sealed = keystore.seal(LOCK_KEY, "row-1", SECRET)
    stranger = Keystore(MasterKey(os.urandom(MASTER_KEY_SIZE)))
    with pytest.raises(SecretRejected, match="unknown master key"):
        stranger.open(LOCK_KEY, "row-1", sealed)


def test_rotation_keeps_old_envelopes_readable_and_rewraps(keystore: Keystore) -> None:
    old_sealed = keystore.seal(LOCK_KEY, "row-1", SECRET)
    rotated = Keystore(MasterKey(os.urandom(MASTER_KEY_SIZE)), previous=[keystore.primary])
    assert rotated.needs_rewrap(old_sealed)
    assert rotated.open(LOCK_KEY, "row-1", old_sealed) == SECRET
    new_sealed = rotated.rewrap(LOCK_KEY, "row-1", old_sealed)
    assert not rotated.needs_rewrap(new_sealed)
    assert Keystore(rotated.primary).open(LOCK_KEY, "row-1", new_sealed) == SECRET


def test_row_ids_cannot_forge_a_separator(keystore: Keystore) -> None:
    with pytest.raises(ValueError, match=re.escape("no '|'")):
        keystore.seal(LOCK_KEY, "a|b", SECRET)


def test_master_key_repr_hides_the_key() -> None:
    material = os.urandom(MASTER_KEY_SIZE)
    assert material.hex() not in repr(MasterKey(material))


def test_master_key_file_created_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    created = create_master_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.stat().st_size == MASTER_KEY_SIZE
    assert load_master_key(path).key_id == created.key_id
    with pytest.raises(UsageError, match="already exists"):
        create_master_key(path)


def test_loose_permissions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_master_key(path)
    for mode in (0o640, 0o604, 0o660):
        path.chmod(mode)
        with pytest.raises(UsageError, match=f"permissions {mode:04o}.*chmod 600"):
            load_master_key(path)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_malformed_file_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(os.urandom(size))
    path.chmod(0o600)
    with pytest.raises(UsageError, match="malformed"):
        load_master_key(path)


def test_missing_file_and_symlink_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_master_key(tmp_path / "nope.key")
    real = tmp_path / "real.key"
    create_master_key(real)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(UsageError, match="not a symlink"):
        load_master_key(link)


def test_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "dir.key"
    directory.mkdir(mode=0o700)
    with pytest.raises(UsageError, match="not a regular file"):
        load_master_key(directory)


def test_derived_keys_are_hkdf_of_the_master_key_per_purpose() -> None:
    """derive_key: HKDF-SHA256(master, info = label + "/derived/" + purpose), independent
    per purpose and of every sealing subkey, and following the primary master key."""
    material = bytes(range(32))
    keystore = Keystore(MasterKey(material))
    expected = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None,
        info=b"heslock-ras/v1/derived/udms/otp_codes.code_hash",
    ).derive(material)  # fmt: skip
    assert keystore.derive_key("udms/otp_codes.code_hash") == expected
    assert keystore.derive_key("a") != keystore.derive_key("b")
    assert len(keystore.derive_key("a", 16)) == 16
    rotated = Keystore(MasterKey(bytes(32 * [7])), previous=[MasterKey(material)])
    assert rotated.derive_key("udms/otp_codes.code_hash") != expected
    with pytest.raises(ValueError, match="purpose"):
        keystore.derive_key("")
