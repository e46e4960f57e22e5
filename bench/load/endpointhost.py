"""``python -m bench.load.endpointhost``: heslock's XMPP endpoint alone, to split costs.

:class:`heslock.xmpp.server.XmppServer` as the RAS configures it (the RAS's certificate,
TLS context and domain, STARTTLS and direct TLS, SCRAM-SHA-256(-PLUS)), but with the
SCRAM verifiers in a dict instead of the RAS database and no RAS service behind it (no
relay registry, feed monitor, event ingest or logging of its own). What the RAS spends
beyond this process, per login and per held session, is the cost of its services.

Arguments: ``CERT KEY DOMAIN STARTTLS_PORT DIRECT_PORT ACCOUNTS`` where ACCOUNTS is a
file of lines ``username salt-hex stored-key-hex server-key-hex iterations``. Prints
``{"ready": true}`` once listening; then each line on stdin is answered with
``{"online": N}`` after a garbage collection; end of input stops it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from heslock.ras.tls import server_context
from heslock.xmpp.jid import Jid
from heslock.xmpp.sasl import ScramCredentials
from heslock.xmpp.server import ServerConfig, XmppServer


class _Store:
    def __init__(self, credentials: dict[str, ScramCredentials]) -> None:
        self.credentials = credentials

    async def scram_sha256(self, username: str) -> ScramCredentials | None:
        return self.credentials.get(username)


class _Presence:
    def presence_changed(self, jid: Jid, available: bool) -> None:
        return None


def read_accounts(path: Path) -> dict[str, ScramCredentials]:
    out = {}
    for line in path.read_text(encoding="ascii").splitlines():
        name, salt, stored, server, iterations = line.split()
        out[name] = ScramCredentials(
            bytes.fromhex(salt), bytes.fromhex(stored), bytes.fromhex(server), int(iterations)
        )
    return out


def build(argv: list[str]) -> XmppServer:
    """The server as the RAS would configure it, from the command line."""
    cert, key, domain, starttls, direct, accounts = argv
    der = x509.load_pem_x509_certificate(Path(cert).read_bytes()).public_bytes(Encoding.DER)
    config = ServerConfig(
        domain=domain,
        ssl_context=server_context(Path(cert), Path(key)),
        starttls_port=int(starttls),
        direct_tls_port=int(direct),
        certificate_der=der,
    )
    return XmppServer(config, _Store(read_accounts(Path(accounts))), presence_listener=_Presence())


async def serve(server: XmppServer) -> None:
    await server.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    try:
        while await reader.readline():
            gc.collect()
            print(json.dumps({"online": len(server.online)}), flush=True)
    finally:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(serve(build(sys.argv[1:])))
