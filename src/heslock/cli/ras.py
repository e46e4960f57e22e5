"""``heslock ras``: initialise, migrate and serve the remote access server (RAS).

Thin adapters over :mod:`heslock.ras`: each command builds the one :class:`Settings`
object (flags > HESLOCK_* environment > config file > defaults), configures logging, and
calls the service. Bad input is a one-line error and exit code 2 (``heslock.cli``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from heslock.cli.readyfile import remove_ready_file, write_ready_file
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
    from heslock.ras.services.errors import InvalidInput  # noqa: PLC0415
    from heslock.ras.services.udms.contacts import normalise_email  # noqa: PLC0415

    try:
        login = normalise_email(login)  # the UDMS login form, as every login is looked up
    except InvalidInput as exc:
        raise UsageError(f"--admin-email must be an e-mail address, got {login!r}: {exc}") from None
    result = asyncio.run(initialise(settings, login, force=force))
    typer.echo(f"RAS data directory ready: {settings.data_dir}")
    typer.echo(f"  database      {settings.database_url}")
    typer.echo(f"  master key    {settings.master_key_file} (0600; back it up, keep it secret)")
    typer.echo(f"  CA            {settings.tls_ca} (give this to clients and gateways)")
    typer.echo(f"  administrator {result.admin_login}")
    typer.echo(f"  password      {result.admin_password}")
    typer.echo("The password is shown only this once.")
    where = f"--data-dir {settings.data_dir}"
    typer.echo(
        "Next: log in as the administrator. Every login needs a second factor; until an\n"
        "SMTP server is configured (otp_email_sender = 'smtp'), e-mail codes go to the\n"
        f"development outbox. Start `heslock ras serve {where}`, then:\n"
        '  1. POST /v1/session              {"login": LOGIN, "password": PASSWORD}\n'
        '  2. POST /v1/session/code         {"challenge": C, "channel": "email"}\n'
        f"     and read the code with `heslock ras outbox {where}`\n"
        '  3. POST /v1/session/second-factor {"challenge": C, "method": "email", "code": CODE}\n'
        "Then enrol an authenticator app: POST /v1/account/totp, /v1/account/totp/confirm."
    )


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
    xmpp_port: Annotated[
        int | None, typer.Option(help="XMPP port for gateways, STARTTLS (0: any free port).")
    ] = None,
    xmpp_direct_tls_port: Annotated[
        int | None,
        typer.Option(help="XMPP port for gateways, direct TLS, XEP-0368 (0: any free port)."),
    ] = None,
    ready_file: Annotated[
        Path | None,
        typer.Option(
            "--ready-file",
            help="Once serving, write the bound URL and ports here as JSON (removed on stop).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes sharing the ports (SO_REUSEPORT, Linux); more than 1 "
            "needs --bus and PostgreSQL (workers).",
        ),
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option(
            "--bus", help="The cluster bus, a NATS URL such as nats://127.0.0.1:4222 (bus_url)."
        ),
    ] = None,
) -> None:
    """Serve the RAS HTTPS API and the XMPP endpoint for gateways until SIGINT or SIGTERM."""
    from heslock.ras.bootstrap import require_initialised  # noqa: PLC0415
    from heslock.ras.server import RasServer  # noqa: PLC0415
    from heslock.ras.store import create_engine  # noqa: PLC0415
    from heslock.ras.store.migrate import current_revision, head_revision  # noqa: PLC0415

    settings = _settings(
        data_dir,
        config,
        https_host=host,
        https_port=port,
        xmpp_port=xmpp_port,
        xmpp_direct_tls_port=xmpp_direct_tls_port,
        workers=workers,
        bus_url=bus,
    )
    require_initialised(settings)
    if settings.workers > 1:  # several processes on shared ports (heslock.ras.workers)
        _serve_workers(settings, config, ready_file)
        return

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
        server = RasServer(settings, relay=True)
        await server.start()
        typer.echo(f"heslock ras: listening on {server.url}")
        if server.relay is not None:
            where = f"{settings.xmpp_host}:{server.relay.port}"
            typer.echo(f"heslock ras: gateways (XMPP, STARTTLS) on {where}")
        sys.stdout.flush()
        try:
            if ready_file is not None:
                _write_ready(ready_file, settings, server)
            await server.wait()
        finally:
            if ready_file is not None:
                remove_ready_file(ready_file)

    if ready_file is None:
        asyncio.run(run())
        return
    # uvicorn re-raises the SIGTERM it shut down on; under the default disposition that
    # kills the process before the ready file is removed. Hold it until run() has
    # cleaned up, then raise it again as before (same exit status for a supervisor).
    held: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: held.append(signum))
    try:
        asyncio.run(run())
    finally:
        signal.signal(signal.SIGTERM, previous)
    if held:
        signal.raise_signal(signal.SIGTERM)


def _serve_workers(settings: Any, config: Path | None, ready_file: Path | None) -> None:
    """``--workers N``: a supervisor of N ``ras serve`` processes (heslock.ras.workers)."""
    from heslock.ras.workers import serve_workers  # noqa: PLC0415

    worker_args = ["--data-dir", str(settings.data_dir), "--host", settings.https_host]
    if config is not None:
        worker_args += ["--config", str(config)]
    if settings.bus_url is not None:
        worker_args += ["--bus", settings.bus_url]
    serve_workers(settings, worker_args, ready_file)


def _write_ready(path: Path, settings: Any, server: Any) -> None:
    """``--ready-file``: where the served RAS listens (heslock.cli.readyfile)."""
    ports = server.relay.endpoint.ports if server.relay is not None else {}
    write_ready_file(
        path,
        "ras",
        https_url=server.url,
        data_dir=str(settings.data_dir),
        ca_file=str(settings.tls_ca),
        domain=settings.domain,
        xmpp_host=settings.xmpp_host,
        xmpp_port=ports.get("starttls"),
        xmpp_direct_tls_port=ports.get("direct_tls"),
    )


devices_app = typer.Typer(
    help="DDMS devices: import the makers' factory records.", no_args_is_help=True
)
app.add_typer(devices_app, name="devices")


@devices_app.command("import")
def devices_import(
    file: Annotated[Path, typer.Argument(help="Manufacturer file (.csv or .json).")],
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    skip_bad: Annotated[
        bool,
        typer.Option("--skip-bad", help="Import the good records even if some are refused."),
    ] = False,
) -> None:
    """Import devices (id, maker, model, BLE version, profile, factory key) into the DDMS.

    One transaction: with any bad record nothing is imported (exit 2), unless --skip-bad.
    Every refused record is listed with its line and reasons; keys are never printed.
    """
    from heslock.ras.bootstrap import require_initialised  # noqa: PLC0415
    from heslock.ras.keystore import Keystore  # noqa: PLC0415
    from heslock.ras.services.ddms.errors import ImportRejected  # noqa: PLC0415
    from heslock.ras.services.ddms.importer import ImportReport, import_file  # noqa: PLC0415
    from heslock.ras.store import create_engine, create_sessionmaker  # noqa: PLC0415

    settings = _settings(data_dir, config)
    require_initialised(settings)
    keystore = Keystore.from_files(settings.master_key_file)

    async def run() -> ImportReport:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                return await import_file(session, keystore, file, skip_bad=skip_bad)
        finally:
            await engine.dispose()

    def show(lines: list[dict[str, Any]]) -> None:
        for line in lines:
            reasons = ", ".join(line["reasons"])
            typer.echo(f"  line {line['line']}: {line['device_id'] or '-'}: {reasons}", err=True)

    try:
        with _database_errors(settings):
            report = asyncio.run(run())
    except ImportRejected as exc:
        show(exc.extensions["rejected"])
        raise UsageError(f"{file}: {exc.detail}") from None
    show(report.as_dict()["rejected"])
    typer.echo(
        f"imported {report.imported} of {report.total} device(s)"
        + (f"; {len(report.rejected)} refused" if report.rejected else "")
    )


@app.command()
def outbox(
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing codes as they are sent.")
    ] = False,
) -> None:
    """Show one-time codes in the development outbox (used while no SMTP/SMS sender is set)."""
    from heslock.ras.services.udms.outbox import (  # noqa: PLC0415
        follow_entries,
        format_entry,
        read_entries,
    )
    from heslock.ras.services.udms.senders import outbox_path  # noqa: PLC0415

    settings = _settings(data_dir, config)
    path = outbox_path(settings)
    if not follow and not path.exists():
        typer.echo(f"the outbox {path} is empty (no code sent yet)", err=True)
        return
    try:
        for entry in follow_entries(path) if follow else read_entries(path):
            typer.echo(format_entry(entry))
            sys.stdout.flush()
    except KeyboardInterrupt:
        return
