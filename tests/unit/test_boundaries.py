"""The written boundaries of docs/architecture.md, checked on every run.

- ``heslock.protocol`` (and ``heslock.errors``) is pure: standard library (no I/O
  modules), ``cryptography``, and itself. Nothing else.
- Parties (ras, bgw, bsld, rac) never import one another; they share only protocol,
  errors, and the plumbing packages ``ble`` and ``xmpp`` (which import no party).
- Only the composition roots (``cli``, ``demo``) may import several parties.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import heslock

SRC = Path(heslock.__file__).parent
PARTIES = {"ras", "bgw", "bsld", "rac"}
PLUMBING = {"ble", "xmpp", "common"}
ROOTS = {"cli", "demo", "__main__"}
#: Standard-library modules that do I/O or concurrency: not for the pure core.
IMPURE_STDLIB = {
    "asyncio",
    "socket",
    "ssl",
    "threading",
    "subprocess",
    "selectors",
    "multiprocessing",
    "sqlite3",
    "http",
    "urllib",
    "logging",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _area(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".py") if rel else ""


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_protocol_core_is_pure() -> None:
    offenders = []
    for path in _modules():
        if _area(path) not in {"protocol", "errors"}:
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            allowed = (
                name.startswith(("heslock.protocol", "heslock.errors"))
                or top == "cryptography"
                or (top in sys.stdlib_module_names and top not in IMPURE_STDLIB)
                or name == "__future__"
            )
            if not allowed:
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


def test_parties_do_not_import_each_other() -> None:
    offenders = []
    for path in _modules():
        area = _area(path)
        if area in ROOTS:
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "heslock" or len(parts) < 2:
                continue
            target = parts[1]
            if target in PARTIES and target != area:
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
            if area in PLUMBING and target in PARTIES:
                offenders.append(f"plumbing {path.relative_to(SRC)} imports party {name}")
    assert offenders == []


def test_boundary_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself must be able to fail."""
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom heslock.ras import x\n")
    assert {"asyncio", "heslock.ras"} <= _imports(bad)
