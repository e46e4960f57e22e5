"""Where a webhook may be sent: SSRF defence.

A destination must be ``https://`` with a host name or address, no credentials, no
fragment, at most 2048 characters. Its host must resolve to public unicast addresses
only: loopback, private (RFC 1918, RFC 4193), link-local (cloud metadata services live
there), shared (RFC 6598), multicast, reserved and unspecified addresses are refused,
when subscribing and again at every delivery (DNS may change).

At delivery the request goes to the address checked, not to a second resolution (DNS
rebinding): the URL's host becomes the Host header and the TLS server name, so the
certificate is still verified against the name the app gave.

``webhooks_allow_insecure_loopback`` (demo and tests only) additionally lets
``http://`` and ``https://`` destinations on a loopback host (``localhost``,
``127.0.0.0/8``, ``::1``) through; nothing else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit, urlunsplit

from heslock.ras.store.models.webhooks import MAX_WEBHOOK_URL_LEN

LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost."})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(ValueError):
    """A URL the RAS will not send to (the message says why, without resolving secrets)."""


@dataclass(frozen=True)
class Destination:
    """A checked URL: its parts and, after :func:`resolve`, the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    loopback_allowed: bool

    def target(self, address: IPAddress) -> str:
        """The URL with ``address`` in place of the host (module docstring)."""
        parts = urlsplit(self.url)
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{literal}:{self.port}"
        return urlunsplit(SplitResult(parts.scheme, netloc, parts.path or "/", parts.query, ""))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    literal = _literal(host)
    return host.lower() in LOOPBACK_NAMES or (literal is not None and literal.is_loopback)


def is_public(address: IPAddress) -> bool:
    """A global unicast address (module docstring)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return address.is_global and not (address.is_multicast or address.is_reserved)


def check(url: str, *, allow_insecure_loopback: bool) -> Destination:
    """Parse and check ``url`` (module docstring); DestinationRefused if refused."""
    if not url or len(url) > MAX_WEBHOOK_URL_LEN:
        raise DestinationRefused(f"the URL is 1..{MAX_WEBHOOK_URL_LEN} characters")
    if any(ch.isspace() or ord(ch) < 0x21 or ord(ch) > 0x7E for ch in url):
        raise DestinationRefused("the URL must be printable ASCII without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DestinationRefused("the URL is malformed") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("https", "http") or not host:
        raise DestinationRefused("the URL must be https://host/...")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("the URL must not carry credentials")
    if parts.fragment:
        raise DestinationRefused("the URL must not have a fragment")
    loopback = is_loopback_host(host)
    if scheme == "http" and not (allow_insecure_loopback and loopback):
        raise DestinationRefused("the URL must be https")
    literal = _literal(host)
    if (
        literal is not None
        and not is_public(literal)
        and not (allow_insecure_loopback and loopback)
    ):
        raise DestinationRefused("the URL must point to a public address")
    if loopback and not allow_insecure_loopback:
        raise DestinationRefused("the URL must point to a public address")
    default = 443 if scheme == "https" else 80
    return Destination(url, scheme, host, port or default, allow_insecure_loopback and loopback)


async def resolve(destination: Destination) -> IPAddress:
    """The address to connect to; DestinationRefused if any address is not public
    (or not loopback when loopback is allowed for this destination)."""
    literal = _literal(destination.host)
    if literal is not None:
        candidates = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                destination.host, destination.port, type=socket.SOCK_STREAM
            )
        except OSError:
            raise DestinationRefused("the host does not resolve") from None
        candidates = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not candidates:
        raise DestinationRefused("the host does not resolve")
    for address in candidates:
        allowed = address.is_loopback if destination.loopback_allowed else is_public(address)
        if not allowed:
            raise DestinationRefused("the host resolves to a non-public address")
    return candidates[0]
