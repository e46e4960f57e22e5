"""The BSLD advertisement codec (heslock.protocol.advert): round trips and strict decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heslock.protocol import DeviceId, Profile
from heslock.protocol.advert import (
    ADVERT_FORMAT_VERSION,
    MANUFACTURER_DATA_SIZE,
    MAX_LEGACY_ADVERTISING_DATA,
    AdType,
    InvalidAdvert,
    LockAdvert,
    advertising_data,
    decode_ad_structures,
    encode_ad_structures,
    find_lock_advert,
    local_name,
)
from heslock.protocol.makers import ACME, LUMEN, BleVersion, MakerProfile, makers

DEVICE = DeviceId.parse("F0:11:22:33:44:55")


def _advert(**change: object) -> LockAdvert:
    fields: dict[str, object] = {
        "company_id": 0xFFF1,
        "device_id": DEVICE,
        "model_code": 0x01,
        "ble_version": BleVersion.V4_0,
        "profile": Profile.SECURE,
        "bound": True,
        "battery": 87,
        "registration_open": False,
    }
    fields.update(change)
    return LockAdvert(**fields)  # type: ignore[arg-type]  # test helper over typed fields


def test_known_bytes() -> None:
    # company 0xFFF1 little-endian, version 1, id, model 1, BLE 4.0, secure|bound, 87 %.
    expected = bytes.fromhex("f1ff01f01122334455014003") + bytes((87,))
    assert bytes(_advert()) == expected
    assert LockAdvert.from_bytes(expected) == _advert()


device_ids = st.binary(min_size=6, max_size=6).filter(
    lambda b: not b[0] & 1 and b not in (bytes(6), b"\xff" * 6)
)


@given(
    company=st.integers(0, 0xFFFF),
    raw_id=device_ids,
    model=st.integers(0, 255),
    version=st.sampled_from(list(BleVersion)),
    profile=st.sampled_from(list(Profile)),
    bound=st.booleans(),
    battery=st.integers(0, 100),
    registration=st.booleans(),
)
def test_round_trip(
    company: int,
    raw_id: bytes,
    model: int,
    version: BleVersion,
    profile: Profile,
    bound: bool,
    battery: int,
    registration: bool,
) -> None:
    advert = LockAdvert(
        company, DeviceId.from_bytes(raw_id), model, version, profile, bound, battery, registration
    )
    data = bytes(advert)
    assert len(data) == MANUFACTURER_DATA_SIZE
    assert LockAdvert.from_bytes(data) == advert


@given(st.binary(max_size=40))
def test_any_bytes_decode_or_raise_the_codec_error(data: bytes) -> None:
    try:
        advert = LockAdvert.from_bytes(data)
    except InvalidAdvert:
        return
    assert bytes(advert) == data


@given(st.binary(max_size=40))
def test_any_advertising_data_decodes_or_raises(data: bytes) -> None:
    try:
        found = find_lock_advert(data)
    except InvalidAdvert:
        return
    assert isinstance(found.advert, LockAdvert)


def _with(offset: int, value: int) -> bytes:
    data = bytearray(bytes(_advert()))
    data[offset] = value
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "13 bytes, got 0"),
        (bytes(_advert())[:-1], "got 12"),
        (bytes(_advert()) + b"\0", "got 14"),
        (_with(2, 2), "format version 2"),
        (_with(2, 0), "format version 0"),
        (bytes.fromhex("f1ff01") + bytes(6) + bytes.fromhex("01400357"), "all-zero"),
        (bytes.fromhex("f1ff01") + b"\xff" * 6 + bytes.fromhex("01400357"), "broadcast"),
        (_with(3, 0xF1), "multicast"),
        (_with(10, 0x41), "BLE version code 0x41"),
        (_with(11, 0x08), "reserved flag bits"),
        (_with(12, 101), "101 % is over 100"),
    ],
)
def test_malformed_manufacturer_data(data: bytes, message: str) -> None:
    with pytest.raises(InvalidAdvert, match=message):
        LockAdvert.from_bytes(data)


def test_field_validation_on_construction() -> None:
    with pytest.raises(ValueError, match="battery"):
        _advert(battery=101)
    with pytest.raises(ValueError, match="company"):
        _advert(company_id=-1)
    with pytest.raises(ValueError, match="model"):
        _advert(model_code=256)
    with pytest.raises(ValueError, match="format version"):
        _advert(version=ADVERT_FORMAT_VERSION + 1)


def test_flags() -> None:
    assert _advert(profile=Profile.BASE, bound=False).flags == 0
    decoded = LockAdvert.from_bytes(bytes(_advert(registration_open=True, bound=False)))
    assert decoded.registration_open
    assert not decoded.bound
    assert decoded.profile is Profile.SECURE


def test_local_name() -> None:
    assert local_name("ACME", DEVICE) == "ACME-334455"
    with pytest.raises(ValueError, match="prefix"):
        local_name("TOOLONG", DEVICE)


@pytest.mark.parametrize("maker", makers())
def test_full_advertisement_fits_a_legacy_pdu(maker: MakerProfile) -> None:
    advert = _advert(company_id=maker.company_id, ble_version=maker.ble_version)
    name = local_name(maker.name_prefix, DEVICE)
    data = advertising_data(advert, name)
    assert len(data) <= MAX_LEGACY_ADVERTISING_DATA
    found = find_lock_advert(data, frozenset({maker.company_id}))
    assert found.advert == advert
    assert found.name == name


def test_find_filters_by_company_and_reports_absence() -> None:
    data = advertising_data(_advert(company_id=ACME.company_id), "ACME-334455")
    with pytest.raises(InvalidAdvert, match="no lock manufacturer data"):
        find_lock_advert(data, frozenset({LUMEN.company_id}))
    with pytest.raises(InvalidAdvert, match="no lock manufacturer data"):
        find_lock_advert(encode_ad_structures([(AdType.FLAGS, b"\x06")]))


def test_two_manufacturer_structures_are_refused() -> None:
    mfr = (AdType.MANUFACTURER_SPECIFIC_DATA, bytes(_advert()))
    with pytest.raises(InvalidAdvert, match="two"):
        find_lock_advert(encode_ad_structures([mfr, mfr]))


def test_bad_local_name() -> None:
    data = encode_ad_structures(
        [
            (AdType.MANUFACTURER_SPECIFIC_DATA, bytes(_advert())),
            (AdType.COMPLETE_LOCAL_NAME, b"\xff"),
        ]
    )
    with pytest.raises(InvalidAdvert, match="UTF-8"):
        find_lock_advert(data)


def test_ad_structure_framing() -> None:
    assert decode_ad_structures(b"\x02\x01\x06\x00\x00") == [(1, b"\x06")]
    with pytest.raises(InvalidAdvert, match="past the end"):
        decode_ad_structures(b"\x05\x01\x06")
    with pytest.raises(InvalidAdvert, match="after the end"):
        decode_ad_structures(b"\x02\x01\x06\x00\x01")
    with pytest.raises(ValueError, match="254"):
        encode_ad_structures([(1, bytes(255))])


def test_oversized_advertising_data_is_refused() -> None:
    with pytest.raises(ValueError, match="over 31"):
        advertising_data(_advert(), "A-VERY-LONG-LOCAL-NAME")
