"""Gateway accounts in bulk, for the benchmarks: what ``POST /v1/gateways`` writes, faster.

The real path (:func:`heslock.ras.services.ddms.gateways.create`) draws a 256-bit secret
(``secrets.token_urlsafe(32)``), derives the SCRAM-SHA-256 verifiers with scramp's
``make_auth_info`` at ``settings.scram_iterations`` (a fresh 16-byte salt each) and inserts
one ``gateways`` row with ``jid = <id>@<domain>``. :func:`gateways` writes the same rows
(same secret size, salt size, iteration count, JID form; one owner user for all), in
batches of one transaction each, and leaves out the per-gateway audit record (the login
path never reads it). Each PBKDF2 run also yields the client's cached keys
(:mod:`bench.load.scram`), so the load generator never repeats it at login.

:func:`prosody_accounts` writes the same accounts as Prosody 0.12 data files
(``mod_auth_internal_hashed`` with ``password_hash = "SHA-256"``: hex StoredKey/ServerKey,
a UUID string as salt, the iteration count).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import insert

from bench.load.scram import derive
from bench.load.xmpp import Account
from heslock.ras.settings import Settings
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.models import Gateway, User

#: As heslock.ras.services.ddms.gateways.SECRET_BYTES and scramp's Salt.create.
SECRET_BYTES: Final = 32
SALT_BYTES: Final = 16
BATCH: Final = 2000


def accounts(count: int, iterations: int, *, salt_text: bool = False) -> list[Account]:
    """``count`` fresh accounts (random id and secret, keys derived once each).

    ``salt_text``: the salt is a UUID string (Prosody's form), else 16 random bytes.
    """
    out = []
    for _ in range(count):
        username = str(uuid.uuid4())
        password = secrets.token_urlsafe(SECRET_BYTES)
        salt = str(uuid.uuid4()).encode() if salt_text else secrets.token_bytes(SALT_BYTES)
        out.append(Account(username, password, derive(password, salt, iterations)))
    return out


async def gateways(settings: Settings, accounts_: Sequence[Account]) -> None:
    """Insert one gateway row per account (ids are the usernames) into the RAS database."""
    engine = create_engine(settings.database_url)
    sessionmaker = create_sessionmaker(engine)
    now = datetime.now(UTC)
    try:
        async with sessionmaker() as session, session.begin():
            owner = User(display_name="bench gateways")
            session.add(owner)
            await session.flush()
            owner_id = owner.id
        for start in range(0, len(accounts_), BATCH):
            rows = []
            for account in accounts_[start : start + BATCH]:
                keys = account.keys
                assert keys is not None
                gateway_id = uuid.UUID(account.username)
                rows.append(
                    {
                        "id": gateway_id,
                        "owner_id": owner_id,
                        "name": f"bench {account.username[:8]}",
                        "jid": f"{gateway_id}@{settings.domain}",
                        "scram_salt": keys.salt,
                        "scram_stored_key": keys.stored_key,
                        "scram_server_key": keys.server_key,
                        "scram_iterations": keys.iterations,
                        "created_at": now,
                        "secret_rotated_at": now,
                    }
                )
            async with sessionmaker() as session, session.begin():
                await session.execute(insert(Gateway), rows)
    finally:
        await engine.dispose()


def _prosody_encode(text: str) -> str:
    """Prosody's datamanager file-name encoding (every non-alphanumeric as %xx)."""
    return "".join(c if c.isalnum() else f"%{ord(c):02x}" for c in text)


def prosody_accounts(data_path: Path, domain: str, accounts_: Sequence[Account]) -> None:
    """Write Prosody 0.12 ``accounts`` data files for ``accounts_`` (SCRAM-SHA-256)."""
    folder = data_path / _prosody_encode(domain) / "accounts"
    folder.mkdir(parents=True, exist_ok=True)
    for account in accounts_:
        keys = account.keys
        assert keys is not None
        body = (
            "return {\n"
            f'\t["iteration_count"] = {keys.iterations};\n'
            f'\t["salt"] = "{keys.salt.decode()}";\n'
            f'\t["server_key"] = "{keys.server_key.hex()}";\n'
            f'\t["stored_key"] = "{keys.stored_key.hex()}";\n'
            "};\n"
        )
        (folder / f"{_prosody_encode(account.username)}.dat").write_text(body, encoding="utf-8")
