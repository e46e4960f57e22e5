"""heslock.bgw — the BGW (Bluetooth gateway) of ISO/IEC 14543-5-104.

It bridges BLE 4.0+ locks of several makers to the RAS: a BLE central on one side
(heslock.ble), an XMPP client on the other (slixmpp, SASL SCRAM-SHA-256), relaying opaque
16/20-byte frames both ways without ever holding a lock key. One module per layer::

    config      GatewayConfig from TOML (heslock bgw run --config FILE)
    backoff     reconnect delays: exponential, full jitter, capped
    ras_client  the XMPP session: TLS against the configured CA, SCRAM, keepalive, reconnect
    scanner     locks in range from their advertisements
    pool        live BLE links: connect on demand, idle timeout, LRU eviction, max size
    router      frame IQ -> per-lock lane -> BLE write -> answer -> IQ result; events up
    gateway     the assembly, and the scan/status reports

It imports heslock.protocol, heslock.ble and heslock.xmpp, never another party.
"""

from heslock.bgw.config import GatewayConfig, GatewayConfigError, load_config
from heslock.bgw.errors import GatewayError, TlsVerificationFailed
from heslock.bgw.gateway import Gateway

__all__ = [
    "Gateway",
    "GatewayConfig",
    "GatewayConfigError",
    "GatewayError",
    "TlsVerificationFailed",
    "load_config",
]
