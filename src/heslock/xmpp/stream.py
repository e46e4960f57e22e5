"""Sans-I/O incremental parser and serialiser for XMPP streams (RFC 6120 sections 4 and 11).

Theory of operation
-------------------
An XMPP stream is one XML document delivered over hours: ``<stream:stream ...>`` opens it,
every child of the root is a top-level element (a stanza, or a negotiation element such as
``<starttls/>`` or ``<auth/>``), and ``</stream:stream>`` ends it. :class:`StreamParser`
takes bytes as they arrive (:meth:`StreamParser.feed`, any chunking, down to one byte at a
time) and returns the events they complete, in order:

- :class:`StreamOpen` -- the stream header, with its attributes and namespace declarations;
- :class:`xml.etree.ElementTree.Element` -- one complete top-level element;
- :data:`STREAM_CLOSED` -- the closing tag.

It is built on the standard library's C ``XMLParser`` (expat) with our own *target* object,
which is the fast and hardenable choice (docs: FIELD-NOTES, "XML for the XMPP endpoint").
The document encoding is forced to UTF-8 (RFC 6120 section 11.6): a declaration naming any
other encoding is ignored and bytes that are not UTF-8 fail.

What is refused, and with which stream error (RFC 6120 section 4.9.3), raised as
:class:`heslock.xmpp.errors.StreamError` from :meth:`StreamParser.feed`:

- ``restricted-xml`` (section 11.1): a DOCTYPE (so no DTD, no entity declarations, hence no
  "billion laughs" and no external entities), a comment, a processing instruction, or a
  reference to an entity other than the five predefined ones. The DOCTYPE is refused at its
  start, before expat reads any declaration.
- ``policy-violation`` (section 4.9.3.14, whose text names "a stanza exceeds a configured size
  limit" as the example): more than :data:`MAX_STANZA_BYTES` fed while one top-level element
  is open, or elements nested deeper than :data:`MAX_STANZA_DEPTH`. Not ``resource-constraint``:
  that condition says the *server* lacks resources, while here the *peer* broke a published
  limit.
- ``unsupported-encoding`` (section 4.9.3.22): bytes that are not valid UTF-8.
- ``bad-namespace-prefix`` (4.9.3.2): an undeclared prefix; ``invalid-namespace`` (4.9.3.10): a
  root that is not ``{http://etherx.jabber.org/streams}stream``; ``bad-format`` (4.9.3.1):
  another root element, or character data other than whitespace between stanzas.
- ``not-well-formed`` (4.9.3.13): anything else expat rejects.

How the size limit is counted: bytes are fed to expat in slices of at most
:data:`FEED_SLICE` bytes; every slice counts towards the element being received, and the
count restarts whenever expat reports the end of a top-level element, the stream header or
whitespace between stanzas. A stanza of ``MAX_STANZA_BYTES`` or fewer is therefore always
accepted, one of more than ``MAX_STANZA_BYTES + FEED_SLICE`` always refused, and expat never
buffers more than that (an unterminated start tag is counted too, as no event resets the
count while it grows).

Idle streams shed their parser (:meth:`StreamParser.shed`): expat holds ~12 KiB per
stream (buffers, namespace tables), half the memory budget of a held gateway session
(issue 9). Between stanzas the only context a stream carries is the root's namespace
declarations, so an idle stream can drop its expat parser and, when bytes arrive, start a
new one primed with a synthetic root carrying the same declarations. Whether expat still
buffers a partial construct (``<iq a='...``) is invisible from outside, so :meth:`shed`
first feeds a probe element: only if exactly that element comes back complete was the
parser clean; otherwise the peer has stalled mid-construct for a whole idle period and
:meth:`shed` says so (the session then ends the stream). A shed stream keeps only the
synthetic root, shared between streams whose headers declared the same namespaces (every
gateway's do: one bytes object for thousands of idle sessions, a bounded table), and no
target object of its own.

A stream restart (after STARTTLS, RFC 6120 section 5.4.3.3, and after SASL, section 6.4.6)
means a fresh document: make a new :class:`StreamParser`; the old one is discarded together
with anything it still buffered (which is how bytes injected after ``<starttls/>`` are
dropped, the STARTTLS command-injection defence).

Serialisation: :func:`serialize` writes an element in XMPP's usual form (default-namespace
declarations, never generated ``ns0:`` prefixes, which many clients cannot read), with the
escaping of :func:`escape_attr` and :func:`heslock.xmpp.errors.escape_text`;
:func:`stream_header` writes the server's response stream header.
"""

from __future__ import annotations

import codecs
from typing import Final
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, XMLParser
from xml.parsers.expat import errors as expat_errors

from heslock.xmpp.errors import (
    NS_CLIENT,
    NS_STREAMS,
    StreamError,
    StreamErrorCondition,
    escape_text,
)

#: RFC 6120 section 13.12 asks servers to bound stanza size; 64 KiB is far above any frame
#: IQ (a 20-byte frame in base64 plus addressing is < 1 KiB) and bounds the memory one
#: peer can make us hold while a stanza is incomplete (issue 5).
MAX_STANZA_BYTES: Final = 64 * 1024
#: Elements below the stream root. The deepest real payloads (pubsub items, XHTML-IM) stay
#: near 12; the limit also bounds the recursion of :func:`serialize` and the tree builder.
MAX_STANZA_DEPTH: Final = 24
#: What :meth:`StreamParser.shed` feeds to prove the parser holds no partial construct.
PROBE_TAG: Final = "{urn:heslock:xmpp:probe}probe"
_PROBE = b"<probe xmlns='urn:heslock:xmpp:probe'/>"
#: Granularity of the byte count (see the module docstring): small enough that a refused
#: stanza costs little, large enough that a full TLS record (16 KiB) is 4 expat calls.
FEED_SLICE: Final = 4096
#: Distinct synthetic roots shared between shed streams; past this a root is not shared
#: (a peer choosing unusual prefixes cannot grow the table).
MAX_SHARED_ROOTS: Final = 64

NS_XML: Final = "http://www.w3.org/XML/1998/namespace"
STREAM_TAG: Final = f"{{{NS_STREAMS}}}stream"
STREAM_CLOSE: Final = b"</stream:stream>"

_UNBOUND_PREFIX = expat_errors.codes[expat_errors.XML_ERROR_UNBOUND_PREFIX]
_UNDEFINED_ENTITY = expat_errors.codes[expat_errors.XML_ERROR_UNDEFINED_ENTITY]
_INVALID_TOKEN = expat_errors.codes[expat_errors.XML_ERROR_INVALID_TOKEN]
_BAD_ENCODING = {
    expat_errors.codes[expat_errors.XML_ERROR_UNKNOWN_ENCODING],
    expat_errors.codes[expat_errors.XML_ERROR_INCORRECT_ENCODING],
}


class StreamOpen:
    """The peer's stream header (RFC 6120 section 4.7): attributes and root namespaces."""

    __slots__ = ("attrs", "namespaces")

    def __init__(self, attrs: dict[str, str], namespaces: dict[str, str]) -> None:
        self.attrs = attrs
        #: prefix -> namespace declared on the root; ``""`` is the content namespace.
        self.namespaces = namespaces

    @property
    def to(self) -> str | None:
        """The ``to`` attribute: the domain the client wants to reach."""
        return self.attrs.get("to")

    @property
    def version(self) -> str | None:
        """The ``version`` attribute (``"1.0"`` for RFC 6120 streams)."""
        return self.attrs.get("version")

    @property
    def lang(self) -> str | None:
        """``xml:lang`` of the stream."""
        return self.attrs.get(f"{{{NS_XML}}}lang")

    @property
    def content_ns(self) -> str | None:
        """The default namespace: must be ``jabber:client`` on a C2S stream."""
        return self.namespaces.get("")

    def __repr__(self) -> str:
        return f"StreamOpen({self.attrs!r}, {self.namespaces!r})"


class _StreamClosed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "STREAM_CLOSED"


#: The event for ``</stream:stream>``.
STREAM_CLOSED: Final = _StreamClosed()

Event = StreamOpen | Element | _StreamClosed


def _restricted(what: str) -> StreamError:
    return StreamError(StreamErrorCondition.RESTRICTED_XML, f"{what} not allowed")


class _Target:
    """The expat target: tracks depth, builds top-level elements, refuses restricted XML."""

    __slots__ = ("boundary", "builder", "depth", "events", "max_depth", "namespaces")

    def __init__(self, max_depth: int) -> None:
        self.depth = 0
        self.max_depth = max_depth + 1  # counted from the root
        self.builder: TreeBuilder | None = None
        self.events: list[Event] = []
        self.namespaces: dict[str, str] = {}
        self.boundary = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        depth = self.depth = self.depth + 1
        if depth >= 2:
            builder: TreeBuilder | None
            if depth == 2:
                self.builder = builder = TreeBuilder()
            else:
                builder = self.builder
                if depth > self.max_depth or builder is None:
                    raise StreamError(
                        StreamErrorCondition.POLICY_VIOLATION,
                        f"elements nested deeper than {self.max_depth - 1}",
                    )
            builder.start(tag, attrib)
            return
        if tag != STREAM_TAG:
            if tag.endswith("}stream"):
                raise StreamError(StreamErrorCondition.INVALID_NAMESPACE, "not a stream")
            raise StreamError(StreamErrorCondition.BAD_FORMAT, "root is not <stream:stream>")
        self.events.append(StreamOpen(attrib, self.namespaces))
        self.boundary = True

    def end(self, tag: str) -> None:
        depth = self.depth
        self.depth = depth - 1
        builder = self.builder
        if depth == 2 and builder is not None:
            builder.end(tag)
            self.events.append(builder.close())
            self.builder = None
            self.boundary = True
        elif builder is not None:
            builder.end(tag)
        else:
            self.events.append(STREAM_CLOSED)

    def data(self, text: str) -> None:
        if self.builder is not None:
            self.builder.data(text)
        elif text.isspace():
            self.boundary = True  # whitespace between stanzas (keepalives, RFC 6120 4.6.1)
        else:
            raise StreamError(StreamErrorCondition.BAD_FORMAT, "text between stanzas")

    def start_ns(self, prefix: str, uri: str) -> None:
        if self.depth == 0:
            self.namespaces[prefix] = uri

    def comment(self, _text: str) -> None:
        raise _restricted("comments are")

    def pi(self, _target: str, _data: str) -> None:
        raise _restricted("processing instructions are")

    def doctype(self, _name: str, _pubid: str | None, _system: str | None) -> None:
        raise _restricted("a DTD is")

    def close(self) -> None:
        return None


#: The target a shed stream reports its depth from (1: between stanzas). Nothing feeds
#: it: :meth:`StreamParser.feed` revives a shed stream with a target of its own first.
_SHED_TARGET: Final = _Target(0)
_SHED_TARGET.depth = 1
_shared_roots: dict[bytes, bytes] = {}


def _shared_root(root: bytes) -> bytes:
    shared = _shared_roots.get(root)
    if shared is not None:
        return shared
    if len(_shared_roots) < MAX_SHARED_ROOTS:
        _shared_roots[root] = root
    return root


def _looks_like_bad_utf8(chunk: bytes) -> bool:
    """Whether ``chunk`` holds invalid UTF-8 (ignoring a character split at either edge)."""
    start = 0
    while start < min(3, len(chunk)) and 0x80 <= chunk[start] <= 0xBF:
        start += 1
    try:
        codecs.getincrementaldecoder("utf-8")().decode(chunk[start:], final=False)
    except UnicodeDecodeError:
        return True
    return False


class StreamParser:
    """Incremental parser for one XMPP stream document (one per stream restart)."""

    __slots__ = (
        "_error",
        "_max_depth",
        "_parser",
        "_pending",
        "_shed",
        "_tail",
        "_target",
        "max_stanza_bytes",
    )

    def __init__(
        self, max_stanza_bytes: int = MAX_STANZA_BYTES, max_depth: int = MAX_STANZA_DEPTH
    ) -> None:
        self.max_stanza_bytes = max_stanza_bytes
        self._max_depth = max_depth
        self._shed: bytes | None = None  # the synthetic root to replay after shed()
        self._target = _Target(max_depth)
        # S314: this *is* the hardening defusedxml would give (DTD/entities/PIs refused in
        # the target, size and depth capped), on the fast C parser (module docstring).
        self._parser: XMLParser | None = XMLParser(target=self._target, encoding="utf-8")  # noqa: S314
        self._pending = 0
        self._error: StreamError | None = None
        self._tail = b""  # last bytes fed: tells a UTF-8 error split across chunks

    @property
    def depth(self) -> int:
        """Current element depth: 0 before the header, 1 between stanzas."""
        return self._target.depth

    @property
    def closed(self) -> bool:
        """Whether the stream was closed or failed: further bytes are ignored or refused."""
        return self._parser is None and self._shed is None

    def shed(self) -> bool:
        """Drop the expat parser of a stream idle between stanzas (see the module docstring).

        Returns False, changing nothing usable, when the stream is not between stanzas or
        expat still held part of a construct: the caller should end such a stream.
        """
        parser = self._parser
        target = self._target
        if parser is None or target.depth != 1:
            return self._shed is not None
        target.events = []
        try:
            parser.feed(_PROBE)
        except (ParseError, StreamError):
            self._parser = None
            return False
        events = target.events
        clean = (
            len(events) == 1
            and isinstance(events[0], Element)
            and events[0].tag == PROBE_TAG
            and target.depth == 1
        )
        self._parser = None
        if clean:
            self._shed = _shared_root(self._synthetic_root())
            self._target = _SHED_TARGET
            self._pending = 0
        return clean

    def _synthetic_root(self) -> bytes:
        namespaces = self._target.namespaces
        prefix = next((p for p, uri in namespaces.items() if uri == NS_STREAMS), "")
        declarations = "".join(
            f" xmlns:{p}='{escape_attr(uri)}'" if p else f" xmlns='{escape_attr(uri)}'"
            for p, uri in namespaces.items()
        )
        tag = f"{prefix}:stream" if prefix else "stream"
        return f"<{tag}{declarations}>".encode()

    def _revive(self, root: bytes) -> XMLParser:
        self._shed = None
        self._target = target = _Target(self._max_depth)
        parser = XMLParser(target=target, encoding="utf-8")  # noqa: S314 - as in __init__
        parser.feed(root)  # our own bytes: the one event is the replayed StreamOpen
        target.events = []
        self._parser = parser
        return parser

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data`` and return the events it completes (possibly none).

        Raises :class:`StreamError` on the first violation; the parser stays failed and
        raises the same error again on any later call.
        """
        if self._error is not None:
            raise self._error
        parser = self._parser
        if parser is None:
            if self._shed is None:
                return []
            parser = self._revive(self._shed)
        target = self._target
        events: list[Event] = []
        target.events = events
        try:
            for offset in range(0, len(data), FEED_SLICE):
                chunk = data[offset : offset + FEED_SLICE] if len(data) > FEED_SLICE else data
                self._count(len(chunk))
                target.boundary = False
                try:
                    parser.feed(chunk)
                except ParseError as exc:
                    if not (events and events[-1] is STREAM_CLOSED):
                        raise self._translate(exc, self._tail + chunk) from None
                    # else: junk after </stream:stream> in the same chunk; the stream is over
                self._tail = chunk[-3:]
                if target.boundary:
                    self._pending = 0
                if events and events[-1] is STREAM_CLOSED:
                    self._parser = None  # the document is over: trailing bytes are ignored
                    break
        except StreamError as exc:
            self._error = exc
            self._parser = None
            raise
        return events

    def _count(self, size: int) -> None:
        self._pending += size
        if self._pending > self.max_stanza_bytes:
            raise StreamError(
                StreamErrorCondition.POLICY_VIOLATION,
                f"stanza larger than {self.max_stanza_bytes} bytes",
            )

    def eof(self) -> None:
        """The transport ended: raise ``not-well-formed`` if a stanza was cut short."""
        if self._parser is not None and self._target.depth > 1:
            self._parser = None
            raise StreamError(StreamErrorCondition.NOT_WELL_FORMED, "stream ended mid-stanza")
        self._parser = None
        self._shed = None

    @staticmethod
    def _translate(exc: ParseError, chunk: bytes) -> StreamError:
        code = exc.code
        if code == _UNBOUND_PREFIX:
            return StreamError(StreamErrorCondition.BAD_NAMESPACE_PREFIX, "undeclared prefix")
        if code == _UNDEFINED_ENTITY:
            return _restricted("entity references are")
        if code in _BAD_ENCODING or (code == _INVALID_TOKEN and _looks_like_bad_utf8(chunk)):
            return StreamError(StreamErrorCondition.UNSUPPORTED_ENCODING, "stream is not UTF-8")
        return StreamError(StreamErrorCondition.NOT_WELL_FORMED, str(exc))


# --- serialisation --------------------------------------------------------------------------

_ATTR_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "'": "&apos;",
        '"': "&quot;",
        "\n": "&#10;",
        "\r": "&#13;",
        "\t": "&#9;",
    }
)


def escape_attr(value: str) -> str:
    """Escape an attribute value for single-quoted output (whitespace kept as references)."""
    return value.translate(_ATTR_ESCAPES)


def _split(tag: str) -> tuple[str, str]:
    if tag[:1] == "{":
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _write(element: Element, parent_ns: str, out: list[str]) -> None:
    ns, local = _split(element.tag)
    out.append("<" + local)
    if ns != parent_ns:
        out.append(f" xmlns='{escape_attr(ns)}'")
    prefixes = 0
    for key, value in element.attrib.items():
        if key[:1] == "{":
            key_ns, key_local = _split(key)
            if key_ns == NS_XML:
                name = "xml:" + key_local
            else:
                name = f"a{prefixes}:{key_local}"
                out.append(f" xmlns:a{prefixes}='{escape_attr(key_ns)}'")
                prefixes += 1
        else:
            name = key
        out.append(f" {name}='{escape_attr(value)}'")
    text = element.text
    if text is None and len(element) == 0:
        out.append("/>")
        return
    out.append(">")
    if text:
        out.append(escape_text(text))
    for child in element:
        _write(child, ns, out)
        if child.tail:
            out.append(escape_text(child.tail))
    out.append(f"</{local}>")


def serialize(element: Element, parent_ns: str = NS_CLIENT) -> bytes:
    """UTF-8 XML for ``element`` as a child of a stream whose content namespace is ``parent_ns``.

    The element's own ``tail`` is not written (it belongs to its parent).
    """
    out: list[str] = []
    _write(element, parent_ns, out)
    return "".join(out).encode()


def stream_header(
    domain: str, stream_id: str, to: str | None = None, lang: str = "en", version: str = "1.0"
) -> bytes:
    """The response stream header a server sends (RFC 6120 section 4.7), with XML declaration.

    Declares ``jabber:client`` as content namespace and the ``stream`` prefix that
    :meth:`StreamErrorCondition.to_xml` and :data:`STREAM_CLOSE` rely on.
    """
    to_attr = f" to='{escape_attr(to)}'" if to else ""
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'"
        f" id='{escape_attr(stream_id)}' from='{escape_attr(domain)}'{to_attr}"
        f" version='{escape_attr(version)}' xml:lang='{escape_attr(lang)}'>"
    ).encode()
