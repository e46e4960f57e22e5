"""Errors of the BGW.

::

    HeslockError
    ├── LocalError
    │   ├── UsageError
    │   │   └── GatewayConfigError     (heslock.bgw.config) the configuration is invalid
    │   └── GatewayError               the gateway cannot go on
    │       ├── TlsVerificationFailed  the RAS certificate is not signed by the configured CA
    │       └── PoolExhausted          every BLE link is busy and none freed in time
    └── (not a HeslockError)
        RouteFailure                   a frame request failed: carries the IQ <error/> to send

A :class:`RouteFailure` is not an exception of the gateway's health: it is the answer to
one request (lock out of range, BLE timeout ...) and becomes an IQ error stanza.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from heslock.errors import LocalError
from heslock.xmpp.errors import StanzaErrorCondition
from heslock.xmpp.lockns import LockCondition, error_element


class GatewayError(LocalError):
    """The gateway cannot go on (see the module docstring)."""


class TlsVerificationFailed(GatewayError):
    """The RAS presented a certificate the configured CA did not sign: never retried."""


class PoolExhausted(GatewayError):
    """No BLE link slot became free within the request's time."""


class RouteFailure(Exception):
    """One frame request failed; :attr:`error` is the ``<error/>`` element to answer with."""

    def __init__(
        self,
        condition: LockCondition | None,
        text: str,
        defined: StanzaErrorCondition = StanzaErrorCondition.BAD_REQUEST,
    ) -> None:
        """``condition`` None: a plain ``defined`` condition (bad request, bad lock answer)."""
        name = condition.value if condition is not None else defined.value
        super().__init__(f"{name}: {text}")
        self.condition = condition
        self.defined = defined
        self.text = text

    @property
    def error(self) -> Element:
        if self.condition is None:
            return self.defined.element(text=self.text)
        return error_element(self.condition, self.text)
