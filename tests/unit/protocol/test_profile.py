"""FrameCodec in both profiles (heslock.protocol.profile)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from heslock.protocol import TAG_SIZE, Frame, FrameCodec, FrameRejected, Layout, Profile
from heslock.protocol.codes import ReasonCode
from heslock.protocol.crypto import aes_cmac, derive_frame_keys
from heslock.protocol.frame import MAX_TIMESTAMP

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
OTHER = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")
FRAME = Frame(0x03, 0x01, bytes.fromhex("010000000100000000"), 1_700_000_000)

frames = st.builds(
    Frame,
    cmd=st.integers(0, 0xFF),
    type=st.integers(0, 0xFF),
    value=st.binary(min_size=9, max_size=9),
    timestamp=st.integers(0, MAX_TIMESTAMP),
)


def cbc_zero_iv(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return enc.update(block) + enc.finalize()


def test_profiles() -> None:
    assert Profile.BASE.wire_size == 16
    assert Profile.SECURE.wire_size == 20 == 16 + TAG_SIZE
    assert Profile.BASE.layout is Layout.BASE
    assert Profile.SECURE.layout is Layout.SECURE
    assert Profile("base") is Profile.BASE
    assert Profile("secure") is Profile.SECURE


def test_base_profile_is_aes_cbc_zero_iv() -> None:
    wire = FrameCodec(KEY, Profile.BASE).seal(FRAME)
    assert wire == cbc_zero_iv(KEY, bytes(FRAME))


def test_secure_profile_is_encrypt_then_mac_under_derived_keys() -> None:
    enc_key, mac_key = derive_frame_keys(KEY)
    wire = FrameCodec(KEY, Profile.SECURE).seal(FRAME)
    ciphertext = cbc_zero_iv(enc_key, bytes(FRAME))
    assert wire == ciphertext + aes_cmac(mac_key, ciphertext)[:4]
    assert wire[:16] != cbc_zero_iv(KEY, bytes(FRAME))  # never the lock key itself


@settings(max_examples=300, deadline=None)
@given(frame=frames, key=st.binary(min_size=16, max_size=16), profile=st.sampled_from(Profile))
def test_seal_open_round_trip(frame: Frame, key: bytes, profile: Profile) -> None:
    codec = FrameCodec(key, profile)
    wire = codec.seal(frame)
    assert len(wire) == profile.wire_size
    assert codec.open(wire) == frame
    assert codec.open_plaintext(wire) == bytes(frame)
    # A second codec under the same key agrees (no state carried between frames).
    assert FrameCodec(key, profile).open(wire) == frame


@pytest.mark.parametrize("profile", list(Profile))
@pytest.mark.parametrize("delta", [-1, 1, -16])
def test_wrong_length(profile: Profile, delta: int) -> None:
    codec = FrameCodec(KEY, profile)
    wire = codec.seal(FRAME)
    bad = wire[:delta] if delta < 0 else wire + b"\0" * delta
    with pytest.raises(FrameRejected) as info:
        codec.open(bad)
    assert info.value.reason is ReasonCode.BAD_LENGTH
    with pytest.raises(FrameRejected) as info:
        codec.open_plaintext(bad)
    assert info.value.reason is ReasonCode.BAD_LENGTH


def test_profiles_do_not_read_each_other() -> None:
    """A base frame is the wrong length for a secure codec and the other way round."""
    base, secure = FrameCodec(KEY, Profile.BASE), FrameCodec(KEY, Profile.SECURE)
    with pytest.raises(FrameRejected) as info:
        secure.open(base.seal(FRAME))
    assert info.value.reason is ReasonCode.BAD_LENGTH
    with pytest.raises(FrameRejected) as info:
        base.open(secure.seal(FRAME))
    assert info.value.reason is ReasonCode.BAD_LENGTH
    # Nor does a secure ciphertext without its tag decrypt to the frame under the base codec.
    with pytest.raises(FrameRejected) as info:
        base.open(secure.seal(FRAME)[:16])
    assert info.value.reason is ReasonCode.BAD_CHECK


@pytest.mark.parametrize("index", range(20))
def test_bad_tag_secure(index: int) -> None:
    codec = FrameCodec(KEY, Profile.SECURE)
    wire = bytearray(codec.seal(FRAME))
    wire[index] ^= 0x01
    with pytest.raises(FrameRejected) as info:
        codec.open(bytes(wire))
    assert info.value.reason is ReasonCode.BAD_TAG


def test_bad_tag_under_another_key() -> None:
    wire = FrameCodec(OTHER, Profile.SECURE).seal(FRAME)
    with pytest.raises(FrameRejected) as info:
        FrameCodec(KEY, Profile.SECURE).open(wire)
    assert info.value.reason is ReasonCode.BAD_TAG


def test_bad_check_base_under_another_key() -> None:
    """Under the wrong key the base profile decrypts to noise: the check byte refuses it
    (with probability 255/256; this frame/key pair is one that is refused)."""
    wire = FrameCodec(OTHER, Profile.BASE).seal(FRAME)
    with pytest.raises(FrameRejected) as info:
        FrameCodec(KEY, Profile.BASE).open(wire)
    assert info.value.reason is ReasonCode.BAD_CHECK


@pytest.mark.parametrize("profile", list(Profile))
def test_bad_check_after_decryption(profile: Profile) -> None:
    """A well-encrypted (and tagged) block whose plaintext check byte is wrong."""
    plain = bytearray(bytes(FRAME))
    plain[11] ^= 0x5A
    codec = FrameCodec(KEY, profile)
    if profile is Profile.BASE:
        wire = cbc_zero_iv(KEY, bytes(plain))
    else:
        enc_key, mac_key = derive_frame_keys(KEY)
        ciphertext = cbc_zero_iv(enc_key, bytes(plain))
        wire = ciphertext + aes_cmac(mac_key, ciphertext)[:4]
    assert codec.open_plaintext(wire) == bytes(plain)  # tag fine, check not verified here
    with pytest.raises(FrameRejected) as info:
        codec.open(wire)
    assert info.value.reason is ReasonCode.BAD_CHECK


def test_open_accepts_bytearray_and_memoryview() -> None:
    codec = FrameCodec(KEY, Profile.SECURE)
    wire = codec.seal(FRAME)
    # BLE stacks hand over bytearrays/memoryviews; the annotation says bytes.
    assert codec.open(bytearray(wire)) == FRAME  # type: ignore[arg-type]  # any buffer at run time
    assert codec.open(memoryview(wire)) == FRAME  # type: ignore[arg-type]  # any buffer at run time


def test_reason_in_message() -> None:
    codec = FrameCodec(KEY, Profile.SECURE)
    with pytest.raises(FrameRejected, match="20 bytes, got 3"):
        codec.open(b"abc")
    with pytest.raises(FrameRejected, match="bad tag"):
        codec.open(bytes(20))
