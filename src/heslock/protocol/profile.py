"""Frame profiles: how a 16-byte plaintext frame becomes bytes on the air.

- **base** (the standard): ``C = AES-128-CBC(K, IV=0, P)``, 16 bytes on the wire.
- **secure** (heslock's default, beyond the standard): ``Ke, Km = SP800-108(K)``;
  ``C = AES-128-CBC(Ke, IV=0, P)``; ``T = CMAC(Km, C)[:4]``; wire ``C || T`` (20 bytes,
  one ATT write at the BLE 4.0 default MTU of 23). Encrypt-then-MAC: the tag is checked,
  in constant time, before anything is decrypted.

Which profile a lock speaks is fixed at manufacture and recorded by the RAS at import;
it is never negotiated over the air, so there is nothing to downgrade.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from heslock.protocol.codes import ReasonCode
from heslock.protocol.crypto import BlockCipher, Cmac, derive_frame_keys, tags_equal
from heslock.protocol.errors import FrameRejected
from heslock.protocol.frame import FRAME_SIZE, Frame, Layout

TAG_SIZE: Final = 4


class Profile(Enum):
    BASE = "base"
    SECURE = "secure"

    @property
    def wire_size(self) -> int:
        return FRAME_SIZE if self is Profile.BASE else FRAME_SIZE + TAG_SIZE

    @property
    def layout(self) -> Layout:
        return Layout.BASE if self is Profile.BASE else Layout.SECURE


class FrameCodec:
    """Seals and opens frames under one lock key in one profile."""

    __slots__ = ("_cipher", "_mac", "_size", "profile")

    def __init__(self, key: bytes, profile: Profile) -> None:
        self.profile = profile
        self._size = profile.wire_size
        if profile is Profile.BASE:
            self._cipher = BlockCipher(key)
            self._mac: Cmac | None = None
        else:
            enc_key, mac_key = derive_frame_keys(key)
            self._cipher = BlockCipher(enc_key)
            self._mac = Cmac(mac_key)

    def seal(self, frame: Frame) -> bytes:
        """Encrypt (and, in the secure profile, tag) one frame."""
        ciphertext = self._cipher.encrypt_block(bytes(frame))  # always 16 bytes
        if self._mac is None:
            return ciphertext
        return ciphertext + self._mac.tag(ciphertext)[:TAG_SIZE]

    def open_plaintext(self, wire: bytes) -> bytes:
        """Verify length and tag, decrypt; the check byte is *not* verified here."""
        if len(wire) != self._size:
            raise FrameRejected(
                ReasonCode.BAD_LENGTH,
                f"a {self.profile.value}-profile frame is {self._size} bytes, got {len(wire)}",
            )
        if self._mac is None:
            return self._cipher.decrypt_block(bytes(wire))
        ciphertext = bytes(wire[:FRAME_SIZE])
        # Encrypt-then-MAC: the tag is checked, in constant time, before decrypting.
        if not tags_equal(self._mac.tag(ciphertext)[:TAG_SIZE], bytes(wire[FRAME_SIZE:])):
            raise FrameRejected(ReasonCode.BAD_TAG)
        return self._cipher.decrypt_block(ciphertext)

    def open(self, wire: bytes) -> Frame:
        """Verify, decrypt and decode; raises ``FrameRejected`` with the reason."""
        return Frame.from_bytes(self.open_plaintext(wire))
