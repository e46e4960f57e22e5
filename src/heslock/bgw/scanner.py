"""The BGW's view of the locks in its range, kept from their BLE advertisements.

Discovery (ISO/IEC 14543-5-104, "Registration", step 1): every BSLD advertises its device
id, maker, model, BLE version and bound flag (:mod:`heslock.protocol.advert`). The
:class:`Scanner` scans passively and without duplicate filtering, so each advertisement
refreshes the lock's RSSI and last-seen time; advertisements of makers the gateway does not
serve (their company id) and malformed ones are ignored. A sweep every ``scan_interval_s``
drops locks silent for ``lost_after_s``.

The scan runs continuously, also while the central connects and talks to locks: locks keep
advertising while connected (heslock.bsld.peripheral), so a connected lock stays in range.
Controllers that cannot scan while initiating a connection pause the scan themselves.

Changes that matter to the RAS -- a lock appears, disappears, or changes its bound or
registration flag -- call the ``on_change`` callback (a scan report follows).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from bumble.device import Advertisement, Device

from heslock.protocol.advert import DiscoveredLock, InvalidAdvert, LockAdvert, find_lock_advert
from heslock.protocol.ids import DeviceId
from heslock.protocol.makers import MakerProfile
from heslock.xmpp.lockns import MAX_RSSI, MIN_RSSI, ScanEntry

logger = logging.getLogger(__name__)

#: Starting or stopping a scan is one HCI exchange; a controller that does not answer in
#: this time is broken.
HCI_TIMEOUT_S: Final = 5.0
#: Locks tracked at once: the simulator's fleets and real sites stay far below; a flood of
#: forged advertisements (they are unauthenticated) must not grow memory without bound.
MAX_TRACKED_LOCKS: Final = 1000


@dataclass(frozen=True, slots=True)
class Sighting:
    """One lock in range: where it is and what it last advertised."""

    address: str
    maker: MakerProfile
    advert: LockAdvert
    rssi: int
    last_seen: float  #: wall-clock time (time.time)
    seen_monotonic: float

    @property
    def device_id(self) -> DeviceId:
        return self.advert.device_id

    def entry(self) -> ScanEntry:
        return ScanEntry(
            lock=self.device_id,
            maker=self.maker.name,
            model=self.advert.model_code,
            ble_version=self.advert.ble_version.value,
            profile=self.advert.profile,
            bound=self.advert.bound,
            registration_open=self.advert.registration_open,
            battery=self.advert.battery,
            rssi=max(MIN_RSSI, min(MAX_RSSI, self.rssi)),
            last_seen=datetime.fromtimestamp(self.last_seen, UTC),
        )


class Scanner:
    """Keeps :class:`Sighting` per lock from advertisements (module docstring)."""

    def __init__(
        self,
        device: Device,
        makers: tuple[MakerProfile, ...],
        *,
        scan_interval_s: float,
        lost_after_s: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.device = device
        self._makers = {m.company_id: m for m in makers}
        self._company_ids = frozenset(self._makers)
        self.scan_interval_s = scan_interval_s
        self.lost_after_s = lost_after_s
        self.on_change = on_change
        self._locks: dict[DeviceId, Sighting] = {}
        self._waiters: dict[DeviceId, list[asyncio.Future[Sighting]]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await asyncio.wait_for(
            self.device.start_scanning(active=False, filter_duplicates=False), HCI_TIMEOUT_S
        )
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="bgw-scan-sweep")
        logger.info("scanning for %s", ", ".join(m.name for m in self._makers.values()))

    async def stop(self) -> None:
        self.device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        with contextlib.suppress(Exception):  # the radio may already be gone
            await asyncio.wait_for(self.device.stop_scanning(), HCI_TIMEOUT_S)
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.cancel()
        self._waiters.clear()

    # ------------------------------------------------------------------ queries

    def get(self, device_id: DeviceId) -> Sighting | None:
        return self._locks.get(device_id)

    def sightings(self) -> list[Sighting]:
        return list(self._locks.values())

    def __len__(self) -> int:
        return len(self._locks)

    async def wait_for(self, device_id: DeviceId, timeout_s: float) -> Sighting | None:
        """The lock's sighting, waiting up to ``timeout_s`` for its next advertisement."""
        found = self._locks.get(device_id)
        if found is not None or timeout_s <= 0:
            return found
        waiter: asyncio.Future[Sighting] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(device_id, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(device_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(device_id, None)

    # ------------------------------------------------------------------ advertisements

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        # A bumble event handler: keep it small and never let it raise (FIELD-NOTES.md).
        try:
            found = find_lock_advert(bytes(advertisement.data), self._company_ids)
        except InvalidAdvert:
            return
        except Exception:
            logger.exception("advertisement decoding failed")
            return
        self._record(str(advertisement.address), found, int(advertisement.rssi))

    def _record(self, address: str, found: DiscoveredLock, rssi: int) -> None:
        advert = found.advert
        maker = self._makers.get(advert.company_id)
        if maker is None:
            return
        previous = self._locks.get(advert.device_id)
        if previous is None and len(self._locks) >= MAX_TRACKED_LOCKS:
            logger.warning("tracking %d locks already; %s ignored", MAX_TRACKED_LOCKS, address)
            return
        sighting = Sighting(address, maker, advert, rssi, time.time(), time.monotonic())
        self._locks[advert.device_id] = sighting
        for waiter in self._waiters.pop(advert.device_id, []):
            if not waiter.done():
                waiter.set_result(sighting)
        if previous is None:
            logger.info("lock %s (%s) in range at %s", advert.device_id, maker.name, address)
            self._changed()
        elif (previous.advert.bound, previous.advert.registration_open) != (
            advert.bound,
            advert.registration_open,
        ):
            self._changed()

    def _changed(self) -> None:
        try:
            self.on_change()
        except Exception:
            logger.exception("scan change listener failed")

    # ------------------------------------------------------------------ expiry

    def sweep(self, now: float | None = None) -> list[DeviceId]:
        """Drop locks silent for ``lost_after_s``; returns their ids."""
        now = time.monotonic() if now is None else now
        gone = [
            device_id
            for device_id, sighting in self._locks.items()
            if now - sighting.seen_monotonic > self.lost_after_s
        ]
        for device_id in gone:
            del self._locks[device_id]
            logger.info("lock %s out of range", device_id)
        if gone:
            self._changed()
        return gone

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.scan_interval_s)
            self.sweep()
