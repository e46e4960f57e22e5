"""The sans-I/O stream parser (RFC 6120 sections 4 and 11): every vector fed whole, one
byte at a time, and in random chunks; restricted XML and limits refused."""

from __future__ import annotations

import itertools
from xml.etree.ElementTree import Element, SubElement

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heslock.xmpp.errors import StreamError, StreamErrorCondition
from heslock.xmpp.stream import (
    FEED_SLICE,
    MAX_STANZA_BYTES,
    MAX_STANZA_DEPTH,
    STREAM_CLOSED,
    Event,
    StreamOpen,
    StreamParser,
    serialize,
    stream_header,
)

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' "
    b"xml:lang='en'>"
)
IQ = b"<iq type='get' id='a1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>"
MESSAGE = (
    "<message to='gw1@example.com/bgw'><body>caf\u00e9 &amp; &lt;3 \U0001f512</body></message>"
).encode()
VALID = HEADER + IQ + b"\n " + MESSAGE + b" </stream:stream>"

REFUSED = {
    "doctype": (b"<!DOCTYPE x>" + HEADER, StreamErrorCondition.RESTRICTED_XML),
    "billion-laughs": (
        b"<!DOCTYPE l [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;&a;'>]>" + HEADER + b"<m>&b;</m>",
        StreamErrorCondition.RESTRICTED_XML,
    ),
    "xxe": (
        b"<!DOCTYPE f [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>" + HEADER + b"<m>&x;</m>",
        StreamErrorCondition.RESTRICTED_XML,
    ),
    "entity-ref": (HEADER + b"<message>&nbsp;</message>", StreamErrorCondition.RESTRICTED_XML),
    "comment": (HEADER + b"<!-- x -->", StreamErrorCondition.RESTRICTED_XML),
    "comment-in-stanza": (HEADER + b"<iq><!-- x --></iq>", StreamErrorCondition.RESTRICTED_XML),
    "pi": (HEADER + b"<?foo bar?>", StreamErrorCondition.RESTRICTED_XML),
    "garbage": (b"\x00\x01\x02garbage", StreamErrorCondition.NOT_WELL_FORMED),
    "mismatched": (HEADER + b"<iq></message>", StreamErrorCondition.NOT_WELL_FORMED),
    "invalid-utf8": (HEADER + b"<m>\xc3\x28</m>", StreamErrorCondition.UNSUPPORTED_ENCODING),
    "unbound-prefix": (b"<stream:stream>", StreamErrorCondition.BAD_NAMESPACE_PREFIX),
    "wrong-root": (b"<html xmlns='jabber:client'>", StreamErrorCondition.BAD_FORMAT),
    "wrong-stream-ns": (
        b"<s:stream xmlns:s='urn:x' xmlns='jabber:client'>",
        StreamErrorCondition.INVALID_NAMESPACE,
    ),
    "text-between-stanzas": (HEADER + b"hello", StreamErrorCondition.BAD_FORMAT),
    "deep": (HEADER + b"<a>" * (MAX_STANZA_DEPTH + 1), StreamErrorCondition.POLICY_VIOLATION),
    "one-mebibyte": (
        HEADER + b"<message><body>" + b"A" * (1024 * 1024),
        StreamErrorCondition.POLICY_VIOLATION,
    ),
    "huge-start-tag": (
        HEADER + b"<message a='" + b"A" * (MAX_STANZA_BYTES + FEED_SLICE + 1),
        StreamErrorCondition.POLICY_VIOLATION,
    ),
}


def feed_all(chunks: list[bytes]) -> list[Event]:
    parser = StreamParser()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def describe(events: list[Event]) -> list[object]:
    out: list[object] = []
    for event in events:
        if isinstance(event, Element):
            out.append(serialize(event))
        elif isinstance(event, StreamOpen):
            out.append(("open", event.to, event.version, event.lang, event.content_ns))
        else:
            out.append(event)
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


EXPECTED = describe(feed_all([VALID]))


def test_valid_stream_whole() -> None:
    expected = [("open", "example.com", "1.0", "en", "jabber:client"), IQ, MESSAGE, STREAM_CLOSED]
    assert expected == EXPECTED


def test_valid_stream_one_byte_at_a_time() -> None:
    assert describe(feed_all([VALID[i : i + 1] for i in range(len(VALID))])) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=20))
def test_valid_stream_random_chunks(cuts: list[int]) -> None:
    assert describe(feed_all(split_at(VALID, cuts))) == EXPECTED


def test_trailing_bytes_after_close_are_ignored() -> None:
    parser = StreamParser()
    events = parser.feed(VALID + b"<junk")
    assert events[-1] is STREAM_CLOSED
    assert parser.closed
    assert parser.feed(b"more") == []


def refusal(chunks: list[bytes]) -> StreamErrorCondition:
    with pytest.raises(StreamError) as caught:
        feed_all(chunks)
    return caught.value.condition


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_whole(case: str) -> None:
    data, condition = REFUSED[case]
    assert refusal([data]) is condition


@pytest.mark.parametrize("case", sorted(c for c in REFUSED if len(REFUSED[c][0]) < 5000))
def test_refused_one_byte_at_a_time(case: str) -> None:
    data, condition = REFUSED[case]
    assert refusal([data[i : i + 1] for i in range(len(data))]) is condition


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(REFUSED)), st.lists(st.integers(min_value=0), max_size=8))
def test_refused_random_chunks(case: str, cuts: list[int]) -> None:
    data, condition = REFUSED[case]
    if condition is StreamErrorCondition.UNSUPPORTED_ENCODING:
        condition_ok = {condition, StreamErrorCondition.NOT_WELL_FORMED}  # split mid-character
        assert refusal(split_at(data, cuts)) in condition_ok
    else:
        assert refusal(split_at(data, cuts)) is condition


def test_failed_parser_stays_failed() -> None:
    parser = StreamParser()
    with pytest.raises(StreamError):
        parser.feed(HEADER + b"<!-- x -->")
    with pytest.raises(StreamError) as caught:
        parser.feed(IQ)
    assert caught.value.condition is StreamErrorCondition.RESTRICTED_XML


def test_stanza_at_the_size_limit_is_accepted() -> None:
    head, tail = b"<message><body>", b"</body></message>"
    stanza = head + b"x" * (MAX_STANZA_BYTES - len(head) - len(tail)) + tail
    assert len(stanza) == MAX_STANZA_BYTES
    for chunks in ([HEADER, stanza], [HEADER + stanza[:100], stanza[100:]]):
        events = feed_all(chunks)
        assert isinstance(events[-1], Element)
        assert len(events[-1].findtext("{jabber:client}body") or "") == MAX_STANZA_BYTES - 32


def test_many_small_stanzas_never_add_up() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    for _ in range(3 * MAX_STANZA_BYTES // len(IQ)):
        assert len(parser.feed(IQ + b" ")) == 1


def test_whitespace_keepalives_never_add_up() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    for _ in range(MAX_STANZA_BYTES + 10):
        assert parser.feed(b" ") == []
    assert len(parser.feed(IQ)) == 1


def test_depth_at_the_limit_is_accepted() -> None:
    nested = b"<a>" * MAX_STANZA_DEPTH + b"</a>" * MAX_STANZA_DEPTH
    assert len(feed_all([HEADER, nested])) == 2


def test_eof_mid_stanza_is_not_well_formed() -> None:
    parser = StreamParser()
    parser.feed(HEADER + b"<iq><query")
    with pytest.raises(StreamError) as caught:
        parser.eof()
    assert caught.value.condition is StreamErrorCondition.NOT_WELL_FORMED


def test_eof_between_stanzas_is_quiet() -> None:
    parser = StreamParser()
    parser.feed(HEADER + IQ)
    parser.eof()
    assert parser.closed


def test_serialize_escapes_and_round_trips() -> None:
    message = Element(
        "{jabber:client}message",
        {"to": "a'b\"<&>\n@x", "{http://www.w3.org/XML/1998/namespace}lang": "fr"},
    )
    body = SubElement(message, "{jabber:client}body")
    body.text = "<&>'\""
    payload = SubElement(message, "{urn:heslock:frame:0}frame", {"{urn:other}attr": "1"})
    payload.text = "AAEC"
    payload.tail = "tail&"
    SubElement(message, "plain")
    data = serialize(message)
    assert b"ns0" not in data
    assert data.startswith(b"<message to='a&apos;b&quot;&lt;&amp;&gt;&#10;@x' xml:lang='fr'>")
    events = feed_all([HEADER, data])
    parsed = events[1]
    assert isinstance(parsed, Element)
    assert parsed.attrib == message.attrib
    assert parsed.findtext("{jabber:client}body") == "<&>'\""
    frame = parsed.find("{urn:heslock:frame:0}frame")
    assert frame is not None
    assert (frame.text, frame.tail, frame.get("{urn:other}attr")) == ("AAEC", "tail&", "1")
    assert parsed.find("plain") is not None
    assert serialize(parsed) == data


def test_stream_header_parses() -> None:
    header = stream_header("example.com", "id'1", to="gw1@example.com")
    events = feed_all([header])
    assert isinstance(events[0], StreamOpen)
    assert events[0].attrs["id"] == "id'1"
    assert events[0].attrs["from"] == "example.com"
    assert events[0].content_ns == "jabber:client"


def test_shed_idle_parser_and_revive_with_the_same_namespaces() -> None:
    parser = StreamParser()
    header = (
        b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' "
        b"xmlns:x='urn:extra' to='example.com' version='1.0'>"
    )
    assert isinstance(parser.feed(header + IQ + b" ")[0], StreamOpen)
    assert parser.shed()
    assert not parser.closed
    assert parser.shed()  # already shed: still fine
    events = parser.feed(b"<message><x:a/></message></s:stream>")
    assert isinstance(events[0], Element)
    assert events[0].tag == "{jabber:client}message"
    assert events[0][0].tag == "{urn:extra}a"  # the prefix declared on the root still works
    assert events[1] is STREAM_CLOSED


def test_shed_streams_share_their_root_and_revive_independently() -> None:
    first, second = StreamParser(), StreamParser()
    for parser in (first, second):
        parser.feed(HEADER + IQ)
        assert parser.shed()
        assert parser.depth == 1  # between stanzas, as before the shed
    assert first._shed is not None
    assert first._shed is second._shed  # one root for both idle streams
    events = first.feed(b"<message/>")
    assert [e.tag for e in events if isinstance(e, Element)] == ["{jabber:client}message"]
    assert second.feed(b"<presence/></stream:stream>")[-1] is STREAM_CLOSED
    revived = first.feed(b"<iq type='get' id='2'/>")
    assert [e.tag for e in revived if isinstance(e, Element)] == ["{jabber:client}iq"]
    assert first.depth == 1


@pytest.mark.parametrize("partial", [b"<iq a='>", b"<iq", b"<iq><query", b"<message>text"])
def test_shed_refuses_a_stream_stalled_mid_construct(partial: bytes) -> None:
    parser = StreamParser()
    parser.feed(HEADER + IQ + partial)
    assert not parser.shed()


def test_size_limit_still_counts_after_revival() -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    assert parser.shed()
    with pytest.raises(StreamError) as caught:
        parser.feed(b"<message><body>" + b"A" * (MAX_STANZA_BYTES + FEED_SLICE))
    assert caught.value.condition is StreamErrorCondition.POLICY_VIOLATION
