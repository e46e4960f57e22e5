"""The BSLD on a real BLE stack: one :class:`SimulatedLock` as a bumble peripheral.

Theory of operation
-------------------
:class:`LockPeripheral` is the lock's radio firmware. It owns one powered bumble Device
and does, in this order of importance:

- **frames**: a write to the maker's frame-in characteristic goes to
  :meth:`SimulatedLock.handle_frame`; the sealed answer is notified on frame-out *before*
  the ATT Write Response, and the events that frame caused are held until after it
  (heslock.ble.central explains why: a relay must tell answers from events without a key).
  A write of any length reaches the lock, which answers a wrong length with BAD_LENGTH;
- **events**: the lock's sealed EVENT frames are notified in order to the connected
  central when it has subscribed; otherwise they only stay in the lock's log (the RAS
  reads the log with QUERY frames);
- **advertising**: connectable, with the flags, the manufacturer data of
  :mod:`heslock.protocol.advert` and the local name; refreshed whenever what it shows
  changes (bound flag, battery, registration window). The lock keeps advertising while a
  central is connected, so scanners keep seeing its state;
- **one central at a time**: a second central that connects is disconnected at once with
  HCI reason 0x0D ("limited resources"), as a single-link lock radio would refuse it;
- **idle disconnect**: a central that writes nothing for ``idle_disconnect_s`` is
  disconnected (HCI reason 0x13), so a forgotten phone cannot block the gateway;
- **timers**: one task sleeps until :meth:`SimulatedLock.next_deadline` or the idle
  deadline, whichever is first, then calls :meth:`SimulatedLock.tick`.

Address. The lock advertises with its 6-byte device id (the DDMS id) as its LE random
address, so a scanner finds the same id in the address and in the manufacturer data. On
a real controller a random *static* address needs its two top bits set (Core Spec Vol 6,
Part B, 1.3.2.1); ids from heslock.bsld.manufacturer do not guarantee that, so on
hardware the manufacturer data, not the address, is the id to trust.

BLE versions. The maker profile's ``max_mtu`` is the lock's ATT MTU limit (4.0: 23, so an
MTU exchange keeps the default; 4.2: 185; 5.0: 247). A 5.0 lock allows the 2M PHY as its
default PHY preference. bumble's virtual controller does not implement LE Set PHY, LE Data
Length Extension, connection-parameter negotiation, channel selection, radio timing or
the supervision timeout (the hub emulates the last on socket loss): on a virtual link all
makers run on an ideal 1M radio that differs only in MTU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from bumble import hci
from bumble.device import Connection, Device

from heslock.ble.gatt import FrameService
from heslock.bsld.lock import SimulatedLock
from heslock.errors import UsageError
from heslock.protocol.advert import LockAdvert, advertising_data, local_name
from heslock.protocol.makers import MakerProfile

logger = logging.getLogger(__name__)

#: Real locks advertise every 100 ms .. 1 s; 100 ms keeps connects quick in the simulator.
DEFAULT_ADVERTISING_INTERVAL_MS: Final = 100.0
#: Events queued for a slow central before the oldest is dropped (it stays in the log).
MAX_QUEUED_EVENTS: Final = 64
#: Floor between two timer runs: a deadline in the past must not spin the loop.
MIN_TIMER_STEP_S: Final = 0.01
#: Any HCI exchange of the peripheral (advertising, disconnect) must finish in this time.
HCI_TIMEOUT_S: Final = 5.0
#: A healthy link disconnects within a few connection events; a radio that died never
#: answers, and stop() must not hang on it.
DISCONNECT_TIMEOUT_S: Final = 1.0
#: HCI reasons (Core Spec Vol 1, Part F).
REFUSE_REASON: Final = hci.HCI_CONNECTION_REJECTED_DUE_TO_LIMITED_RESOURCES_ERROR
IDLE_REASON: Final = hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR


class LockPeripheral:
    """One simulated lock on the air (module docstring). ``device`` is not yet powered."""

    def __init__(
        self,
        lock: SimulatedLock,
        maker: MakerProfile,
        device: Device,
        *,
        idle_disconnect_s: float | None = None,
        advertising_interval_ms: float = DEFAULT_ADVERTISING_INTERVAL_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        identity = lock.identity
        if identity.maker != maker.name:
            raise UsageError(f"lock {identity.device_id} is made by {identity.maker!r}")
        if identity.ble_version != maker.ble_version.value:
            raise UsageError(
                f"lock {identity.device_id} has BLE {identity.ble_version}, "
                f"{maker.name} radios are BLE {maker.ble_version.value}"
            )
        self.lock = lock
        self.maker = maker
        self.device = device
        self.model_code = maker.model(identity.model).code
        self.name = local_name(maker.name_prefix, identity.device_id)
        self.idle_disconnect_s = (
            idle_disconnect_s if idle_disconnect_s is not None else lock.config.idle_disconnect_s
        )
        self.advertising_interval_ms = advertising_interval_ms
        self.clock = clock
        self.service = FrameService(maker, self._on_frame)
        self.central: Connection | None = None
        self._last_activity = 0.0
        self._holding: list[bytes] | None = None
        self._events: asyncio.Queue[bytes] = asyncio.Queue(MAX_QUEUED_EVENTS)
        self._wake = asyncio.Event()
        self._advert_lock = asyncio.Lock()
        self._advertised: bytes | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        self.refused_connections = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.service.install(self.device)
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)
        self.lock.add_event_listener(self._on_lock_event)
        await asyncio.wait_for(self.device.power_on(), HCI_TIMEOUT_S)
        if self.maker.phy_2m and self.device.host.supports_command(
            hci.HCI_LE_SET_DEFAULT_PHY_COMMAND
        ):
            phys = [hci.Phy.LE_1M, hci.Phy.LE_2M]
            await asyncio.wait_for(self.device.set_default_phy(phys, phys), HCI_TIMEOUT_S)
        self._running = True
        await self._advertise()
        self._spawn(self._run_timers(), "timers")
        self._spawn(self._send_events(), "events")
        logger.info("lock %s advertising as %s", self.lock.identity.device_id, self.name)

    async def stop(self, *, graceful: bool = True) -> None:
        """Disconnect the central, stop advertising, end every task (idempotent).

        ``graceful=False`` when the radio is already gone (its transport closed): only the
        tasks are ended, nothing waits on a controller that will never answer.
        """
        if not self._running:
            return
        self._running = False
        self.lock.remove_event_listener(self._on_lock_event)
        self.device.remove_listener(Device.EVENT_CONNECTION, self._on_connection)
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        central = self.central
        if not graceful:
            return
        if central is not None:
            await self._disconnect(central, IDLE_REASON)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.device.stop_advertising(), HCI_TIMEOUT_S)

    def poke(self) -> None:
        """Something changed outside a frame (a button): re-plan timers, refresh the advert."""
        self._wake.set()

    def press(self, action: Callable[[float], None]) -> None:
        """Run a physical action ``action(host_time)`` on the lock, then :meth:`poke`."""
        try:
            action(self.clock())
        finally:
            self.poke()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=f"bsld-{self.name}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "lock %s: task %s failed", self.name, task.get_name(), exc_info=task.exception()
            )

    # ------------------------------------------------------------------ advertising

    def advert(self) -> LockAdvert:
        status = self.lock.status(self.clock())
        identity = self.lock.identity
        return LockAdvert(
            company_id=self.maker.company_id,
            device_id=identity.device_id,
            model_code=self.model_code,
            ble_version=self.maker.ble_version,
            profile=identity.profile,
            bound=status.bound,
            battery=status.battery,
            registration_open=status.registration_open,
        )

    def _advert_changed(self) -> bool:
        return advertising_data(self.advert(), self.name) != self._advertised

    async def _advertise(self) -> None:
        """Advertise the current state unless already advertising exactly that.

        A data change on a running advertising set only replaces its data: stopping and
        recreating the set would open a gap in which a central that just saw the old
        advertisement sends CONNECT_IND to nobody (on the virtual link its controller
        then believes in a connection the lock never accepted). After a connection
        ended the set, the same set is enabled again.
        """
        async with self._advert_lock:
            data = advertising_data(self.advert(), self.name)
            if data == self._advertised and self.device.is_advertising:
                return
            adv_set = self.device.legacy_advertising_set
            if adv_set is not None and self._advertised is not None:
                if data != self._advertised:
                    await asyncio.wait_for(adv_set.set_advertising_data(data), HCI_TIMEOUT_S)
                    self.device.advertising_data = data
                    self._advertised = data
                if not adv_set.enabled:
                    await asyncio.wait_for(adv_set.start(), HCI_TIMEOUT_S)
                return
            await asyncio.wait_for(
                self.device.start_advertising(
                    advertising_data=data,
                    scan_response_data=b"",
                    advertising_interval_min=self.advertising_interval_ms,
                    advertising_interval_max=self.advertising_interval_ms,
                ),
                HCI_TIMEOUT_S,
            )
            self._advertised = data

    # ------------------------------------------------------------------ connections

    def _on_connection(self, connection: Connection) -> None:
        if connection.role != hci.Role.PERIPHERAL:
            return
        if self.central is not None or not self._running:
            self.refused_connections += 1
            logger.info("lock %s: refusing a second central %s", self.name, connection.peer_address)
            self._spawn(self._disconnect(connection, REFUSE_REASON), "refuse")
            return
        self.central = connection
        self._last_activity = self.clock()
        connection.on(
            Connection.EVENT_DISCONNECTION,
            lambda reason: self._on_disconnection(connection, reason),
        )
        logger.info("lock %s: central %s connected", self.name, connection.peer_address)
        self.poke()

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        self.service.forget(connection)
        if connection is not self.central:
            return
        self.central = None
        while not self._events.empty():  # nobody to tell: the log keeps them
            self._events.get_nowait()
        self.lock.on_disconnect()
        logger.info("lock %s: central left (reason 0x%02X)", self.name, reason)
        self.poke()

    async def _disconnect(self, connection: Connection, reason: int) -> None:
        try:
            await asyncio.wait_for(connection.disconnect(reason=reason), DISCONNECT_TIMEOUT_S)
        except Exception as exc:  # already gone, or the radio is closing  # noqa: BLE001
            logger.debug("lock %s: disconnect: %s", self.name, exc)

    # ------------------------------------------------------------------ frames and events

    async def _on_frame(self, connection: Connection, data: bytes) -> None:
        if connection is not self.central:
            return  # a refused central's last writes: it is being disconnected
        now = self.clock()
        self._last_activity = now
        self._holding = []
        try:
            answer = self.lock.handle_frame(data, now)
        finally:
            held, self._holding = self._holding, None
        await self.service.notify(self.device, connection, answer)
        # Queued only now: the sender task cannot run before bumble sends the Write
        # Response, which follows this coroutine's return without another await.
        for event in held:
            self._queue_event(event)
        self.poke()

    def _on_lock_event(self, frame: bytes) -> None:
        if self._holding is not None:
            self._holding.append(frame)
            return
        self._queue_event(frame)

    def _queue_event(self, frame: bytes) -> None:
        central = self.central
        if central is None or not self.service.is_subscribed(central):
            logger.debug("lock %s: no subscribed central, event kept in the log", self.name)
            return
        if self._events.full():
            self._events.get_nowait()
            logger.warning("lock %s: central too slow, oldest queued event dropped", self.name)
        self._events.put_nowait(frame)

    async def _send_events(self) -> None:
        while True:
            frame = await self._events.get()
            central = self.central
            if central is None:
                continue
            try:
                await self.service.notify(self.device, central, frame)
            except Exception:  # a dying link must not end the sender
                logger.info("lock %s: event notification failed", self.name, exc_info=True)

    # ------------------------------------------------------------------ timers

    def _next_wakeup(self, now: float) -> float | None:
        deadlines = [self.lock.next_deadline(now)]
        if self.central is not None:
            deadlines.append(self._last_activity + self.idle_disconnect_s)
        pending = [d for d in deadlines if d is not None]
        return min(pending) if pending else None

    async def _run_timers(self) -> None:
        while self._running:
            now = self.clock()
            wakeup = self._next_wakeup(now)
            delay = None if wakeup is None else max(MIN_TIMER_STEP_S, wakeup - now)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the event is set, and stop() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            # Cleared after waking, before the work: a poke during the work (while the
            # advertising update awaits the controller) makes the next wait return at once.
            self._wake.clear()
            now = self.clock()
            self.lock.tick(now)
            central = self.central
            if central is not None and now - self._last_activity >= self.idle_disconnect_s:
                logger.info("lock %s: central idle, disconnecting", self.name)
                self._last_activity = now  # one attempt per idle period
                self._spawn(self._disconnect(central, IDLE_REASON), "idle")
            if self._advert_changed() or not self.device.is_advertising:
                try:
                    await self._advertise()
                except Exception:  # keep the lock alive; retried on the next change
                    logger.exception("lock %s: advertising failed", self.name)
