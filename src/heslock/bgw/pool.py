"""The BGW's pool of live BLE links: connect on demand, idle timeout, LRU eviction.

A gateway holds locks of several makers (ISO/IEC 14543-5-104, BGW) but a BLE controller
holds only so many connections, and a connected lock is a lock a phone cannot reach (the
BSLD accepts one central). So links are opened when a frame needs one and kept for
``idle_timeout_s`` after their last use (a burst of commands -- registration's three
frames, an unlock then a status -- pays the connect once), at most ``max_links`` at a time.
When every slot is taken, the least recently used *idle* link is closed to make room; when
every link is busy, the request waits for one to finish, up to its own deadline
(:class:`~heslock.bgw.errors.PoolExhausted`).

States of one slot (one lock)::

    (absent) --acquire--> CONNECTING --connected--> BUSY --release--> IDLE
    IDLE --acquire--> BUSY          IDLE --idle timeout / LRU eviction--> (absent)
    CONNECTING --connect failed--> (absent)     any --link lost--> (absent)

The router runs at most one request per lock at a time (its per-lock lane), so two
``acquire`` calls for one lock never overlap; the pool relies on that.

Each link's event notifications (frames that are not answers, heslock.ble.central) go to
``on_event(device_id, frame)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from heslock.bgw.errors import PoolExhausted
from heslock.ble.central import FrameCentral, FrameLink
from heslock.protocol.ids import DeviceId
from heslock.protocol.makers import MakerProfile

logger = logging.getLogger(__name__)

#: The idle sweep runs this many times per idle timeout, so a link outlives its timeout by
#: at most a quarter of it.
SWEEPS_PER_IDLE_TIMEOUT: Final = 4

EventSink = Callable[[DeviceId, bytes], None]


@dataclass(slots=True)
class _Slot:
    link: FrameLink | None  #: None while connecting
    busy: bool
    last_used: float


class LinkPool:
    """Live FrameLinks by device id (module docstring)."""

    def __init__(
        self,
        central: FrameCentral,
        *,
        max_links: int,
        idle_timeout_s: float,
        on_event: EventSink,
    ) -> None:
        self.central = central
        self.max_links = max_links
        self.idle_timeout_s = idle_timeout_s
        self.on_event = on_event
        self._slots: OrderedDict[DeviceId, _Slot] = OrderedDict()  # least recent first
        self._freed: list[asyncio.Future[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.evictions = 0
        self.connects = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="bgw-link-sweep")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        links = [slot.link for slot in self._slots.values() if slot.link is not None]
        self._slots.clear()
        for link in links:
            await link.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self._wake()

    # ------------------------------------------------------------------ queries

    @property
    def live(self) -> list[DeviceId]:
        """Locks with an established link, least recently used first."""
        return [
            device_id
            for device_id, slot in self._slots.items()
            if slot.link is not None and not slot.link.closed
        ]

    @property
    def busy(self) -> int:
        return sum(1 for slot in self._slots.values() if slot.busy)

    def __len__(self) -> int:
        return len(self._slots)

    # ------------------------------------------------------------------ acquire / release

    async def acquire(
        self, device_id: DeviceId, address: str, maker: MakerProfile, timeout_s: float
    ) -> FrameLink:
        """A link to the lock, marked busy until :meth:`release`.

        Raises :class:`PoolExhausted` when no slot frees within ``timeout_s``, and the
        :class:`~heslock.ble.errors.BleError` of a failed connect.
        """
        slot = self._slots.get(device_id)
        if slot is not None and slot.link is not None and not slot.link.closed:
            slot.busy = True
            self._slots.move_to_end(device_id)
            return slot.link
        if slot is not None:  # a dead link nobody removed yet
            del self._slots[device_id]
        await self._reserve(device_id, timeout_s)
        try:
            link = await self.central.connect(address, maker)
        except BaseException:
            self._slots.pop(device_id, None)
            self._wake()
            raise
        self.connects += 1
        slot = self._slots.get(device_id)
        if slot is None:  # the pool closed meanwhile
            await link.close()
            raise PoolExhausted("the gateway is shutting down")
        slot.link = link
        link.add_listener(lambda frame: self._deliver(device_id, frame))
        link.add_disconnect_listener(lambda reason: self._lost(device_id, link, reason))
        return link

    def release(self, device_id: DeviceId) -> None:
        """The request on the lock's link is over: the link becomes idle."""
        slot = self._slots.get(device_id)
        if slot is None:
            return
        if slot.link is None or slot.link.closed:  # lost during the request: free the slot
            del self._slots[device_id]
        else:
            slot.busy = False
            slot.last_used = time.monotonic()
        self._wake()

    async def _reserve(self, device_id: DeviceId, timeout_s: float) -> None:
        """Take a slot for ``device_id`` (evicting the LRU idle link if all are taken)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self._slots) >= self.max_links:
            victim = next(
                (d for d, s in self._slots.items() if not s.busy and s.link is not None), None
            )
            if victim is not None:
                evicted = self._slots.pop(victim)
                self.evictions += 1
                logger.info("evicting the idle link to %s (LRU) for %s", victim, device_id)
                assert evicted.link is not None
                self._close_later(evicted.link)
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PoolExhausted(f"all {self.max_links} BLE links are busy")
            freed: asyncio.Future[None] = loop.create_future()
            self._freed.append(freed)
            try:
                await asyncio.wait_for(freed, remaining)
            except TimeoutError:
                raise PoolExhausted(f"all {self.max_links} BLE links are busy") from None
            finally:
                if freed in self._freed:
                    self._freed.remove(freed)
        # No await between the check above and this line: the slot is ours.
        self._slots[device_id] = _Slot(None, True, time.monotonic())

    def _wake(self) -> None:
        freed, self._freed = self._freed, []
        for future in freed:
            if not future.done():
                future.set_result(None)

    # ------------------------------------------------------------------ link callbacks

    def _deliver(self, device_id: DeviceId, frame: bytes) -> None:
        try:
            self.on_event(device_id, frame)
        except Exception:
            logger.exception("event sink failed")

    def _lost(self, device_id: DeviceId, link: FrameLink, reason: int) -> None:
        slot = self._slots.get(device_id)
        if slot is not None and slot.link is link:
            if slot.busy:
                slot.link = None  # keep the reservation: the busy request handles the loss
            else:
                del self._slots[device_id]
            logger.info("link to %s lost (HCI reason 0x%02X)", device_id, reason)
            self._wake()

    def _close_later(self, link: FrameLink) -> None:
        task = asyncio.create_task(link.close(), name=f"bgw-close-{link.address}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # ------------------------------------------------------------------ idle timeout

    def sweep(self, now: float | None = None) -> list[DeviceId]:
        """Close links idle for ``idle_timeout_s``; returns their ids."""
        now = time.monotonic() if now is None else now
        idle = [
            device_id
            for device_id, slot in self._slots.items()
            if not slot.busy
            and slot.link is not None
            and now - slot.last_used >= self.idle_timeout_s
        ]
        for device_id in idle:
            slot = self._slots.pop(device_id)
            assert slot.link is not None
            logger.info("closing the idle link to %s", device_id)
            self._close_later(slot.link)
        if idle:
            self._wake()
        return idle

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.idle_timeout_s / SWEEPS_PER_IDLE_TIMEOUT)
            self.sweep()
