"""TLS for XMPP sessions on memory BIOs (RFC 6120 section 5; XEP-0368 direct TLS).

Why not asyncio's own TLS transport: it allocates a 256 KiB read buffer per connection
(``SSLProtocol.max_size``, measured at 260 KiB resident), ten times the memory budget of a
whole held gateway session (issue 9: <= 24 KiB). :class:`TlsLayer` drives an
``ssl.SSLObject`` over two ``ssl.MemoryBIO`` objects inside the session's plain TCP protocol
instead (about 16 KiB resident when idle, measured with OpenSSL 3.0). It also makes STARTTLS
a local switch: after ``<proceed/>`` the session simply starts routing bytes through it.

The caller's ``ssl.SSLContext`` decides protocol versions and certificates; the server
checks it allows nothing below TLS 1.2 (:func:`check_context`).
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Final

from heslock.errors import LocalError

#: Largest plaintext read at once: one TLS record carries at most 16 KiB (RFC 8446 5.1).
READ_SIZE: Final = 16 * 1024


def check_context(context: ssl.SSLContext) -> None:
    """Refuse a server context that would accept TLS older than 1.2 (issue 5)."""
    minimum = context.minimum_version
    # MAXIMUM_SUPPORTED (-1) means "only the newest version"; every other value below
    # TLSv1_2, MINIMUM_SUPPORTED (-2) included, lets an old protocol in.
    if minimum is not ssl.TLSVersion.MAXIMUM_SUPPORTED and minimum < ssl.TLSVersion.TLSv1_2:
        raise LocalError("the XMPP server's SSLContext must set minimum_version >= TLSv1_2")


class TlsLayer:
    """Server side of one TLS connection, sans-I/O: bytes in, plaintext and records out."""

    __slots__ = ("_incoming", "_outgoing", "established", "obj")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.established = False

    def receive(self, data: bytes) -> tuple[bytes, bytes, bool]:
        """Take bytes from the network; return (plaintext, bytes to send, peer closed TLS).

        Raises ``ssl.SSLError`` when the handshake or a record fails (the caller aborts).
        """
        self._incoming.write(data)
        obj = self.obj
        if not self.established:
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                return b"", self._outgoing.read(), False
            self.established = True
        chunks: list[bytes] = []
        closed = False
        while True:
            try:
                chunk = obj.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
        plain = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return plain, self._outgoing.read(), closed

    def encrypt(self, plain: bytes) -> bytes:
        """TLS records carrying ``plain``."""
        self.obj.write(plain)
        return self._outgoing.read()

    def close(self) -> bytes:
        """A close_notify alert to send before closing the socket (b"" if unavailable)."""
        with contextlib.suppress(ssl.SSLError):  # WantRead: the peer's alert never comes
            self.obj.unwrap()
        return self._outgoing.read()
