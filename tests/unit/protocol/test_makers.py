"""Maker profiles (heslock.protocol.makers): registry and the BLE behaviour each declares."""

from __future__ import annotations

import dataclasses

import pytest

from heslock.protocol.makers import (
    ACME,
    ATT_DEFAULT_MTU,
    KEYSTONE,
    LUMEN,
    BleVersion,
    MakerProfile,
    Model,
    UnknownMaker,
    maker_by_company_id,
    maker_by_name,
    makers,
    register_maker,
)


def test_three_makers_with_distinct_identities() -> None:
    profiles = makers()
    assert {p.name for p in profiles} >= {"acme", "keystone", "lumen"}
    assert len({p.company_id for p in profiles}) == len(profiles)
    uuids = [u for p in profiles for u in (p.service_uuid, p.frame_in_uuid, p.frame_out_uuid)]
    assert len(set(uuids)) == len(uuids)
    assert {p.ble_version for p in (ACME, KEYSTONE, LUMEN)} == set(BleVersion)


def test_company_ids_are_the_fictitious_test_range() -> None:
    # Not SIG assignments: the top of the range, next to the SIG's 0xFFFF test id.
    for profile in (ACME, KEYSTONE, LUMEN):
        assert 0xFFF0 <= profile.company_id < 0xFFFF


def test_mtu_behaviour_per_ble_version() -> None:
    assert (ACME.max_mtu, ACME.mtu_negotiable, ACME.phy_2m) == (ATT_DEFAULT_MTU, False, False)
    assert (KEYSTONE.max_mtu, KEYSTONE.mtu_negotiable, KEYSTONE.phy_2m) == (185, True, False)
    assert (LUMEN.max_mtu, LUMEN.mtu_negotiable, LUMEN.phy_2m) == (247, True, True)


def test_lookup_by_name_and_company_id() -> None:
    assert maker_by_name(" ACME ") is ACME
    assert maker_by_company_id(0xFFF2) is KEYSTONE
    with pytest.raises(UnknownMaker, match="known: acme"):
        maker_by_name("nope")
    with pytest.raises(UnknownMaker, match="0x0001"):
        maker_by_company_id(0x0001)


def test_models_by_name_or_code() -> None:
    assert ACME.model(0x01).name == "A100 Deadbolt"
    assert LUMEN.model("l5 lever").code == 0x21
    with pytest.raises(UnknownMaker):
        ACME.model(0x99)


def test_ble_version_codes_round_trip() -> None:
    for version in BleVersion:
        assert BleVersion.from_code(version.code) is version
    assert BleVersion.V4_2.code == 0x42
    with pytest.raises(ValueError, match="0x41"):
        BleVersion.from_code(0x41)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Acme"}, "lower-case"),
        ({"company_id": 0x10000}, "16 bits"),
        ({"frame_in_uuid": ACME.service_uuid}, "distinct"),
        ({"max_mtu": 185}, "4.0 profile keeps"),
        ({"max_mtu": 512, "ble_version": BleVersion.V5_0}, "23..247"),
        ({"phy_2m": True}, "2M PHY"),
        ({"name_prefix": "TOOLONG"}, "prefix"),
        ({"models": ()}, "at least one model"),
        ({"models": (Model(1, "a"), Model(1, "b"))}, "distinct"),
    ],
)
def test_invalid_profiles_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(ACME, **change)  # type: ignore[arg-type]  # deliberately wrong


def test_register_refuses_a_taken_name_or_company() -> None:
    with pytest.raises(ValueError, match="taken"):
        register_maker(ACME)
    clash = dataclasses.replace(ACME, name="other")
    assert isinstance(clash, MakerProfile)
    with pytest.raises(ValueError, match="taken"):
        register_maker(clash)


def test_model_validation() -> None:
    with pytest.raises(ValueError, match="one byte"):
        Model(256, "x")
    with pytest.raises(ValueError, match="printable"):
        Model(1, "")
