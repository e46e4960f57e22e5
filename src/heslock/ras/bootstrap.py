"""``heslock ras init``: create a RAS data directory from nothing.

Creates, in order, each step durable before the next: the directory (0700), the master
key (0600), the private CA and server certificate (keys 0600), the SQLite database
migrated to head, and a first administrator (UDMS) with a random password that is
returned once to be printed and is stored only as an argon2id hash. The creation is
itself the first audit record.

An existing data directory is refused, naming what is there; ``force`` removes exactly
the files init would create (never anything else in the directory) and starts over —
which destroys every lock key encrypted under the old master key.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from heslock.errors import UsageError
from heslock.ras.keystore import create_master_key
from heslock.ras.passwords import PasswordHasher, generate_password
from heslock.ras.services import audit
from heslock.ras.services.access import SYSTEM
from heslock.ras.settings import Settings
from heslock.ras.store import create_engine, create_sessionmaker
from heslock.ras.store.migrate import upgrade
from heslock.ras.store.models import Contact, ContactKind, PasswordCredential, User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InitResult:
    admin_login: str
    admin_password: str  # shown once by the CLI, never stored or logged
    admin_id: str


def artefacts(settings: Settings) -> list[Path]:
    """Every file init creates (the database with its WAL files if SQLite)."""
    paths = [
        settings.master_key_file,
        settings.tls_ca,
        settings.tls_ca_key,
        settings.tls_cert,
        settings.tls_key,
    ]
    if settings.is_sqlite:
        db = sqlite_path(settings)
        paths += [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return paths


def sqlite_path(settings: Settings) -> Path:
    return Path(settings.database_url.split(":///", 1)[1])


def _prepare(settings: Settings, *, force: bool) -> None:
    existing = [p for p in artefacts(settings) if p.exists() or p.is_symlink()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise UsageError(
            f"data directory {settings.data_dir} is already initialised ({names}); "
            "use --force to start over (this destroys the master key and every lock key)"
        )
    for path in existing:
        log.warning("init --force: removing %s", path)
        path.unlink()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


async def initialise(settings: Settings, admin_login: str, *, force: bool = False) -> InitResult:
    """Create the data directory, keys, certificates, database and first admin."""
    from heslock.ras.tls import create_certificates  # noqa: PLC0415  (x509 is slow to import)

    _prepare(settings, force=force)
    create_master_key(settings.master_key_file)
    create_certificates(
        settings.tls_ca, settings.tls_ca_key, settings.tls_cert, settings.tls_key, settings.domain
    )
    password = generate_password()
    password_hash = await PasswordHasher.from_settings(settings).hash(password)
    if settings.is_sqlite:
        # Hashes and envelopes: owner-only, like the keys (SQLite gives -wal/-shm the same mode).
        db = sqlite_path(settings)
        db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with create_sessionmaker(engine)() as session, session.begin():
            admin = User(is_admin=True, display_name="administrator")
            session.add(admin)
            await session.flush()
            session.add(PasswordCredential(user_id=admin.id, password_hash=password_hash))
            session.add(
                Contact(
                    user_id=admin.id,
                    kind=ContactKind.EMAIL.value,
                    address=admin_login,
                    verified_at=admin.created_at,  # the operator vouches for it
                )
            )
            await audit.record(
                session,
                audit.AuditContext(SYSTEM.audit_actor),
                "account.create",
                audit.AuditResult.OK,
                target=f"user:{admin.id}",
                via="ras init",
                admin=True,
            )
    finally:
        await engine.dispose()
    return InitResult(admin_login, password, str(admin.id))


def require_initialised(settings: Settings) -> None:
    """Refuse to open a SQLite database that init never created (SQLite would create it)."""
    if settings.is_sqlite and not sqlite_path(settings).exists():
        raise UsageError(
            f"{sqlite_path(settings)} does not exist: run "
            f"`heslock ras init --data-dir {settings.data_dir}` first"
        )
