"""RFC 9457 problem documents -> RasProblem, and the exit codes the command line uses."""

from __future__ import annotations

import pickle

import pytest

from heslock import cli
from heslock.rac import errors
from heslock.rac.errors import PROBLEM_BASE, RasProblem, exit_code_for


def test_a_problem_document_keeps_every_member() -> None:
    problem = RasProblem.from_document(
        409,
        {
            "type": PROBLEM_BASE + "lock-refused",
            "title": "The lock refused the command",
            "status": 409,
            "detail": "the lock refused: JAMMED",
            "instance": "/v1/locks/x/commands",
            "command_id": "c1",
            "state": "refused",
            "reason": "JAMMED",
        },
    )
    assert (problem.status, problem.code, problem.reason) == (409, "lock-refused", "JAMMED")
    assert problem.title == "The lock refused the command"
    assert problem.instance == "/v1/locks/x/commands"
    assert problem.extensions == {"command_id": "c1", "state": "refused", "reason": "JAMMED"}
    assert str(problem) == "the lock refused: JAMMED [lock-refused]"
    assert problem.exit_code == 3
    assert repr(problem) == "RasProblem(status=409, code='lock-refused', reason='JAMMED')"


@pytest.mark.parametrize("document", [None, "oops", ["a"], {"type": 7}, {}])
def test_anything_else_is_still_a_problem_with_about_blank(document: object) -> None:
    problem = RasProblem.from_document(502, document)
    assert problem.type == "about:blank"
    assert problem.code is None
    assert problem.status == 502
    assert str(problem) == "the server answered HTTP 502 [502]"
    assert problem.exit_code == 5


def test_a_foreign_type_has_no_code_and_exits_by_status() -> None:
    problem = RasProblem.from_document(404, {"type": "https://example.org/nope", "title": "Nope"})
    assert problem.code is None
    assert str(problem) == "Nope [404]"
    assert problem.exit_code == 4


def test_validation_errors_name_the_fields_never_the_values() -> None:
    problem = RasProblem.from_document(
        422,
        {
            "type": PROBLEM_BASE + "validation-failed",
            "detail": "1 field(s) failed validation",
            "errors": [
                {"loc": ["body", "name"], "msg": "String should have at most 64 characters"}
            ],
        },
    )
    assert str(problem) == (
        "1 field(s) failed validation: name: String should have at most 64 characters "
        "[validation-failed]"
    )
    assert problem.exit_code == 2


def test_retry_after_is_read_as_seconds() -> None:
    limited = RasProblem.from_document(
        429, {"type": PROBLEM_BASE + "rate-limited", "retry_after": 900}
    )
    assert limited.retry_after == 900
    assert RasProblem.from_document(429, {"retry_after": True}).retry_after is None
    assert RasProblem.from_document(429, {"retry_after": "soon"}).retry_after is None


@pytest.mark.parametrize(
    ("code", "status", "exit_code"),
    [
        ("lock-refused", 409, 3),
        ("command-outcome-unknown", 409, 3),
        ("command-not-executed", 409, 3),
        ("frame-refused", 422, 3),
        ("unauthenticated", 401, 4),
        ("code-refused", 400, 4),
        ("not-found", 404, 4),
        ("device-unavailable", 409, 4),
        ("rate-limited", 429, 4),
        ("gateway-unavailable", 503, 5),
        ("lock-unreachable", 504, 5),
        ("gateway-failure", 502, 5),
        ("invalid-input", 422, 2),
        ("password-refused", 422, 2),
        (None, 500, 5),
        (None, 418, 2),
        ("a-code-from-a-newer-ras", 409, 4),
    ],
)
def test_exit_codes(code: str | None, status: int, exit_code: int) -> None:
    assert exit_code_for(code, status) == exit_code


def test_the_sdk_repeats_the_command_lines_exit_codes() -> None:
    assert errors.EXIT_USAGE == cli.EXIT_USAGE
    assert errors.EXIT_REFUSED == cli.EXIT_REFUSED
    assert errors.EXIT_FORBIDDEN == cli.EXIT_FORBIDDEN
    assert errors.EXIT_UNREACHABLE == cli.EXIT_UNREACHABLE


def test_registration_failures_exit_by_phase() -> None:
    failed = errors.RegistrationFailed("refused", phase="failed", reason="STALE")
    expired = errors.RegistrationFailed("slow", phase="expired", reason=None)
    assert (failed.exit_code, expired.exit_code) == (3, 5)


def test_errors_survive_pickling() -> None:
    problem = RasProblem.from_document(409, {"type": PROBLEM_BASE + "lock-refused", "reason": "X"})
    copy = pickle.loads(pickle.dumps(problem))
    assert (copy.status, copy.code, copy.reason, str(copy)) == (
        409,
        "lock-refused",
        "X",
        str(problem),
    )
    lost = pickle.loads(pickle.dumps(errors.RasUnreachable("gone", maybe_sent=True)))
    assert (str(lost), lost.maybe_sent) == ("gone", True)
    failed = pickle.loads(pickle.dumps(errors.RegistrationFailed("no", phase="failed", reason="S")))
    assert (failed.phase, failed.reason, failed.exit_code) == ("failed", "S", 3)
