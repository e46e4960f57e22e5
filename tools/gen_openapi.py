"""Generate the OpenAPI document of the RAS HTTPS API (docs/openapi.json).

The RAS app (UDMS, DDMS and SCS routers of ISO/IEC 14543-5-104's remote access server)
is built with ``create_app(settings)`` exactly as ``heslock ras serve`` builds it, but
against a throwaway temporary data directory and a throwaway in-memory master key: no
server is started, no database is opened, nothing touches the network. The document is
written as stable JSON (keys sorted, two-space indent, ASCII, final newline), so it is
reproducible byte for byte; tests/unit/ras/test_openapi_doc.py checks the committed file
against this script, so the document cannot drift from the code.

Usage::

    python tools/gen_openapi.py --output docs/openapi.json
    python tools/gen_openapi.py --check docs/openapi.json   # exit 1 if stale
    python tools/gen_openapi.py --routes                    # the route list, one a line
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from heslock.ras.api import create_app
from heslock.ras.keystore import MASTER_KEY_SIZE, Keystore, MasterKey
from heslock.ras.settings import load_settings

#: The HTTP methods an OpenAPI path item may hold (OpenAPI 3.1, "Path Item Object").
HTTP_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: Where the committed document lives, relative to the repository root.
DEFAULT_PATH: Final = Path("docs") / "openapi.json"


def build() -> dict[str, Any]:
    """The OpenAPI document of a freshly built RAS app.

    The environment is not read (``env={}``): a ``HESLOCK_*`` variable of the person
    running this must not change the document.
    """
    with tempfile.TemporaryDirectory(prefix="heslock-openapi-") as data_dir:
        settings = load_settings({"data_dir": Path(data_dir)}, env={})
        # A throwaway key: the schema does not depend on it, and no key file is needed.
        keystore = Keystore(MasterKey(os.urandom(MASTER_KEY_SIZE)))
        app = create_app(settings, keystore=keystore)
        try:
            document: dict[str, Any] = app.openapi()
        finally:
            # The engine never connected; disposing it is cheap and leaves nothing open.
            asyncio.run(app.state.ras.engine.dispose())
    return document


def render(document: dict[str, Any] | None = None) -> str:
    """The document as stable text: sorted keys, indented, ASCII, trailing newline."""
    doc = build() if document is None else document
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def routes(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every ``(METHOD, path)`` of ``document``, sorted by path then method."""
    found = [
        (method.upper(), path)
        for path, item in document.get("paths", {}).items()
        for method in item
        if method in HTTP_METHODS
    ]
    return sorted(found, key=lambda route: (route[1], route[0]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--output", type=Path, help="write the document to this file")
    group.add_argument("--check", type=Path, help="exit 1 unless this file is up to date")
    group.add_argument("--routes", action="store_true", help="print METHOD path, one a line")
    args = parser.parse_args(argv)
    document = build()
    if args.routes:
        for method, path in routes(document):
            print(f"{method} {path}")
        return 0
    text = render(document)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {len(routes(document))} operations to {args.output}")
        return 0
    try:
        current = args.check.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"cannot read {args.check}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if current != text:
        print(
            f"{args.check} is out of date: run python tools/gen_openapi.py --output {args.check}",
            file=sys.stderr,
        )
        return 1
    print(f"{args.check} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
