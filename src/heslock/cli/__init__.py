"""The ``heslock`` command line: the composition root of every party.

Only this package (and ``heslock.demo``) may import more than one party. Each command
group lives in its own module and is registered below. Expected failures (bad input, a
refused frame, an unreachable server) print one line to stderr and exit with a
documented code, never a traceback::

    0 ok   2 usage / bad input   3 refused by the lock   4 not allowed   5 unreachable

(130 after Ctrl-C.) The user commands (account, lock, gateway, device, profile) map the
RAS's problem types onto these codes (``heslock.rac.errors``; docs/operations.md §8):
not logged in, a wrong code, not found or not yours, a conflict are 4; the lock's
refusal is 3; an unreachable server, gateway, lock or radio is 5.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

import typer

from heslock.errors import HeslockError

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_FORBIDDEN = 4
EXIT_UNREACHABLE = 5

app = typer.Typer(
    name="heslock",
    help="heslock: ISO/IEC 14543-5-104 smart locks — server, gateway, lock simulator, client.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    """Attach the command groups to ``app`` once (main() may be called many times in-process)."""
    if app.registered_groups:
        return
    # One line per command group; each module owns its own sub-app.
    # Imported here so `heslock --help` stays fast as parties grow.
    from heslock.cli import bgw, bsld, demo, frame, ras  # noqa: PLC0415

    app.add_typer(frame.app, name="frame")
    app.add_typer(bsld.app, name="bsld")
    app.command("demo")(demo.demo)
    app.add_typer(ras.app, name="ras")
    app.add_typer(bgw.app, name="bgw")
    # The client (issue 6): user commands, and `heslock --profile NAME --json ...`.
    from heslock.cli import account, device, gateway, lock, profile, user  # noqa: PLC0415

    app.callback()(user.root_options)
    app.add_typer(account.app, name="account")
    app.add_typer(lock.app, name="lock")
    app.add_typer(gateway.app, name="gateway")
    app.add_typer(device.app, name="device")
    app.add_typer(profile.app, name="profile")


#: Set by a supervising parent (``heslock demo``) to its own PID: the child asks the kernel
#: to send it SIGTERM when that parent dies, so a demo killed with SIGKILL leaves no
#: orphans (its children run in sessions of their own, so no terminal signal reaches them).
DIE_WITH_PARENT_ENV = "HESLOCK_DIE_WITH_PARENT"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Honour :data:`DIE_WITH_PARENT_ENV` (Linux; elsewhere the variable is ignored).

    The variable is removed first, so nothing this process starts inherits it. If the
    parent is already gone when the request is made (it died between fork and here), the
    process ends at once instead of running as an orphan.
    """
    value = os.environ.pop(DIE_WITH_PARENT_ENV, None)
    if value is None or not sys.platform.startswith("linux") or not value.isdigit():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return  # not permitted here: the parent still stops it by PID as before
    if os.getppid() != int(value):
        raise SystemExit(0)  # the parent died before the request: it no longer wants us


def main(argv: list[str] | None = None) -> int:
    """Entry point. Turns every expected failure into one line and an exit code."""
    die_with_parent()
    _register()
    try:
        # standalone_mode=False: typer returns the exit code of typer.Exit instead of exiting
        result = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("heslock: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:  # usage errors: missing or malformed flags
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if message:  # "no arguments" has already printed the help
            print(f"heslock: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except HeslockError as exc:  # UsageError included; an error may carry its own exit code
        print(f"heslock: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
