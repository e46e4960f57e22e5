"""The client's own BLE radio: find locks nearby and carry frames to them.

ISO/IEC 14543-5-104 lets the RAC talk to a lock directly when it is near it: for the
registration (the RAS negotiates the key, the RAC only carries frames it cannot read) and
for *nearby mode* (the RAS seals a command frame, the RAC writes it to the lock and hands
the lock's answer back to the RAS, which verifies it). The radio is a bumble Device opened
by :func:`heslock.ble.transport.open_radio` — ``hub:HOST:PORT`` for the virtual radio hub
of ``heslock bsld hub``, ``local`` in-process, or real HCI (``usb:0`` ...) — and the GATT
work is :class:`heslock.ble.central.FrameCentral`'s, shared with the gateway.

:func:`register_nearby` drives a whole registration::

    find the lock (scan) -> connect -> POST /v1/registrations (via "relay")
    -> for each frame: write it, read the answer, POST .../answers (next frames) -> done

and :func:`operate_nearby` one command (``POST /v1/locks/{id}/frames``, write, ``.../answer``).
Neither ever holds a key: frames are opaque here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Final

from heslock.ble.central import FrameCentral, FrameLink, ScanResult
from heslock.ble.errors import BleError, BleTimeout
from heslock.ble.transport import LinkSpec, Radio, open_radio
from heslock.ble.virtual import VirtualLink
from heslock.protocol.ids import DeviceId
from heslock.protocol.makers import MakerProfile, UnknownMaker, maker_by_company_id, makers
from heslock.rac.calls import device_arg
from heslock.rac.client import AsyncRasClient
from heslock.rac.errors import InvalidArgument, RegistrationFailed
from heslock.rac.models import CommandResult, Registration

logger = logging.getLogger(__name__)

#: Powering the radio on is a few HCI exchanges; a controller that takes longer is broken.
HCI_TIMEOUT_S: Final = 5.0
DEFAULT_SCAN_S: Final = 3.0
#: Finding one lock: it advertises every 0.1..1 s, so a few seconds is plenty.
DEFAULT_FIND_S: Final = 5.0
#: A registration is at most 5 frames (TIME/GET, TIME/SET, 2 key parts, COMMIT); a lock
#: that keeps refusing a stale COMMIT gets a fresh one each time (docs/api.md). Bounded,
#: never a loop.
MAX_REGISTRATION_FRAMES: Final = 12


@dataclass(frozen=True, slots=True)
class DiscoveredLock:
    """A lock heard on the air, from its advertising data (a hint: anyone can forge an
    advertisement; the RAS's legitimacy check and the key negotiation decide)."""

    device_id: str
    maker: str  #: the maker profile's name (``acme``), or ``0xFFF1`` if unknown here
    model: str  #: the model's name, or its code (``0x01``) if unknown
    ble_version: str  #: ``4.0``, ``4.2``, ``5.0``
    bound: bool
    battery: int  #: percent
    rssi: int
    registration_open: bool = False
    profile: str = ""  #: ``secure`` or ``base``
    name: str | None = None  #: the advertised local name (``ACME-C1BAF5``)
    address: str = ""  #: the LE address the lock advertises from


def discovered(result: ScanResult) -> DiscoveredLock:
    """Decode one scan result (pure)."""
    advert = result.found.advert
    try:
        profile: MakerProfile | None = maker_by_company_id(advert.company_id)
    except UnknownMaker:
        profile = None
    return DiscoveredLock(
        device_id=advert.device_id.hex,
        maker=profile.name if profile is not None else f"0x{advert.company_id:04X}",
        model=_model_name(profile, advert.model_code),
        ble_version=advert.ble_version.value,
        bound=advert.bound,
        battery=advert.battery,
        rssi=result.rssi,
        registration_open=advert.registration_open,
        profile=advert.profile.value,
        name=result.found.name,
        address=result.address,
    )


def _model_name(maker: MakerProfile | None, code: int) -> str:
    if maker is not None:
        try:
            return maker.model(code).name
        except UnknownMaker:
            pass
    return f"0x{code:02X}"


def random_static_address() -> str:
    """A fresh LE random static address (Core Spec Vol 6, Part B, 1.3.2.1): the two top
    bits set, the rest random (never all ones or all zeros)."""
    while True:
        raw = bytearray(secrets.token_bytes(6))
        raw[0] |= 0xC0
        rest = int.from_bytes(raw, "big") & ((1 << 46) - 1)
        if 0 < rest < (1 << 46) - 1:
            return ":".join(f"{b:02X}" for b in raw)


class NearbyRadio:
    """The client's radio (module docstring). ``async with NearbyRadio(link) as radio``.

    ``link`` is a ``--link`` value; ``address`` the radio's LE address (default: a fresh
    random static one, so two clients on one hub never collide); ``local`` the in-process
    :class:`VirtualLink` a ``local`` link joins.
    """

    def __init__(
        self,
        link: str,
        address: str | None = None,
        *,
        local: VirtualLink | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        self.spec = LinkSpec.parse(link)  # LinkSpecError (a UsageError) at once
        self.address = address or random_static_address()
        self._local = local
        self._connect_timeout_s = connect_timeout_s
        self._radio: Radio | None = None
        self._central: FrameCentral | None = None
        self._seen: dict[str, ScanResult] = {}
        self._links: dict[str, FrameLink] = {}

    async def __aenter__(self) -> NearbyRadio:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        if self._radio is not None:
            return
        radio = await open_radio(self.spec, "rac", self.address, local=self._local)
        try:
            await asyncio.wait_for(radio.device.power_on(), HCI_TIMEOUT_S)
        except TimeoutError:
            await radio.close()
            raise BleTimeout(f"the radio on {self.spec} did not power on") from None
        except BaseException:
            await radio.close()
            raise
        options: dict[str, float] = {}
        if self._connect_timeout_s is not None:
            options["connect_timeout_s"] = self._connect_timeout_s
        self._radio = radio
        self._central = FrameCentral(radio.device, phy_update=not self.spec.is_virtual, **options)

    async def close(self) -> None:
        """Disconnect every lock and release the radio (idempotent)."""
        central, self._central = self._central, None
        radio, self._radio = self._radio, None
        self._links.clear()
        try:
            if central is not None:
                await central.close()
        finally:
            if radio is not None:
                await radio.close()

    @property
    def central(self) -> FrameCentral:
        if self._central is None:
            raise InvalidArgument("the radio is not open: use `async with NearbyRadio(...)`")
        return self._central

    async def scan(self, timeout_s: float = DEFAULT_SCAN_S) -> list[DiscoveredLock]:
        """Every lock heard within ``timeout_s``, strongest signal first."""
        heard: dict[str, ScanResult] = {}

        def collect(result: ScanResult) -> bool:
            heard[result.found.advert.device_id.hex] = result
            return False  # keep scanning: the scan ends with the timeout

        await self._scan(timeout_s, collect, None)
        self._seen.update(heard)
        return sorted((discovered(r) for r in heard.values()), key=lambda d: -d.rssi)

    async def find(
        self, device_id: DeviceId | str, timeout_s: float = DEFAULT_FIND_S
    ) -> DiscoveredLock:
        """Scan until the lock ``device_id`` advertises; BleTimeout if it does not."""
        wanted = DeviceId.parse(device_arg(device_id))
        try:
            result = await self._scan(timeout_s, None, wanted)
        except BleTimeout:
            raise BleTimeout(
                f"lock {wanted.hex} was not heard within {timeout_s:g} s: is it near this radio "
                "and powered?"
            ) from None
        assert result is not None
        self._seen[wanted.hex] = result
        return discovered(result)

    async def _scan(
        self,
        timeout_s: float,
        until: Callable[[ScanResult], bool] | None,
        device_id: DeviceId | None,
    ) -> ScanResult | None:
        company_ids = frozenset(m.company_id for m in makers())
        try:
            return await self.central.scan_for(
                timeout_s, company_ids=company_ids, device_id=device_id, until=until
            )
        except BleTimeout:
            if until is not None:  # a full scan always ends this way
                return None
            raise
        except TimeoutError:  # start/stop scanning did not answer: a broken controller
            raise BleTimeout(f"the radio on {self.spec} did not start or stop scanning") from None

    async def connect(self, device_id: DeviceId | str) -> FrameLink:
        """A frame link to the lock (found by scanning first if not heard yet)."""
        key = device_arg(device_id)
        seen = self._seen.get(key)
        if seen is None:
            await self.find(key)
            seen = self._seen[key]
        lock = discovered(seen)
        try:
            maker = maker_by_company_id(seen.found.advert.company_id)
        except UnknownMaker:
            raise BleError(f"lock {key} is of a maker this client does not know") from None
        logger.info("connecting to %s (%s) at %s", key, lock.maker, seen.address)
        link = await self.central.connect(seen.address, maker)
        self._links[key] = link
        return link

    async def disconnect(self, device_id: DeviceId | str) -> None:
        """Close the link to the lock, if any. A lock serves one central at a time: a client
        done with it lets the gateway (or another phone) in (idempotent)."""
        link = self._links.pop(device_arg(device_id), None)
        if link is not None:
            await link.close()

    async def request(self, device_id: DeviceId | str, frame: bytes) -> bytes:
        """Write ``frame`` to the lock and return its answer (connecting if needed)."""
        link = await self.connect(device_id)
        return await link.request(frame)

    def __repr__(self) -> str:
        return f"NearbyRadio({str(self.spec)!r}, address={self.address!r})"


# --------------------------------------------------------------------------- registration


class Stage(StrEnum):
    """The steps :func:`register_nearby` reports to its ``progress`` callback."""

    FIND = "find"  #: looking for the lock's advertisement
    CONNECT = "connect"  #: opening the BLE link and the frame service
    START = "start"  #: the RAS started the registration (its first frames)
    FRAME = "frame"  #: one frame carried to the lock and its answer handed back
    DONE = "done"  #: committed: the lock is bound to you


@dataclass(frozen=True, slots=True)
class RegistrationProgress:
    stage: Stage
    text: str  #: for people: "stage a: key part 1 of 2"
    registration: Registration | None = None


Progress = Callable[[RegistrationProgress], None]

#: What each phase's frames do, for people (docs/api.md, "Registration").
PHASE_STEPS: Final = {
    "time-get": ("reading the lock's clock",),
    "time-set": ("setting the lock's clock",),
    "started": ("stage a: key part 1 of 2", "stage a: key part 2 of 2"),
    "part1-acked": ("stage a: key part 2 of 2",),
    "proven": ("stage b: commit",),
}


def frame_step(phase: str, index: int) -> str:
    steps = PHASE_STEPS.get(phase, ())
    return steps[index] if index < len(steps) else f"{phase}: frame {index + 1}"


def _report(progress: Progress | None, event: RegistrationProgress) -> None:
    if progress is not None:
        progress(event)


async def register_nearby(
    ras: AsyncRasClient,
    radio: NearbyRadio,
    device_id: DeviceId | str,
    name: str,
    progress: Progress | None = None,
    *,
    time_sync: bool = False,
) -> Registration:
    """Register the lock ``device_id`` under ``name``, carrying its frames over ``radio``.

    The lock must have its registration window open (its button pressed). Returns the
    committed registration (``lock_id`` is the new lock); :class:`RegistrationFailed` when
    the lock refused (``reason``: its reason code; ``STALE`` means its clock is wrong: try
    again with ``time_sync=True``) or the exchange expired. RAS problems and BLE errors
    propagate; a registration cut short can be started again (the RAS resumes it).
    """
    device = device_arg(device_id)
    _report(progress, RegistrationProgress(Stage.FIND, f"looking for lock {device}"))
    found = await radio.find(device)
    _report(progress, RegistrationProgress(Stage.CONNECT, f"connecting to {found.name or device}"))
    await radio.connect(device)
    try:
        reg = await _carry(ras, radio, device, name, progress, time_sync)
    finally:
        await radio.disconnect(device)
    return _finished(reg, device, progress)


async def _carry(
    ras: AsyncRasClient,
    radio: NearbyRadio,
    device: str,
    name: str,
    progress: Progress | None,
    time_sync: bool,
) -> Registration:
    """The relay loop of docs/api.md: each frame to the lock, each answer to the RAS."""
    reg = await ras.registrations.start(device, name, via="relay", time_sync=time_sync)
    _report(progress, RegistrationProgress(Stage.START, f"registration {reg.phase}", reg))
    queue = [(reg.phase, i, f) for i, f in enumerate(reg.frames)]
    carried = 0
    while queue:
        if carried >= MAX_REGISTRATION_FRAMES:
            raise RegistrationFailed(
                f"registration of {device} did not end after {carried} frames (the lock keeps "
                f"refusing: {reg.refused or reg.phase}); start again",
                phase=reg.phase,
                reason=reg.refused,
            )
        phase, index, frame = queue.pop(0)
        answer = await radio.request(device, frame)
        reg = await ras.registrations.answer(reg.registration_id, answer)
        carried += 1
        _report(progress, RegistrationProgress(Stage.FRAME, frame_step(phase, index), reg))
        queue.extend((reg.phase, i, f) for i, f in enumerate(reg.frames))
    return reg


def _finished(reg: Registration, device: str, progress: Progress | None) -> Registration:
    if reg.committed and reg.lock_id is not None:
        _report(progress, RegistrationProgress(Stage.DONE, "registered", reg))
        return reg
    if reg.phase == "failed":
        hint = " (its clock is wrong: register with time sync)" if reg.failure == "STALE" else ""
        raise RegistrationFailed(
            f"the lock refused the registration: {reg.failure}{hint}",
            phase=reg.phase,
            reason=reg.failure,
        )
    raise RegistrationFailed(
        f"the registration of {device} ended {reg.phase}: press the lock's registration "
        "button and start again",
        phase=reg.phase,
        reason=reg.failure,
    )


# --------------------------------------------------------------------------- nearby mode


async def operate_nearby(
    ras: AsyncRasClient,
    radio: NearbyRadio,
    lock_id: uuid.UUID | str,
    device_id: DeviceId | str | None,
    command: str,
    *,
    idempotency_key: str | None = None,
) -> CommandResult:
    """Run ``command`` (unlock, lock, status) on a lock near ``radio``: the RAS seals the
    frame, this writes it to the lock and hands the answer back (the RAS verifies it and
    answers as for a remote command: a refusal is a ``lock-refused`` RasProblem)."""
    sealed = await ras.locks.nearby_frame(lock_id, command, idempotency_key)
    if device_id is not None and device_arg(device_id) != sealed.device_id:
        raise InvalidArgument(
            f"lock {lock_id} is device {sealed.device_id}, not {device_arg(device_id)}"
        )
    try:
        answer = await radio.request(sealed.device_id, sealed.frame)
    finally:
        await radio.disconnect(sealed.device_id)
    return await ras.locks.nearby_answer(lock_id, sealed.command_id, answer)
