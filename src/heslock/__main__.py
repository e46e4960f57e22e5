"""``python -m heslock``: the same as the ``heslock`` console script."""

from __future__ import annotations

import sys

from heslock.cli import main

if __name__ == "__main__":
    sys.exit(main())
