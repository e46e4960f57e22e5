"""``heslock account``: your account on the RAS, and logging in.

::

    heslock account register --email ADDR [--phone +NUMBER] [--name NAME]
                             [--server URL --ca FILE] [--password-stdin]
    heslock account verify CONTACT [--code CODE | --resend]
    heslock account login [LOGIN] [--method totp|email|sms] [--code CODE]
                          [--server URL --ca FILE] [--password-stdin]
    heslock account logout | whoami
    heslock account totp enrol [--password-stdin] | totp confirm [--code CODE]
    heslock account sessions [--revoke SESSION_ID]

Passwords are asked for without echo, or read from one line of stdin with
``--password-stdin``; never a flag. One-time codes are asked for (a line of stdin when it
is a pipe), or given with ``--code`` when they are known beforehand (a verification code,
a TOTP code). A login is the password, then a second factor: TOTP when enrolled,
otherwise a code sent by e-mail (or SMS) that the command asks for.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from heslock.cli.user import (
    CliFailure,
    JsonOpt,
    ProfileOpt,
    User,
    e,
    emit,
    emit_json,
    failures,
    note,
    out,
    read_code,
    read_password,
    say,
    table,
    user,
    when,
    with_server,
)
from heslock.errors import UsageError
from heslock.rac import Account, NotLoggedIn, RasProblem

app = typer.Typer(help="Your account: register, verify, log in and out, TOTP, sessions.")
totp_app = typer.Typer(help="An authenticator app (TOTP) as your second factor.")
app.add_typer(totp_app, name="totp")

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="The RAS, https://HOST[:PORT] (saved in the profile)."),
]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca", help="The RAS's CA certificate, PEM (saved in the profile)."),
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from one line of stdin.")
]
CodeOpt = Annotated[str | None, typer.Option("--code", help="The one-time code (6 digits).")]


@app.callback(no_args_is_help=True)
def _group() -> None:
    """Your account: register, verify, log in and out, TOTP, sessions."""


def _key(address: str) -> str:
    """How contacts are matched: case and phone punctuation do not matter."""
    return re.sub(r"[\s().-]", "", address).lower()


@app.command()
def register(
    email: Annotated[str | None, typer.Option(help="Your e-mail address.")] = None,
    phone: Annotated[str | None, typer.Option(help="Your phone, international (+44...).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Your display name.")] = None,
    server: ServerOpt = None,
    ca: CaOpt = None,
    password_stdin: PasswordStdinOpt = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an account; a code is sent to each contact to verify it."""
    if not email and not phone:
        raise UsageError("give --email, --phone or both")
    who = user(profile, json_out)
    with_server(who, server, ca)
    password = read_password(password_stdin, "Choose a password", confirm=True)
    with failures(who), who.client() as ras:
        account = ras.account.register(email, phone, password=password, display_name=name)
    who.update(
        lambda p: replace(
            p,
            login=p.login or (email or phone),
            contacts={**p.contacts, **{_key(c.address): str(c.id) for c in account.contacts}},
        )
    )

    def show() -> None:
        say(f"account {account.id} created")
        for contact in account.contacts:
            say(f"  a code was sent to {e(contact.address)} ({contact.kind})")
        first = account.contacts[0].address
        note(f"Next: heslock{who.flag} account verify {e(first)}  (it asks for the code)")

    emit(who, account, show)


@app.command()
def verify(
    contact: Annotated[str, typer.Argument(help="The address (or contact id) to verify.")],
    code: CodeOpt = None,
    resend: Annotated[bool, typer.Option("--resend", help="Send a new code instead.")] = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify an e-mail address or phone number with the code it received."""
    who = user(profile, json_out)
    contact_id = who.profile().contacts.get(_key(contact), contact)
    with failures(who), who.client() as ras:
        if resend:
            sent = ras.account.resend(contact_id)
            emit(who, sent, lambda: say(f"a new code was sent to {e(contact)}"))
            return
        verified = ras.account.verify(contact_id, read_code(code, f"Code sent to {contact}"))
    who.update(
        lambda p: replace(p, contacts={k: v for k, v in p.contacts.items() if v != contact_id})
    )
    emit(who, verified, lambda: say(f"{e(verified.address)} verified: you can log in with it"))


@app.command()
def login(
    identifier: Annotated[
        str | None, typer.Argument(help="Your verified e-mail or phone (default: the last).")
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(help="Second factor: totp, email or sms (default: totp if enrolled)."),
    ] = None,
    code: CodeOpt = None,
    server: ServerOpt = None,
    ca: CaOpt = None,
    password_stdin: PasswordStdinOpt = False,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Log in: your password, then a second factor. The session is kept in the profile."""
    who = user(profile, json_out)
    saved = with_server(who, server, ca)
    login_name = identifier or saved.login
    if not login_name:
        raise UsageError("who? give your e-mail address or phone number")
    password = read_password(password_stdin)
    with failures(who, password_sent=True), who.client() as ras:
        challenge = ras.sessions.login(login_name, password)
        chosen = method or next(
            (m for m in ("totp", "email", "sms") if m in challenge.methods), None
        )
        if chosen is None or chosen not in challenge.methods:
            offered = ", ".join(challenge.methods) or "none"
            raise CliFailure(f"this account cannot use {chosen}: it offers {offered}", 2)
        if chosen == "totp":
            answer = read_code(code, "Code from your authenticator app")
        else:
            if code is not None:
                raise UsageError(
                    f"an {chosen} code is sent after the password: leave out --code and type "
                    "it when asked (or pipe it in)"
                )
            sent = ras.sessions.send_code(challenge, chosen)
            answer = read_code(None, f"Code sent by {chosen} to {sent.destination}")
        tokens = ras.sessions.second_factor(challenge, answer, chosen)
    who.update(lambda p: replace(p, login=login_name))
    emit(
        who,
        {"profile": who.name, "login": login_name, "session_id": tokens.session_id},
        lambda: say(f"logged in as {e(login_name)} (profile {e(who.name)})"),
    )


@app.command()
def logout(profile: ProfileOpt = None, json_out: JsonOpt = False) -> None:
    """End this session on the server and forget its tokens."""
    who = user(profile, json_out)
    ended = True
    try:
        with who.client() as ras:
            ras.sessions.logout()
    except NotLoggedIn:
        ended = False
    except RasProblem as problem:
        if problem.code != "unauthenticated":
            with failures(who):
                raise
        ended = False
    who.tokens.save(None)
    emit(
        who,
        {"profile": who.name, "logged_out": ended},
        lambda: say("logged out" if ended else "not logged in (nothing to end)"),
    )


@app.command()
def whoami(profile: ProfileOpt = None, json_out: JsonOpt = False) -> None:
    """Your account, as the server knows it."""
    who = user(profile, json_out)
    with failures(who), who.client() as ras:
        account = ras.account.get()
    emit(who, account, lambda: _show_account(who, account))


def _show_account(who: User, account: Account) -> None:
    saved = who.profile()
    say(f"{e(account.display_name or '(no name)')}  id {account.id}")
    for contact in account.contacts:
        state = "verified" if contact.verified else "NOT verified"
        say(f"  {contact.kind:<6} {e(contact.address)}  {state}")
    say(f"  TOTP   {'enrolled' if account.totp_active else 'not enrolled'}")
    if account.is_admin:
        say("  administrator")
    say(f"profile {e(who.name)} on {e(saved.server or '-')}")


@totp_app.command("enrol")
def totp_enrol(
    password_stdin: PasswordStdinOpt = False,
    code: CodeOpt = None,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start TOTP enrolment: add the secret to your app, then confirm with one code."""
    who = user(profile, json_out)
    password = read_password(password_stdin)
    with failures(who, password_sent=True), who.client() as ras:
        enrolment = ras.account.totp_enrol(password)
        if who.json:
            emit_json(enrolment)
        else:
            say("Add this to your authenticator app (the secret is shown once):")
            say(f"  {e(enrolment.otpauth_uri)}")
            say(f"  secret: {e(enrolment.secret)}")
        if code is None and not (sys.stdin.isatty() and not who.json):
            note(f"Next: heslock{who.flag} account totp confirm  (a code from the app)")
            return
        ras.account.totp_confirm(read_code(code, "Code from the app"))
    if not who.json:
        say("TOTP enrolled: your next login asks for a code from the app")


@totp_app.command("confirm")
def totp_confirm(
    code: CodeOpt = None, profile: ProfileOpt = None, json_out: JsonOpt = False
) -> None:
    """Activate a pending TOTP enrolment with a current code from the app."""
    who = user(profile, json_out)
    with failures(who), who.client() as ras:
        ras.account.totp_confirm(read_code(code, "Code from the app"))
    emit(who, {"totp_active": True}, lambda: say("TOTP enrolled"))


@app.command()
def sessions(
    revoke: Annotated[
        str | None, typer.Option("--revoke", help="End this session (an id from the list).")
    ] = None,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Your active sessions (this one marked), or end one with --revoke."""
    who = user(profile, json_out)
    with failures(who), who.client() as ras:
        if revoke is not None:
            ras.sessions.revoke(revoke)
            emit(who, {"revoked": revoke}, lambda: say(f"session {e(revoke)} ended"))
            return
        active = ras.sessions.list()

    def show() -> None:
        grid = table("", "session", "since", "last used", "expires", "from", "client")
        for s in active:
            grid.add_row(
                "*" if s.current else "",
                str(s.id),
                when(s.created_at),
                when(s.last_used_at),
                when(s.expires_at),
                e(s.source_ip or "-"),
                e(s.user_agent or "-"),
            )
        out.print(grid)

    emit(who, active, show)
