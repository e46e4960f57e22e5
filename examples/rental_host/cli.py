"""Command-line flags (each with an environment variable) and the server."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from .app import Config, create_app

ENV = "RENTAL_HOST_"


def parser() -> argparse.ArgumentParser:
    def env(name: str, default: str | None = None) -> str | None:
        return os.environ.get(ENV + name, default)

    p = argparse.ArgumentParser(
        prog="rental_host",
        description="A rental host's property tool on heslock (a third-party OAuth app).",
        epilog=f"Every flag can also be given as an environment variable {ENV}<NAME>; "
        "prefer the variable for the client secret (flags show in the process list).",
    )
    p.add_argument("--ras", default=env("RAS_URL"), help="the RAS's URL ($RENTAL_HOST_RAS_URL)")
    p.add_argument(
        "--ca", default=env("CA_FILE"), help="the RAS's CA certificate file ($RENTAL_HOST_CA_FILE)"
    )
    p.add_argument("--client-id", default=env("CLIENT_ID"), help="($RENTAL_HOST_CLIENT_ID)")
    p.add_argument(
        "--client-secret", default=env("CLIENT_SECRET"), help="($RENTAL_HOST_CLIENT_SECRET)"
    )
    p.add_argument(
        "--listen",
        default=env("LISTEN", "127.0.0.1:8765"),
        help="host:port to listen on (default 127.0.0.1:8765; $RENTAL_HOST_LISTEN)",
    )
    p.add_argument(
        "--public-url",
        default=env("PUBLIC_URL"),
        help="the URL the browser and the RAS use for this app (default http://LISTEN; "
        "the redirect URI registered with the RAS is PUBLIC_URL/callback)",
    )
    p.add_argument(
        "--db",
        default=env("DB", "rental_host.db"),
        help="the SQLite state file, or :memory: (default rental_host.db; $RENTAL_HOST_DB)",
    )
    return p


def config_from(args: argparse.Namespace) -> Config:
    missing = [
        flag
        for flag, value in (
            ("--ras", args.ras),
            ("--client-id", args.client_id),
            ("--client-secret", args.client_secret),
        )
        if not value
    ]
    if missing:
        raise SystemExit(f"rental_host: missing {', '.join(missing)} (see --help)")
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit("rental_host: --listen is host:port")
    return Config(
        ras_url=args.ras.rstrip("/"),
        client_id=args.client_id,
        client_secret=args.client_secret,
        public_url=(args.public_url or f"http://{args.listen}").rstrip("/"),
        db_path=args.db,
        ca_file=Path(args.ca) if args.ca else None,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = config_from(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    print(f"rental host: open {config.public_url}/ (redirect URI {config.redirect_uri})")
    uvicorn.run(create_app(config), host=host, port=int(port), log_level="info")
    return 0
