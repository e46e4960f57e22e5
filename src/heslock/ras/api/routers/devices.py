"""DDMS devices over HTTPS: manufacturer import (admin), legitimacy check, device admin.

``POST /v1/admin/devices/import`` takes the manufacturer file as the request body
(``application/json``: the JSON document; ``text/csv``: the CSV) or as a multipart
upload (field ``file``; ``.csv`` or ``.json`` by its name or content type). With any bad
record nothing is imported and the answer is a 422 ``import-rejected`` problem listing
every bad line; ``?skip_bad=true`` imports the good records and lists the bad ones.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import UploadFile

from heslock.ras.api.deps import BEARER, AuditDep, PrincipalDep, SessionDep, StateDep
from heslock.ras.services.access import Action, Resource, ResourceKind, authorize
from heslock.ras.services.ddms import devices, importer
from heslock.ras.services.ddms.runtime import DdmsRuntime
from heslock.ras.services.errors import InvalidInput

router = APIRouter(prefix="/v1", tags=["devices"], dependencies=BEARER)


def ddms_runtime(request: Request) -> DdmsRuntime:
    runtime: DdmsRuntime = request.app.state.ddms
    return runtime


RuntimeDep = Annotated[DdmsRuntime, Depends(ddms_runtime)]


class RejectedLine(BaseModel):
    line: int
    device_id: str | None
    reasons: list[str]


class ImportResult(BaseModel):
    total: int
    imported: int
    rejected_count: int
    rejected: list[RejectedLine]
    committed: bool
    skip_bad: bool


class DeviceView(BaseModel):
    """A device as an administrator sees it; the factory key is never part of it."""

    model_config = ConfigDict(from_attributes=True)

    device_id: str
    maker: str
    model: str
    ble_version: str
    profile: str
    status: str


async def _file(request: Request) -> list[importer.Line]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=4) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidInput("the multipart body needs a 'file' part")
            name = (upload.filename or "").lower()
            kind = (upload.content_type or "").lower()
            data = await upload.read()
        fmt = "csv" if name.endswith(".csv") or kind == "text/csv" else "json"
        return importer.parse(data, fmt)
    if content_type == "application/json":
        try:
            doc: Any = json.loads(await request.body())
        except (ValueError, RecursionError):
            raise InvalidInput("the body is not valid JSON") from None
        return importer.parse_document(doc)
    if content_type == "text/csv":
        return importer.parse(await request.body(), "csv")
    raise InvalidInput("send application/json, text/csv or a multipart 'file' upload")


@router.post(
    "/admin/devices/import",
    summary="Import makers' factory records (administrators)",
    responses={422: {"description": "import-rejected: the bad lines; nothing was imported"}},
)
async def import_devices(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
    ctx: AuditDep,
    skip_bad: Annotated[bool, Query()] = False,
) -> ImportResult:
    authorize(principal, Action.DEVICE_IMPORT, Resource(ResourceKind.DEVICE))
    lines = await _file(request)
    report = await importer.import_records(
        session, state.keystore, ctx, lines, skip_bad=skip_bad, source="api"
    )
    return ImportResult.model_validate(report.as_dict())


@router.get(
    "/devices/{device_id}/legitimacy",
    summary="Is a discovered device genuine and free to bind? (status 0/1)",
)
async def legitimacy(
    device_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    ctx: AuditDep,
) -> dict[str, Any]:
    answer = await devices.check_legitimacy(session, principal, ctx, device_id, runtime.clock())
    return answer.as_dict()


@router.get("/admin/devices/{device_id}", summary="A device (administrators)")
async def get_device(device_id: str, principal: PrincipalDep, session: SessionDep) -> DeviceView:
    return DeviceView.model_validate(await devices.get_device(session, principal, device_id))


@router.post("/admin/devices/{device_id}/revoke", summary="Revoke a device (administrators)")
async def revoke_device(
    device_id: str, principal: PrincipalDep, session: SessionDep, ctx: AuditDep
) -> DeviceView:
    device = await devices.revoke_device(session, principal, ctx, device_id)
    return DeviceView.model_validate(device)
