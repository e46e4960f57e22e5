"""The BGW's router: frame requests from the RAS to locks and back, lock events up.

Control flow (ARCHITECTURE.md): the RAS seals a frame under the lock's key and sends it in
an IQ to the gateway that sees the lock; the gateway writes it to the lock over BLE and
returns the lock's sealed answer. The gateway never holds a key and never decrypts: it
relays opaque 16/20-byte frames and checks only their length.

Ordering and parallelism. Each lock has a *lane*: a FIFO of requests and at most one
worker task, started when the first request arrives and ended when the lane is empty. A
request is appended synchronously when its IQ arrives, so frames to one lock are written
in the order the RAS sent them (the lock's replay window expects increasing sequence
numbers), while frames to different locks run in parallel on their own links.

Bounds: :data:`MAX_QUEUE_PER_LOCK` requests per lane (more is ``lock-busy``) and
:data:`MAX_PENDING` in the whole gateway (more is ``gateway-overloaded``).

Retries. A write is retried only with the **same bytes**, when the link dropped or the
lock stayed silent, as long as the request's deadline allows and at most
:data:`MAX_WRITE_ATTEMPTS` times. A lock that already executed the frame answers the
duplicate from its replay cache without acting again (heslock.protocol.acceptance), so a
retry never actuates twice; the gateway never makes a new frame.

Failures map to the application conditions of :mod:`heslock.xmpp.lockns`::

    lock not in the scan table (after a short grace)   lock-not-in-range
    lane full                                          lock-busy
    gateway full / no BLE link slot in time            gateway-overloaded
    connect or answer timed out                        ble-timeout
    link dropped on the last attempt                   link-lost
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from xml.etree.ElementTree import Element

from heslock.bgw.errors import PoolExhausted, RouteFailure
from heslock.bgw.pool import LinkPool
from heslock.bgw.scanner import Scanner, Sighting
from heslock.ble.errors import BleError, BleTimeout, LinkLost
from heslock.protocol.ids import DeviceId
from heslock.xmpp.errors import StanzaErrorCondition
from heslock.xmpp.lockns import (
    FRAME_SIZES,
    MAX_RSSI,
    MIN_RSSI,
    FrameRequest,
    FrameResult,
    GatewayStatus,
    LockCondition,
    LockEvent,
    LockNsError,
)

logger = logging.getLogger(__name__)

#: Frames waiting for one lock. A person presses "unlock" a few times at most; dozens
#: queued for one lock means the RAS retries blindly, and each would wait for the others.
MAX_QUEUE_PER_LOCK: Final = 16
#: Frames in the whole gateway (queued or running): 10 links x a full lane, with margin.
MAX_PENDING: Final = 256
#: Writes of one frame: the first and one retry of the same bytes.
MAX_WRITE_ATTEMPTS: Final = 2
#: A lock missing from the scan table may just not have advertised since the gateway
#: started: wait this long (locks advertise every 0.1..1 s) before "not in range".
DISCOVERY_GRACE_S: Final = 1.5

EventSender = Callable[[LockEvent], None]


class _Retry(Exception):
    """This attempt failed in a way another write of the same bytes may fix."""

    def __init__(self, *, lost: bool) -> None:
        super().__init__("retry")
        self.lost = lost


@dataclass(slots=True)
class _Job:
    request: FrameRequest
    future: asyncio.Future[bytes]


@dataclass(slots=True)
class _Lane:
    jobs: deque[_Job] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None


class Router:
    """Frame requests to lanes to links (module docstring)."""

    def __init__(self, scanner: Scanner, pool: LinkPool, send_event: EventSender) -> None:
        self.scanner = scanner
        self.pool = pool
        self.send_event = send_event
        self._lanes: dict[DeviceId, _Lane] = {}
        self._pending = 0
        self._running = 0
        self.writes = 0
        self.retries = 0

    # ------------------------------------------------------------------ the IQ side

    async def handle_frame(self, payload: Element) -> Element:
        """An IQ ``<frame/>`` payload in, the result payload out; raises RouteFailure."""
        try:
            request = FrameRequest.from_element(payload)
        except LockNsError as exc:
            raise RouteFailure(None, str(exc)) from None
        answer = await self.submit(request)
        return FrameResult(request.lock, answer).element()

    def submit(self, request: FrameRequest) -> asyncio.Future[bytes]:
        """Queue ``request`` on its lock's lane (synchronously: order is arrival order)."""
        if self._pending >= MAX_PENDING:
            raise RouteFailure(
                LockCondition.GATEWAY_OVERLOADED, f"{MAX_PENDING} frames already pending"
            )
        lane = self._lanes.get(request.lock)
        if lane is None:
            lane = self._lanes[request.lock] = _Lane()
        if len(lane.jobs) >= MAX_QUEUE_PER_LOCK:
            raise RouteFailure(
                LockCondition.LOCK_BUSY, f"{MAX_QUEUE_PER_LOCK} frames already queued"
            )
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        lane.jobs.append(_Job(request, future))
        self._pending += 1
        if lane.worker is None:
            lane.worker = asyncio.create_task(
                self._drain(request.lock, lane), name=f"bgw-lane-{request.lock}"
            )
        return future

    def status(self) -> GatewayStatus:
        return GatewayStatus(
            links=len(self.pool.live),
            max_links=self.pool.max_links,
            queued=self._pending - self._running,
            in_flight=self._running,
            locks_in_range=len(self.scanner),
        )

    async def close(self) -> None:
        """Fail every queued request and end every lane worker."""
        workers = [lane.worker for lane in self._lanes.values() if lane.worker is not None]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for lane in self._lanes.values():
            for job in lane.jobs:
                if not job.future.done():
                    job.future.set_exception(
                        RouteFailure(LockCondition.GATEWAY_OVERLOADED, "the gateway is stopping")
                    )
        self._lanes.clear()

    # ------------------------------------------------------------------ lanes

    async def _drain(self, device_id: DeviceId, lane: _Lane) -> None:
        try:
            while lane.jobs:
                job = lane.jobs[0]
                self._running += 1
                try:
                    if not job.future.done():  # the IQ side may have given up
                        answer = await self._execute(job.request)
                        if not job.future.done():
                            job.future.set_result(answer)
                except RouteFailure as exc:
                    if not job.future.done():
                        job.future.set_exception(exc)
                except Exception as exc:
                    logger.exception("frame to %s failed unexpectedly", device_id)
                    if not job.future.done():
                        job.future.set_exception(
                            RouteFailure(
                                None, "gateway error", StanzaErrorCondition.INTERNAL_SERVER_ERROR
                            )
                        )
                    del exc
                finally:
                    self._running -= 1
                    self._pending -= 1
                    lane.jobs.popleft()
        finally:
            lane.worker = None
            if not lane.jobs and self._lanes.get(device_id) is lane:
                del self._lanes[device_id]

    async def _execute(self, request: FrameRequest) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_ms / 1000
        device_id = request.lock
        sighting = await self.scanner.wait_for(
            device_id, min(DISCOVERY_GRACE_S, deadline - loop.time())
        )
        if sighting is None:
            raise RouteFailure(LockCondition.LOCK_NOT_IN_RANGE, f"{device_id} is not in range")
        lost = False
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            if deadline - loop.time() <= 0:
                break
            if attempt > 1:
                self.retries += 1
                logger.info("%s: writing the same frame again (attempt %d)", device_id, attempt)
                sighting = self.scanner.get(device_id) or sighting
            try:
                answer = await self._write_once(request, sighting, deadline)
            except _Retry as retry:
                lost = retry.lost
                continue
            if len(answer) not in FRAME_SIZES:
                raise RouteFailure(
                    None,
                    f"the lock answered {len(answer)} bytes, not a frame",
                    StanzaErrorCondition.UNDEFINED_CONDITION,
                )
            return answer
        if lost:
            raise RouteFailure(
                LockCondition.LINK_LOST,
                f"the link to {device_id} dropped; the frame may have been executed",
            )
        raise RouteFailure(LockCondition.BLE_TIMEOUT, f"no answer from {device_id} in time")

    async def _write_once(
        self, request: FrameRequest, sighting: Sighting, deadline: float
    ) -> bytes:
        """One connect-and-write of ``request.frame``; :class:`_Retry` when worth another."""
        loop = asyncio.get_running_loop()
        device_id = request.lock
        try:
            link = await self.pool.acquire(
                device_id, sighting.address, sighting.maker, deadline - loop.time()
            )
        except PoolExhausted as exc:
            raise RouteFailure(LockCondition.GATEWAY_OVERLOADED, str(exc)) from None
        except BleTimeout as exc:
            raise RouteFailure(LockCondition.BLE_TIMEOUT, str(exc)) from None
        except BleError as exc:  # the lock dropped us while we set the link up
            logger.info("%s: connect failed: %s", device_id, exc)
            raise _Retry(lost=True) from None
        try:
            self.writes += 1
            return await link.request(request.frame, timeout_s=max(0.001, deadline - loop.time()))
        except LinkLost as exc:
            logger.info("%s: link lost during the write: %s", device_id, exc)
            raise _Retry(lost=True) from None
        except BleTimeout as exc:
            logger.info("%s: no answer: %s", device_id, exc)
            raise _Retry(lost=False) from None
        except BleError as exc:
            logger.info("%s: write failed: %s", device_id, exc)
            raise _Retry(lost=True) from None
        finally:
            self.pool.release(device_id)

    # ------------------------------------------------------------------ events

    def on_lock_frame(self, device_id: DeviceId, frame: bytes) -> None:
        """A notification that is not an answer: a lock event, relayed with the RSSI."""
        if len(frame) not in FRAME_SIZES:
            logger.warning("%s notified %d bytes: not a frame, dropped", device_id, len(frame))
            return
        sighting = self.scanner.get(device_id)
        rssi = None
        if sighting is not None:
            rssi = max(MIN_RSSI, min(MAX_RSSI, sighting.rssi))
        self.send_event(LockEvent(device_id, frame, rssi))
