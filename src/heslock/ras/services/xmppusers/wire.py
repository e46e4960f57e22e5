"""heslock's XMPP namespace for people's live events, ``urn:heslock:events:1`` (issue 7).

A person's XMPP session (a login from :mod:`.logins`) receives every feed event they may
see -- the same events, by the same rule, as ``GET /v1/events/stream`` -- as a headline
message from the RAS's domain (RFC 6121 section 5.2.2: ``headline`` is a message not
stored offline and not answered). The message ``id`` and the event's ``id`` are the feed
id, the key a client de-duplicates on::

    <message type='headline' id='ev-1234' from='ras.example'
             to='p-0123456789abcdef0123@ras.example/phone'>
      <event xmlns='urn:heslock:events:1' id='1234' kind='lock.manual_operation'
             at='2026-11-24T05:00:00.123456+00:00' path='manual'
             lock='0b0c...' credential='gateway:5f1e...@ras.example'>
        <payload>{"detail":2}</payload>
      </event>
    </message>

Attributes: ``id`` (the feed id, a positive integer), ``kind``, ``at`` (RFC 3339), ``path``
(``remote``, ``nearby``, ``manual``, ``system``), and when present ``lock``, ``home``,
``gateway``, ``actor`` (UUIDs) and ``credential``. ``<payload>`` holds the kind's
details as one JSON object, exactly the ``payload`` of the REST listing.

Resuming after a reconnect is an IQ ``get`` to the domain; ``max`` is optional (default
:data:`DEFAULT_MAX`, at most :data:`MAX_EVENTS`)::

    <iq type='get' id='r1' to='ras.example'>
      <events xmlns='urn:heslock:events:1' after='1234' max='100'/>
    </iq>

    <iq type='result' id='r1' from='ras.example' to='p-...@ras.example/phone'>
      <events xmlns='urn:heslock:events:1' after='1234' last='1300' complete='true'>
        <event id='1240' kind='command.succeeded' .../>
        ...
      </events>
    </iq>

The events come oldest first; ``last`` is the id to ask after next (it may pass events
the person may not see); ``complete='false'`` means more are waiting: ask again with
``after`` = ``last``. Events pushed live while a client resumes may also be in a result:
the ids tell them apart. A malformed request is ``bad-request``; this namespace is
refused (``forbidden``) to every session but a person's.

Pure: :mod:`xml.etree` elements only; every ``from_element`` raises
:class:`EventNsError` (a :class:`~heslock.errors.PeerError`) with the reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from xml.etree.ElementTree import Element, SubElement

from heslock.errors import PeerError
from heslock.xmpp.errors import NS_CLIENT

NS_EVENTS: Final = "urn:heslock:events:1"
TAG_EVENT: Final = f"{{{NS_EVENTS}}}event"
TAG_EVENTS: Final = f"{{{NS_EVENTS}}}events"
TAG_PAYLOAD: Final = f"{{{NS_EVENTS}}}payload"
#: Events returned by one resume request unless the client asks for fewer.
DEFAULT_MAX: Final = 100
#: Events one resume request may return: one result stays well under the server's stanza
#: limit (an event is a few hundred bytes) and one database read.
MAX_EVENTS: Final = 200
#: Feed ids are database identities (BIGINT).
MAX_ID: Final = 2**63 - 1
#: Longest JSON payload accepted when parsing (ours are well under 1 KiB).
MAX_PAYLOAD_CHARS: Final = 16_384

_UUID_ATTRS: Final = (("lock", "lock_id"), ("home", "home_id"), ("gateway", "gateway_id"),
                      ("actor", "actor_id"))  # fmt: skip


class EventNsError(PeerError, ValueError):
    """An element of ``urn:heslock:events:1`` that does not parse (the message says why)."""


def _int(text: str | None, name: str, lowest: int, highest: int) -> int:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 19:
        raise EventNsError(f"{name} must be a decimal integer")
    value = int(text)
    if not lowest <= value <= highest:
        raise EventNsError(f"{name} must be in {lowest}..{highest}")
    return value


@dataclass(frozen=True)
class EventItem:
    """One feed event as it travels in this namespace (module docstring)."""

    id: int
    kind: str
    at: str
    path: str
    lock_id: uuid.UUID | None = None
    home_id: uuid.UUID | None = None
    gateway_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None
    credential: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> EventItem:
        """From :func:`heslock.ras.services.feed.query.view` (the REST/SSE shape)."""

        def uid(name: str) -> uuid.UUID | None:
            value = view.get(name)
            return uuid.UUID(value) if value is not None else None

        return cls(
            id=int(view["id"]),
            kind=str(view["kind"]),
            at=str(view["created_at"]),
            path=str(view["path"]),
            lock_id=uid("lock_id"),
            home_id=uid("home_id"),
            gateway_id=uid("gateway_id"),
            actor_id=uid("actor_id"),
            credential=view.get("credential"),
            payload=dict(view.get("payload") or {}),
        )

    def element(self) -> Element:
        event = Element(TAG_EVENT, id=str(self.id), kind=self.kind, at=self.at, path=self.path)
        for attribute, name in _UUID_ATTRS:
            value = getattr(self, name)
            if value is not None:
                event.set(attribute, str(value))
        if self.credential is not None:
            event.set("credential", self.credential)
        SubElement(event, TAG_PAYLOAD).text = json.dumps(
            dict(self.payload), separators=(",", ":"), ensure_ascii=False, sort_keys=True
        )
        return event

    @classmethod
    def from_element(cls, element: Element) -> EventItem:
        if element.tag != TAG_EVENT:
            raise EventNsError(f"expected <event xmlns='{NS_EVENTS}'>")
        values: dict[str, Any] = {}
        for attribute, name in _UUID_ATTRS:
            text = element.get(attribute)
            if text is not None:
                try:
                    values[name] = uuid.UUID(text)
                except ValueError:
                    raise EventNsError(f"{attribute} must be a UUID") from None
        for required in ("kind", "at", "path"):
            if not element.get(required):
                raise EventNsError(f"<event/> needs {required}")
        payload: Any = {}
        body = element.find(TAG_PAYLOAD)
        if body is not None and body.text:
            if len(body.text) > MAX_PAYLOAD_CHARS:
                raise EventNsError("payload too long")
            try:
                payload = json.loads(body.text)
            except json.JSONDecodeError:
                raise EventNsError("payload is not JSON") from None
            if not isinstance(payload, dict):
                raise EventNsError("payload must be a JSON object")
        return cls(
            id=_int(element.get("id"), "id", 1, MAX_ID),
            kind=element.get("kind", ""),
            at=element.get("at", ""),
            path=element.get("path", ""),
            credential=element.get("credential"),
            payload=payload,
            **values,
        )


def headline(item: EventItem, to: str, domain: str) -> Element:
    """The live message carrying ``item`` to the full JID ``to`` (module docstring)."""
    message = Element(f"{{{NS_CLIENT}}}message", type="headline", id=f"ev-{item.id}", to=to)
    message.set("from", domain)
    message.append(item.element())
    return message


@dataclass(frozen=True)
class ResumeRequest:
    """``<events after='N' max='M'/>``: the events after ``after`` (module docstring)."""

    after: int
    max: int = DEFAULT_MAX

    @classmethod
    def from_element(cls, element: Element) -> ResumeRequest:
        if element.tag != TAG_EVENTS:
            raise EventNsError(f"expected <events xmlns='{NS_EVENTS}'>")
        if len(element):
            raise EventNsError("a resume request has no children")
        after = _int(element.get("after"), "after", 0, MAX_ID)
        wanted = element.get("max")
        limit = DEFAULT_MAX if wanted is None else _int(wanted, "max", 1, MAX_EVENTS)
        return cls(after, limit)

    def element(self) -> Element:
        return Element(TAG_EVENTS, after=str(self.after), max=str(self.max))


@dataclass(frozen=True)
class ResumeResult:
    """The answer: events oldest first, the next cursor, whether caught up."""

    after: int
    last: int
    complete: bool
    events: Sequence[EventItem] = ()

    def element(self) -> Element:
        result = Element(
            TAG_EVENTS,
            after=str(self.after),
            last=str(self.last),
            complete="true" if self.complete else "false",
        )
        result.extend(item.element() for item in self.events)
        return result

    @classmethod
    def from_element(cls, element: Element) -> ResumeResult:
        if element.tag != TAG_EVENTS:
            raise EventNsError(f"expected <events xmlns='{NS_EVENTS}'>")
        complete = element.get("complete")
        if complete not in ("true", "false"):
            raise EventNsError("complete must be true or false")
        return cls(
            after=_int(element.get("after"), "after", 0, MAX_ID),
            last=_int(element.get("last"), "last", 0, MAX_ID),
            complete=complete == "true",
            events=tuple(EventItem.from_element(child) for child in element),
        )


__all__ = [
    "DEFAULT_MAX",
    "MAX_EVENTS",
    "NS_EVENTS",
    "EventItem",
    "EventNsError",
    "ResumeRequest",
    "ResumeResult",
    "headline",
]
