"""Opening a BLE radio for a ``--link`` specification.

Three kinds of link:

``local``
    a virtual radio on an in-process :class:`~heslock.ble.virtual.VirtualLink` (tests, and
    the benchmark's lock farm, where a gateway and its locks share one process);
``hub:HOST:PORT`` (or ``hub:unix:PATH``)
    a virtual radio on a :class:`~heslock.ble.hub.RadioHub` in another process, so locks,
    gateway and client can run as separate programs on one machine;
anything else
    a real HCI transport handed to bumble's ``open_transport`` unchanged: ``usb:0``,
    ``hci-socket:0`` (Linux, needs CAP_NET_ADMIN and the adapter down in BlueZ),
    ``serial:/dev/ttyUSB0,1000000``, ``tcp-client:HOST:PORT`` ... These are accepted and
    documented but cannot be tested here (no radio hardware).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Final

from bumble import hci
from bumble.device import Device
from bumble.transport import open_transport
from bumble.transport.common import Transport

from heslock.ble.errors import BleError, LinkSpecError
from heslock.ble.virtual import VirtualLink

logger = logging.getLogger(__name__)

#: bumble transport schemes we pass through as real HCI (the rest are refused early).
HCI_SCHEMES: Final = frozenset(
    {"usb", "pyusb", "hci-socket", "serial", "tcp-client", "unix", "vhci", "android-netsim"}
)


class LinkKind(Enum):
    LOCAL = "local"
    HUB = "hub"
    HCI = "hci"


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """A parsed ``--link`` value."""

    kind: LinkKind
    #: For HUB: the bumble transport to the hub; for HCI: the transport spec as given.
    transport: str = ""

    @property
    def is_virtual(self) -> bool:
        """Virtual controllers emulate neither PHY updates nor data-length changes."""
        return self.kind is not LinkKind.HCI

    @classmethod
    def parse(cls, text: str) -> LinkSpec:
        text = text.strip()
        if text == "local":
            return cls(LinkKind.LOCAL)
        if text.startswith("hub:"):
            rest = text.removeprefix("hub:")
            if rest.startswith("unix:") and len(rest) > len("unix:"):
                return cls(LinkKind.HUB, rest)
            host, sep, port = rest.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise LinkSpecError(f"{text!r}: expected hub:HOST:PORT or hub:unix:PATH")
            return cls(LinkKind.HUB, f"tcp-client:{host}:{port}")
        scheme = text.split(":", 1)[0]
        if scheme not in HCI_SCHEMES:
            raise LinkSpecError(
                f"{text!r} is not a link: use 'local', 'hub:HOST:PORT' or an HCI transport "
                f"({', '.join(sorted(HCI_SCHEMES))})"
            )
        return cls(LinkKind.HCI, text)

    def __str__(self) -> str:
        if self.kind is LinkKind.LOCAL:
            return "local"
        if self.kind is LinkKind.HUB:
            return "hub:" + self.transport.removeprefix("tcp-client:")
        return self.transport


class Radio:
    """An opened radio: the bumble Device and how to release it."""

    def __init__(
        self,
        device: Device,
        spec: LinkSpec,
        *,
        transport: Transport | None = None,
        virtual: VirtualLink | None = None,
    ) -> None:
        self.device = device
        self.spec = spec
        self._transport = transport
        self._virtual = virtual

    async def close(self) -> None:
        """Release the radio; peers see a disconnection (idempotent)."""
        if self._virtual is not None:
            self._virtual.remove_device(self.device)
            self._virtual = None
        if self._transport is not None:
            transport, self._transport = self._transport, None
            await transport.close()


async def open_radio(
    spec: LinkSpec | str, name: str, address: str, *, local: VirtualLink | None = None
) -> Radio:
    """Open a radio named ``name`` with LE random address ``address`` (not powered on).

    ``local`` is required for a ``local`` spec: the in-process link to join.
    """
    spec = LinkSpec.parse(spec) if isinstance(spec, str) else spec
    if spec.kind is LinkKind.LOCAL:
        if local is None:
            raise LinkSpecError("a 'local' link needs an in-process VirtualLink")
        return Radio(local.create_device(name, address), spec, virtual=local)
    try:
        transport = await open_transport(spec.transport)
    except Exception as exc:
        # Hardware transports fail with whatever their driver raises (libusb's USBError,
        # a bare Exception from bumble's HCI socket), and a person typed this spec: it
        # must come back as one clear line, never a traceback.
        raise BleError(f"cannot open {spec}: {exc or type(exc).__name__}") from exc
    device = Device.with_hci(name, hci.Address(address), transport.source, transport.sink)
    logger.info("radio %s opened on %s", name, spec)
    return Radio(device, spec, transport=transport)
