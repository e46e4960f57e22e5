"""Shared XMPP plumbing (RFC 6120): the sans-I/O stream layer and the RAS's C2S engine.

- :mod:`heslock.xmpp.stream` -- incremental, hardened XML stream parser and serialiser.
- :mod:`heslock.xmpp.errors` -- stream/stanza/SASL conditions and the exceptions carrying them.
- :mod:`heslock.xmpp.jid` -- addresses.
- :mod:`heslock.xmpp.tls`, :mod:`heslock.xmpp.sasl`, :mod:`heslock.xmpp.limits` -- TLS on
  memory BIOs, SCRAM-SHA-256(-PLUS), rate limits.
- :mod:`heslock.xmpp.session` (state machine) and :mod:`heslock.xmpp.server` -- the
  client-to-server endpoint the RAS runs for its gateways (BGW).

This package imports no party (ras, bgw, bsld, rac): the RAS wires it to the SCS credential
store, and the BGW talks to it with slixmpp.
"""

from heslock.xmpp.errors import (
    IqTimeout,
    RecipientOffline,
    SaslFailure,
    ServerClosed,
    StanzaError,
    StanzaErrorCondition,
    StanzaErrorType,
    StreamError,
    StreamErrorCondition,
)
from heslock.xmpp.jid import Jid, JidMalformed
from heslock.xmpp.sasl import CredentialStore, ScramCredentials
from heslock.xmpp.server import (
    IqRegistry,
    MessageListener,
    PresenceListener,
    ServerConfig,
    XmppServer,
)
from heslock.xmpp.stream import StreamParser, serialize

__all__ = [
    "CredentialStore",
    "IqRegistry",
    "IqTimeout",
    "Jid",
    "JidMalformed",
    "MessageListener",
    "PresenceListener",
    "RecipientOffline",
    "SaslFailure",
    "ScramCredentials",
    "ServerClosed",
    "ServerConfig",
    "StanzaError",
    "StanzaErrorCondition",
    "StanzaErrorType",
    "StreamError",
    "StreamErrorCondition",
    "StreamParser",
    "XmppServer",
    "serialize",
]
