"""The BGW assembled: radio, scanner, link pool, router and the RAS session.

::

    RAS (XMPP over TLS)                                            locks (BLE)
      frame IQ  --> RasClient --> Router --lane--> LinkPool --FrameLink--> BSLD
      result    <--           <--        <--answer--         <--notify--
      event msg <--           <-- Router.on_lock_frame <-- notifications that are not answers
      scan/status msg <-- Gateway._report (periodic, and on a Scanner change)

Reports. A change in the scan table (a lock appears, disappears, or flips its bound or
registration flag) schedules one scan report on the next loop turn, so a burst of changes
makes one report; every ``report_interval_s`` a periodic scan report and a status message
go out; both are sent again whenever a new session starts (the RAS may have restarted and
forgotten everything).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final
from xml.etree.ElementTree import Element

from bumble.device import Device

from heslock.bgw.config import GatewayConfig
from heslock.bgw.pool import LinkPool
from heslock.bgw.ras_client import RasClient
from heslock.bgw.router import Router
from heslock.bgw.scanner import Scanner
from heslock.ble.central import FrameCentral
from heslock.ble.transport import Radio, open_radio
from heslock.ble.virtual import VirtualLink
from heslock.protocol.ids import DeviceId
from heslock.xmpp.lockns import LockEvent, ScanReason, ScanReport

logger = logging.getLogger(__name__)

#: A connect needs the lock's next advertisement (every 0.1..1 s); the frame's own deadline
#: (timeout-ms) bounds the whole request anyway.
CONNECT_TIMEOUT_S: Final = 3.0
#: Any single GATT exchange with a lock.
GATT_TIMEOUT_S: Final = 3.0
HCI_TIMEOUT_S: Final = 5.0


class Gateway:
    """One BGW (module docstring). :meth:`run` until stopped, or start/stop by hand."""

    def __init__(self, config: GatewayConfig, *, local: VirtualLink | None = None) -> None:
        self.config = config
        self.local = local
        self.radio: Radio | None = None
        self.scanner: Scanner | None = None
        self.pool: LinkPool | None = None
        self.router: Router | None = None
        self.central: FrameCentral | None = None
        self.ras = RasClient(
            config.ras, self._handle_frame, self._status_element, on_online=self._on_online
        )
        self._ras_task: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._report_pending = False
        self.reports_sent = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the radio, start scanning, and start connecting to the RAS."""
        ble = self.config.ble
        try:
            self.radio = await open_radio(ble.link, "bgw", ble.address, local=self.local)
            device: Device = self.radio.device
            await asyncio.wait_for(device.power_on(), HCI_TIMEOUT_S)
            self.central = FrameCentral(
                device, connect_timeout_s=CONNECT_TIMEOUT_S, gatt_timeout_s=GATT_TIMEOUT_S
            )
            self.scanner = Scanner(
                device,
                ble.makers,
                scan_interval_s=ble.scan_interval_s,
                lost_after_s=ble.lost_after_s,
                on_change=self._scan_changed,
            )
            self.pool = LinkPool(
                self.central,
                max_links=ble.max_links,
                idle_timeout_s=ble.idle_link_timeout_s,
                on_event=self._on_lock_frame,
            )
            self.router = Router(self.scanner, self.pool, self._send_event)
            await self.scanner.start()
            self.pool.start()
        except BaseException:
            await self.stop()
            raise
        self._ras_task = asyncio.create_task(self.ras.run(), name="bgw-ras-session")
        self._reporter = asyncio.create_task(self._report_forever(), name="bgw-reports")
        logger.info(
            "gateway %s up: radio %s, max %d links", self.config.ras.jid, ble.link, ble.max_links
        )

    async def run(self) -> None:
        """Start, then serve until :meth:`stop` or a fatal RAS error (re-raised)."""
        await self.start()
        assert self._ras_task is not None
        try:
            await asyncio.shield(self._ras_task)
        finally:
            await self.stop()

    async def wait_ras_task(self) -> None:
        """Wait for the RAS session task to end (raises its fatal error)."""
        if self._ras_task is not None:
            await asyncio.shield(self._ras_task)

    async def stop(self) -> None:
        """Leave the RAS, fail pending requests, close links, stop the radio (idempotent)."""
        self.ras.stop()
        if self._ras_task is not None:
            with contextlib.suppress(Exception):
                await self._ras_task
            self._ras_task = None
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter
            self._reporter = None
        if self.router is not None:
            await self.router.close()
        if self.scanner is not None:
            await self.scanner.stop()
        if self.pool is not None:
            await self.pool.close()
        if self.radio is not None:
            radio, self.radio = self.radio, None
            await radio.close()

    # ------------------------------------------------------------------ the RAS side

    async def _handle_frame(self, payload: Element) -> Element:
        assert self.router is not None
        return await self.router.handle_frame(payload)

    def _status_element(self) -> Element:
        assert self.router is not None
        return self.router.status().element()

    def _send_event(self, event: LockEvent) -> None:
        self.ras.send_message(event.element())

    def _on_lock_frame(self, device_id: DeviceId, frame: bytes) -> None:
        if self.router is not None:
            self.router.on_lock_frame(device_id, frame)

    def _on_online(self) -> None:
        self.send_reports(ScanReason.PERIODIC)

    # ------------------------------------------------------------------ reports

    def _scan_changed(self) -> None:
        if self._report_pending:
            return
        self._report_pending = True
        asyncio.get_running_loop().call_soon(self._send_change_report)

    def _send_change_report(self) -> None:
        self._report_pending = False
        if self.scanner is not None:
            self.send_scan_report(ScanReason.CHANGE)

    def send_scan_report(self, reason: ScanReason) -> None:
        if self.scanner is None:
            return
        report = ScanReport.of([s.entry() for s in self.scanner.sightings()], reason)
        self.ras.send_message(report.element())
        self.reports_sent += 1

    def send_reports(self, reason: ScanReason) -> None:
        self.send_scan_report(reason)
        if self.router is not None:
            self.ras.send_message(self.router.status().element())

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.ble.report_interval_s)
            if self.ras.online:  # offline reports would be stale when delivered
                self.send_reports(ScanReason.PERIODIC)
