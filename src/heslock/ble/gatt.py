"""The BSLD's GATT frame service, one per maker profile (peripheral side).

ARCHITECTURE.md, "BLE": one primary service; a *frame-in* characteristic (Write and Write
Without Response, Core Spec Vol 3, Part G, 4.9.1 / 4.9.3) receives the 16-byte (base) or
20-byte (secure) frames from the RAS, relayed by a BGW or a RAC; a *frame-out*
characteristic (Notify, 4.10) carries the lock's answers and its events. The UUIDs are the
maker's (:mod:`heslock.protocol.makers`).

What this module guarantees to the lock behind it:

- every write to frame-in, of any length 0..512 (the ATT maximum), reaches the handler;
  the lock answers a wrong length with an ERROR frame (BAD_LENGTH), not the BLE layer;
- a write to frame-out is refused with the ATT error "Write Not Permitted" (bumble would
  otherwise leave the request unanswered and the central waits for its 30 s timeout);
- a failure inside the handler becomes the ATT error "Unlikely Error" and a log line; it
  never escapes into bumble's packet loop (FIELD-NOTES.md: handlers are pyee callbacks).

The ATT MTU the lock accepts is the maker's ``max_mtu`` (23 for BLE 4.0, so an MTU
exchange leaves it at the default; 185 for 4.2; 247 for 5.0).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from bumble import att
from bumble.core import UUID
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service

from heslock.protocol.makers import MakerProfile

logger = logging.getLogger(__name__)

#: The ATT notification header (opcode + handle): payload = MTU - 3 (Core Vol 3, F, 3.4.7.1).
NOTIFICATION_OVERHEAD: Final = 3

FrameHandler = Callable[[Connection, bytes], Awaitable[None]]


class FrameService:
    """The maker's frame service; :meth:`install` it on a Device before power-on."""

    def __init__(self, maker: MakerProfile, on_frame: FrameHandler) -> None:
        self.maker = maker
        self._on_frame = on_frame
        self.frame_in: Characteristic[bytes] = Characteristic(
            UUID(maker.frame_in_uuid),
            Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
            Characteristic.Permissions.WRITEABLE,
            CharacteristicValue(read=self._refuse_read, write=self._write_in),
        )
        self.frame_out: Characteristic[bytes] = Characteristic(
            UUID(maker.frame_out_uuid),
            Characteristic.Properties.NOTIFY,
            Characteristic.Permissions.READABLE,
            CharacteristicValue(read=self._read_out, write=self._refuse_write),
        )
        self.service = Service(UUID(maker.service_uuid), [self.frame_in, self.frame_out])
        self._subscribed: set[int] = set()
        self.frame_out.on(Characteristic.EVENT_SUBSCRIPTION, self._on_subscription)

    def install(self, device: Device) -> None:
        device.add_service(self.service)
        device.gatt_server.max_mtu = self.maker.max_mtu

    # ----------------------------------------------------------------- subscriptions

    def _on_subscription(self, bearer: object, notify: bool, indicate: bool) -> None:
        del indicate  # frame-out offers Notify only
        handle = getattr(bearer, "handle", None)
        if not isinstance(handle, int):
            return
        if notify:
            self._subscribed.add(handle)
        else:
            self._subscribed.discard(handle)

    def is_subscribed(self, connection: Connection) -> bool:
        return connection.handle in self._subscribed

    def forget(self, connection: Connection) -> None:
        """Drop a connection's subscription (call on disconnection: handles are reused)."""
        self._subscribed.discard(connection.handle)

    async def notify(self, device: Device, connection: Connection, frame: bytes) -> bool:
        """Notify ``frame`` on frame-out; False when the central has not subscribed."""
        if not self.is_subscribed(connection):
            return False
        if len(frame) > connection.att_mtu - NOTIFICATION_OVERHEAD:
            # bumble would truncate silently (FIELD-NOTES.md); a cut frame is useless.
            logger.error("frame of %d bytes does not fit MTU %d", len(frame), connection.att_mtu)
            return False
        await device.gatt_server.notify_subscriber(connection, self.frame_out, frame)
        return True

    # ----------------------------------------------------------------- attribute values

    async def _write_in(self, connection: Connection, value: bytes) -> None:
        try:
            await self._on_frame(connection, bytes(value))
        except att.ATT_Error:
            raise
        except Exception as exc:
            logger.exception("frame handler failed")
            raise att.ATT_Error(error_code=att.ATT_UNLIKELY_ERROR_ERROR) from exc

    @staticmethod
    def _refuse_read(connection: Connection) -> bytes:
        raise att.ATT_Error(error_code=att.ATT_READ_NOT_PERMITTED_ERROR)

    @staticmethod
    def _read_out(connection: Connection) -> bytes:
        # Frames are pushed, never polled: a read returns nothing (no stale frame leaks).
        return b""

    @staticmethod
    def _refuse_write(connection: Connection, value: bytes) -> None:
        raise att.ATT_Error(error_code=att.ATT_WRITE_NOT_PERMITTED_ERROR)
