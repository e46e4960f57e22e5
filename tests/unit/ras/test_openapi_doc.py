"""The committed RAS API documents cannot drift from the code.

- docs/openapi.json is what tools/gen_openapi.py produces from ``create_app``, byte for
  byte; the tool's ``--check`` exits 1 on a stale or missing file.
- The route table of docs/api.md lists exactly the operations of the OpenAPI document
  (plus ``GET /metrics``, which the app keeps out of the schema).
- The problem registry of docs/api.md lists exactly the problem types of
  ``heslock.ras.api.problems.REGISTRY``, each with its HTTP status.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import pytest
from tools import gen_openapi

from heslock.ras.api.problems import PROBLEM_BASE, REGISTRY

ROOT: Final = Path(__file__).resolve().parents[3]
OPENAPI_FILE: Final = ROOT / "docs" / "openapi.json"
API_DOC: Final = ROOT / "docs" / "api.md"
#: Served by the app but excluded from the schema (``include_in_schema=False``).
OUTSIDE_SCHEMA: Final = {("GET", "/metrics")}

_ROUTE_ROW: Final = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*`([^`]+)`\s*\|", re.M)
_PROBLEM_ROW: Final = re.compile(r"^\|\s*`([a-z-]+)`\s*\|\s*(\d{3})\s*\|", re.M)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return gen_openapi.build()


def _section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section of a Markdown document."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_committed_document_is_reproduced_byte_for_byte(document: dict[str, Any]) -> None:
    assert gen_openapi.render(document) == OPENAPI_FILE.read_text(encoding="utf-8")


def test_document_is_stable_and_sorted(document: dict[str, Any]) -> None:
    text = gen_openapi.render(document)
    assert text == gen_openapi.render(gen_openapi.build())  # nothing random leaks in
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert document["info"]["title"] == "heslock RAS"


def test_check_and_output_cli(tmp_path: Path) -> None:
    assert gen_openapi.main(["--check", str(OPENAPI_FILE)]) == 0
    out = tmp_path / "openapi.json"
    assert gen_openapi.main(["--output", str(out)]) == 0
    assert out.read_bytes() == OPENAPI_FILE.read_bytes()
    out.write_text(out.read_text(encoding="utf-8").replace('"/v1/locks"', '"/v1/lockz"', 1))
    assert gen_openapi.main(["--check", str(out)]) == 1
    assert gen_openapi.main(["--check", str(tmp_path / "missing.json")]) == 1


def test_routes_lists_every_operation(document: dict[str, Any]) -> None:
    found = gen_openapi.routes(document)
    assert ("POST", "/v1/session/second-factor") in found
    assert len(found) == len(set(found))
    assert found == sorted(found, key=lambda route: (route[1], route[0]))


def test_api_md_route_table_matches_the_openapi_document(document: dict[str, Any]) -> None:
    table = _section(API_DOC.read_text(encoding="utf-8"), "Route table")
    rows = _ROUTE_ROW.findall(table)
    assert len(rows) == len(set(rows)), "a route is listed twice"
    expected = set(gen_openapi.routes(document)) | OUTSIDE_SCHEMA
    assert set(rows) == expected


def test_api_md_problem_registry_matches_problems_py() -> None:
    registry = _section(API_DOC.read_text(encoding="utf-8"), "Problem types")
    rows = {code: int(status) for code, status in _PROBLEM_ROW.findall(registry)}
    assert rows == {code: problem.status for code, problem in REGISTRY.items()}
    assert PROBLEM_BASE in registry
