"""Relay errors: the code registry, and a gateway's IQ errors mapped to them."""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement

import pytest

from heslock.protocol import DeviceId
from heslock.ras.relay import errors
from heslock.ras.relay.endpoint import stanza_error_to_relay
from heslock.ras.relay.errors import (
    BY_CODE,
    BY_CONDITION,
    GatewayFailure,
    GatewayLost,
    GatewayOffline,
    LinkLost,
    LockBusy,
    LockNotInRange,
    LockTimeout,
    RelayError,
    RelayTimeout,
    from_code,
)
from heslock.xmpp import StanzaError, StanzaErrorCondition
from heslock.xmpp.errors import NS_CLIENT, NS_XMPP_STANZAS
from heslock.xmpp.lockns import NS_LOCK, LockCondition, error_element

LOCK = DeviceId.parse("F0:11:22:33:44:55")
GW = "gw1@ras.example"


def iq_error(error: Element) -> StanzaError:
    iq = Element(f"{{{NS_CLIENT}}}iq", type="error", id="r1")
    iq.append(error)
    return StanzaError.from_stanza(iq)


def test_every_error_class_is_registered_by_a_unique_code() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, RelayError)
    ]
    assert sorted(c.__name__ for c in BY_CODE.values()) == sorted(c.__name__ for c in classes)
    assert len({c.code for c in classes}) == len(classes)
    assert set(BY_CONDITION) == set(LockCondition)


@pytest.mark.parametrize("cls", [BY_CODE[code] for code in sorted(BY_CODE)])
def test_from_code_rebuilds_the_same_exception(cls: type[RelayError]) -> None:
    original = cls("detail", may_have_executed=True)
    rebuilt = from_code(original.code, original.detail, may_have_executed=True)
    assert type(rebuilt) is cls
    assert (rebuilt.detail, rebuilt.may_have_executed) == ("detail", True)


def test_unknown_code_is_a_plain_relay_error_that_promises_nothing() -> None:
    rebuilt = from_code("from-a-newer-node", "?")
    assert type(rebuilt) is RelayError
    assert rebuilt.may_have_executed


def test_may_have_executed_only_where_the_frame_never_reached_a_lock() -> None:
    never = {GatewayOffline, LockNotInRange, LockBusy}
    for cls in BY_CODE.values():
        assert cls("x").may_have_executed is (cls not in never), cls
    assert issubclass(GatewayLost, GatewayOffline)
    assert issubclass(LockTimeout, RelayTimeout)


@pytest.mark.parametrize("condition", list(LockCondition))
def test_application_condition_maps_to_its_class(condition: LockCondition) -> None:
    mapped = stanza_error_to_relay(iq_error(error_element(condition, "why")), GW, LOCK)
    assert type(mapped) is BY_CONDITION[condition]
    assert condition.value in str(mapped)
    assert "why" in str(mapped)


@pytest.mark.parametrize("condition", list(LockCondition))
def test_defined_condition_alone_still_maps(condition: LockCondition) -> None:
    error = condition.stanza_condition.element(condition.error_type)
    assert type(stanza_error_to_relay(iq_error(error), GW, LOCK)) is BY_CONDITION[condition]


def test_the_application_condition_comes_first() -> None:
    # A defined condition that stands for lock-busy, with link-lost as the application one.
    error = StanzaErrorCondition.CONFLICT.element()
    SubElement(error, f"{{{NS_LOCK}}}link-lost")
    assert type(stanza_error_to_relay(iq_error(error), GW, LOCK)) is LinkLost


def test_unknown_application_condition_falls_back_to_the_defined_one() -> None:
    error = StanzaErrorCondition.ITEM_NOT_FOUND.element()
    SubElement(error, f"{{{NS_LOCK}}}from-the-future")
    assert type(stanza_error_to_relay(iq_error(error), GW, LOCK)) is LockNotInRange


@pytest.mark.parametrize(
    ("condition", "may_have_executed"),
    [
        (StanzaErrorCondition.BAD_REQUEST, False),
        (StanzaErrorCondition.SERVICE_UNAVAILABLE, False),
        (StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED, False),
        (StanzaErrorCondition.INTERNAL_SERVER_ERROR, True),
        (StanzaErrorCondition.UNDEFINED_CONDITION, True),
    ],
)
def test_other_errors_are_gateway_failures(
    condition: StanzaErrorCondition, may_have_executed: bool
) -> None:
    mapped = stanza_error_to_relay(iq_error(condition.element(text="t" * 5000)), GW, LOCK)
    assert type(mapped) is GatewayFailure
    assert mapped.may_have_executed is may_have_executed
    assert len(str(mapped)) < 400  # the peer's text is cut


def test_error_without_any_condition() -> None:
    empty = Element(f"{{{NS_CLIENT}}}error", type="cancel")
    SubElement(empty, f"{{{NS_XMPP_STANZAS}}}text").text = "nothing"
    mapped = stanza_error_to_relay(iq_error(empty), GW, LOCK)
    assert type(mapped) is GatewayFailure
    assert mapped.may_have_executed
