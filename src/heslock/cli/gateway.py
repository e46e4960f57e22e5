"""``heslock gateway``: your Bluetooth gateways' accounts on the RAS.

::

    heslock gateway add NAME [--secret-file FILE]
    heslock gateway list
    heslock gateway remove GATEWAY [--yes]

``add`` answers the gateway's XMPP identity (JID) and secret, shown this once (the RAS
keeps only verifiers): put them in the gateway's config (``heslock bgw run --config``,
``[ras] jid`` and ``secret_file``). ``--secret-file`` writes the secret to a new 0600 file
instead of printing it. GATEWAY is a gateway's id or its name. Removing revokes it for good
and drops its connection at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from heslock.cli.user import (
    CliFailure,
    JsonOpt,
    ProfileOpt,
    confirm,
    e,
    emit,
    failures,
    note,
    out,
    say,
    table,
    user,
    when,
)
from heslock.errors import UsageError
from heslock.rac import Gateway, RasClient
from heslock.rac.calls import uuid_arg
from heslock.rac.errors import EXIT_FORBIDDEN, InvalidArgument

app = typer.Typer(help="Your gateways (BGW): add, list, remove.", no_args_is_help=True)


def resolve_gateway(ras: RasClient, ref: str) -> Gateway:
    """A gateway of yours by id or (case-insensitive) name; revoked ones only by id."""
    try:
        return ras.gateways.get(uuid_arg(ref, "gateway"))
    except InvalidArgument:
        pass
    wanted = ref.strip().casefold()
    matches = [g for g in ras.gateways.list() if g.name.casefold() == wanted and not g.revoked]
    if not matches:
        raise CliFailure(f"you have no gateway named {ref!r}: see `heslock gateway list`", 4)
    if len(matches) > 1:
        ids = ", ".join(str(g.id) for g in matches)
        raise UsageError(f"several gateways are named {ref!r}: use an id ({ids})")
    return matches[0]


def _write_secret(path: Path, secret: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists: choose a new file for the secret") from None
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(secret + "\n")


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="A name for it (1..64 characters).")],
    secret_file: Annotated[
        Path | None,
        typer.Option(help="Write the secret to this new file (0600) instead of printing it."),
    ] = None,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Register a gateway: its JID and secret (shown once) for its configuration."""
    who = user(profile, json_out)
    if secret_file is not None and secret_file.exists():
        raise UsageError(f"{secret_file} exists: choose a new file for the secret")
    with failures(who), who.client() as ras:
        credentials = ras.gateways.add(name)
    if secret_file is not None:
        _write_secret(secret_file, credentials.secret)
    data = {
        "id": credentials.id,
        "name": credentials.name,
        "jid": credentials.jid,
        "secret": None if secret_file is not None else credentials.secret,
        "secret_file": str(secret_file) if secret_file is not None else None,
    }

    def show() -> None:
        say(f"gateway {e(credentials.name)} added: id {credentials.id}")
        say(f"  jid     {e(credentials.jid)}")
        if secret_file is not None:
            say(f"  secret  in {e(str(secret_file))} (0600)")
        else:
            say(f"  secret  {e(credentials.secret)}   (shown once: keep it now)")
        note(
            "Next: put the jid and the secret (secret_file) in the gateway's \\[ras] config "
            "and run `heslock bgw run --config FILE` near your locks"
        )

    emit(who, data, show)


@app.command("list")
def list_(profile: ProfileOpt = None, json_out: JsonOpt = False) -> None:
    """Your gateways (revoked ones too)."""
    who = user(profile, json_out)
    with failures(who), who.client() as ras:
        gateways = ras.gateways.list()

    def show() -> None:
        if not gateways:
            note("no gateways yet: `heslock gateway add NAME`")
            return
        grid = table("name", "id", "jid", "added", "secret set", "state")
        for g in gateways:
            grid.add_row(
                e(g.name),
                str(g.id),
                e(g.jid),
                when(g.created_at),
                when(g.secret_rotated_at),
                f"revoked {when(g.revoked_at)}" if g.revoked else "active",
            )
        out.print(grid)

    emit(who, gateways, show)


@app.command()
def remove(
    gateway: Annotated[str, typer.Argument(help="The gateway's id or name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a gateway for good: its secret stops working and it is disconnected."""
    who = user(profile, json_out)
    with failures(who), who.client() as ras:
        target = resolve_gateway(ras, gateway)
        if target.revoked:
            raise CliFailure(f"gateway {target.name!r} is already revoked", EXIT_FORBIDDEN)
        confirm(yes, f"Revoke gateway {target.name!r} ({target.id}) for good?")
        revoked = ras.gateways.remove(target.id)
    emit(who, revoked, lambda: say(f"gateway {e(revoked.name)} revoked"))
