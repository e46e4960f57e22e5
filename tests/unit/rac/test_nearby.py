"""The pure parts of heslock.rac.nearby: advertising data as the client shows it, its
radio's address, and the names of the registration's stages."""

from __future__ import annotations

import re

from heslock.ble.central import ScanResult
from heslock.protocol import DeviceId, Profile
from heslock.protocol.advert import DiscoveredLock as Heard
from heslock.protocol.advert import LockAdvert
from heslock.protocol.makers import KEYSTONE, BleVersion
from heslock.rac.nearby import discovered, frame_step, random_static_address


def _heard(company_id: int, model_code: int, name: str | None) -> ScanResult:
    advert = LockAdvert(
        company_id=company_id,
        device_id=DeviceId.parse("2AA09AC1BAF5"),
        model_code=model_code,
        ble_version=BleVersion.V4_2,
        profile=Profile.SECURE,
        bound=True,
        battery=42,
        registration_open=False,
    )
    return ScanResult("2A:A0:9A:C1:BA:F5", Heard(advert, name), -61)


def test_a_known_makers_lock_is_shown_by_maker_and_model_name() -> None:
    lock = discovered(_heard(KEYSTONE.company_id, KEYSTONE.models[1].code, "KSTN-C1BAF5"))
    assert lock.device_id == "2AA09AC1BAF5"
    assert (lock.maker, lock.model, lock.ble_version) == ("keystone", "K2 Padlock", "4.2")
    assert (lock.bound, lock.registration_open, lock.battery, lock.rssi) == (True, False, 42, -61)
    assert (lock.profile, lock.name, lock.address) == ("secure", "KSTN-C1BAF5", "2A:A0:9A:C1:BA:F5")


def test_unknown_makers_and_models_are_shown_by_number() -> None:
    assert discovered(_heard(KEYSTONE.company_id, 0x7E, None)).model == "0x7E"
    other = discovered(_heard(0x1234, 0x01, None))
    assert (other.maker, other.model) == ("0x1234", "0x01")


def test_the_radio_gets_a_fresh_random_static_address() -> None:
    addresses = {random_static_address() for _ in range(50)}
    assert len(addresses) == 50
    for address in addresses:
        assert re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", address)
        assert int(address[:2], 16) >> 6 == 0b11  # random static: the two top bits set


def test_stages_are_named_for_people() -> None:
    assert frame_step("time-get", 0) == "reading the lock's clock"
    assert frame_step("started", 1) == "stage a: key part 2 of 2"
    assert frame_step("proven", 0) == "stage b: commit"
    assert frame_step("proven", 1) == "proven: frame 2"
