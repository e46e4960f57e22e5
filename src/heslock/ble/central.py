"""The central side of the frame service, shared by the BGW and the RAC.

:class:`FrameCentral` owns one radio (a powered-on bumble Device) and connects to locks
**one at a time** (FIELD-NOTES.md: two concurrent ``connect()`` calls fail with
COMMAND_DISALLOWED and can leave the device broken); scanning takes the same lock. Traffic
on established links runs concurrently. :class:`FrameLink` is one connection to one lock:
it discovers the maker's service by UUID, subscribes to frame-out, raises the ATT MTU where
the maker allows it, and relays opaque frames (it never holds a key).

Every GATT call is wrapped in a timeout and raced against the disconnection, so a dead
peer costs at most that timeout, not bumble's 30 s, and pending work fails at once with
:class:`~heslock.ble.errors.LinkLost` when the link drops.

Telling an answer from an event
-------------------------------
Answers and lock events share the notify characteristic, and a relay cannot decrypt them.
heslock's BSLD (heslock.bsld.peripheral) notifies the answer to a frame *before* it
completes the ATT Write Request, and holds the events that frame caused until after it.
So :meth:`FrameLink.request` takes the **last notification received before the Write
Response** as the answer; earlier ones are events that were already on the way. A lock that
answers only after the Write Response (some real firmware does) still works: then the
first notification after it is the answer. Every other notification goes to the link's
event listeners. The RAS, which holds the key, verifies every answer anyway.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from bumble import att, core, hci
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy

from heslock.ble.errors import BleError, BleTimeout, LinkLost, ServiceNotFound
from heslock.protocol.advert import DiscoveredLock, InvalidAdvert, find_lock_advert
from heslock.protocol.ids import DeviceId
from heslock.protocol.makers import MakerProfile

logger = logging.getLogger(__name__)

#: Connecting needs the lock's next advertisement; real locks advertise every 0.1..1 s.
DEFAULT_CONNECT_TIMEOUT_S: Final = 5.0
#: Any single GATT call (discovery, subscribe, MTU, write). bumble's own is 30 s.
DEFAULT_GATT_TIMEOUT_S: Final = 5.0
#: A link layer gives up on a connection the peer never confirmed after six connection
#: intervals; we see it as silence on the first GATT request and connect once more.
ESTABLISH_TIMEOUT_S: Final = 2.0
CONNECT_ATTEMPTS: Final = 2
#: From a write to the lock's answer (the lock executes before answering: motor time).
DEFAULT_ANSWER_TIMEOUT_S: Final = 5.0

_T = TypeVar("_T")
Listener = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One lock seen while scanning: its LE address and what it advertised."""

    address: str
    found: DiscoveredLock
    rssi: int


class FrameCentral:
    """A central radio for the frame service (BGW, RAC). ``device`` must be powered on."""

    def __init__(
        self,
        device: Device,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        gatt_timeout_s: float = DEFAULT_GATT_TIMEOUT_S,
        phy_update: bool = False,
    ) -> None:
        self.device = device
        self.connect_timeout_s = connect_timeout_s
        self.gatt_timeout_s = gatt_timeout_s
        #: Ask BLE 5.0 locks for the 2M PHY. Off for virtual controllers: bumble's virtual
        #: controller does not implement LE Set PHY (the command times out after 10 s).
        self.phy_update = phy_update
        self._radio_lock = asyncio.Lock()
        self._links: dict[str, FrameLink] = {}

    async def scan_for(
        self,
        timeout_s: float,
        *,
        company_ids: frozenset[int] | None = None,
        device_id: DeviceId | None = None,
        until: Callable[[ScanResult], bool] | None = None,
    ) -> ScanResult:
        """Scan until a lock matching ``device_id`` / ``until`` advertises; BleTimeout if none."""
        loop = asyncio.get_running_loop()
        hit: asyncio.Future[ScanResult] = loop.create_future()

        def on_advertisement(advertisement: Advertisement) -> None:
            result = _scan_result(advertisement, company_ids)
            if result is None or hit.done():
                return
            if device_id is not None and result.found.advert.device_id != device_id:
                return
            if until is not None and not until(result):
                return
            hit.set_result(result)

        async with self._radio_lock:
            self.device.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
            try:
                await asyncio.wait_for(self.device.start_scanning(), self.gatt_timeout_s)
                try:
                    return await asyncio.wait_for(hit, timeout_s)
                except TimeoutError:
                    raise BleTimeout(f"no matching lock advertised within {timeout_s} s") from None
                finally:
                    await asyncio.wait_for(self.device.stop_scanning(), self.gatt_timeout_s)
            finally:
                self.device.remove_listener(Device.EVENT_ADVERTISEMENT, on_advertisement)

    async def connect(self, address: str, maker: MakerProfile) -> FrameLink:
        """Connect to the lock at LE ``address`` and set up its frame service."""
        existing = self._links.get(address)
        if existing is not None and not existing.closed:
            return existing
        attempt = 1
        while True:
            link = FrameLink(self, await self._connect_le(address), maker)
            try:
                await link.setup()
            except BleTimeout:
                await link.close()
                if link.established or attempt >= CONNECT_ATTEMPTS:
                    raise
                attempt += 1
                logger.info("%s: connection not established, connecting again", address)
                continue
            except BaseException:
                await link.close()
                raise
            self._links[address] = link
            return link

    async def _connect_le(self, address: str) -> Connection:
        async with self._radio_lock:
            try:
                return await asyncio.wait_for(
                    self.device.connect(hci.Address(address), timeout=self.connect_timeout_s),
                    self.connect_timeout_s + self.gatt_timeout_s,
                )
            except (TimeoutError, core.TimeoutError):
                raise BleTimeout(f"connecting to {address} timed out") from None
            except (hci.HCI_Error, core.BaseBumbleError) as exc:
                raise BleError(f"connecting to {address} failed: {exc}") from exc

    def forget(self, link: FrameLink) -> None:
        if self._links.get(link.address) is link:
            del self._links[link.address]

    async def close(self) -> None:
        """Disconnect every link."""
        for link in list(self._links.values()):
            await link.close()


def _scan_result(
    advertisement: Advertisement, company_ids: frozenset[int] | None
) -> ScanResult | None:
    try:
        found = find_lock_advert(bytes(advertisement.data), company_ids)
    except InvalidAdvert:
        return None
    return ScanResult(str(advertisement.address), found, int(advertisement.rssi))


class FrameLink:
    """One connection to one lock's frame service (see the module docstring)."""

    def __init__(self, central: FrameCentral, connection: Connection, maker: MakerProfile) -> None:
        self.central = central
        self.connection = connection
        self.maker = maker
        self.address = str(connection.peer_address)
        self.peer = Peer(connection)
        self._timeout = central.gatt_timeout_s
        self._lost: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._request_lock = asyncio.Lock()
        self._listeners: list[Listener] = []
        self._disconnect_listeners: list[Callable[[int], None]] = []
        self._in_write = False
        self._received: list[tuple[bool, bytes]] = []
        self._awaiting: asyncio.Future[bytes] | None = None
        self._frame_in: CharacteristicProxy[bytes] | None = None
        self._frame_out: CharacteristicProxy[bytes] | None = None
        #: The peer answered a GATT request: the connection exists on both sides.
        self.established = False
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)

    # ----------------------------------------------------------------- state

    @property
    def closed(self) -> bool:
        return self._lost.done()

    @property
    def mtu(self) -> int:
        return int(self.connection.att_mtu)

    async def wait_disconnected(self, timeout_s: float) -> int:
        """Wait for the link to drop; returns the HCI reason. BleTimeout if it does not."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._lost), timeout_s)
        except TimeoutError:
            raise BleTimeout(f"{self.address} still connected after {timeout_s} s") from None

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(frame)`` for every notification that is not an answer (events)."""
        self._listeners.append(listener)

    def add_disconnect_listener(self, listener: Callable[[int], None]) -> None:
        self._disconnect_listeners.append(listener)

    def _on_disconnection(self, reason: int) -> None:
        if not self._lost.done():
            self._lost.set_result(int(reason))
        if self._awaiting is not None and not self._awaiting.done():
            self._awaiting.set_exception(LinkLost(f"{self.address} disconnected"))
        self.central.forget(self)
        for listener in self._disconnect_listeners:
            listener(int(reason))

    async def _call(self, awaitable: Awaitable[_T], what: str, limit_s: float | None = None) -> _T:
        """Await a bumble call with a timeout, failing at once if the link drops."""
        if self.closed:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never started: close it rather than leak it
            raise LinkLost(f"{self.address} is disconnected")
        task: asyncio.Future[_T] = asyncio.ensure_future(awaitable)
        waiters: set[asyncio.Future[Any]] = {task, self._lost}
        done, _ = await asyncio.wait(
            waiters,
            timeout=self._timeout if limit_s is None else limit_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if task in done:
            if task.cancelled():  # bumble cancels pending requests when the link drops
                raise LinkLost(f"{self.address}: {what} cancelled by the stack")
            try:
                return task.result()
            except att.ATT_Error as exc:
                raise BleError(f"{what}: the lock answered {exc}") from exc
            except (core.TimeoutError, TimeoutError):
                raise BleTimeout(f"{what} timed out") from None
            except core.BaseBumbleError as exc:
                raise BleError(f"{what} failed: {exc}") from exc
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self.closed:
            raise LinkLost(f"{self.address} disconnected during {what}")
        raise BleTimeout(f"{what} timed out")

    # ----------------------------------------------------------------- setup

    async def setup(self) -> None:
        maker = self.maker
        services = await self._call(
            self.peer.discover_service(maker.service_uuid),
            "discovery",
            min(ESTABLISH_TIMEOUT_S, self._timeout),
        )
        self.established = True
        if not services:
            raise ServiceNotFound(f"{self.address} has no {maker.name} frame service")
        characteristics = await self._call(
            services[0].discover_characteristics(), "characteristic discovery"
        )
        by_uuid = {str(c.uuid).lower(): c for c in characteristics}
        self._frame_in = by_uuid.get(maker.frame_in_uuid)
        self._frame_out = by_uuid.get(maker.frame_out_uuid)
        if self._frame_in is None or self._frame_out is None:
            raise ServiceNotFound(f"{self.address}: frame characteristics missing")
        await self._call(self.peer.subscribe(self._frame_out, self._on_notification), "subscribe")
        if maker.mtu_negotiable:
            await self._call(self.peer.request_mtu(maker.max_mtu), "MTU exchange")
        if maker.phy_2m and self.central.phy_update:
            try:
                await self._call(
                    self.connection.set_phy(tx_phys=[hci.Phy.LE_2M], rx_phys=[hci.Phy.LE_2M]),
                    "PHY update",
                )
            except BleError as exc:  # the 2M PHY is an optimisation, 1M still works
                logger.info("%s: staying on the 1M PHY (%s)", self.address, exc)
        logger.info("%s: %s frame service ready, MTU %d", self.address, maker.name, self.mtu)

    # ----------------------------------------------------------------- traffic

    def _on_notification(self, value: bytes) -> None:
        frame = bytes(value)
        if self._in_write:
            pending = self.connection.gatt_client.pending_response
            before_response = pending is not None and not pending.done()
            self._received.append((before_response, frame))
            return
        if self._awaiting is not None and not self._awaiting.done():
            self._awaiting.set_result(frame)
            return
        self._deliver(frame)

    def _deliver(self, frame: bytes) -> None:
        for listener in self._listeners:
            try:
                listener(frame)
            except Exception:  # a listener's bug must not break the link
                logger.exception("frame listener failed")

    async def send(self, frame: bytes, *, with_response: bool = True) -> None:
        """Write a frame without waiting for an answer (malformed-traffic tests, relays)."""
        assert self._frame_in is not None, "setup() first"
        async with self._request_lock:
            await self._call(
                self._frame_in.write_value(frame, with_response=with_response), "write"
            )

    async def write_to(self, handle: int, value: bytes) -> None:
        """Write any attribute handle (tests of how a lock refuses the wrong one)."""
        async with self._request_lock:
            await self._call(self.peer.write_value(handle, value, with_response=True), "write")

    @property
    def frame_out_handle(self) -> int:
        assert self._frame_out is not None, "setup() first"
        return int(self._frame_out.handle)

    async def request(self, frame: bytes, timeout_s: float = DEFAULT_ANSWER_TIMEOUT_S) -> bytes:
        """Write ``frame`` (with response) and return the lock's answer (module docstring)."""
        assert self._frame_in is not None, "setup() first"
        async with self._request_lock:
            self._received = []
            self._in_write = True
            try:
                await self._call(self._frame_in.write_value(frame, with_response=True), "write")
            finally:
                self._in_write = False
                received, self._received = self._received, []
            before = [f for early, f in received if early]
            after = [f for early, f in received if not early]
            if before:
                answer, events = before[-1], before[:-1] + after
            elif after:
                answer, events = after[0], after[1:]
            else:
                self._awaiting = asyncio.get_running_loop().create_future()
                try:
                    answer = await self._call(self._awaiting, "answer", timeout_s)
                finally:
                    self._awaiting = None
                events = []
            for event in events:
                self._deliver(event)
            return answer

    async def close(self) -> None:
        """Disconnect (idempotent); waits for the disconnection within the GATT timeout."""
        if self.closed:
            return
        try:
            await asyncio.wait_for(self.connection.disconnect(), self._timeout)
        except (TimeoutError, core.BaseBumbleError, hci.HCI_Error) as exc:
            logger.info("%s: disconnect: %s", self.address, exc)
        finally:
            self.central.forget(self)
