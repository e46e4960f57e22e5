"""Virtual radios: bumble Devices on one in-process ``LocalLink``.

The pattern of bumble's own tests (``bumble/testing/test_utils.py``): every device gets
its own virtual :class:`~bumble.controller.Controller` on a shared
:class:`~bumble.link.LocalLink`, and that controller is both the HCI source and (through an
``AsyncPipeSink``) the HCI sink of the device's :class:`~bumble.host.Host`. Advertising,
connections, L2CAP, ATT and GATT then run through the real bumble stack.

:func:`unplug` takes a controller off its link the way a radio disappears: its
advertising stops and every peer connected to it gets a disconnection (the virtual
controller emulates no supervision timeout, so without this a peer would only notice
after a 30 s GATT timeout; FIELD-NOTES.md, bumble).
"""

from __future__ import annotations

import logging
from typing import Final

from bumble import hci, ll
from bumble.controller import Controller
from bumble.device import Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

logger = logging.getLogger(__name__)

#: What peers of an unplugged radio are told (HCI error 0x08, Core Spec Vol 1, Part F):
#: the same reason a real peer reports when the supervision timeout expires.
SUPERVISION_TIMEOUT_REASON: Final = hci.HCI_CONNECTION_TIMEOUT_ERROR


def unplug(controller: Controller, link: LocalLink) -> None:
    """Take ``controller`` off ``link``: stop its advertising, disconnect its peers."""
    controller.le_legacy_advertiser.stop()
    for advertising_set in list(controller.advertising_sets.values()):
        advertising_set.stop()
    controller.le_scan_enable = False
    for connection in list(controller.le_connections.values()):
        try:
            link.send_ll_control_pdu(
                connection.self_address,
                connection.peer_address,
                ll.TerminateInd(error_code=SUPERVISION_TIMEOUT_REASON),
            )
        except Exception:  # the peer went too; nothing to tell  # noqa: BLE001
            logger.debug("peer %s already gone", connection.peer_address)
    controller.le_connections.clear()
    if controller in link.controllers:
        link.remove_controller(controller)


class VirtualLink:
    """One in-process radio medium; :meth:`create_device` adds a radio to it."""

    def __init__(self) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]  # untyped in bumble
        self._controllers: dict[int, Controller] = {}

    def create_device(self, name: str, address: str) -> Device:
        """A bumble Device (not yet powered on) with its own virtual controller.

        ``address`` is the LE random (static) address, ``"F0:11:22:33:44:55"``.
        """
        controller = Controller(name, link=self.link)
        host = Host(controller, AsyncPipeSink(controller))
        device = Device(name=name, address=hci.Address(address), host=host)
        self._controllers[id(device)] = controller
        return device

    def controller_of(self, device: Device) -> Controller:
        return self._controllers[id(device)]

    def remove_device(self, device: Device) -> None:
        """Unplug the device's radio (idempotent)."""
        controller = self._controllers.pop(id(device), None)
        if controller is not None:
            unplug(controller, self.link)

    def close(self) -> None:
        for key in list(self._controllers):
            unplug(self._controllers.pop(key), self.link)
