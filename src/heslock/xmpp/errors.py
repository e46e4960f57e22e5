"""XMPP error conditions (RFC 6120) and the exceptions that carry them.

Three registries of defined conditions, each an enum whose value is the element name that
goes on the wire:

- :class:`StreamErrorCondition` -- RFC 6120 section 4.9.3, sent as
  ``<stream:error><COND xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>``;
  a stream error is unrecoverable: the stream is closed right after it (section 4.9.1.1).
- :class:`StanzaErrorCondition` with its default :class:`StanzaErrorType` -- RFC 6120
  section 8.3.3 (types in 8.3.2), sent inside a stanza of ``type='error'``.
- :class:`SaslFailure` -- RFC 6120 section 6.5, sent as ``<failure/>`` during SASL.

The exceptions (all under :mod:`heslock.errors`)::

    HeslockError
    ├── LocalError
    │   └── XmppLocalError         this side cannot complete an XMPP operation
    │       ├── IqTimeout          no answer to an IQ within the caller's deadline
    │       ├── RecipientOffline   the full JID has no session on this server
    │       └── ServerClosed       the server is shutting down or not running
    └── PeerError
        └── XmppPeerError
            ├── StreamError        the peer broke the stream: we close it with CONDITION
            └── StanzaError        the peer answered an IQ with an error stanza

A :class:`StreamError` raised by the parser or by a session handler is turned into the
wire form by :meth:`StreamErrorCondition.to_xml` and the connection is closed.
"""

from __future__ import annotations

from enum import StrEnum
from xml.etree.ElementTree import Element, SubElement

from heslock.errors import LocalError, PeerError

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_XMPP_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_XMPP_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_CLIENT = "jabber:client"


def escape_text(text: str) -> str:
    """Escape character data for XML (the three characters that matter in content)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class StreamErrorCondition(StrEnum):
    """Defined stream error conditions, RFC 6120 section 4.9.3 (subsections 1-24)."""

    BAD_FORMAT = "bad-format"
    BAD_NAMESPACE_PREFIX = "bad-namespace-prefix"
    CONFLICT = "conflict"
    CONNECTION_TIMEOUT = "connection-timeout"
    HOST_GONE = "host-gone"
    HOST_UNKNOWN = "host-unknown"
    IMPROPER_ADDRESSING = "improper-addressing"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    INVALID_FROM = "invalid-from"
    INVALID_NAMESPACE = "invalid-namespace"
    INVALID_XML = "invalid-xml"
    NOT_AUTHORIZED = "not-authorized"
    NOT_WELL_FORMED = "not-well-formed"
    POLICY_VIOLATION = "policy-violation"
    REMOTE_CONNECTION_FAILED = "remote-connection-failed"
    RESET = "reset"
    RESOURCE_CONSTRAINT = "resource-constraint"
    RESTRICTED_XML = "restricted-xml"
    SEE_OTHER_HOST = "see-other-host"
    SYSTEM_SHUTDOWN = "system-shutdown"
    UNDEFINED_CONDITION = "undefined-condition"
    UNSUPPORTED_ENCODING = "unsupported-encoding"
    UNSUPPORTED_FEATURE = "unsupported-feature"
    UNSUPPORTED_STANZA_TYPE = "unsupported-stanza-type"
    UNSUPPORTED_VERSION = "unsupported-version"

    def to_xml(self, text: str | None = None) -> bytes:
        """The ``<stream:error/>`` element (section 4.9.2), with an optional ``<text/>``.

        The ``stream`` prefix is the one our own stream header declares
        (:func:`heslock.xmpp.stream.stream_header`).
        """
        body = f"<{self.value} xmlns='{NS_XMPP_STREAMS}'/>"
        if text:
            body += f"<text xmlns='{NS_XMPP_STREAMS}'>{escape_text(text)}</text>"
        return f"<stream:error>{body}</stream:error>".encode()


class StanzaErrorType(StrEnum):
    """Error types, RFC 6120 section 8.3.2: what the sender should do next."""

    AUTH = "auth"
    CANCEL = "cancel"
    CONTINUE = "continue"
    MODIFY = "modify"
    WAIT = "wait"


class StanzaErrorCondition(StrEnum):
    """Defined stanza error conditions, RFC 6120 section 8.3.3 (subsections 1-19)."""

    BAD_REQUEST = "bad-request"
    CONFLICT = "conflict"
    FEATURE_NOT_IMPLEMENTED = "feature-not-implemented"
    FORBIDDEN = "forbidden"
    GONE = "gone"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    ITEM_NOT_FOUND = "item-not-found"
    JID_MALFORMED = "jid-malformed"
    NOT_ACCEPTABLE = "not-acceptable"
    NOT_ALLOWED = "not-allowed"
    NOT_AUTHORIZED = "not-authorized"
    POLICY_VIOLATION = "policy-violation"
    RECIPIENT_UNAVAILABLE = "recipient-unavailable"
    REDIRECT = "redirect"
    REGISTRATION_REQUIRED = "registration-required"
    REMOTE_SERVER_NOT_FOUND = "remote-server-not-found"
    REMOTE_SERVER_TIMEOUT = "remote-server-timeout"
    RESOURCE_CONSTRAINT = "resource-constraint"
    SERVICE_UNAVAILABLE = "service-unavailable"
    SUBSCRIPTION_REQUIRED = "subscription-required"
    UNDEFINED_CONDITION = "undefined-condition"
    UNEXPECTED_REQUEST = "unexpected-request"

    @property
    def default_type(self) -> StanzaErrorType:
        """The error type RFC 6120 section 8.3.3 gives in each condition's example."""
        return _DEFAULT_TYPES.get(self, StanzaErrorType.CANCEL)

    def element(
        self, error_type: StanzaErrorType | None = None, text: str | None = None
    ) -> Element:
        """The ``<error/>`` child of an error stanza (section 8.3.2)."""
        error = Element(f"{{{NS_CLIENT}}}error", type=(error_type or self.default_type).value)
        SubElement(error, f"{{{NS_XMPP_STANZAS}}}{self.value}")
        if text:
            SubElement(error, f"{{{NS_XMPP_STANZAS}}}text").text = text
        return error


_DEFAULT_TYPES = {
    StanzaErrorCondition.BAD_REQUEST: StanzaErrorType.MODIFY,
    StanzaErrorCondition.FORBIDDEN: StanzaErrorType.AUTH,
    StanzaErrorCondition.JID_MALFORMED: StanzaErrorType.MODIFY,
    StanzaErrorCondition.NOT_ACCEPTABLE: StanzaErrorType.MODIFY,
    StanzaErrorCondition.NOT_AUTHORIZED: StanzaErrorType.AUTH,
    StanzaErrorCondition.POLICY_VIOLATION: StanzaErrorType.MODIFY,
    StanzaErrorCondition.RECIPIENT_UNAVAILABLE: StanzaErrorType.WAIT,
    StanzaErrorCondition.REDIRECT: StanzaErrorType.MODIFY,
    StanzaErrorCondition.REGISTRATION_REQUIRED: StanzaErrorType.AUTH,
    StanzaErrorCondition.REMOTE_SERVER_TIMEOUT: StanzaErrorType.WAIT,
    StanzaErrorCondition.RESOURCE_CONSTRAINT: StanzaErrorType.WAIT,
    StanzaErrorCondition.SUBSCRIPTION_REQUIRED: StanzaErrorType.AUTH,
    StanzaErrorCondition.UNEXPECTED_REQUEST: StanzaErrorType.WAIT,
}


class SaslFailure(StrEnum):
    """SASL failure conditions, RFC 6120 section 6.5 (subsections 1-11)."""

    ABORTED = "aborted"
    ACCOUNT_DISABLED = "account-disabled"
    CREDENTIALS_EXPIRED = "credentials-expired"
    ENCRYPTION_REQUIRED = "encryption-required"
    INCORRECT_ENCODING = "incorrect-encoding"
    INVALID_AUTHZID = "invalid-authzid"
    INVALID_MECHANISM = "invalid-mechanism"
    MALFORMED_REQUEST = "malformed-request"
    MECHANISM_TOO_WEAK = "mechanism-too-weak"
    NOT_AUTHORIZED = "not-authorized"
    TEMPORARY_AUTH_FAILURE = "temporary-auth-failure"

    def to_xml(self) -> bytes:
        """The ``<failure/>`` element (section 6.4.5)."""
        return f"<failure xmlns='{NS_SASL}'><{self.value}/></failure>".encode()


class XmppLocalError(LocalError):
    """This side cannot complete an XMPP operation."""


class IqTimeout(XmppLocalError):
    """No result or error arrived for an IQ within the caller's deadline."""


class RecipientOffline(XmppLocalError):
    """The addressed full JID has no session on this server."""


class ServerClosed(XmppLocalError):
    """The server is not running (not started yet, or shut down)."""


class XmppPeerError(PeerError):
    """An XMPP peer sent something we refuse or answered with an error."""


class StreamError(XmppPeerError):
    """The stream must be closed with ``condition`` (RFC 6120 section 4.9)."""

    def __init__(self, condition: StreamErrorCondition, text: str = "") -> None:
        super().__init__(f"{condition.value}: {text}" if text else condition.value)
        self.condition = condition
        self.text = text


class StanzaError(XmppPeerError):
    """An IQ was answered with ``type='error'`` (RFC 6120 section 8.3)."""

    def __init__(
        self,
        condition: StanzaErrorCondition | None,
        error_type: StanzaErrorType | None = None,
        text: str = "",
        application: Element | None = None,
    ) -> None:
        name = condition.value if condition else "undefined-condition"
        super().__init__(f"{name}: {text}" if text else name)
        self.condition = condition
        self.error_type = error_type
        self.text = text
        #: The application-specific condition element, if any (RFC 6120 section 8.3.2:
        #: a child of ``<error/>`` in another namespace), e.g. heslock's lock conditions.
        self.application = application

    @classmethod
    def from_stanza(cls, stanza: Element) -> StanzaError:
        """Read the ``<error/>`` child of an error stanza; unknown parts become ``None``."""
        error = stanza.find(f"{{{NS_CLIENT}}}error")
        if error is None:
            return cls(None, None, "error stanza without <error/>")
        condition: StanzaErrorCondition | None = None
        text = ""
        application: Element | None = None
        for child in error:
            ns, _, name = child.tag[1:].partition("}")
            if ns != NS_XMPP_STANZAS:
                if application is None and ns:
                    application = child
                continue
            if name == "text":
                text = child.text or ""
            elif condition is None:
                try:
                    condition = StanzaErrorCondition(name)
                except ValueError:
                    condition = None
        try:
            error_type: StanzaErrorType | None = StanzaErrorType(error.get("type", ""))
        except ValueError:
            error_type = None
        return cls(condition, error_type, text, application)
