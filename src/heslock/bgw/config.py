"""The BGW's configuration: one TOML file, validated into :class:`GatewayConfig`.

``heslock bgw run --config FILE`` reads (every key but the four marked is optional)::

    [ras]
    host = "ras.example"             # required: the RAS's XMPP endpoint
    port = 5223                      # default 5223 with direct TLS, 5222 with STARTTLS
    tls = "direct"                   # "direct" (XEP-0368) or "starttls" (RFC 6120 5)
    ca_file = "/etc/heslock/ca.pem"  # required: the CA that signed the RAS certificate
    jid = "gw1@ras.example/bgw"      # required: the gateway's JID (resource "bgw" if none)
    secret_file = "/etc/heslock/gw1.secret"   # required, or `secret = "..."`:
                                              # the SCRAM password; a file must be 0600
    keepalive_s = 60                 # XEP-0199 ping period
    reconnect_min_s = 1              # first reconnect back-off ceiling
    reconnect_max_s = 60             # back-off cap

    [ble]
    link = "hub:127.0.0.1:17000"     # local | hub:HOST:PORT | an HCI transport (usb:0 ...)
    address = "C0:FF:EE:00:00:01"    # the gateway radio's LE random static address
    makers = ["acme", "keystone", "lumen"]    # default: every registered maker
    max_links = 10                   # concurrent BLE links (at least 1; 10 is the target)
    idle_link_timeout_s = 30         # an unused link is closed after this
    scan_interval_s = 2              # how often the in-range table is checked
    lost_after_s = 10                # a lock not heard for this long is out of range
    report_interval_s = 60           # periodic scan report and status message

A relative ``ca_file``/``secret_file`` is read relative to the config file's directory.
Every error is a :class:`GatewayConfigError` naming the key. The secret is never logged and
never part of ``repr``.
"""

from __future__ import annotations

import stat
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from heslock.ble.errors import LinkSpecError
from heslock.ble.transport import LinkSpec
from heslock.errors import UsageError
from heslock.protocol.makers import MakerProfile, UnknownMaker, maker_by_name, makers
from heslock.xmpp.jid import Jid, JidMalformed

#: The issue asks for at least 10 concurrent links; beyond ~32 a single BLE controller
#: runs out of connection slots (most support 8..32).
DEFAULT_MAX_LINKS: Final = 10
MAX_LINKS_LIMIT: Final = 64
DEFAULT_IDLE_LINK_TIMEOUT_S: Final = 30.0
DEFAULT_SCAN_INTERVAL_S: Final = 2.0
#: Locks advertise every 0.1..1 s: ten seconds of silence is many missed advertisements.
DEFAULT_LOST_AFTER_S: Final = 10.0
DEFAULT_REPORT_INTERVAL_S: Final = 60.0
#: Below the RAS's ping interval (60 s) so the RAS always sees traffic, and below common
#: NAT idle timeouts.
DEFAULT_KEEPALIVE_S: Final = 60.0
DEFAULT_RECONNECT_MIN_S: Final = 1.0
DEFAULT_RECONNECT_MAX_S: Final = 60.0
#: A secret file is a few dozen bytes; refuse to read a huge file by mistake.
MAX_SECRET_BYTES: Final = 1024
DEFAULT_RESOURCE: Final = "bgw"
DEFAULT_RADIO_ADDRESS: Final = "C0:FF:EE:00:00:01"


class GatewayConfigError(UsageError, ValueError):
    """The gateway's configuration is invalid (the message names the key)."""


class TlsMode(StrEnum):
    DIRECT = "direct"  #: XEP-0368 direct TLS
    STARTTLS = "starttls"  #: RFC 6120 section 5


@dataclass(frozen=True, slots=True)
class RasSettings:
    host: str
    port: int
    tls: TlsMode
    ca_file: Path
    jid: Jid
    secret: str = field(repr=False)
    keepalive_s: float = DEFAULT_KEEPALIVE_S
    reconnect_min_s: float = DEFAULT_RECONNECT_MIN_S
    reconnect_max_s: float = DEFAULT_RECONNECT_MAX_S

    def __post_init__(self) -> None:
        if not self.host:
            raise GatewayConfigError("ras.host is empty")
        if not 0 < self.port < 65536:
            raise GatewayConfigError("ras.port is 1..65535")
        if not self.jid.local:
            raise GatewayConfigError("ras.jid needs a localpart (the gateway id)")
        if not self.secret:
            raise GatewayConfigError("the gateway secret is empty")
        if self.keepalive_s <= 0:
            raise GatewayConfigError("ras.keepalive_s must be positive")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise GatewayConfigError("need 0 < ras.reconnect_min_s <= ras.reconnect_max_s")


@dataclass(frozen=True, slots=True)
class BleSettings:
    link: LinkSpec
    address: str = DEFAULT_RADIO_ADDRESS
    makers: tuple[MakerProfile, ...] = field(default_factory=makers)
    max_links: int = DEFAULT_MAX_LINKS
    idle_link_timeout_s: float = DEFAULT_IDLE_LINK_TIMEOUT_S
    scan_interval_s: float = DEFAULT_SCAN_INTERVAL_S
    lost_after_s: float = DEFAULT_LOST_AFTER_S
    report_interval_s: float = DEFAULT_REPORT_INTERVAL_S

    def __post_init__(self) -> None:
        if not self.makers:
            raise GatewayConfigError("ble.makers is empty: the gateway would serve no lock")
        if not 1 <= self.max_links <= MAX_LINKS_LIMIT:
            raise GatewayConfigError(f"ble.max_links is 1..{MAX_LINKS_LIMIT}")
        for name in ("idle_link_timeout_s", "scan_interval_s", "lost_after_s"):
            if getattr(self, name) <= 0:
                raise GatewayConfigError(f"ble.{name} must be positive")
        if self.report_interval_s <= 0:
            raise GatewayConfigError("ble.report_interval_s must be positive")
        if self.lost_after_s < self.scan_interval_s:
            raise GatewayConfigError("ble.lost_after_s must be at least ble.scan_interval_s")

    @property
    def company_ids(self) -> frozenset[int]:
        return frozenset(m.company_id for m in self.makers)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    ras: RasSettings
    ble: BleSettings


def read_secret(path: Path) -> str:
    """Read a secret file: a regular file, mode 0600 or stricter, not empty."""
    try:
        info = path.stat()
    except OSError as exc:
        raise GatewayConfigError(f"secret file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise GatewayConfigError(f"secret file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise GatewayConfigError(
            f"secret file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o});"
            " chmod 600 it"
        )
    if info.st_size > MAX_SECRET_BYTES:
        raise GatewayConfigError(f"secret file {path} is over {MAX_SECRET_BYTES} bytes")
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise GatewayConfigError(f"secret file {path}: {exc}") from None
    if not secret:
        raise GatewayConfigError(f"secret file {path} is empty")
    return secret


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise GatewayConfigError(f"[{name}] table missing")
    return value


def _get(table: dict[str, Any], section: str, key: str, kind: type, default: Any = None) -> Any:
    value = table.get(key, default)
    if value is None:
        raise GatewayConfigError(f"{section}.{key} is required")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise GatewayConfigError(f"{section}.{key} must be a {kind.__name__}")
    return value


def _check_keys(table: dict[str, Any], section: str, allowed: set[str]) -> None:
    unknown = set(table) - allowed
    if unknown:  # a typo must not silently fall back to a default
        raise GatewayConfigError(f"unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")


_RAS_KEYS = {
    "host", "port", "tls", "ca_file", "jid", "secret", "secret_file",
    "keepalive_s", "reconnect_min_s", "reconnect_max_s",
}  # fmt: skip
_BLE_KEYS = {
    "link", "address", "makers", "max_links", "idle_link_timeout_s",
    "scan_interval_s", "lost_after_s", "report_interval_s",
}  # fmt: skip


def parse_config(data: dict[str, Any], base_dir: Path) -> GatewayConfig:
    """Validate a parsed TOML document (relative paths resolve against ``base_dir``)."""
    _check_keys(data, "top level", {"ras", "ble"})
    ras = _table(data, "ras")
    ble = _table(data, "ble")
    _check_keys(ras, "ras", _RAS_KEYS)
    _check_keys(ble, "ble", _BLE_KEYS)

    try:
        tls = TlsMode(_get(ras, "ras", "tls", str, "direct"))
    except ValueError:
        raise GatewayConfigError("ras.tls is 'direct' or 'starttls'") from None
    port = _get(ras, "ras", "port", int, 5223 if tls is TlsMode.DIRECT else 5222)
    ca_file = base_dir / _get(ras, "ras", "ca_file", str)
    if not ca_file.is_file():
        raise GatewayConfigError(f"ras.ca_file {ca_file} is not a file")
    try:
        jid = Jid.parse(_get(ras, "ras", "jid", str))
    except JidMalformed as exc:
        raise GatewayConfigError(f"ras.jid: {exc}") from None
    if not jid.resource:
        jid = jid.with_resource(DEFAULT_RESOURCE)
    if ("secret" in ras) == ("secret_file" in ras):
        raise GatewayConfigError("give exactly one of ras.secret and ras.secret_file")
    if "secret" in ras:
        secret = _get(ras, "ras", "secret", str)
    else:
        secret = read_secret(base_dir / _get(ras, "ras", "secret_file", str))

    try:
        link = LinkSpec.parse(_get(ble, "ble", "link", str))
    except LinkSpecError as exc:
        raise GatewayConfigError(f"ble.link: {exc}") from None
    names = _get(ble, "ble", "makers", list, [m.name for m in makers()])
    try:
        served = tuple(maker_by_name(str(name)) for name in names)
    except UnknownMaker as exc:
        raise GatewayConfigError(f"ble.makers: {exc}") from None
    if len(set(served)) != len(served):
        raise GatewayConfigError("ble.makers lists a maker twice")

    return GatewayConfig(
        RasSettings(
            host=_get(ras, "ras", "host", str),
            port=port,
            tls=tls,
            ca_file=ca_file,
            jid=jid,
            secret=secret,
            keepalive_s=_get(ras, "ras", "keepalive_s", float, DEFAULT_KEEPALIVE_S),
            reconnect_min_s=_get(ras, "ras", "reconnect_min_s", float, DEFAULT_RECONNECT_MIN_S),
            reconnect_max_s=_get(ras, "ras", "reconnect_max_s", float, DEFAULT_RECONNECT_MAX_S),
        ),
        BleSettings(
            link=link,
            address=_get(ble, "ble", "address", str, DEFAULT_RADIO_ADDRESS),
            makers=served,
            max_links=_get(ble, "ble", "max_links", int, DEFAULT_MAX_LINKS),
            idle_link_timeout_s=_get(
                ble, "ble", "idle_link_timeout_s", float, DEFAULT_IDLE_LINK_TIMEOUT_S
            ),
            scan_interval_s=_get(ble, "ble", "scan_interval_s", float, DEFAULT_SCAN_INTERVAL_S),
            lost_after_s=_get(ble, "ble", "lost_after_s", float, DEFAULT_LOST_AFTER_S),
            report_interval_s=_get(
                ble, "ble", "report_interval_s", float, DEFAULT_REPORT_INTERVAL_S
            ),
        ),
    )


def load_config(path: Path) -> GatewayConfig:
    """Read and validate the TOML file at ``path``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GatewayConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GatewayConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(data, path.parent)
