"""``heslock ras``: initialise, migrate and serve the remote access server (RAS).

Thin adapters over :mod:`heslock.ras`: each command builds the one :class:`Settings`
object (flags > HESLOCK_* environment > config file > defaults), configures logging, and
calls the service. Bad input is a one-line error and exit code 2 (``heslock.cli``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from heslock.errors import UsageError

app = typer.Typer(
    help="The remote access server (RAS): UDMS, DDMS and SCS over HTTPS.", no_args_is_help=True
)

DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="RAS data directory (HESLOCK_DATA_DIR).")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (HESLOCK_CONFIG).")
]


def _settings(data_dir: Path | None, config: Path | None, **flags: Any) -> Any:
    from heslock.ras.settings import load_settings  # noqa: PLC0415  (keeps --help fast)

    settings = load_settings({"data_dir": data_dir, **flags}, config_file=config)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return settings


@contextmanager
def _database_errors(settings: Any) -> Iterator[None]:
    """Turn "cannot reach the database" into one clear line (no password, no traceback)."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError  # noqa: PLC0415

    try:
        yield
    except (OperationalError, InterfaceError, DBAPIError, OSError) as exc:
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = getattr(exc, "orig", None) or exc
        raise UsageError(f"cannot use the database {url}: {reason}") from None


@app.command()
def init(
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    domain: Annotated[str | None, typer.Option(help="Server DNS name (certificate SAN).")] = None,
    admin_email: Annotated[
        str | None, typer.Option(help="Login of the first administrator [admin@DOMAIN].")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing data directory's files.")
    ] = False,
) -> None:
    """Create the data directory: database, master key, TLS certificates, first admin."""
    from heslock.ras.bootstrap import initialise  # noqa: PLC0415

    settings = _settings(data_dir, config, domain=domain)
    login = admin_email or f"admin@{settings.domain}"
    if "@" not in login or len(login) > 320:
        raise UsageError(f"--admin-email must be an e-mail address, got {login!r}")
    result = asyncio.run(initialise(settings, login, force=force))
    typer.echo(f"RAS data directory ready: {settings.data_dir}")
    typer.echo(f"  database      {settings.database_url}")
    typer.echo(f"  master key    {settings.master_key_file} (0600; back it up, keep it secret)")
    typer.echo(f"  CA            {settings.tls_ca} (give this to clients and gateways)")
    typer.echo(f"  administrator {result.admin_login}")
    typer.echo(f"  password      {result.admin_password}")
    typer.echo("The password is shown only this once.")


@app.command()
def migrate(
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    to: Annotated[str, typer.Option("--to", help="Target revision, 'head' or 'base'.")] = "head",
) -> None:
    """Move the database schema to a revision (up or down)."""
    from heslock.ras.bootstrap import require_initialised  # noqa: PLC0415
    from heslock.ras.store import create_engine  # noqa: PLC0415
    from heslock.ras.store.migrate import migrate_to  # noqa: PLC0415

    settings = _settings(data_dir, config)
    require_initialised(settings)

    async def run() -> tuple[str | None, str | None]:
        engine = create_engine(settings.database_url)
        try:
            return await migrate_to(engine, to)
        finally:
            await engine.dispose()

    with _database_errors(settings):
        before, after = asyncio.run(run())
    typer.echo(f"database schema: {before or 'empty'} -> {after or 'empty'}")


@app.command()
def serve(
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="HTTPS listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="HTTPS port (0: any free port).")] = None,
) -> None:
    """Serve the RAS HTTPS API until SIGINT or SIGTERM."""
    from heslock.ras.bootstrap import require_initialised  # noqa: PLC0415
    from heslock.ras.server import RasServer  # noqa: PLC0415
    from heslock.ras.store import create_engine  # noqa: PLC0415
    from heslock.ras.store.migrate import current_revision, head_revision  # noqa: PLC0415

    settings = _settings(data_dir, config, https_host=host, https_port=port)
    require_initialised(settings)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            with _database_errors(settings):
                revision = await current_revision(engine)
        finally:
            await engine.dispose()
        if revision != head_revision():
            raise UsageError(
                f"database is at {revision or 'no revision'}, this RAS needs {head_revision()}: "
                "run `heslock ras init` (new) or `heslock ras migrate`"
            )
        server = RasServer(settings)
        await server.start()
        typer.echo(f"heslock ras: listening on {server.url}")
        sys.stdout.flush()
        await server.wait()

    asyncio.run(run())
