"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from heslock.ras.api.deps import StateDep
from heslock.ras.api.problems import problem_response
from heslock.ras.services.health import readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers and is migrated",
    responses={503: {"description": "Not ready (problem details name the failing checks)"}},
)
async def readyz(request: Request, state: StateDep) -> JSONResponse:
    problems = await readiness(state.engine)
    if problems:
        return problem_response(
            "unavailable", "not ready", instance=request.url.path, checks=problems
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
async def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
