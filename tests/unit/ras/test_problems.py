"""The RFC 9457 problem registry: every service error code is registered, URIs stable."""

from __future__ import annotations

import json

from heslock.ras.api.problems import MEDIA_TYPE, PROBLEM_BASE, REGISTRY, problem_response
from heslock.ras.services import errors


def _subclasses(cls: type[errors.ServiceError]) -> list[type[errors.ServiceError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_every_service_error_code_is_registered() -> None:
    subclasses = _subclasses(errors.ServiceError)
    assert len(subclasses) >= 7
    missing = [c.__name__ for c in subclasses if c.code not in REGISTRY]
    assert missing == []


def test_registry_is_consistent() -> None:
    for code, problem in REGISTRY.items():
        assert problem.code == code
        assert problem.uri == PROBLEM_BASE + code
        assert 400 <= problem.status <= 599
        assert code == code.lower()
        assert " " not in code


def test_problem_response_shape() -> None:
    response = problem_response("conflict", "dup", instance="/v1/x", extra=1)
    assert response.status_code == 409
    assert response.media_type == MEDIA_TYPE
    assert json.loads(bytes(response.body)) == {
        "type": "https://heslock.dev/problems/conflict",
        "title": "Conflict with the current state",
        "status": 409,
        "detail": "dup",
        "instance": "/v1/x",
        "extra": 1,
    }
