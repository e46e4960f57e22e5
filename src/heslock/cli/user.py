"""What the user-side commands (``account``, ``lock``, ``gateway``, ``device``, ``profile``)
share: the profile, the client, output for people and for scripts, and errors.

Profiles (:mod:`heslock.rac.profile`) hold the server URL, its CA, the radio link and the
session's tokens. The profile is ``--profile NAME`` (before the command group,
``heslock --profile home lock list``, or after it), else ``$HESLOCK_PROFILE``, else the one
``heslock profile use`` chose, else ``default``.

Output: text for people on stdout (tables, a progress display on stderr), or with
``--json`` (before the group or after the command) one JSON document on stdout for
scripts — ``lock events --follow --json`` prints one JSON object per line. Prompts and
progress go to stderr, so stdout stays parseable.

Errors: every expected failure becomes one line on stderr that says what happened and
what to do next, and the documented exit code (``heslock.cli``): 2 usage, 3 refused by
the lock, 4 not allowed (not logged in, wrong code, not found or not yours), 5
unreachable (server, gateway, lock or radio). With ``--json`` the same error is also
printed on stdout as ``{"error": {...}}``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from heslock.ble.errors import BleError
from heslock.ble.hub import DEFAULT_HUB_PORT
from heslock.errors import HeslockError, UsageError
from heslock.rac import AsyncRasClient, RasClient
from heslock.rac.client import check_base_url, tls_context
from heslock.rac.errors import (
    EXIT_FORBIDDEN,
    NotLoggedIn,
    RasError,
    RasProblem,
    RasUnreachable,
    RegistrationFailed,
)
from heslock.rac.profile import Profile, ProfileFile, ProfileSet, ProfileTokenStore

#: The radio link when neither ``--link`` nor the profile names one: the hub's default port.
DEFAULT_LINK: Final = f"hub:127.0.0.1:{DEFAULT_HUB_PORT}"
#: The RAS may drive a whole registration through a gateway in one request.
HTTP_TIMEOUT_S: Final = 60.0

ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="Profile to use (default: $HESLOCK_PROFILE, then `heslock profile use`, "
        "then 'default').",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
LinkOpt = Annotated[
    str | None,
    typer.Option(
        "--link",
        help="The client's radio: hub:HOST:PORT (heslock bsld hub), or an HCI transport "
        f"such as usb:0 (default: the profile's, else {DEFAULT_LINK}).",
        show_default=False,
    ),
]


class CliFailure(HeslockError):
    """An expected failure, worded for a person, with its exit code (``heslock.cli``)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class _Globals:
    """``heslock --profile NAME --json ...``: options given before the command group."""

    profile: str | None = None
    json: bool = False


GLOBALS = _Globals()


def root_options(
    profile: ProfileOpt = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts (user commands).")
    ] = False,
) -> None:
    # Registered as the root callback (heslock.cli._register); runs before every command,
    # so an in-process caller of main() never sees a previous run's values.
    GLOBALS.profile = profile
    GLOBALS.json = json_out


# --------------------------------------------------------------------------- context


@dataclass
class User:
    """One command's view of its profile."""

    file: ProfileFile
    name: str
    json: bool
    #: Chosen with ``--profile``: the hints repeat it (a $HESLOCK_PROFILE or the current
    #: profile applies to the next command by itself).
    explicit: bool = False

    def profile(self) -> Profile:
        return self.file.read().get(self.name)

    def update(self, change: Callable[[Profile], Profile]) -> Profile:
        def apply(profiles: ProfileSet) -> ProfileSet:
            return profiles.put(change(profiles.get(self.name)))

        return self.file.update(apply).get(self.name)

    @property
    def tokens(self) -> ProfileTokenStore:
        return ProfileTokenStore(self.file, self.name)

    def _server(self) -> tuple[str, Path | None]:
        profile = self.profile()
        if profile.server is None:
            raise CliFailure(
                f"profile {self.name!r} has no server: give --server URL --ca FILE to "
                "`heslock account login` (or `heslock profile add`)",
                2,
            )
        return profile.server, profile.ca

    def client(self) -> RasClient:
        server, ca = self._server()
        return RasClient(server, ca=ca, tokens=self.tokens, timeout=HTTP_TIMEOUT_S)

    def async_client(self) -> AsyncRasClient:
        server, ca = self._server()
        return AsyncRasClient(server, ca=ca, tokens=self.tokens, timeout=HTTP_TIMEOUT_S)

    def link(self, given: str | None) -> str:
        return given or self.profile().link or DEFAULT_LINK

    @property
    def flag(self) -> str:
        """`` --profile NAME`` for the hints, when the next command needs it too."""
        return f" --profile {self.name}" if self.explicit else ""


def user(profile: str | None, json_out: bool) -> User:
    file = ProfileFile()
    given = profile or GLOBALS.profile
    return User(file, file.selected(given), json_out or GLOBALS.json, explicit=bool(given))


# --------------------------------------------------------------------------- output

#: A pipe has no width; 80 columns would cut ids in tables (a script wants --json anyway).
_PIPE_WIDTH: Final = 200
out = Console(
    emoji=False,
    highlight=False,
    soft_wrap=True,
    width=None if sys.stdout.isatty() else _PIPE_WIDTH,
)
err = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)


def table(*headers: str) -> Table:
    """A borderless table whose cells are folded, never cut: an id stays whole."""
    grid = Table(box=None)
    for header in headers:
        grid.add_column(header, overflow="fold")
    return grid


def plain(value: Any) -> Any:
    """A JSON-able form of SDK results: dataclasses, UUIDs, times, frames, paths."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in ("bolt", "door"):  # Lock, LockEvent: the state codes' names too
            if name not in data and hasattr(value, name):
                data[name] = getattr(value, name)
        return data
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, uuid.UUID | Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def emit_json(value: Any, *, lines: bool = False) -> None:
    text = json.dumps(plain(value), separators=(",", ":") if lines else None, indent=None)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit(who: User, value: Any, show: Callable[[], None]) -> None:
    """JSON on stdout for scripts, else ``show()`` for people."""
    if who.json:
        emit_json(value)
    else:
        show()


def say(text: str) -> None:
    """A line for people on stdout (``text`` is rich markup: escape user data)."""
    out.print(text)


def note(text: str) -> None:
    """A line for people on stderr (hints, what comes next)."""
    err.print(text)


def when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


e = escape  # user data inside rich markup


# --------------------------------------------------------------------------- input


def read_password(from_stdin: bool, prompt: str = "Password", *, confirm: bool = False) -> str:
    """A password from one line of stdin (``--password-stdin``) or a hidden prompt; never a
    flag (flags end up in shell history and in ``ps``)."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            raise UsageError("--password-stdin: no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: pipe it in with --password-stdin")
    password = str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True))
    if not password:
        raise UsageError("the password is empty")
    return password


def read_code(given: str | None, prompt: str) -> str:
    """A one-time code: ``--code``, else asked for (a line of stdin when it is a pipe)."""
    if given is not None:
        return given.strip()
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, err=True)).strip()
    sys.stderr.write(f"{prompt}: ")  # a script reads this to know the code is wanted now
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line.strip():
        raise UsageError("no code on standard input: type it, or give --code")
    return line.strip()


def confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} Confirm with --yes (no terminal to ask)")
    if not typer.confirm(question, err=True):
        raise typer.Abort


# --------------------------------------------------------------------------- errors


def _problem_hint(problem: RasProblem, who: User, *, password_sent: bool = False) -> str:
    code = problem.code
    if code == "rate-limited" and problem.retry_after is not None:
        return f"wait {problem.retry_after} s and try again"
    if code == "unauthenticated":
        return "" if password_sent else f"log in again: heslock{who.flag} account login"
    return {
        "code-refused": "check the code, or ask for a new one",
        "gateway-unavailable": (
            "no gateway of yours is online near the lock: start one (heslock bgw run), "
            "or stand near the lock and use --nearby"
        ),
        "lock-unreachable": (
            "the lock did not answer: is it in range of your gateway? Or use --nearby"
        ),
        "gateway-failure": "the gateway failed: try again, or use --nearby",
        "command-outcome-unknown": (
            "check `heslock lock status` and `heslock lock events` before acting again"
        ),
        "lock-refused": _refusal_hint(problem.reason),
        "device-unavailable": _unavailable_hint(problem.reason),
        "not-found": "not found, or not yours: see `heslock lock list` / `heslock gateway list`",
        "unavailable": "the server cannot do it now: try again later",
        "internal": "the server failed: try again later, or tell its operator",
    }.get(code or "", "")


def _refusal_hint(reason: str | None) -> str:
    return {
        "JAMMED": "the bolt is jammed: clear it at the lock, then try again",
        "LOW_BATTERY": "the lock's battery is too low: replace it",
        "STALE": "the lock's clock is wrong: register or sync its time again",
        "LOCKED_OUT": "the lock locked itself out after refused frames: wait and try again",
        "BUSY": "the lock is busy moving: try again in a moment",
        "PASSAGE_MODE": "the lock is in passage mode: turn it off at the lock",
        "REGISTRATION_CLOSED": "press the lock's registration button, then try again",
        "NOT_BOUND": "the lock is not bound (factory-reset?): remove it and add it again",
        "WRONG_KEY": "the lock does not know this key (factory-reset?): remove and add it again",
    }.get(reason or "", "")


def _unavailable_hint(reason: str | None) -> str:
    return {
        "already-bound": "it belongs to someone: its owner must remove it and factory-reset it",
        "revoked": "the device was withdrawn by its maker or the operator",
        "registration-in-progress": "someone else is registering it right now",
    }.get(reason or "", "")


def _describe(exc: HeslockError, who: User | None, password_sent: bool) -> tuple[str, str]:
    """(what happened, what to do next) for an expected failure."""
    if isinstance(exc, NotLoggedIn):
        flag = who.flag if who else ""
        return str(exc), f"log in: heslock{flag} account login"
    if isinstance(exc, RasProblem):
        return str(exc), _problem_hint(exc, who, password_sent=password_sent) if who else ""
    if isinstance(exc, RasUnreachable):
        hint = "is the server running, and the profile's URL right? (heslock profile list)"
        if exc.maybe_sent:
            hint = "the request may have been done: check before repeating it"
        return str(exc), hint
    if isinstance(exc, RegistrationFailed):
        return str(exc), "press the lock's registration button and run `heslock lock add` again"
    if isinstance(exc, BleError):
        if str(exc).startswith("cannot open"):
            return str(exc), "is the radio hub running (heslock bsld hub), and --link right?"
        return str(exc), "is the lock near this radio, and the radio (or hub) running?"
    return str(exc), ""


@contextlib.contextmanager
def failures(who: User | None, *, password_sent: bool = False) -> Iterator[None]:
    """Expected failures -> one line (and ``{"error": ...}`` with --json) + exit code.
    ``password_sent``: the command sent a password, so a 401 may be a wrong password
    rather than an ended session (no "log in again" hint)."""
    try:
        yield
    except CliFailure:
        raise
    except (RasError, BleError) as exc:
        message, hint = _describe(exc, who, password_sent)
        if who is not None and who.json:
            emit_json({"error": _error_json(exc, message)})
        text = f"{message}. {hint[0].upper()}{hint[1:]}" if hint else message
        raise CliFailure(text, int(getattr(exc, "exit_code", EXIT_FORBIDDEN))) from None


def _error_json(exc: HeslockError, message: str) -> dict[str, Any]:
    data: dict[str, Any] = {"message": message, "kind": type(exc).__name__}
    if isinstance(exc, RasProblem):
        data.update(status=exc.status, code=exc.code, reason=exc.reason)
        data.update({k: v for k, v in exc.extensions.items() if k not in data})
    if isinstance(exc, RegistrationFailed):
        data.update(phase=exc.phase, reason=exc.reason)
    return data


def with_server(who: User, server: str | None, ca: Path | None) -> Profile:
    """Save ``--server``/``--ca`` (given to register, login or ``profile add``) in the
    profile. Another server's session means nothing here: its tokens are dropped."""
    if server is None and ca is None:
        return who.profile()
    url = check_base_url(server) if server is not None else None
    path = ca.expanduser().resolve() if ca is not None else None
    if path is not None:
        tls_context(path)  # refuses a missing or non-PEM file now, not at the first call
    return who.update(
        lambda p: replace(
            p,
            server=url or p.server,
            ca=path if path is not None else p.ca,
            tokens=None if url is not None and url != p.server else p.tokens,
        )
    )
