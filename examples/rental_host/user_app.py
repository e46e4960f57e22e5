"""Stands in for a person's own heslock app, for the steps the ``heslock`` command line
has no command for yet. It is NOT part of the third-party app: it uses the person's own
session (a ``heslock`` profile, e.g. the demo's) through the client SDK.

    python examples/rental_host/user_app.py --profile demo register-app --redirect-uri URI
        the host registers the rental app (a developer step): prints its client id and
        secret as shell ``export`` lines
    python examples/rental_host/user_app.py --profile demo approve AUTHORIZATION_URL
        the host opens the app's authorisation request from their heslock app: prints the
        consent page's URL (one-time consent ticket) to open in a browser
    python examples/rental_host/user_app.py --profile guest invitations [--accept]
        the guest lists the invitations to their verified contacts (and accepts them)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any
from urllib.parse import urlsplit

from heslock.rac import AsyncRasClient
from heslock.rac.calls import Call
from heslock.rac.profile import ProfileFile, ProfileTokenStore


def _raw(body: Any) -> Any:
    return body


async def run(args: argparse.Namespace) -> int:
    file = ProfileFile()
    name = file.selected(args.profile)
    profile = file.read().get(name)
    if profile.server is None:
        print(f"profile {name!r} has no server (log in with heslock first)", file=sys.stderr)
        return 2
    async with AsyncRasClient(
        profile.server, ca=profile.ca, tokens=ProfileTokenStore(file, name)
    ) as ras:
        if args.command == "register-app":
            app = await ras.run(
                Call(
                    "POST",
                    "/v1/apps",
                    _raw,
                    ok=frozenset({201}),
                    json={
                        "name": args.name,
                        "type": "confidential",
                        "redirect_uris": [args.redirect_uri],
                    },
                )
            )
            print(f"export RENTAL_HOST_CLIENT_ID={app['client_id']}")
            print(f"export RENTAL_HOST_CLIENT_SECRET={app['client_secret']}")
        elif args.command == "approve":
            ticket = await ras.run(
                Call(
                    "POST",
                    "/oauth/authorize/ticket",
                    _raw,
                    ok=frozenset({201}),
                    json={"query": urlsplit(args.url).query},
                )
            )
            print("open this in a browser (within 5 minutes), choose, and Allow:")
            print(ticket["consent_url"])
        else:
            found = await ras.run(Call("GET", "/v1/invitations", _raw))
            invitations = found["items"] if isinstance(found, dict) else found
            for invitation in invitations:
                print(json.dumps(invitation, indent=2))
                if args.accept:
                    share = await ras.run(
                        Call("POST", f"/v1/invitations/{invitation['id']}/accept", _raw)
                    )
                    print(f"accepted: share {share['id']} is {share['status']}")
            if not invitations:
                print("no invitations")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="user_app", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", help="the heslock profile (default: as the heslock CLI)")
    sub = p.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register-app", help="register the rental app (prints its credentials)")
    reg.add_argument("--name", default="Rental host")
    reg.add_argument("--redirect-uri", default="http://127.0.0.1:8765/callback")
    approve = sub.add_parser("approve", help="open an app's authorisation request")
    approve.add_argument("url", help="the URL the rental app's /connect page shows")
    inv = sub.add_parser("invitations", help="the invitations to this profile's account")
    inv.add_argument("--accept", action="store_true", help="accept every one of them")
    return p


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
