"""``python examples/rental_host [flags]``: serve the rental host app (README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a directory: make ``examples.rental_host`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.rental_host.cli import main

if __name__ == "__main__":
    sys.exit(main())
