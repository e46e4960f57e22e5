"""``heslock profile``: the client's named profiles (server URL, CA, radio link, session).

::

    heslock profile add NAME --server URL [--ca FILE] [--link LINK] [--use]
    heslock profile list
    heslock profile use NAME
    heslock profile remove NAME

The file and its rules (0600, atomic, refused when others can read it) are
:mod:`heslock.rac.profile`'s. ``heslock account login --server URL --ca FILE`` also
creates or updates the profile it logs in with.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from heslock.ble.transport import LinkSpec
from heslock.cli.user import JsonOpt, e, emit, note, out, say, table, user, with_server
from heslock.rac.profile import Profile, ProfileError, ProfileSet, check_profile_name

app = typer.Typer(
    help="Client profiles: which server, CA and radio; the session's tokens.",
    no_args_is_help=True,
)


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="Profile name (letters, digits, . _ -).")],
    server: Annotated[str, typer.Option(help="The RAS: https://HOST[:PORT].")],
    ca: Annotated[
        Path | None, typer.Option(help="The RAS's CA certificate (PEM), if private.")
    ] = None,
    link: Annotated[
        str | None, typer.Option(help="The client's radio: hub:HOST:PORT or usb:0 ...")
    ] = None,
    use: Annotated[bool, typer.Option("--use", help="Make it the current profile.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a profile, or change its server, CA or link (a new server logs it out)."""
    who = user(check_profile_name(name), json_out)
    if link is not None:
        link = str(LinkSpec.parse(link))
    profile = with_server(who, server, ca)
    if link is not None:
        profile = who.update(lambda p: replace(p, link=link))
    if use:
        who.file.update(lambda s: replace(s, current=name))
    emit(who, _summary(profile, current=use), lambda: say(f"profile {e(name)} saved"))


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """Every profile; the current one marked."""
    who = user(None, json_out)
    profiles = who.file.read()
    current = who.name

    def show() -> None:
        if not profiles.profiles:
            note("no profiles yet: `heslock profile add NAME --server URL --ca FILE`")
            return
        grid = table("", "profile", "server", "CA", "link", "login", "session")
        for name, p in sorted(profiles.profiles.items()):
            grid.add_row(
                "*" if name == current else "",
                e(name),
                e(p.server or "-"),
                e(str(p.ca) if p.ca else "-"),
                e(p.link or "-"),
                e(p.login or "-"),
                "logged in" if p.tokens else "-",
            )
        out.print(grid)

    emit(
        who,
        [_summary(p, current=n == current) for n, p in sorted(profiles.profiles.items())],
        show,
    )


@app.command()
def use(name: str, json_out: JsonOpt = False) -> None:
    """Make NAME the current profile (``--profile`` and $HESLOCK_PROFILE still win)."""
    who = user(check_profile_name(name), json_out)

    def choose(profiles: ProfileSet) -> ProfileSet:
        if name not in profiles.profiles:
            raise ProfileError(f"there is no profile {name!r}: see `heslock profile list`")
        return replace(profiles, current=name)

    who.file.update(choose)
    emit(who, {"current": name}, lambda: say(f"now using profile {e(name)}"))


@app.command()
def remove(name: str, json_out: JsonOpt = False) -> None:
    """Forget a profile and its tokens (log out first to end the session on the server)."""
    who = user(check_profile_name(name), json_out)
    had_session = who.profile().tokens is not None
    who.file.update(lambda s: s.remove(name))
    emit(who, {"removed": name}, lambda: say(f"profile {e(name)} removed"))
    if had_session and not who.json:
        note(
            "its session is still valid on the server until it expires: end it from "
            "another profile with `heslock account sessions --revoke ID`"
        )


def _summary(profile: Profile, *, current: bool) -> dict[str, object]:
    return {
        "name": profile.name,
        "server": profile.server,
        "ca": str(profile.ca) if profile.ca else None,
        "link": profile.link,
        "login": profile.login,
        "logged_in": profile.tokens is not None,
        "current": current,
    }
