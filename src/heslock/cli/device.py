"""``heslock device check ID``: is a device genuine and free to bind?

The RAS's legitimacy check (ISO/IEC 14543-5-104 registration, step 2) for a device id
found by scanning (``heslock lock scan``) or printed on the lock. Exit 0 when it may be
registered, 4 when not (the reason is printed: unknown, revoked, already-bound,
registration-in-progress).
"""

from __future__ import annotations

from typing import Annotated

import typer

from heslock.cli.user import JsonOpt, ProfileOpt, e, emit, failures, note, say, user
from heslock.rac.errors import EXIT_FORBIDDEN

app = typer.Typer(help="Devices: check a lock before adding it.", no_args_is_help=True)

#: Not free, yet the caller may register it: their own last registration of it expired or
#: failed, and the lock rolled back too (docs/api.md, "Devices").
RESTARTABLE = "registration-expired"

REASONS = {
    "unknown": "no maker registered this id: check it, or the lock is not genuine",
    "revoked": "withdrawn by its maker or the operator: it cannot be registered",
    "already-bound": "it belongs to someone: its owner must remove it first",
    "registration-in-progress": "someone else is registering it right now",
    RESTARTABLE: "your last registration of it did not finish: you can start again",
}


@app.callback()
def _group() -> None:
    """Devices: check a lock before adding it."""


@app.command()
def check(
    device_id: Annotated[str, typer.Argument(help="The device id: 12 hex digits.")],
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Ask the RAS whether the device is genuine and free to bind (exit 0) or not (4)."""
    who = user(profile, json_out)
    with failures(who), who.client() as ras:
        answer = ras.devices.legitimacy(device_id)
    usable = answer.free or answer.reason == RESTARTABLE

    def show() -> None:
        if answer.free:
            say(f"{answer.device_id}: genuine and free to bind ({e(answer.profile or '-')})")
            if answer.factory_reset_required:
                note("its previous owner removed it: factory-reset the lock before adding it")
        else:
            reason = answer.reason or "refused"
            say(f"{answer.device_id}: not free: {e(reason)}")
            note(REASONS.get(reason, ""))

    emit(who, answer, show)
    if not usable:
        raise typer.Exit(EXIT_FORBIDDEN)
